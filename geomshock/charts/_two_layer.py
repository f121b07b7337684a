"""The paper's Sec. 3.1 model: a two-layer ReLU network with a bias in the
first layer, quotiented by per-unit positive rescaling."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import positive_int
from .._custom_types import Point
from ._action import AbstractRescalingAction, Params
from ._chart import AbstractPermutableChart, check_inputs
from ._sphere_coords import from_sphere_coords, normalize, to_sphere_coords


class TwoLayerRescaling(AbstractRescalingAction):
    """Per-hidden-unit positive rescaling ``(a_j, u_j) -> (a_j/c_j, c_j u_j)``.

    Group elements are log-scales ``t = log c ∈ R^m``; ``exp`` is the identity
    in these coordinates, the generator ``ξ_j`` rescales unit ``j`` alone.
    """

    width: int

    @property
    def algebra_dim(self) -> int:
        return self.width

    def exp(self, xi):
        return xi

    def act(self, params, g):
        scale = jnp.exp(g)
        return {
            "a": params["a"] / scale,
            "u": params["u"] * scale[:, None],
            "c": params["c"],
        }

    def norm_sq_hessian(self, params, g):
        """``diag(4 (a_j² e^{−2t_j} + ‖u_j‖² e^{2t_j}))`` at ``t = g``."""
        moved = self.act(params, g)
        return jnp.diag(4 * (moved["a"] ** 2 + jnp.sum(moved["u"] ** 2, axis=1)))


class TwoLayerReLUChart(AbstractPermutableChart):
    r"""Quotient chart of ``f(x) = Σ_j a_j relu(u_jᵀ (x, 1)) + c`` by per-unit
    positive rescaling (the paper's Sec. 3.1 model).

    Params ``{"a": (m,), "u": (m, in_dim + 1), "c": ()}``; the last entry of
    ``u_j`` multiplies the constant input 1 (the bias).

    Coordinates ``q = (γ_1..γ_m, y_1..y_m, c)`` with ``γ_j = a_j ‖u_j‖`` and
    ``y_j`` the direction ``s_j = u_j / ‖u_j‖ ∈ S^{in_dim}``:

    - ``in_dim = 1``: ``y_j = φ_j ∈ (−π, π]`` with ``s_j = (cos φ_j, sin φ_j)``,
      so ``q = (γ_1..γ_m, φ_1..φ_m, c)``. ``lift`` accepts any real ``φ``;
      ``project`` returns the principal angle.
    - ``in_dim > 1``: stereographic coordinates ``y_j = s_{j,:n−1}/(1 + s_{j,n})``
      (``n = in_dim + 1``) from the pole ``−e_n`` = the direction ``u = (0, −1)``
      of a unit that is off for every input; unit-major order.

    ``dim = m (in_dim + 1) + 1``. The lift is balanced, ``|a_j| = ‖u_j‖``. For
    ``in_dim = 1`` the autodiff metric is ``diag(1/(2|γ_j|), |γ_j|, 1)``.

    Off the stratum (equinox runtime error): a dead unit ``u_j = 0``, ``γ_j = 0``
    (``a_j = 0``: the metric ``1/(2|γ_j|)`` blows up there), a direction at the
    stereographic pole. Wrong structure or shapes: ``ValueError``.

    Example:
        >>> import jax.numpy as jnp
        >>> chart = TwoLayerReLUChart(width=1, in_dim=1)
        >>> q = jnp.array([2.0, 0.5, -0.1])  # (γ, φ, c)
        >>> jnp.diag(chart.metric(q)).round(6).tolist()  # (1/(2|γ|), |γ|, 1)
        [0.25, 2.0, 1.0]
        >>> chart.project(chart.lift(q)).round(6).tolist()
        [2.0, 0.5, -0.1]
    """

    width: int
    in_dim: int

    def __check_init__(self):
        positive_int(self.width, "TwoLayerReLUChart: width")
        positive_int(self.in_dim, "TwoLayerReLUChart: in_dim")

    @property
    def action(self) -> TwoLayerRescaling:
        return TwoLayerRescaling(self.width)

    @property
    def params_shape(self):
        m, n = self.width, self.in_dim + 1
        f = jnp.result_type(float)
        return {
            "a": jax.ShapeDtypeStruct((m,), f),
            "u": jax.ShapeDtypeStruct((m, n), f),
            "c": jax.ShapeDtypeStruct((), f),
        }

    @property
    def dim(self) -> int:
        return self.width * (self.in_dim + 1) + 1

    @property
    def horizontal_gauge(self) -> bool:
        """True: the balanced gauge ``|a_j| = ‖u_j‖`` is the minimum-norm one."""
        return True

    def project(self, params: Params) -> Point:
        p = self.check_params(params)
        s, r = normalize(p["u"], "a hidden unit's weight vector u_j (dead unit)")
        gamma = _nonzero_gamma(p["a"] * r)
        coords = to_sphere_coords(s, angle=self.in_dim == 1)
        return jnp.concatenate([gamma, coords.reshape(-1), p["c"][None]])

    def lift(self, q: Point) -> Params:
        q = self.check_point(q)
        m = self.width
        gamma = _nonzero_gamma(q[:m])
        s = from_sphere_coords(q[m:-1].reshape(m, self.in_dim), angle=self.in_dim == 1)
        r = jnp.sqrt(jnp.abs(gamma))
        return {"a": jnp.sign(gamma) * r, "u": r[:, None] * s, "c": q[-1]}

    def apply(self, params: Params, x: Float[Array, "... in_dim"]) -> Array:
        """``f(x)`` for inputs of shape ``(..., in_dim)``; output shape ``(...)``."""
        p = self.check_params(params)
        x = check_inputs(x, self.in_dim, "TwoLayerReLUChart")
        xt = jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1)
        return jax.nn.relu(xt @ p["u"].T) @ p["a"] + p["c"]

    def balance_error(self, params: Params) -> Array:
        """``max_j | |a_j| − ‖u_j‖ |``: zero for the balanced gauge."""
        p = self.check_params(params)
        return jnp.max(jnp.abs(jnp.abs(p["a"]) - jnp.linalg.norm(p["u"], axis=-1)))

    def permutation_keys(self, q: Point) -> tuple[Array, ...]:
        """Sort keys for canonical ordering of units: ``γ_j``."""
        return (q[: self.width],)

    def permute(self, params: Params, perms: tuple[Array, ...]) -> Params:
        """Reorder the hidden units by ``perms[0]`` (same network function)."""
        (perm,) = perms
        return {"a": params["a"][perm], "u": params["u"][perm], "c": params["c"]}


def _nonzero_gamma(gamma):
    return eqx.error_if(
        gamma,
        ~jnp.all(gamma != 0),
        "γ_j = a_j‖u_j‖ = 0: a unit with zero output weight is on the boundary "
        "of the regular stratum (the quotient metric 1/(2|γ_j|) blows up)",
    )
