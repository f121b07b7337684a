"""The inviscid limit ν → 0: Hopf–Lax, Lax–Oleinik entropy solution, shocks.

For ``τ > 0`` the viscosity solution of ``∂_τ u + ½ (∂_x u)² = 0``,
``u(0) = U``, is ``u(τ, x) = min_y [U(y) + (x − y)²/(2τ)]`` (Hopf–Lax) and the
entropy solution of inviscid Burgers ``∂_τ v + v ∂_x v = 0``, ``v(0) = U'``,
is ``v = (x − y*)/τ`` with ``y*`` the minimiser (Lax–Oleinik). Before the shock
time the minimiser is the foot of the unique characteristic
``x = y + τ U'(y)``; after it, ``y*`` jumps across shocks, which move with the
Rankine–Hugoniot speed ``(v_L + v_R)/2``.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from .. import _checks
from ._kernel import reduce_periodic
from ._nodes import check_points, check_potential, non_finite_values
from ._shock import _refine_minimum, line_axis
from ._solver._axes import AbstractAxis

ScalarLike = Float[ArrayLike, ""]
Points1D = Float[ArrayLike, "*k"]
Grid = Float[ArrayLike, " N"] | AbstractAxis
Period = float | None


class LaxOleinik(eqx.Module):
    """Hopf–Lax value, entropy velocity and characteristic foot at points ``x``.

    ``foot`` is unwrapped on the circle: ``velocity = (x − foot)/τ`` holds
    exactly, and ``foot`` may lie outside the node period.
    """

    value: Float[Array, " k"]
    velocity: Float[Array, " k"]
    foot: Float[Array, " k"]


class Shocks(eqx.Module):
    """Shocks between consecutive evaluation points ``x_i < x_{i+1}``.

    Entries where ``mask`` is false hold the interval midpoint and the smooth
    states; only masked entries are shocks. ``left``/``right`` are the states
    ``v_L > v_R`` on either side, ``speed = (v_L + v_R)/2`` (Rankine–Hugoniot)
    and ``foot_left``/``foot_right`` the feet of the two characteristics that
    meet there.
    """

    mask: Bool[Array, " k-1"]
    position: Float[Array, " k-1"]
    left: Float[Array, " k-1"]
    right: Float[Array, " k-1"]
    speed: Float[Array, " k-1"]
    foot_left: Float[Array, " k-1"]
    foot_right: Float[Array, " k-1"]


def _prepare(U, tau, x, nodes, period):
    axis, grid = line_axis(nodes, period)
    x2, restore = check_points(x, 1, multi=False)
    check_potential(U, 1, x2.dtype)
    tau = _checks.positive_scalar(tau, "tau", allow_zero=True)
    return grid, axis.spacing, axis.period, x2[:, 0], restore, tau


def _checked(out, bad_U):
    """``out`` with the "non-finite U(nodes)" check attached (raised now if known)."""
    return _checks.raise_if(
        out, bad_U, non_finite_values("U(nodes)"), _checks.NonFiniteInputError
    )


def _objective(U, x, tau):
    return lambda y: U(y) + (x - y) ** 2 / (2 * tau)


@eqx.filter_jit
def _solve(U, tau, x, grid, spacing, period):
    """Minimiser of ``U(y) + (x − y)²/(2τ)``: best node, then Newton steps."""
    positive = tau > 0
    tau_safe = jnp.where(positive, tau, 1.0)
    d = x[:, None] - grid[None, :]
    if period is not None:
        d = reduce_periodic(d, period)
    U_grid = jax.vmap(U)(grid)
    cost = U_grid[None, :] + d**2 / (2 * tau_safe)
    best = jnp.argmin(cost, axis=1)
    start = grid[best]
    # the image of the best node nearest to x, so the objective is smooth there
    x_local = start + jnp.take_along_axis(d, best[:, None], axis=1)[:, 0]

    def refine(x_i, y0):
        return _refine_minimum(_objective(U, x_i, tau_safe), y0, spacing)

    foot = jax.vmap(refine)(x_local, start)
    foot = foot + (x - x_local)  # back to the frame of x (a period shift)
    value = jax.vmap(lambda xi, y: _objective(U, xi, tau_safe)(y))(x, foot)
    velocity = (x - foot) / tau_safe
    # τ = 0 is the initial data; the added τ·(∂_τ at 0⁺) terms vanish there but
    # give the right derivatives of ∂_τ u + ½ u_x² = 0 (u_τ = −½U'², v_τ =
    # −U'U'', y*_τ = −U'); the minimisation runs at τ = 1 and is discarded.
    slope = jax.vmap(jax.grad(U))(x)
    curvature = jax.vmap(jax.grad(jax.grad(U)))(x)
    initial = (
        jax.vmap(U)(x) - 0.5 * tau * slope**2,
        slope - tau * slope * curvature,
        x - tau * slope,
    )
    value, velocity, foot = (
        jnp.where(positive, a, b)
        for a, b in zip((value, velocity, foot), initial, strict=True)
    )
    bad_U = ~jnp.all(jnp.isfinite(U_grid))
    return LaxOleinik(value=value, velocity=velocity, foot=foot), bad_U


def lax_oleinik(
    U: Callable, tau: ScalarLike, x: Points1D, *, nodes: Grid, period: Period = None
) -> LaxOleinik:
    r"""Hopf–Lax value, Lax–Oleinik velocity and foot ``y*`` at the points ``x``.

    ``y* = argmin_y [U(y) + (x − y)²/(2τ)]``: the best node, refined by
    safeguarded Newton steps on the exact objective (autodiff), so values are
    exact to rounding wherever the minimiser is a non-degenerate local minimum
    within a node spacing of the best node. ``v = (x − y*)/τ`` is the entropy
    solution of ``∂_τ v + v ∂_x v = 0`` with ``v(0) = U'`` (the ν → 0 limit of
    :func:`burgers_hopf_cole` in either viscosity convention). With ``period``
    the minimum runs over all periodic images. ``τ = 0`` returns ``U(x)``,
    ``U'(x)``, ``x``.

    Supports ``jit``, ``vmap`` over ``tau`` and ``x``, and ``grad`` in ``x``
    and ``tau`` away from shocks (the envelope theorem makes the value
    differentiable everywhere except exactly at a shock).

    ``nodes`` is a uniform grid (or an axis) as in
    :func:`geomshock.pde.local_entropy`, checked the same way (traced grids at
    run time); NaN or inf values of ``U`` on the nodes raise a "non-finite
    input" error. At ``τ = 0`` the ``τ``-derivatives are the right derivatives
    ``−½U'²`` (value), ``−U'U''`` (velocity) and ``−U'`` (foot).

    Example (``U = y²/2``: foot ``x/(1 + τ)``):
        >>> import jax.numpy as jnp
        >>> sol = lax_oleinik(lambda y: 0.5 * y**2, 1.0, jnp.array([1.0]),
        ...                   nodes=jnp.linspace(-4.0, 4.0, 81))
        >>> [round(float(a[0]), 12) for a in (sol.value, sol.velocity, sol.foot)]
        [0.25, 0.5, 0.5]
    """
    grid, spacing, period, flat, restore, tau = _prepare(U, tau, x, nodes, period)
    sol = _checked(*_solve(U, tau, flat, grid, spacing, period))
    return LaxOleinik(
        value=restore(sol.value),
        velocity=restore(sol.velocity),
        foot=restore(sol.foot),
    )


def hopf_lax(
    U: Callable, tau: ScalarLike, x: Points1D, *, nodes: Grid, period: Period = None
) -> Float[Array, "*k"]:
    r"""Hopf–Lax formula ``u(τ, x) = min_y [U(y) + (x − y)²/(2τ)]``.

    The ν → 0 limit of :func:`local_entropy`; see :func:`lax_oleinik` for how
    the minimum is found and what transformations are supported.

    Example (``U = y²/2``: ``u = x²/(2(1 + τ))``):
        >>> import jax.numpy as jnp
        >>> nodes = jnp.linspace(-8.0, 8.0, 161)
        >>> u = hopf_lax(lambda y: 0.5 * y**2, 1.0, 3.0, nodes=nodes)
        >>> round(float(u), 12)
        2.25
    """
    return lax_oleinik(U, tau, x, nodes=nodes, period=period).value


def entropy_solution(
    U: Callable, tau: ScalarLike, x: Points1D, *, nodes: Grid, period: Period = None
) -> Float[Array, "*k"]:
    r"""Entropy solution of inviscid Burgers ``∂_τ v + v ∂_x v = 0``, ``v(0) = U'``.

    Lax–Oleinik: ``v(τ, x) = (x − y*)/τ``, ``y*`` minimising
    ``U(y) + (x − y)²/(2τ)``; valid before and after the shock time. See
    :func:`lax_oleinik`.

    Example (a standing shock at ``π/2`` from ``τ* = ½``, ``v0 = sin 2s``):
        >>> import jax.numpy as jnp
        >>> nodes = jnp.linspace(0.0, jnp.pi, 64, endpoint=False)
        >>> v = entropy_solution(lambda s: -0.5 * jnp.cos(2 * s), 1.0,
        ...                      jnp.array([1.5, 1.6]), nodes=nodes, period=jnp.pi)
        >>> bool(v[0] > 0 > v[1])  # left state > right state across it
        True
    """
    return lax_oleinik(U, tau, x, nodes=nodes, period=period).velocity


def characteristics(
    U: Callable,
    tau: Float[ArrayLike, "*t"],
    xi: Float[ArrayLike, "*k"],
) -> Float[Array, "..."]:
    r"""Characteristics ``s(τ; ξ) = ξ + τ U'(ξ)`` of inviscid Burgers, ``v0 = U'``.

    ``v`` is constant, ``U'(ξ)``, along each line; they are the classical
    solution until they first cross at :func:`shock_time`. Output shape is
    ``tau.shape + xi.shape``. Supports ``jit``, ``vmap`` and ``grad``.

    Example:
        >>> import jax.numpy as jnp
        >>> characteristics(lambda s: jnp.exp(-s**2 / 2), jnp.array([0.0, 1.0]),
        ...                 jnp.array([0.0, 1.0])).round(6)
        Array([[0.      , 1.      ],
               [0.      , 0.393469]], dtype=float64)
    """
    tau = jnp.asarray(tau, dtype=jnp.zeros(()).dtype)
    xi = jnp.asarray(xi, dtype=tau.dtype)
    check_potential(U, 1, xi.dtype)
    slope = jax.vmap(jax.grad(U))(xi.reshape(-1)).reshape(xi.shape)
    return xi + tau[..., *([None] * xi.ndim)] * slope


def shock_positions(
    U: Callable, tau: ScalarLike, x: Points1D, *, nodes: Grid, period: Period = None
) -> Shocks:
    r"""Shocks of the entropy solution at time ``τ`` between the points ``x``.

    A shock lies in ``(x_i, x_{i+1})`` when the minimiser ``y*`` jumps there:
    by more than four times the jump ``Δx / (1 + τU''(y*))`` that a smooth
    solution would show on either side. Its position is then refined to
    rounding error by solving the equal-value condition of the two competing
    minimisers ``y_L``, ``y_R`` (alternating with Newton steps on each):

        x_s = (y_L + y_R)/2 + τ (U(y_R) − U(y_L)) / (y_R − y_L),

    and it moves with the Rankine–Hugoniot speed ``(v_L + v_R)/2``. Shocks
    narrower than the spacing of ``x`` from one another are not separated.

    Args:
        x: increasing 1-D evaluation points (resolution of the detection).

    Returns:
        :class:`Shocks` with one entry per interval of ``x``.

    Example (the standing shock of ``v0 = sin 2s`` at ``π/2``):
        >>> import jax.numpy as jnp
        >>> nodes = jnp.linspace(0.0, jnp.pi, 64, endpoint=False)
        >>> shocks = shock_positions(lambda s: -0.5 * jnp.cos(2 * s), 1.0,
        ...                          jnp.linspace(0.1, 3.0, 30), nodes=nodes,
        ...                          period=jnp.pi)
        >>> int(shocks.mask.sum()), round(float(shocks.position[shocks.mask][0]), 10)
        (1, 1.5707963268)
        >>> round(float(shocks.speed[shocks.mask][0]), 12)  # (v_L + v_R)/2
        0.0
    """
    grid, spacing, period, flat, _, tau = _prepare(U, tau, x, nodes, period)
    if flat.shape[0] < 2:
        raise ValueError(f"x must hold at least 2 points; got {flat.shape[0]}")
    return _checked(*_shocks(U, tau, flat, grid, spacing, period))


@eqx.filter_jit
def _shocks(U, tau, flat, grid, spacing, period):
    tau_safe = jnp.where(tau > 0, tau, 1.0)
    sol, bad_U = _solve(U, tau, flat, grid, spacing, period)
    curvature = jax.vmap(jax.grad(jax.grad(U)))(sol.foot)
    stretch = 1 + tau_safe * curvature
    dx = jnp.diff(flat)
    jump = jnp.diff(sol.foot)
    smooth = dx / jnp.maximum(jnp.minimum(stretch[:-1], stretch[1:]), 1e-12)
    mask = (tau > 0) & (jump > 4 * smooth) & (jump > 2 * spacing)

    def settle(y_left, y_right, x_left, x_right):
        def body(carry, _):
            y_l, y_r = carry
            gap = jnp.where(y_r > y_l, y_r - y_l, 1.0)
            x_s = 0.5 * (y_l + y_r) + tau_safe * (U(y_r) - U(y_l)) / gap
            x_s = jnp.clip(x_s, x_left, x_right)
            width = 0.5 * jnp.abs(y_r - y_l)
            y_l = _refine_minimum(_objective(U, x_s, tau_safe), y_l, width)
            y_r = _refine_minimum(_objective(U, x_s, tau_safe), y_r, width)
            return (y_l, y_r), x_s

        (y_l, y_r), xs = jax.lax.scan(body, (y_left, y_right), None, length=4)
        return xs[-1], y_l, y_r

    position, y_l, y_r = jax.vmap(settle)(
        sol.foot[:-1], sol.foot[1:], flat[:-1], flat[1:]
    )
    v_l = (position - y_l) / tau_safe
    v_r = (position - y_r) / tau_safe
    midpoint = 0.5 * (flat[:-1] + flat[1:])
    return Shocks(
        mask=mask,
        position=jnp.where(mask, position, midpoint),
        left=jnp.where(mask, v_l, sol.velocity[:-1]),
        right=jnp.where(mask, v_r, sol.velocity[1:]),
        speed=jnp.where(
            mask, 0.5 * (v_l + v_r), 0.5 * (sol.velocity[:-1] + sol.velocity[1:])
        ),
        foot_left=jnp.where(mask, y_l, sol.foot[:-1]),
        foot_right=jnp.where(mask, y_r, sol.foot[1:]),
    ), bad_U
