"""Projected drift and noise covariance of SGD, and projectability (Thm. 2.2).

SGD ``θ_{n+1} = θ_n − η(∇L(θ_n) + M_{n+1})`` with ``L(θ) = E_batch loss(θ, batch)``
and ``M = ∇loss(θ, batch) − ∇L(θ)``. In a chart ``Φ = χ∘π``:

* projected drift ``b = DΦ(θ) ∇L(θ)``,
* projected noise covariance ``A = Cov(DΦ(θ) M) = Cov_batch(DΦ(θ) ∇loss(θ, batch))``.

*Projectable* (Assumption 2.1) means ``b`` and ``A`` are constant along the
symmetry orbit of ``θ`` and so are functions ``b(Y)``, ``A(Y)`` of ``Y = Φ(θ)``.
For a group acting by Euclidean isometries (permutations, rotations) an
invariant loss is always projectable. For a non-isometric action such as ReLU
rescaling ``g``, ``∇L(g·θ) = g^{-ᵀ}∇L(θ)`` and ``DΦ(g·θ) = DΦ(θ) g^{-1}``, so
``b(g·θ) = DΦ(θ) g^{-1} g^{-ᵀ} ∇L(θ)``: plain SGD is generally *not*
projectable along rescaling orbits (the paper's footnote 5); it closes on a
gauge-fixed section (e.g. SGD that keeps the balanced gauge).

``DΦ`` is applied by ``jax.linearize`` of ``chart.project`` (one primal
evaluation, then a vmapped JVP per minibatch gradient).

Cost, with ``d`` parameters, ``m`` chart coordinates and ``k`` minibatches:
``projected_moments`` takes ``k`` minibatch gradients and ``k`` JVPs of
``chart.project`` (``O(k (d + m))`` memory); the dense covariance adds ``O(k m²)``
flops and an ``m × m`` array. ``covariance="factor"`` keeps ``A = FᵀF`` as a
lineax operator with ``F`` of shape ``(k, m)``: ``O(k m)`` memory, for charts
whose ``m × m`` matrices do not fit (at ``m = 26 000`` one is 5.4 GB, and
``check_projectability`` holds ``num_points`` of them). ``check_projectability``
costs ``num_points`` times ``projected_moments``; on the factor path the
covariance spread ``‖F_iᵀF_i − F_0ᵀF_0‖_F`` comes from a QR factorisation of the
``m × 2k`` matrix ``[F_iᵀ, F_0ᵀ]`` per orbit point (``O(k² m)`` flops, no ``m × m``
array, and no cancellation of Frobenius norms).
"""

from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from .._checks import finite_tree, per_dtype
from ._chart import GaugedChart, ProjectingChart, SectionChart, require_chart
from ._checks import check_single_key, check_vector_output, float_dtype_of
from ._noise import AbstractMinibatchNoise

Loss = Callable[[PyTree, PyTree], Float[Array, ""]]


CovarianceForm = Literal["dense", "factor"]


class ProjectedMoments(eqx.Module):
    """Quotient point ``Y = Φ(θ)``, drift ``b``, covariance ``A`` and mean loss.

    ``covariance`` is an ``(m, m)`` array, or with ``covariance="factor"`` the
    lineax operator ``FᵀF`` (``F`` of shape ``(k, m)``, ``k`` minibatches):
    ``.mv(v)`` costs ``O(k m)``, ``.as_matrix()`` forms the array.
    """

    point: Float[Array, " m"]
    drift: Float[Array, " m"]
    covariance: Float[Array, "m m"] | lx.AbstractLinearOperator
    loss: Float[Array, ""]


def _check_covariance_form(covariance):
    if covariance not in ("dense", "factor"):
        raise ValueError(f"covariance must be 'dense' or 'factor'; got {covariance!r}")


def _factor_operator(factor: Array) -> lx.AbstractLinearOperator:
    """``FᵀF`` as a symmetric positive semidefinite lineax operator."""
    gram = lx.MatrixLinearOperator(factor.T) @ lx.MatrixLinearOperator(factor)
    return lx.TaggedLinearOperator(
        gram, (lx.symmetric_tag, lx.positive_semidefinite_tag)
    )


def _factor_of(covariance: lx.AbstractLinearOperator) -> Array:
    """``F`` of an operator built by :func:`_factor_operator` (possibly batched)."""
    return covariance.operator.operator2.matrix


