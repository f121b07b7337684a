"""Projected drift/covariance of SGD and projectability (paper Assumption 2.1,
Thm. 2.2) on the paper's two-layer ReLU chart and on a rotation-invariant model.

Mathematical facts the tests check (θ ↦ g·θ a linear symmetry, L∘g = L, Φ∘g = Φ):
``∇L(gθ) = g^{-ᵀ}∇L(θ)`` and ``DΦ(gθ) = DΦ(θ)g^{-1}``, so
``b(gθ) = DΦ(θ) g^{-1}g^{-ᵀ} ∇L(θ)``. Isometric actions (permutations,
rotations) are therefore projectable; per-unit ReLU rescaling is not (footnote 5
of the paper): for ``q = (γ, φ, c)``, ``U = L∘σ``,
``b = (a_j²+‖u_j‖²) ∂U/∂γ_j, ∂U/∂φ_j / ‖u_j‖², ∂U/∂c`` at any representative,
which on the balanced section is ``g(q)^{-1} ∇U`` with the quotient metric.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomshock.charts import TwoLayerReLUChart
from geomshock.sde import (
    AllMinibatches,
    FunctionChart,
    SampledMinibatches,
    check_projectability,
    projected_moments,
)

from ._models import RADIAL, RADIAL_PARAMS, TARGETS, H, radial_loss

M = 3
CHART = TwoLayerReLUChart(M, 1)
_X = jnp.linspace(-2.0, 2.0, 12) + 0.035 * jnp.sin(7.0 * jnp.arange(12.0))
DATA = {
    "x": _X,
    "bce": (_X > 0).astype(float),
    "mse": jnp.sin(1.3 * _X) + 0.2,
}
PARAMS = {
    "a": jnp.array([1.2, -0.8, 0.6]),
    "u": jnp.array([[1.0, 0.2], [-0.7, 0.5], [0.4, -0.3]]),
    "c": jnp.array(0.1),
}


def _net(params, x):
    return CHART.apply(params, x[..., None])


def bce(params, batch):
    z = _net(params, batch["x"])
    return jnp.mean(jax.nn.softplus(z) - batch["bce"] * z)


def mse(params, batch):
    return 0.5 * jnp.mean((_net(params, batch["x"]) - batch["mse"]) ** 2)


def _weight_decay(params, lam):
    return 0.5 * sum(
        jnp.sum(lam * leaf**2) for leaf in (params["a"], params["u"].T, params["c"])
    )


LOSSES = {"bce": bce, "mse": mse}
# A fixed partition of the 12 points into 4 minibatches of 3 (exact moments) ...
EXACT = AllMinibatches(jax.tree_util.tree_map(lambda v: v.reshape(4, 3), DATA))


def _draw(key):
    index = jax.random.randint(key, (4,), 0, 12)
    return jax.tree_util.tree_map(lambda v: v[index], DATA)


# ... or minibatches of 4 drawn with replacement (Monte Carlo).
SAMPLED = SampledMinibatches(_draw, num_samples=64)
NOISES = {"exact": EXACT, "sampled": SAMPLED}


def _canonical_project(params):
    """The chart's coordinates with units sorted by γ (quotient by permutations)."""
    q = CHART.project(params)
    order = jnp.argsort(q[:M])
    return jnp.concatenate([q[:M][order], q[M:-1][order], q[-1:]])


def _permute(params, key):
    perm = jax.random.permutation(key, M)
    return {"a": params["a"][perm], "u": params["u"][perm], "c": params["c"]}


SORTED = FunctionChart(project=_canonical_project, gauge=_permute)


@pytest.mark.parametrize(
    "loss_name, noise_name", [("bce", "exact"), ("mse", "sampled")]
)
def test_relu_projectable_along_permutation_orbits(loss_name, noise_name):
    report = check_projectability(
        LOSSES[loss_name],
        SORTED,
        PARAMS,
        NOISES[noise_name],
        jax.random.key(3),
        num_points=6,
        rtol=1e-12,
    )
    assert bool(report.projectable)
    # The sampled permutations really moved the units.
    assert float(jnp.max(jnp.abs(report.orbit["a"] - PARAMS["a"]))) > 0.5
    assert float(jnp.linalg.norm(report.drift[0])) > 1e-3


