"""``solve_hj`` and ``solve_heat``: viscous Hamilton–Jacobi and heat flow on a chart."""

from collections.abc import Callable, Sequence

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Float, MetricFn
from ..geometry import christoffel, inverse_metric
from ._solver import AbstractAxis
from ._solver._integrate import check_nu, check_taus, integrate


def grid_points(grid: Sequence[AbstractAxis]) -> Float[Array, "*shape d"]:
    """Chart points of the tensor grid, shape ``(n_1, …, n_d, d)`` (``ij`` order)."""
    grid = _check_grid(grid)
    mesh = np.meshgrid(*[axis.nodes() for axis in grid], indexing="ij")
    return jnp.asarray(np.stack(mesh, axis=-1), dtype=jnp.result_type(float))


def _check_grid(grid) -> tuple[AbstractAxis, ...]:
    if isinstance(grid, AbstractAxis):
        grid = (grid,)
    grid = tuple(grid)
    if not grid or not all(isinstance(axis, AbstractAxis) for axis in grid):
        raise ValueError(
            "grid must be a sequence of axes (PeriodicAxis / NeumannAxis), got "
            f"{[type(a).__name__ for a in grid]}"
        )
    return grid


class _ChartOperator:
    """``Δ_g`` and ``|grad ·|²_g`` on the grid, geometry precomputed at the nodes.

    ``Δu = g^{ij} ∂_ij u − g^{ij} Γ^k_ij ∂_k u`` with ``g^{-1}`` and ``Γ`` from
    autodiff of ``metric`` (geomshock.geometry); ``∂u`` spectral per axis.
    """

    def __init__(self, metric: MetricFn, grid):
        self.grid = grid
        points = grid_points(grid)
        dim = len(grid)
        out = jax.eval_shape(metric, points.reshape(-1, dim)[0])
        if getattr(out, "shape", None) != (dim, dim):
            raise ValueError(
                f"metric must map a chart point of shape ({dim},) (one coordinate "
                f"per grid axis) to shape ({dim}, {dim}); "
                f"got {getattr(out, 'shape', None)}"
            )
        flat = points.reshape(-1, dim)
        g_inv = jax.vmap(inverse_metric(metric))(flat)
        gamma = jax.vmap(christoffel(metric))(flat)
        shape = points.shape[:-1]
        self.g_inv = g_inv.reshape(*shape, dim, dim)
        self.contracted = jnp.einsum("pij,pkij->pk", g_inv, gamma).reshape(*shape, dim)
        self.shape = shape

    def derivatives(self, u):
        first = [axis.derivative(u, i, 1) for i, axis in enumerate(self.grid)]
        dim = len(self.grid)
        second = [[None] * dim for _ in range(dim)]
        for i, axis in enumerate(self.grid):
            second[i][i] = axis.derivative(u, i, 2)
            for j in range(i + 1, dim):
                second[i][j] = second[j][i] = self.grid[j].derivative(first[i], j, 1)
        return jnp.stack(first, axis=-1), jnp.stack(
            [jnp.stack(row, axis=-1) for row in second], axis=-2
        )

    def laplacian_and_grad_sq(self, u):
        du, ddu = self.derivatives(u)
        lap = jnp.einsum("...ij,...ij->...", self.g_inv, ddu) - jnp.einsum(
            "...k,...k->...", self.contracted, du
        )
        grad_sq = jnp.einsum("...i,...ij,...j->...", du, self.g_inv, du)
        return lap, grad_sq


def _initial_values(U, op: _ChartOperator) -> Array:
    if callable(U):
        points = grid_points(op.grid).reshape(-1, len(op.grid))
        out = jax.eval_shape(U, points[0])
        if getattr(out, "shape", None) != ():
            raise ValueError(
                "U must map a chart point to a scalar; it returned shape "
                f"{getattr(out, 'shape', None)}"
            )
        return jax.vmap(U)(points).reshape(op.shape)
    values = jnp.asarray(U, dtype=jnp.result_type(float))
    if values.shape != op.shape:
        raise ValueError(
            f"U given as grid values must have the grid shape {op.shape}, "
            f"got {values.shape}"
        )
    return values