def _check_noise(noise):
    if not isinstance(noise, AbstractMinibatchNoise):
        raise ValueError(
            "noise must be a minibatch noise model (SampledMinibatches or "
            f"AllMinibatches), got {type(noise).__name__}"
        )


def _check_loss(loss, params, batch):
    out = jax.eval_shape(loss, params, batch)
    shape = getattr(out, "shape", None)
    if shape != ():
        raise ValueError(
            "loss(params, batch) must return a scalar, got "
            f"{'a non-array' if shape is None else f'shape {shape}'}"
        )


def projected_moments(
    loss: Loss,
    chart: ProjectingChart,
    params: PyTree,
    noise: AbstractMinibatchNoise,
    key: PRNGKeyArray | None = None,
    *,
    covariance: CovarianceForm = "dense",
) -> ProjectedMoments:
    r"""Projected SGD drift ``b = DΦ∇L`` and noise covariance ``A = Cov(DΦ M)``.

    Args:
        loss: ``loss(params, batch) -> scalar``, the minibatch loss; the full
            loss is its expectation over ``noise``'s minibatches.
        chart: a :class:`ProjectingChart`: anything with ``project(params)
            -> q`` (``Φ``, a 1-D array).
        params: a parameter pytree ``θ``.
        noise: ``AllMinibatches`` (exact expectation over a finite set) or
            ``SampledMinibatches`` (Monte Carlo; then ``key`` is required).
        key: PRNG key for Monte-Carlo minibatches.
        covariance: ``"dense"`` (an ``(m, m)`` array) or ``"factor"``
            (matrix-free: the lineax operator ``FᵀF``, ``F`` of shape ``(k, m)``
            with rows ``sqrt(w_i k/(k − ddof)) (x_i − b)``; ``O(k m)`` memory).

    Returns:
        ``ProjectedMoments(point=Φ(θ), drift=b, covariance=A, loss=L(θ))``. With
        Monte Carlo the drift is the sample mean and ``A`` the unbiased sample
        covariance of ``DΦ ∇loss(θ, batch)``; exactly, the weighted mean and
        covariance over all minibatches. Cost: ``k`` minibatch gradients and
        ``k`` JVPs of ``chart.project``, plus ``O(k m²)`` for a dense ``A``.

    Works under ``jax.jit``, ``jax.vmap`` (over ``params``, keys) and
    ``jax.grad`` (with respect to ``params`` and whatever ``loss`` closes over).
    """
    _check_noise(noise)
    _check_covariance_form(covariance)
    project = require_chart(chart, ProjectingChart, "projected_moments").project
    params = finite_tree(params, "params")
    check_vector_output(project, params, "chart.project", None)
    batches = jax.eval_shape(lambda k: noise.draw(k)[0], key)
    batch = jax.tree_util.tree_map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype), batches
    )
    _check_loss(loss, params, batch)
    return _moments(loss, project, params, noise, key, covariance)


@eqx.filter_jit
def _moments(loss, project, params, noise, key, form="dense"):
    batches, weights, ddof = noise.draw(key)
    values, grads = jax.vmap(jax.value_and_grad(loss), in_axes=(None, 0))(
        params, batches
    )
    point, d_project = jax.linearize(project, params)
    projected = jax.vmap(d_project)(grads)
    weights = weights.astype(projected.dtype)
    drift = weights @ projected
    centred = projected - drift
    k = projected.shape[0]
    if form == "factor":
        factor = jnp.sqrt(weights * (k / (k - ddof)))[:, None] * centred
        return ProjectedMoments(
            point, drift, _factor_operator(factor), weights @ values
        )
    covariance = (centred.T * weights) @ centred * (k / (k - ddof))
    covariance = 0.5 * (covariance + covariance.T)
    return ProjectedMoments(point, drift, covariance, weights @ values)


def default_projectability_rtol(dtype) -> float:
    """Default ``rtol`` of :func:`check_projectability`: ``1e-8`` for float64
    parameters, ``1e-4`` for float32 (whose rounding alone spreads the moments
    by ~1e-6 along an orbit)."""
    return per_dtype(dtype, float64=1e-8, float32=1e-4)


def _relative_spread(x: Array) -> Array:
    """``max_k ‖x_k − x_0‖ / max_k ‖x_k‖`` (absolute when every ``x_k`` is 0)."""
    flat = x.reshape(x.shape[0], -1)
    deviation = jnp.max(jnp.linalg.norm(flat - flat[0], axis=1))
    scale = jnp.max(jnp.linalg.norm(flat, axis=1))
    return _ratio(deviation, scale)


