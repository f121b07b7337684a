"""Local entropy on a one-dimensional slice θ of a quotient (Sec. 3.1 of the paper).

On a slice with a constant metric ``g = g_θθ`` the quotient Laplacian is
``Δ_Q = g^{-1} ∂²_θ``, and the heat semigroup of either convention is a heat
flow in θ with a rescaled time:

    w(τ, θ) = exp(c ν τ Δ_Q) e^{−U(θ)/ν} = exp((ν τ'/2) ∂²_θ) e^{−U/ν},
    τ' = 2 c τ / g,     u^ν = −ν log w,

with ``c = ½`` for ``convention="theorem"`` (Thm. 3.1 and the rest of
geomshock: ``P_{ντ} = exp((ντ/2)Δ)``) and ``c = 1`` for ``"as_printed"`` (the
``exp(ντ Δ_Q)`` printed in Sec. 3.1, eq. 2). Two schemes evaluate it: the
paper's first-order Taylor scheme with finite differences
(:class:`FirstOrderFD`) and the exact semigroup on the circle
(:class:`ExactCircle`). New schemes subclass :class:`AbstractSliceScheme`.
"""

import abc
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from .. import _checks
from .._checks import HeatConvention, heat_factor
from ._hopf_cole import local_entropy

# Relative tolerance on the spacing of a uniform θ grid (rounding of linspace).
_UNIFORM_RTOL = {"float64": 1e-9, "float32": 1e-4}


def paper_theta_grid(num: int = 91, half_width: float = 1.35) -> Float[Array, " k"]:
    """The paper's slice grid: ``num`` uniform points on ``[−w, w]``, w = 1.35.

    >>> theta = paper_theta_grid()
    >>> theta.shape, float(theta[0]), float(theta[45])
    ((91,), -1.35, 0.0)
    """
    num = _checks.positive_int(num, "num", minimum=2)
    half_width = float(_checks.positive_scalar(half_width, "half_width"))
    return jnp.linspace(-half_width, half_width, num)


class SliceProfile(eqx.Module):
    """``u^ν``, ``∂_θ u^ν``, ``∂²_θ u^ν`` on the θ points, and where ``w > 0``.

    ``valid`` is False where the scheme gave ``w ≤ 0`` (only the first-order
    scheme can). There the scheme has broken down: ``u`` is ``+inf``, and so
    are ``∂_θ u`` and ``∂²_θ u`` wherever their stencil reaches such a point
    (the same breakdown value as :func:`geomshock.pde.first_order_semigroup`).
    """

    u: Float[Array, " k"]
    du: Float[Array, " k"]
    d2u: Float[Array, " k"]
    valid: Bool[Array, " k"]


class AbstractSliceScheme(eqx.Module):
    """How ``w = exp((ν τ'/2) ∂²_θ) e^{−U/ν}`` is evaluated on the slice."""

    @abc.abstractmethod
    def profile(self, U: Callable, nu, time_scale, theta) -> SliceProfile:
        """The profile at ``theta``, with ``time_scale = c τ / g = τ'/2``."""


def _second_difference(f, h):
    inner = (f[2:] - 2 * f[1:-1] + f[:-2]) / h**2
    return jnp.concatenate([inner[:1], inner, inner[-1:]])


def _uniform_spacing(theta):
    """The spacing of a uniform grid ``theta`` (checked now, or at run time)."""
    h = theta[1] - theta[0]
    rtol = _checks.per_dtype(
        theta.dtype, float64=_UNIFORM_RTOL["float64"], float32=_UNIFORM_RTOL["float32"]
    )
    theta_c = _checks.concrete(theta)
    message = (
        "FirstOrderFD needs an increasing uniform θ grid (finite differences); "
        "pass e.g. jnp.linspace(a, b, k)"
    )
    if theta_c is not None:
        steps = np.diff(theta_c.astype(np.float64))
        if not (steps[0] > 0 and np.allclose(steps, steps[0], rtol=rtol, atol=0)):
            raise ValueError(
                f"{message}; got spacings in [{steps.min()}, {steps.max()}]"
            )
        return h
    steps = jnp.diff(theta)
    bad = ~(h > 0) | jnp.any(jnp.abs(steps - h) > rtol * jnp.abs(h))
    return _checks.run_time_check(h, bad, message)


class FirstOrderFD(AbstractSliceScheme):
    """The paper's scheme (eq. 3): ``w ≈ φ + c ν τ Δ_Q φ``, ``φ = e^{−U/ν}``.

    Derivatives by finite differences on the uniform θ grid: ``stencil="gradient"``
    applies ``jnp.gradient`` (central in the interior, one-sided at the ends,
    like ``numpy.gradient``) twice; ``stencil="compact"`` uses the three-point
    second difference for ``∂²_θ φ`` (copied from the neighbour at the ends).
    ``∂_θ u`` and ``∂²_θ u`` always use ``jnp.gradient``. Where ``w ≤ 0`` the
    logarithm does not exist: ``u = +inf`` there and ``valid`` is False.

    >>> import jax, jax.numpy as jnp
    >>> theta = jnp.linspace(-1.0, 1.0, 5)
    >>> run = jax.jit(lambda th: FirstOrderFD().profile(lambda t: t**2, 1.0, 0.0, th))
    >>> prof = run(theta)
    >>> [round(float(v), 12) for v in prof.u]
    [1.0, 0.25, 0.0, 0.25, 1.0]
    """

    stencil: Literal["gradient", "compact"] = "gradient"

    def __check_init__(self):
        if self.stencil not in ("gradient", "compact"):
            raise ValueError(
                "stencil must be 'gradient' (jnp.gradient twice) or 'compact' "
                f"(three-point second difference); got {self.stencil!r}"
            )

    def profile(self, U, nu, time_scale, theta):
        if theta.ndim != 1 or theta.shape[0] < 3:
            raise ValueError(
                "FirstOrderFD needs a uniform 1-D θ grid of at least 3 points; got "
                f"shape {theta.shape}"
            )
        h = _uniform_spacing(theta)
        phi = jnp.exp(-jax.vmap(U)(theta) / nu)
        if self.stencil == "gradient":
            d2phi = jnp.gradient(jnp.gradient(phi, h), h)
        else:
            d2phi = _second_difference(phi, h)
        w = phi + nu * time_scale * d2phi
        valid = w > 0
        u = jnp.where(valid, -nu * jnp.log(jnp.where(valid, w, 1.0)), jnp.inf)
        du = jnp.gradient(u, h)
        d2u = jnp.gradient(du, h)

        def broken(v):
            return jnp.where(jnp.isfinite(v), v, jnp.inf)

        return SliceProfile(u=u, du=broken(du), d2u=broken(d2u), valid=valid)