@functools.partial(jax.jit, static_argnums=0)
def _quotient_gradients(loss, q, batches):
    """∇_q of ``loss∘lift`` for every minibatch, stacked: (k, dim)."""
    return jax.vmap(jax.grad(lambda y, b: loss(CHART.lift(y), b)), in_axes=(None, 0))(
        q, batches
    )


def _rescaling_weights(params):
    """The closed-form factors W(θ) with DΦ(θ)∇ℓ(θ) = W(θ) ∇_q(ℓ∘σ)(Φ(θ))."""
    norm_sq = jnp.sum(params["u"] ** 2, axis=-1)
    return jnp.concatenate([params["a"] ** 2 + norm_sq, 1.0 / norm_sq, jnp.ones(1)])


@pytest.mark.parametrize("loss_name", ["bce", "mse"])
def test_relu_rescaling_orbit_is_not_projectable_and_matches_closed_form(loss_name):
    loss = LOSSES[loss_name]
    report = check_projectability(
        loss, CHART, PARAMS, EXACT, jax.random.key(0), num_points=5, rtol=1e-9
    )
    # Loss and chart are invariant (a true symmetry) ...
    assert bool(report.invariant)
    assert float(report.loss_spread) < 1e-13
    assert float(report.chart_spread) < 1e-13
    # ... but Euclidean SGD's projected drift and noise are not (footnote 5).
    assert float(report.drift_spread) > 1e-2
    assert float(report.covariance_spread) > 1e-2
    assert not bool(report.projectable)

    q = CHART.project(PARAMS)
    grads = _quotient_gradients(loss, q, EXACT.batches)
    mean = grads.mean(0)
    cov = jnp.cov(grads.T, bias=True)
    for k in range(5):
        point = jax.tree_util.tree_map(lambda v, k=k: v[k], report.orbit)
        w = _rescaling_weights(point)
        np.testing.assert_allclose(report.drift[k], w * mean, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(
            report.covariance[k], w[:, None] * cov * w[None, :], rtol=1e-10, atol=1e-15
        )


def test_balanced_section_drift_is_metric_gradient():
    """At ``σ(q)``, ``b = g(q)^{-1}∇U(q)`` with the chart's autodiff metric and
    with the closed form ``g = diag(1/(2|γ|), |γ|, 1)``."""
    q = CHART.project(PARAMS)
    u_grad = _quotient_gradients(mse, q, EXACT.batches).mean(0)
    moments = projected_moments(mse, CHART, CHART.lift(q), EXACT)
    metric = jax.jit(CHART.metric)(q)
    np.testing.assert_allclose(
        moments.drift, jnp.linalg.solve(metric, u_grad), rtol=1e-10
    )
    gamma = jnp.abs(q[:M])
    closed = jnp.concatenate([2.0 * gamma, 1.0 / gamma, jnp.ones(1)]) * u_grad
    np.testing.assert_allclose(moments.drift, closed, rtol=1e-12)
    np.testing.assert_allclose(moments.point, q, rtol=1e-14)


def test_weight_decay_is_detected():
    def decayed(params, batch):
        return bce(params, batch) + _weight_decay(params, 1e-2)

    def unit_decay(params, batch):
        return bce(params, batch) + _weight_decay(params, jnp.array([1e-2, 2e-2, 3e-2]))

    key = jax.random.key(1)
    rescaled = check_projectability(decayed, CHART, PARAMS, EXACT, key, num_points=4)
    assert not bool(rescaled.projectable)
    assert not bool(rescaled.invariant)
    assert float(rescaled.loss_spread) > 1e-4
    # Uniform L2 decay is still permutation-invariant, hence projectable there;
    # a per-unit decay breaks permutations too and is detected.
    permuted = check_projectability(decayed, SORTED, PARAMS, EXACT, key, rtol=1e-12)
    assert bool(permuted.projectable)
    per_unit = check_projectability(unit_decay, SORTED, PARAMS, EXACT, key)
    assert not bool(per_unit.projectable)
    assert float(per_unit.drift_spread) > 1e-4


def test_rotation_model_projectable_with_closed_form_moments():
    weights = jnp.array([1.0, 2.0, 1.0, 3.0, 1.0, 2.0])
    noise = AllMinibatches(TARGETS, weights=weights)
    report = check_projectability(
        radial_loss, RADIAL, RADIAL_PARAMS, noise, jax.random.key(2), rtol=1e-12
    )
    assert bool(report.projectable)
    p = np.asarray(weights) / np.sum(weights)
    t = np.asarray(TARGETS)
    y = np.linalg.norm(np.asarray(RADIAL_PARAMS), axis=-1)
    h = np.asarray(H)
    mean = p @ t
    cov = (t - mean).T @ np.diag(p) @ (t - mean)
    np.testing.assert_allclose(
        report.drift, np.tile(h @ (y - mean), (8, 1)), rtol=1e-13
    )
    np.testing.assert_allclose(
        report.covariance, np.tile(h @ cov @ h, (8, 1, 1)), rtol=1e-12
    )


def test_monte_carlo_moments_within_standard_error():
    n = 4000
    noise = SampledMinibatches(
        lambda key: TARGETS[jax.random.randint(key, (), 0, 6)], num_samples=n
    )
    mc = projected_moments(radial_loss, RADIAL, RADIAL_PARAMS, noise, jax.random.key(5))
    exact = projected_moments(
        radial_loss, RADIAL, RADIAL_PARAMS, AllMinibatches(TARGETS)
    )
    # Exact sampling distribution of x = DΦ∇ℓ (uniform over the 6 targets):
    # SE(mean_i) = sqrt(A_ii / n), SE(cov_ij) ≈ sqrt(Var((x_i−μ_i)(x_j−μ_j)) / n).
    x = (np.asarray(TARGETS) - np.asarray(TARGETS).mean(0)) @ np.asarray(H)
    se_mean = np.sqrt(np.diag(exact.covariance) / n)
    products = x[:, :, None] * x[:, None, :]
    se_cov = np.sqrt(products.var(axis=0) / n)
    assert np.all(np.abs(mc.drift - exact.drift) <= 4 * se_mean)
    assert np.all(np.abs(mc.covariance - exact.covariance) <= 4 * se_cov)
    # Not vacuous: the Monte-Carlo estimate is not the exact value.
    assert float(jnp.max(jnp.abs(mc.covariance - exact.covariance))) > 1e-6


def test_jit_vmap_grad():
    fn = jax.jit(lambda p: projected_moments(bce, CHART, p, EXACT))
    eager = projected_moments(bce, CHART, PARAMS, EXACT)
    jitted = fn(PARAMS)
    for a, b in zip(
        jax.tree_util.tree_leaves(eager), jax.tree_util.tree_leaves(jitted), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)

    stack = jax.vmap(CHART.gauge, in_axes=(None, 0))(
        PARAMS, jax.random.split(jax.random.key(4), 3)
    )
    batched = jax.vmap(fn)(stack)
    for k in range(3):
        single = fn(jax.tree_util.tree_map(lambda v, k=k: v[k], stack))
        np.testing.assert_allclose(batched.drift[k], single.drift, rtol=1e-13)
        np.testing.assert_allclose(batched.covariance[k], single.covariance, rtol=1e-12)

    def objective(a):
        moments = projected_moments(bce, CHART, {**PARAMS, "a": a}, EXACT)
        return jnp.sum(moments.drift**2) + jnp.trace(moments.covariance)

    grad = jax.grad(objective)(PARAMS["a"])
    h = 1e-5
    for i in range(M):
        e = jnp.zeros(M).at[i].set(h)
        fd = (objective(PARAMS["a"] + e) - objective(PARAMS["a"] - e)) / (2 * h)
        np.testing.assert_allclose(grad[i], fd, rtol=1e-7)

    report = jax.jit(
        lambda p, k: check_projectability(bce, SORTED, p, EXACT, k, num_points=3)
    )(PARAMS, jax.random.key(7))
    assert bool(report.projectable)


def test_bad_input():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="must return a scalar"):
        projected_moments(lambda p, b: _net(p, b["x"]), CHART, PARAMS, EXACT)
    with pytest.raises(ValueError, match="1-D array of quotient coordinates"):
        projected_moments(bce, FunctionChart(project=lambda p: p["u"]), PARAMS, EXACT)
    with pytest.raises(ValueError, match="same leading"):
        AllMinibatches({"x": jnp.zeros((4, 3)), "y": jnp.zeros((5, 3))})
    with pytest.raises(ValueError, match=r"weights must have shape \(6,\)"):
        AllMinibatches(TARGETS, weights=jnp.ones(5))
    with pytest.raises(ValueError, match="nonnegative"):
        AllMinibatches(TARGETS, weights=-jnp.ones(6))
    with pytest.raises(ValueError, match="at least 2 minibatches"):
        AllMinibatches(TARGETS[:1])
    with pytest.raises(ValueError, match="num_samples must be an int >= 2"):
        SampledMinibatches(_draw, num_samples=1)
    with pytest.raises(ValueError, match="single PRNG key"):
        projected_moments(bce, CHART, PARAMS, SAMPLED)
    with pytest.raises(ValueError, match="noise must be a minibatch noise model"):
        projected_moments(bce, CHART, PARAMS, DATA)
    with pytest.raises(ValueError, match="num_points must be an int >= 2"):
        check_projectability(bce, CHART, PARAMS, EXACT, key, num_points=1)
    with pytest.raises(ValueError, match="callable `gauge`"):
        check_projectability(
            bce, FunctionChart(project=CHART.project), PARAMS, EXACT, key
        )
    with pytest.raises(ValueError, match="expects params with structure"):
        projected_moments(bce, CHART, {"a": PARAMS["a"], "u": PARAMS["u"]}, EXACT)