def _solve(U, metric, nu, taus, grid, vector_field, options):
    grid = _check_grid(grid)
    nu = check_nu(nu)
    taus = check_taus(taus)
    op = _ChartOperator(metric, grid)
    u0 = _initial_values(U, op)
    term = diffrax.ODETerm(lambda t, u, args: vector_field(op, u, nu))
    solver = options.pop("solver", None)
    solver = diffrax.Tsit5() if solver is None else solver
    return integrate(term, u0, taus, solver=solver, **options)


def _hj_field(op, u, nu):
    lap, grad_sq = op.laplacian_and_grad_sq(u)
    return 0.5 * nu * lap - 0.5 * grad_sq


def _heat_field(op, w, nu):
    lap, _ = op.laplacian_and_grad_sq(w)
    return 0.5 * nu * lap


def solve_hj(
    U: Callable | Float[ArrayLike, "..."],
    metric: MetricFn,
    nu: Float[ArrayLike, ""],
    taus: Float[ArrayLike, " t"],
    grid: Sequence[AbstractAxis],
    **solver_options,
) -> Float[Array, "t ..."]:
    r"""Viscous Hamilton–Jacobi on a chart: ``∂_τ u + ½|grad u|²_g = (ν/2) Δ_g u``.

    ``u(0) = U``. This is the log form of the heat flow: ``u = −ν log w`` with
    ``w_τ = (ν/2) Δ_g w`` (Thm. 3.1, semigroup ``exp((ντ/2)Δ_g)``), so
    ``solve_hj`` gives the local entropy ``u^ν(τ)`` on a curved chart without
    ever forming ``e^{−U/ν}`` (no under/overflow for small ν).

    Space: tensor grid of spectral axes (``PeriodicAxis``: Fourier;
    ``NeumannAxis``: cosine series, reflecting ends ``∂_n u = 0``, also the pole
    condition of zonal fields in colatitude). ``Δ_g u = g^{ij}(∂_ij u −
    Γ^k_ij ∂_k u)`` and ``|grad u|²_g = g^{ij} ∂_i u ∂_j u`` with ``g^{-1}`` and
    ``Γ`` from autodiff of ``metric`` at the nodes. No dealiasing: meant for
    resolved (smooth) solutions. Time: diffrax, default ``Tsit5`` with adaptive
    PID control; pass an implicit solver (e.g. ``diffrax.Kvaerno5()``) for
    stiff grids.

    Args:
        U: ``q -> U(q)`` (scalar JAX function of a point of shape ``(d,)``) or
            its values on the grid, shape ``(n_1, …, n_d)``.
        metric: ``q -> g(q)``, ``(d, d)`` SPD at every node.
        nu: viscosity ``ν > 0`` (paper convention).
        taus: non-negative, non-decreasing save times.
        grid: one axis per chart coordinate; ``grid_points(grid)`` gives the nodes.
        **solver_options: ``solver`` (default ``diffrax.Tsit5()``) and the
            options of ``solve_burgers``.

    Returns:
        ``u`` at ``taus``, shape ``(len(taus), n_1, …, n_d)``.

    Supports ``jit``, ``vmap`` over ``nu`` and grid values of ``U``, and
    ``grad`` in ``nu``, ``U`` and parameters of ``metric``.
    """
    return _solve(U, metric, nu, taus, grid, _hj_field, solver_options)


def solve_heat(W, metric: MetricFn, nu, taus, grid, **solver_options) -> Array:
    r"""Heat flow on a chart, ``∂_τ w = (ν/2) Δ_g w``, i.e. ``w(τ) = exp((ντ/2)Δ_g) W``.

    Same grid, geometry, options and transformations as ``solve_hj``; prefer
    ``solve_hj`` for local entropy (it works with ``−ν log w`` directly).
    """
    return _solve(W, metric, nu, taus, grid, _heat_field, solver_options)
