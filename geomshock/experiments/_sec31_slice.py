"""Sec. 3.1 slice: the loss along a rotated hidden-unit direction, and its local
entropy by the paper's first-order scheme and by the exact semigroup on the circle.

Conventions. The paper's Sec. 3.1 writes (eq. 2)

    w(τ, θ) = exp(ν τ Δ_Q) exp(−U(θ)/ν),   u^ν = −ν log w,

with *no* ½, unlike Thm. 3.1's ``P_{ντ} = exp((ντ/2) Δ_Q)``. Both are offered:
``convention="as_printed"`` (default, the paper's Sec. 3.1) and
``convention="theorem"`` (Thm. 3.1, the SPEC's heat semigroup). On the slice the
metric induced by the chart's quotient metric is ``g_θθ`` (constant along the
slice: for the two-layer ReLU chart it equals ``|γ_1|``), so ``Δ_Q = g_θθ^{-1} ∂²_θ``
and ``exp(c ν τ Δ_Q) = exp((ν τ'/2) ∂²_θ)`` with ``τ' = 2 c τ / g_θθ``,
``c = 1`` as printed and ``c = ½`` for the theorem.
"""

import abc
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..pde import local_entropy

Convention = Literal["as_printed", "theorem"]
_HEAT_FACTOR = {"as_printed": 1.0, "theorem": 0.5}


def heat_factor(convention: str) -> float:
    """``c`` in ``w = exp(c ν τ Δ_Q) e^{−U/ν}``: 1 as printed, ½ for Thm. 3.1."""
    if convention not in _HEAT_FACTOR:
        raise ValueError(
            "convention must be 'as_printed' (Sec. 3.1, exp(ντΔ_Q)) or 'theorem' "
            f"(Thm. 3.1, exp((ντ/2)Δ_Q)); got {convention!r}"
        )
    return _HEAT_FACTOR[convention]


def paper_theta_grid(num: int = 91, half_width: float = 1.35) -> Float[Array, " k"]:
    """The paper's slice grid: ``num`` uniform points on ``[−w, w]``, w = 1.35."""
    return jnp.linspace(-half_width, half_width, num)


def quotient_slice(chart, params, loss: Callable) -> tuple[Callable, Array, Array]:
    """The loss along ``s_1(θ) = cos θ s_1* + sin θ J s_1*`` and its slice metric.

    In the chart coordinates ``q = (γ_1..γ_m, φ_1..φ_m, c)`` rotating ``s_1`` by
    θ is ``q(θ) = q* + θ e_{φ_1}``, ``q* = chart.project(params)``; all other
    quotient coordinates stay fixed.

    Args:
        chart: a ``TwoLayerReLUChart(width, 1)`` (``project``, ``lift``, ``metric``).
        params: trained parameters ``{"a", "u", "c"}``.
        loss: ``params -> scalar``, the training loss.

    Returns:
        ``(U, g, variation)``: ``U: θ -> loss(chart.lift(q(θ)))`` (2π-periodic),
        ``g = g_θθ(q*) = e_{φ_1}ᵀ chart.metric(q*) e_{φ_1}`` (from the chart's
        autodiff quotient metric, never typed in), and ``variation``, the largest
        relative change of ``g_θθ`` at θ ∈ {±π/2, π} (0 when ``Δ_Q = g^{-1}∂²_θ``
        is exact on the slice).
    """
    q_star = chart.project(params)
    direction = jnp.zeros_like(q_star).at[chart.width].set(1.0)

    def U(theta):
        return loss(chart.lift(q_star + theta * direction))

    def g_at(theta):
        return direction @ chart.metric(q_star + theta * direction) @ direction

    g = g_at(0.0)
    probes = jnp.array([jnp.pi / 2, -jnp.pi / 2, jnp.pi])
    variation = jnp.max(jnp.abs(jax.vmap(g_at)(probes) / g - 1.0))
    return U, g, variation


class SliceProfile(eqx.Module):
    """``u^ν``, ``∂_θ u^ν``, ``∂²_θ u^ν`` on the θ points, and where ``w > 0``.

    ``valid`` is False where the scheme gave ``w ≤ 0`` (only the first-order
    scheme can); ``u`` and its derivatives are NaN there and next to it, by
    design, and ``valid`` says so.
    """

    u: Float[Array, " k"]
    du: Float[Array, " k"]
    d2u: Float[Array, " k"]
    valid: Array


class AbstractSliceScheme(eqx.Module):
    """How ``w = exp(c ν τ g^{-1} ∂²_θ) e^{−U/ν}`` is evaluated on the slice."""

    @abc.abstractmethod
    def profile(self, U, g, nu, time_scale, theta) -> SliceProfile:
        """``time_scale = c τ / g``, so that ``w = exp(ν time_scale ∂²_θ) φ``."""


def _second_difference(f, h):
    inner = (f[2:] - 2 * f[1:-1] + f[:-2]) / h**2
    return jnp.concatenate([inner[:1], inner, inner[-1:]])