def test_factor_path_matches_dense():
    """Matrix-free covariance ``FᵀF`` and its QR spread against the dense path,
    on the rescaling orbit (spreads ~1e-1) and the permutation orbit (~1e-16);
    Monte-Carlo minibatches, so the unbiased ``k/(k − 1)`` factor is covered."""
    noise, key = SAMPLED, jax.random.key(11)

    @jax.jit
    def both(params):
        moments = [
            projected_moments(bce, CHART, params, noise, key, covariance=form)
            for form in ("dense", "factor")
        ]
        reports = [
            check_projectability(
                bce, chart, params, noise, key, num_points=4, covariance=form
            )
            for chart in (CHART, SORTED)
            for form in ("dense", "factor")
        ]
        return moments, reports

    (dense, factor), (scaled, scaled_f, permuted, permuted_f) = both(PARAMS)
    np.testing.assert_allclose(
        factor.covariance.as_matrix(), dense.covariance, rtol=1e-13, atol=1e-16
    )
    v = jnp.arange(1.0, 2 * M + 2)
    np.testing.assert_allclose(
        factor.covariance.mv(v), dense.covariance @ v, rtol=1e-13, atol=1e-16
    )
    np.testing.assert_array_equal(factor.drift, dense.drift)
    assert float(scaled.covariance_spread) > 1e-2
    np.testing.assert_allclose(
        scaled_f.covariance_spread, scaled.covariance_spread, rtol=1e-12
    )
    # On a true isometry orbit both spreads are rounding-sized (no cancellation).
    assert float(permuted_f.covariance_spread) < 1e-14
    assert bool(permuted_f.projectable) and not bool(scaled_f.projectable)
    for k in range(4):
        op = jax.tree_util.tree_map(lambda x, k=k: x[k], scaled_f.covariance)
        np.testing.assert_allclose(
            op.as_matrix(), scaled.covariance[k], rtol=1e-12, atol=1e-16
        )


def test_bad_covariance_form():
    with pytest.raises(ValueError, match="covariance must be 'dense' or 'factor'"):
        projected_moments(bce, CHART, PARAMS, EXACT, covariance="low_rank")
    with pytest.raises(ValueError, match="covariance must be 'dense' or 'factor'"):
        check_projectability(
            bce, CHART, PARAMS, EXACT, jax.random.key(0), covariance=None
        )
