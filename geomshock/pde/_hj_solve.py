"""``solve_hj`` and ``solve_heat``: viscous Hamilton–Jacobi and heat flow on a chart."""

from collections.abc import Callable, Sequence

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._custom_types import Array, ArrayLike, Float, MetricFn
from ..geometry import christoffel, inverse_metric
from ..geometry._metric import symmetry_rtol
from ._solver import AbstractSpectralAxis
from ._solver._integrate import check_nu, check_taus, integrate


def grid_points(grid: Sequence[AbstractSpectralAxis]) -> Float[Array, "*shape d"]:
    """Chart points of the tensor grid, shape ``(n_1, …, n_d, d)`` (``ij`` order).

    >>> from geomshock.pde import NeumannAxis, PeriodicAxis
    >>> grid_points((NeumannAxis(0.0, 1.0, 2), PeriodicAxis(0.0, 1.0, 2))).tolist()
    [[[0.25, 0.0], [0.25, 0.5]], [[0.75, 0.0], [0.75, 0.5]]]
    """
    grid = _check_grid(grid)
    mesh = np.meshgrid(*[axis.nodes() for axis in grid], indexing="ij")
    return jnp.asarray(np.stack(mesh, axis=-1), dtype=_checks.default_float())


def _check_grid(grid) -> tuple[AbstractSpectralAxis, ...]:
    if isinstance(grid, AbstractSpectralAxis):
        grid = (grid,)
    grid = tuple(grid)
    if not grid or not all(isinstance(axis, AbstractSpectralAxis) for axis in grid):
        raise ValueError(
            "grid must be a sequence of axes, spectral ones (AbstractSpectralAxis: "
            "PeriodicAxis for periodic coordinates, NeumannAxis for reflecting "
            f"ends), one per chart coordinate; got {[type(a).__name__ for a in grid]}"
            " (a LineAxis or raw nodes cannot differentiate: build the axes, e.g. "
            "PeriodicAxis(start, period, n))"
        )
    return grid


def _symmetric_metric(g: Array, flat: Array) -> Array:
    """``g`` (metric values at the nodes) if symmetric to a relative tolerance.

    ``|g_ij − g_ji| ≤ rtol · max_kl |g_kl|`` at every node, with the geometry
    package's ``symmetry_rtol`` (``1e-8`` in float64, ``1e-4`` in float32); a
    batched form of ``geometry.check_metric`` that names the node. Returns
    ``g`` (with the run-time check threaded into it when the values are traced).
    """
    rtol = symmetry_rtol(g.dtype)
    asym = jnp.max(jnp.abs(g - jnp.swapaxes(g, -1, -2)), axis=(-2, -1))
    scale = jnp.max(jnp.abs(g), axis=(-2, -1))
    bad = ~(asym <= rtol * scale)  # NaN counts as bad
    bad_c = _checks.concrete(bad)
    if bad_c is None:
        return _checks.run_time_check(
            g,
            jnp.any(bad),
            f"metric is not symmetric at some grid node (|g - gᵀ| above {rtol:g} "
            "of max |g|): a Riemannian metric must be symmetric positive definite; "
            "symmetrize it, e.g. return 0.5 * (g + g.T)",
        )
    if np.any(bad_c):
        j = int(np.argmax(bad_c))
        raise ValueError(
            f"metric is not symmetric at the grid node q = {np.asarray(flat[j])}: "
            f"max |g - gᵀ| = {float(asym[j]):.3g} for max |g| = "
            f"{float(scale[j]):.3g} (relative tolerance {rtol:g}); a Riemannian "
            "metric must be symmetric positive definite: symmetrize it, e.g. "
            "return 0.5 * (g + g.T)"
        )
    return g


@eqx.filter_jit
def _at_nodes(fn: Callable, points: Array) -> Array:
    """``fn`` at every node: one compiled ``vmap`` per function (and shape)."""
    return jax.vmap(fn)(points)


