"""Shock (gradient catastrophe) time of inviscid Burgers with ``v0 = U'``."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .. import _checks
from ._nodes import axis_nodes, check_axes, check_potential, non_finite_values
from ._solver._axes import AbstractAxis

_NEWTON_STEPS = 6


def line_axis(nodes, period):
    """``(axis, nodes array)`` of a single 1-D grid (or axis), checked."""
    if isinstance(nodes, tuple | list) and not isinstance(nodes, AbstractAxis):
        raise ValueError(
            f"nodes must be one 1-D grid or axis here; got a sequence of {len(nodes)}"
        )
    (axis,) = check_axes(nodes, period)
    return axis, axis_nodes(nodes, (axis,), _checks.default_float())[0]


def _refine_minimum(f, start, width):
    """Safeguarded Newton steps for a local minimum of ``f`` near ``start``.

    A step is taken only where ``f'' > 0`` and it stays within ``width`` of
    ``start`` and does not increase ``f``; otherwise the iterate stays put.
    """
    df = jax.grad(f)
    d2f = jax.grad(df)

    def step(y, _):
        curvature = d2f(y)
        convex = curvature > 0
        trial = y - df(y) / jnp.where(convex, curvature, 1.0)
        ok = convex & (jnp.abs(trial - start) <= width) & (f(trial) <= f(y))
        return jnp.where(ok, trial, y), None

    y, _ = jax.lax.scan(step, start, None, length=_NEWTON_STEPS)
    return y


def shock_time(
    U: Callable,
    nodes: Float[ArrayLike, " N"] | AbstractAxis,
    *,
    period: float | None = None,
) -> Float[Array, ""]:
    r"""Classical existence time ``τ* = −1 / inf U''`` of inviscid Burgers, ``v0 = U'``.

    Theorem 4.3 of the paper: characteristics ``s(τ; ξ) = ξ + τ U'(ξ)`` first
    cross at ``τ* = −1/inf_ξ U''(ξ)`` when ``inf U'' < 0`` and never
    (``τ* = inf``) when ``inf U'' ≥ 0``. ``U''`` comes from autodiff; the
    infimum is located on ``nodes`` and refined by safeguarded Newton steps on
    ``U'''`` (autodiff again), so it is exact to rounding when the minimum of
    ``U''`` lies within a node spacing of the best node. The answer does not
    depend on the viscosity convention (ν or ν_c).

    Args:
        U: ``scalar -> scalar`` potential (a JAX function).
        nodes: uniform 1-D grid covering where ``U''`` attains its infimum
            (one period ``[a, a + P)`` if ``period`` is given), or an axis
            (:class:`~geomshock.pde.LineAxis`, :class:`~geomshock.pde.PeriodicAxis`).
            Concrete grids are checked now (``ValueError``), traced ones when
            the computation runs; NaN or inf ``U''`` on the nodes raises a
            "non-finite input" error.
        period: ``None`` or the period ``P`` of ``U``.

    Returns:
        ``τ*`` (float scalar, ``inf`` when ``inf U'' ≥ 0``).

    Supports ``jit``, ``vmap`` over parameters that ``U`` closes over and
    ``grad`` with respect to them (through the refined minimiser).

    Example:
        >>> import jax.numpy as jnp
        >>> float(shock_time(lambda s: jnp.exp(-s**2 / 2),
        ...                  jnp.linspace(-5.0, 5.0, 101)))
        1.0
    """
    axis, grid = line_axis(nodes, period)
    check_potential(U, 1, grid.dtype)
    tau_star, bad = _shock_time(U, grid, axis.spacing)
    return _checks.raise_if(
        tau_star, bad, non_finite_values("U''(nodes)"), _checks.NonFiniteInputError
    )


@eqx.filter_jit
def _shock_time(U, grid, spacing):
    curvature = jax.grad(jax.grad(U))
    values = jax.vmap(curvature)(grid)
    start = grid[jnp.argmin(values)]
    best = _refine_minimum(curvature, start, spacing)
    inf_curvature = jnp.minimum(curvature(best), jnp.min(values))
    negative = inf_curvature < 0
    tau_star = jnp.where(
        negative, -1 / jnp.where(negative, inf_curvature, -1.0), jnp.inf
    )
    return tau_star, ~jnp.all(jnp.isfinite(values))