def _ratio(deviation: Array, scale: Array) -> Array:
    return jnp.where(scale > 0, deviation / jnp.where(scale > 0, scale, 1.0), deviation)


def _factor_spread(factors: Float[Array, "p k m"]) -> Array:
    """:func:`_relative_spread` of ``A_i = F_iᵀF_i`` without forming ``A_i``.

    With ``[F_iᵀ, F_0ᵀ] = Q [R_1, R_2]`` (thin QR, ``Q`` orthonormal columns),
    ``A_i − A_0 = Q (R_1R_1ᵀ − R_2R_2ᵀ) Qᵀ``, so ``‖A_i − A_0‖_F = ‖R_1R_1ᵀ −
    R_2R_2ᵀ‖_F`` (``2k × 2k``), accurate to rounding of ``‖A‖`` itself; and
    ``‖A_i‖_F = ‖F_iF_iᵀ‖_F``.
    """
    k = factors.shape[1]

    def deviation(f_i):
        r = jnp.linalg.qr(jnp.concatenate([f_i, factors[0]]).T, mode="r")
        return jnp.linalg.norm(r[:, :k] @ r[:, :k].T - r[:, k:] @ r[:, k:].T)

    deviations = jax.vmap(deviation)(factors)
    scales = jax.vmap(lambda f_i: jnp.linalg.norm(f_i @ f_i.T))(factors)
    return _ratio(jnp.max(deviations), jnp.max(scales))


class ProjectabilityReport(eqx.Module):
    """Moments at ``P`` points of one orbit (``orbit``: the parameters stacked on
    a leading axis, point 0 being the given ``params``) and their relative
    spreads ``max_k ‖x_k − x_0‖ / max_k ‖x_k‖``.

    ``chart_spread`` (of ``Φ``) and ``loss_spread`` (of ``L``) check that the
    sampled group elements are symmetries of the chart and of the loss;
    ``drift_spread`` and ``covariance_spread`` are Assumption 2.1 itself.
    ``projectable`` is true when all four are ``<= rtol``. On the factor path
    ``covariance`` is the operator ``FᵀF`` with a leading orbit axis on its
    arrays: point ``i`` is ``jax.tree_util.tree_map(lambda x: x[i], covariance)``.
    """

    orbit: PyTree
    points: Float[Array, "p m"]
    drift: Float[Array, "p m"]
    covariance: Float[Array, "p m m"] | lx.AbstractLinearOperator
    loss: Float[Array, " p"]
    chart_spread: Float[Array, ""]
    loss_spread: Float[Array, ""]
    drift_spread: Float[Array, ""]
    covariance_spread: Float[Array, ""]
    rtol: float = eqx.field(static=True)

    @property
    def invariant(self) -> Bool[Array, ""]:
        """Whether ``Φ`` and ``L`` are constant along the sampled orbit."""
        return (self.chart_spread <= self.rtol) & (self.loss_spread <= self.rtol)

    @property
    def projectable(self) -> Bool[Array, ""]:
        """Whether drift and covariance are constant along the orbit (and the
        sampled elements are symmetries), within ``rtol``."""
        return (
            self.invariant
            & (self.drift_spread <= self.rtol)
            & (self.covariance_spread <= self.rtol)
        )