class FirstOrderFD(AbstractSliceScheme):
    """The paper's scheme (eq. 3): ``w ≈ φ + c ν τ Δ_Q φ``, ``φ = e^{−U/ν}``.

    Derivatives by finite differences on the uniform θ grid: ``stencil="gradient"``
    applies ``jnp.gradient`` (central in the interior, one-sided at the ends,
    like ``numpy.gradient``) twice; ``stencil="compact"`` uses the three-point
    second difference for ``∂²_θ φ`` (copied from the neighbour at the ends).
    ``∂_θ u`` and ``∂²_θ u`` always use ``jnp.gradient``. Where ``w ≤ 0`` the
    logarithm does not exist: ``u`` is NaN there and ``valid`` is False.
    """

    stencil: Literal["gradient", "compact"] = "gradient"

    def __check_init__(self):
        if self.stencil not in ("gradient", "compact"):
            raise ValueError(
                f"stencil must be 'gradient' or 'compact'; got {self.stencil!r}"
            )

    def profile(self, U, g, nu, time_scale, theta):
        if theta.ndim != 1 or theta.shape[0] < 3:
            raise ValueError(
                "FirstOrderFD needs a uniform 1-D θ grid of at least 3 points; got "
                f"shape {theta.shape}"
            )
        h = theta[1] - theta[0]
        phi = jnp.exp(-jax.vmap(U)(theta) / nu)
        if self.stencil == "gradient":
            d2phi = jnp.gradient(jnp.gradient(phi, h), h)
        else:
            d2phi = _second_difference(phi, h)
        w = phi + nu * time_scale * d2phi
        valid = w > 0
        u = -nu * jnp.log(jnp.where(valid, w, jnp.nan))
        du = jnp.gradient(u, h)
        return SliceProfile(u=u, du=du, d2u=jnp.gradient(du, h), valid=valid)


class ExactCircle(AbstractSliceScheme):
    """The exact semigroup on the circle θ ∈ [−π, π), in the log domain.

    ``u(θ) = local_entropy(U, ν, τ', θ, nodes, period=2π)`` with
    ``τ' = 2·time_scale`` (kernel variance ``ν τ'``, every periodic image
    summed) on ``num_nodes`` uniform nodes of one period; ``∂_θ u`` and
    ``∂²_θ u`` by autodiff (forward mode, ``jax.jvp`` twice). U is only
    Lipschitz (ReLU kinks), so the trapezoid rule converges like ``h²``:
    kernels only a few node spacings wide need more nodes (the experiment
    reports a node-doubling check).
    """

    num_nodes: int = 4096

    def __check_init__(self):
        if not isinstance(self.num_nodes, int) or self.num_nodes < 8:
            raise ValueError(f"num_nodes must be an int >= 8; got {self.num_nodes!r}")

    def profile(self, U, g, nu, time_scale, theta):
        nodes = jnp.linspace(-jnp.pi, jnp.pi, self.num_nodes, endpoint=False)

        def u_at(x):
            return local_entropy(
                U, nu, 2 * time_scale, x[None], nodes=nodes, period=2 * jnp.pi
            )[0]

        def jet(x):
            # forward mode twice: (u, ∂u) and (∂u, ∂²u) in one pass per point
            def first(x):
                return jax.jvp(u_at, (x,), (jnp.ones_like(x),))

            (u, du), (_, d2u) = jax.jvp(first, (x,), (jnp.ones_like(x),))
            return u, du, d2u

        u, du, d2u = jax.vmap(jet)(theta)
        return SliceProfile(u=u, du=du, d2u=d2u, valid=jnp.ones(theta.shape, bool))


def slice_local_entropy(
    U: Callable,
    g,
    nu,
    tau,
    theta: Float[Array, " k"],
    *,
    scheme: AbstractSliceScheme | None = None,
    convention: Convention = "as_printed",
) -> SliceProfile:
    """Local entropy ``u^ν(τ, θ) = −ν log exp(c ν τ Δ_Q) e^{−U/ν}`` on a 1-D slice.

    ``Δ_Q = g^{-1} ∂²_θ`` (constant slice metric ``g``); ``c = 1`` for
    ``convention="as_printed"`` (Sec. 3.1, eq. 2) and ``c = ½`` for
    ``"theorem"`` (Thm. 3.1, ``P_{ντ} = exp((ντ/2) Δ_Q)``; this is the SPEC's
    convention, heat-kernel variance ``ν τ / g``).

    Args:
        U: ``θ -> scalar``, 2π-periodic for the exact scheme.
        g: the slice metric ``g_θθ > 0`` (scalar, may be traced).
        nu: viscosity ν > 0 (paper convention, ν = 2 ν_c).
        tau: coarse-graining time τ ≥ 0.
        theta: points where the profile is wanted (a uniform grid for
            :class:`FirstOrderFD`).
        scheme: :class:`ExactCircle` (default) or :class:`FirstOrderFD`.
        convention: ``"as_printed"`` or ``"theorem"``.

    Returns:
        A :class:`SliceProfile`. Works under ``jit``; vmappable over ``nu``,
        ``tau``, ``g`` and the parameters ``U`` closes over; differentiable in
        ``nu`` and ``tau`` (the exact scheme also in θ, which is how its
        derivatives are formed).
    """
    c = heat_factor(convention)
    scheme = ExactCircle() if scheme is None else scheme
    if not isinstance(scheme, AbstractSliceScheme):
        raise ValueError(
            f"scheme must be ExactCircle() or FirstOrderFD(); got {type(scheme)!r}"
        )
    theta = jnp.asarray(theta, dtype=jnp.result_type(float))
    g = jnp.asarray(g, dtype=theta.dtype)
    g = eqx.error_if(g, ~(g > 0), "slice metric g_θθ must be > 0 (dead unit?)")
    return scheme.profile(U, g, nu, c * jnp.asarray(tau) / g, theta)