@eqx.filter_jit
def _inverse_and_contracted(metric: MetricFn, points: Array) -> tuple[Array, Array]:
    """``g^{-1}`` and ``g^{ij} Γ^k_ij`` at the nodes, by autodiff of ``metric``."""
    g_inv = jax.vmap(inverse_metric(metric))(points)
    gamma = jax.vmap(christoffel(metric))(points)
    return g_inv, jnp.einsum("pij,pkij->pk", g_inv, gamma)


class _ChartOperator(eqx.Module):
    """``Δ_g`` and ``|grad ·|²_g`` on the grid, geometry precomputed at the nodes.

    ``Δu = g^{ij} ∂_ij u − g^{ij} Γ^k_ij ∂_k u`` with ``g^{-1}`` and ``Γ`` from
    autodiff of the metric (geomshock.geometry); ``∂u`` spectral per axis.
    Built by :func:`_chart_operator`; a Module holding arrays, so the time
    stepper compiled for one metric is reused for another on the same grid.
    """

    grid: tuple[AbstractSpectralAxis, ...]
    g_inv: Array
    contracted: Array

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


def _chart_operator(metric: MetricFn, grid, dtype) -> _ChartOperator:
    """The geometry of ``metric`` at the nodes, formed in the default float and
    cast to the state's ``dtype``; the metric values are checked (finite,
    symmetric) before ``g^{-1}`` and ``Γ`` are formed from them."""
    points = grid_points(grid)
    dim = len(grid)
    flat = points.reshape(-1, dim)
    # The shape is checked on the values (no separate eval_shape trace per call).
    g = _at_nodes(metric, flat)
    if g.shape[1:] != (dim, dim):
        raise ValueError(
            f"metric must map a chart point of shape ({dim},) (one coordinate "
            f"per grid axis) to shape ({dim}, {dim}); got {g.shape[1:]}"
        )
    g = _checks.finite_array(g, "metric on the grid")
    g = _symmetric_metric(g, flat)
    g_inv, contracted = _inverse_and_contracted(metric, flat)
    shape = points.shape[:-1]
    return _ChartOperator(
        grid=grid,
        g_inv=_checks.tie(g_inv, g).reshape(*shape, dim, dim).astype(dtype),
        contracted=contracted.reshape(*shape, dim).astype(dtype),
    )


def _initial_values(U, grid, name: str) -> Array:
    """``U`` on the grid (called at the nodes, or given as values): finite."""
    shape = tuple(axis.n for axis in grid)
    if callable(U):
        points = grid_points(grid).reshape(-1, len(grid))
        values = _at_nodes(U, points)
        if values.shape[1:] != ():
            raise ValueError(
                f"{name} must map a chart point to a scalar; it returned shape "
                f"{values.shape[1:]}"
            )
        values = values.reshape(shape)
    else:
        values = _checks.check_float_dtype(U, name)
        if values.shape != shape:
            raise ValueError(
                f"{name} given as grid values must have the grid shape {shape}, "
                f"got {values.shape}"
            )
    return _checks.finite_array(values, name)


class _ChartVectorField(eqx.Module):
    """``(ν/2) Δ_g u − ½|grad u|²_g`` (``hj``) or ``(ν/2) Δ_g w`` (heat).

    A Module holding the geometry and ν, not a closure: diffrax's compiled
    solve is reused for a new ν, new data or a new metric on the same grid.
    """

    op: _ChartOperator
    nu: Array
    hj: bool = eqx.field(static=True)

    def __call__(self, t, u, args):
        lap, grad_sq = self.op.laplacian_and_grad_sq(u)
        field = 0.5 * self.nu * lap
        return field - 0.5 * grad_sq if self.hj else field


def _solve(U, metric, nu, taus, grid, hj, options, name):
    grid = _check_grid(grid)
    u0 = _initial_values(U, grid, name)
    dtype = u0.dtype
    nu = check_nu(nu, dtype)
    taus = check_taus(taus, dtype)
    op = _chart_operator(metric, grid, dtype)
    term = diffrax.ODETerm(_ChartVectorField(op, nu, hj))
    solver = options.pop("solver", None)
    solver = diffrax.Tsit5() if solver is None else solver
    return integrate(term, u0, taus, solver=solver, grid=grid, **options)