class ExactCircle(AbstractSliceScheme):
    """The exact semigroup on the circle θ ∈ [−π, π), in the log domain.

    ``u(θ) = local_entropy(U, ν, τ', θ, nodes, period=2π)`` with
    ``τ' = 2·time_scale`` (kernel variance ``ν τ'``, every periodic image
    summed) on ``num_nodes`` uniform nodes of one period; ``∂_θ u`` and
    ``∂²_θ u`` by autodiff (forward mode, ``jax.jvp`` twice). ``U`` must be
    2π-periodic. A merely Lipschitz U (ReLU kinks) makes the trapezoid rule
    converge like ``h²``: kernels only a few node spacings wide need more nodes
    (compare with twice the nodes).

    >>> import jax, jax.numpy as jnp
    >>> profile = jax.jit(lambda th: ExactCircle(64).profile(jnp.cos, 1.0, 0.0, th))
    >>> prof = profile(jnp.array([0.0]))
    >>> float(prof.u[0]), float(prof.d2u[0])
    (1.0, -1.0)
    """

    num_nodes: int = 4096

    def __check_init__(self):
        _checks.positive_int(self.num_nodes, "num_nodes", minimum=8)

    def profile(self, U, nu, time_scale, theta):
        nodes = jnp.linspace(
            -jnp.pi, jnp.pi, self.num_nodes, endpoint=False, dtype=theta.dtype
        )

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
    g: Float[ArrayLike, ""],
    nu: Float[ArrayLike, ""],
    tau: Float[ArrayLike, ""],
    theta: Float[ArrayLike, " k"],
    *,
    scheme: AbstractSliceScheme | None = None,
    convention: HeatConvention = "theorem",
) -> SliceProfile:
    """Local entropy ``u^ν(τ, θ) = −ν log exp(c ν τ Δ_Q) e^{−U/ν}`` on a 1-D slice.

    ``Δ_Q = g^{-1} ∂²_θ`` (constant slice metric ``g``); ``c = ½`` for
    ``convention="theorem"`` (default: Thm. 3.1, ``P_{ντ} = exp((ντ/2) Δ_Q)``,
    geomshock's convention everywhere, heat-kernel variance ``ν τ / g``) and
    ``c = 1`` for ``"as_printed"`` (the ``exp(ντ Δ_Q)`` printed in Sec. 3.1,
    eq. 2, which the paper's experiment uses). The keyword and its default are
    those of :func:`geomshock.pde.first_order_semigroup`.

    Args:
        U: ``θ -> scalar``, 2π-periodic for the exact scheme.
        g: the slice metric ``g_θθ > 0`` (scalar, may be traced).
        nu: viscosity ν > 0 (paper convention, ν = 2 ν_c).
        tau: coarse-graining time τ ≥ 0.
        theta: points where the profile is wanted (an increasing uniform grid
            for :class:`FirstOrderFD`).
        scheme: :class:`ExactCircle` (default) or :class:`FirstOrderFD`.
        convention: ``"theorem"`` or ``"as_printed"``.

    Returns:
        A :class:`SliceProfile`. Works under ``jit``; vmappable over ``nu``,
        ``tau``, ``g`` and the parameters ``U`` closes over; differentiable in
        ``nu`` and ``tau`` (the exact scheme also in θ, which is how its
        derivatives are formed). Bad ``g``, ``nu``, ``tau`` or ``theta`` raise
        a ``ValueError`` when known, and a run-time error under ``jit``.

    >>> import jax, jax.numpy as jnp
    >>> theta = jnp.array([0.0, 1.0])
    >>> run = jax.jit(lambda th: slice_local_entropy(jnp.cos, 2.0, 0.5, 0.0, th))
    >>> prof = run(theta)
    >>> [round(float(v), 12) for v in prof.u]
    [1.0, 0.540302305868]
    """
    c = heat_factor(convention)
    scheme = ExactCircle() if scheme is None else scheme
    if not isinstance(scheme, AbstractSliceScheme):
        raise ValueError(
            "scheme must be ExactCircle() or FirstOrderFD() (an "
            f"AbstractSliceScheme); got {type(scheme)!r}"
        )
    theta = _checks.finite_array(theta, "theta")
    dtype = theta.dtype
    g = _checks.positive_scalar(
        g,
        "slice metric g (g_θθ of the quotient metric; 0 means a dead unit)",
        dtype=dtype,
    )
    nu = _checks.positive_scalar(nu, "nu", dtype=dtype)
    tau = _checks.positive_scalar(tau, "tau", allow_zero=True, dtype=dtype)
    return scheme.profile(U, nu, c * tau / g, theta)