def check_projectability(
    loss: Loss,
    chart: GaugedChart | ProjectingChart,
    params: PyTree,
    noise: AbstractMinibatchNoise,
    key: PRNGKeyArray,
    *,
    num_points: int = 8,
    rtol: float | None = None,
    gauge: Callable[[PyTree, PRNGKeyArray], PyTree] | None = None,
    covariance: CovarianceForm = "dense",
) -> ProjectabilityReport:
    r"""Test Assumption 2.1: are ``b = DΦ∇L`` and ``A = Cov(DΦ M)`` constant on
    the orbit of ``params``?

    Draws ``num_points − 1`` random group elements with ``gauge`` (default
    ``chart.gauge``), evaluates ``projected_moments`` at ``params`` and at each
    transformed point with the *same* minibatches (common random numbers, so a
    Monte-Carlo noise model adds no spread of its own), and reports the spreads.

    Which group you sample matters: for the two-layer ReLU chart,
    ``chart.gauge`` draws per-unit rescalings, along which Euclidean SGD's
    ``b`` and ``A`` change (``b_γ = (a_j² + ‖u_j‖²) ∂U/∂γ_j``), so the report
    says not projectable, while hidden-unit permutations (an isometry) pass.

    Args:
        loss, chart, params, noise: as in ``projected_moments``.
        key: PRNG key (split for the group elements and the minibatches).
        num_points: orbit points, including ``params`` itself (>= 2).
        rtol: tolerance on each relative spread for ``projectable``; default
            :func:`default_projectability_rtol` of the parameters' dtype
            (``1e-8`` for float64, ``1e-4`` for float32).
        gauge: ``(params, key) -> params``, a random element of the group to
            test (e.g. only permutations, only rescalings); default
            ``chart.gauge``.
        covariance: ``"dense"`` or ``"factor"`` (matrix-free, as in
            ``projected_moments``: no ``m × m`` array; the spread by QR).

    Returns:
        A ``ProjectabilityReport``; ``report.projectable`` is a boolean array.

    Works under ``jax.jit`` (``num_points`` and ``rtol`` static) and ``jax.vmap``
    over keys and parameters.
    """
    if not isinstance(num_points, int) or num_points < 2:
        raise ValueError(f"num_points must be an int >= 2, got {num_points!r}")
    if rtol is None:
        rtol = default_projectability_rtol(float_dtype_of(params))
    if not rtol > 0:
        raise ValueError(f"rtol must be > 0, got {rtol}")
    if gauge is None:
        gauge = require_chart(chart, GaugedChart, "check_projectability").gauge
    elif not callable(gauge):
        raise ValueError(f"gauge must be callable, got {type(gauge).__name__}")
    _check_covariance_form(covariance)
    key = check_single_key(key)
    return _orbit_report(
        loss, chart, gauge, params, noise, key, num_points, rtol, covariance
    )


@eqx.filter_jit
def _orbit_report(loss, chart, gauge, params, noise, key, num_points, rtol, form):
    key_noise, key_gauge = jax.random.split(key)
    others = jax.vmap(gauge, in_axes=(None, 0))(
        params, jax.random.split(key_gauge, num_points - 1)
    )
    orbit = jax.tree_util.tree_map(
        lambda p, o: jnp.concatenate([jnp.asarray(p)[None], o]), params, others
    )
    moments = jax.vmap(
        lambda p: projected_moments(loss, chart, p, noise, key_noise, covariance=form)
    )(orbit)
    if form == "factor":
        covariance_spread = _factor_spread(_factor_of(moments.covariance))
    else:
        covariance_spread = _relative_spread(moments.covariance)
    return ProjectabilityReport(
        orbit=orbit,
        points=moments.point,
        drift=moments.drift,
        covariance=moments.covariance,
        loss=moments.loss,
        chart_spread=_relative_spread(moments.point),
        loss_spread=_relative_spread(moments.loss[:, None]),
        drift_spread=_relative_spread(moments.drift),
        covariance_spread=covariance_spread,
        rtol=float(rtol),
    )


def quotient_coefficients(
    loss: Loss,
    chart: SectionChart,
    noise: AbstractMinibatchNoise,
    key: PRNGKeyArray | None = None,
) -> tuple[
    Callable[[Float[Array, " m"]], Float[Array, " m"]],
    Callable[[Float[Array, " m"]], Float[Array, "m m"]],
]:
    r"""Drift ``Y -> b(Y)`` and covariance ``Y -> A(Y)`` on the chart's section.

    ``b(Y) = DΦ(σ(Y)) ∇L(σ(Y))`` and ``A(Y) = Cov(DΦ(σ(Y)) M)`` with
    ``σ = chart.lift``: the coefficients of the quotient SDE for SGD kept on the
    gauge-fixed section (exactly closed), and of plain SGD when the model is
    projectable. With ``SampledMinibatches`` the same ``key`` is used at every
    ``Y``, so both are deterministic functions of ``Y``.
    Pass them to ``solve_quotient_sde``.
    """
    _check_noise(noise)
    lift = require_chart(chart, SectionChart, "quotient_coefficients").lift

    def drift(y):
        return projected_moments(loss, chart, lift(y), noise, key).drift

    def covariance(y):
        return projected_moments(loss, chart, lift(y), noise, key).covariance

    return drift, covariance