def solve_hj(
    U: Callable | Float[ArrayLike, "..."],
    metric: MetricFn,
    nu: Float[ArrayLike, ""],
    taus: Float[ArrayLike, " t"],
    grid: Sequence[AbstractSpectralAxis],
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
        metric: ``q -> g(q)``, ``(d, d)`` SPD at every node; checked to be
            finite and symmetric there (relative tolerance ``1e-8`` in
            float64, ``1e-4`` in float32).
        nu: viscosity ``ν > 0`` (paper convention).
        taus: non-negative, non-decreasing save times.
        grid: one spectral axis (``AbstractSpectralAxis``) per chart
            coordinate; ``grid_points(grid)`` gives the nodes.
        **solver_options: ``solver`` (default ``diffrax.Tsit5()``) and the
            options of ``solve_burgers`` (``rtol``/``atol`` default ``1e-9``
            in float64, ``1e-6`` in float32: the dtype of the values of ``U``;
            ``return_solution=True`` for a ``PDESolution``).

    Returns:
        ``u`` at ``taus``, shape ``(len(taus), n_1, …, n_d)``; with
        ``return_solution=True`` a ``PDESolution`` whose ``grid`` is the tuple of
        axes.

    Raises:
        ValueError: for a bad grid or shapes, NaN or inf in ``U`` on the grid or
            in the metric (``NonFiniteInputError``), a non-symmetric metric,
            ``ν ≤ 0``, bad ``taus`` or solver options; under ``jit`` the
            value checks fail at run time.

    Supports ``jit``, ``vmap`` over ``nu`` and grid values of ``U``, and
    ``grad`` in ``nu``, ``U`` and parameters of ``metric``.

    Eager calls are cheap after the first: the checks run now, on the known
    values; the metric's geometry at the nodes (and ``U`` there, when it is a
    function) is a compiled ``vmap`` cached per function object, and the time
    stepping one cached ``eqx.filter_jit`` computation in which ν, the data
    and the geometry are traced. A new ν, new grid values of ``U`` or new
    ``taus`` of the same shapes reuse everything; the same ``metric`` and
    ``U`` *objects* (a module-level function, a chart's bound ``metric``)
    reuse their node evaluations. A new Python function (a fresh ``lambda``
    per call) compiles its node evaluation again (two small compilations,
    0.7 s per call for the round-sphere metric on a 24 × 8 grid on a CPU),
    but not the time stepper. New grids, shapes, dtypes, solvers or solver
    options compile again.

    Example:
        >>> import jax.numpy as jnp
        >>> from geomshock.pde import PeriodicAxis
        >>> grid = (PeriodicAxis(0.0, 2 * jnp.pi, 16),)
        >>> u = solve_hj(lambda q: jnp.cos(q[0]), lambda q: jnp.eye(1), 0.5,
        ...              jnp.array([0.0, 0.1]), grid)
        >>> u.shape
        (2, 16)
    """
    return _solve(U, metric, nu, taus, grid, True, solver_options, "U")


def solve_heat(W, metric: MetricFn, nu, taus, grid, **solver_options) -> Array:
    r"""Heat flow on a chart, ``∂_τ w = (ν/2) Δ_g w``, i.e. ``w(τ) = exp((ντ/2)Δ_g) W``.

    Same grid, geometry, checks, options and transformations as ``solve_hj``;
    prefer ``solve_hj`` for local entropy (it works with ``−ν log w`` directly).

    Example:
        >>> import jax.numpy as jnp
        >>> from geomshock.pde import PeriodicAxis
        >>> grid = (PeriodicAxis(0.0, 2 * jnp.pi, 16),)
        >>> w = solve_heat(lambda q: jnp.cos(q[0]), lambda q: jnp.eye(1), 1.0,
        ...                jnp.array([2.0]), grid)
        >>> round(float(w[0, 0]), 6)  # e^{-ντ/2} cos 0
        0.367879
    """
    return _solve(W, metric, nu, taus, grid, False, solver_options, "W")
