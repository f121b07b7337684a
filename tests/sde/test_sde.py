"""Projected SGD and the quotient SDE (paper Thm. 2.2 and the remark after it).

Known answer: the rotation-invariant model of ``_models`` (``Y = (‖θ_1‖, ‖θ_2‖)``,
per-target loss ``½(Y − t)ᵀH(Y − t)``, one target per minibatch). Projected SGD
is exactly ``Y_{n+1} = Y_n − ηH(Y_n − t_n)`` and the quotient SDE is the
Ornstein–Uhlenbeck process ``dY = −H(Y − t̄)dt + sqrt(η) σ dB``,
``σσᵀ = A = H Cov(t) H``, with mean ``t̄ + e^{−Ht}(y0 − t̄)`` and covariance
``η ∫_0^t e^{−Hs} A e^{−Hs} ds``. Euler–Maruyama at ``dt = η`` and SGD share the
discrete moment recursion ``m ← m − ηH(m − t̄)``, ``Σ ← (I−ηH)Σ(I−ηH) + η²A``;
it differs from the OU moments by ``O(η)``.

Statistical tolerance: a sample mean or a sample covariance entry over ``N``
seeds is compared with its target within 4 standard errors, the standard error
estimated from the same sample (std of the values, or of the centred products,
over sqrt(N)); a known deterministic discretisation bias is added where the
target is the continuous-time OU law.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomshock.charts import TwoLayerReLUChart
from geomshock.sde import (
    AllMinibatches,
    CholeskySqrt,
    EighSqrt,
    FunctionChart,
    projected_moments,
    projected_sgd,
    quotient_coefficients,
    solve_quotient_sde,
)

from ._models import RADIAL, TARGETS, H, radial_loss

ETA = 2e-3
STEPS = 250
SAVE_EVERY = 50
SEEDS = 1024
Y0 = jnp.array([1.7, 1.2])
NOISE = AllMinibatches(TARGETS)
_T = np.asarray(TARGETS)
T_MEAN = _T.mean(0)
A = np.asarray(H) @ np.cov(_T.T, bias=True) @ np.asarray(H)


def _discrete_moments(n):
    """Exact mean and covariance of projected SGD (and Euler–Maruyama) after n steps."""
    step = np.eye(2) - ETA * np.asarray(H)
    mean, cov = np.asarray(Y0), np.zeros((2, 2))
    for _ in range(n):
        mean = T_MEAN + step @ (mean - T_MEAN)
        cov = step @ cov @ step.T + ETA**2 * A
    return mean, cov


def _ou_moments(t):
    lam, vec = np.linalg.eigh(np.asarray(H))
    decay = vec @ np.diag(np.exp(-lam * t)) @ vec.T
    rates = lam[:, None] + lam[None, :]
    cov = vec @ (ETA * (vec.T @ A @ vec) * (1 - np.exp(-rates * t)) / rates) @ vec.T
    return T_MEAN + decay @ (np.asarray(Y0) - T_MEAN), cov


def _sample_stats(ys):
    """Sample mean/covariance and their standard errors; ys: (N, m)."""
    ys = np.asarray(ys)
    n = ys.shape[0]
    centred = ys - ys.mean(0)
    products = centred[:, :, None] * centred[:, None, :]
    return (
        ys.mean(0),
        ys.std(0) / np.sqrt(n),
        products.mean(0),
        products.std(0) / np.sqrt(n),
    )


def _radial_sgd(keys, save_every=SAVE_EVERY):
    return projected_sgd(
        radial_loss,
        RADIAL,
        RADIAL.lift(Y0),
        NOISE,
        learning_rate=ETA,
        num_steps=STEPS,
        keys=keys,
        save_every=save_every,
    )


@pytest.fixture(scope="module")
def ensembles():
    keys = jax.random.split(jax.random.key(0), 2 * SEEDS)
    sgd = _radial_sgd(keys[:SEEDS])
    sde, drift, covariance = _sde_like(
        sgd, radial_loss, RADIAL, NOISE, Y0, ETA, STEPS, keys[SEEDS:]
    )
    return sgd, sde, (drift, covariance), keys[SEEDS:]


def _sde_like(sgd, loss, chart, noise, y0, eta, steps, keys):
    """The quotient SDE of ``loss``/``noise`` on ``chart``, saved at ``sgd.ts``."""
    drift, covariance = quotient_coefficients(loss, chart, noise)
    sde = solve_quotient_sde(
        drift, covariance, y0, learning_rate=eta, t1=steps * eta, keys=keys, ts=sgd.ts
    )
    return sde, drift, covariance


def test_projected_sgd_matches_exact_discrete_moments(ensembles):
    sgd, _, _, _ = ensembles
    np.testing.assert_allclose(sgd.ts, ETA * SAVE_EVERY * np.arange(6), rtol=1e-14)
    for i in range(1, len(sgd.ts)):
        mean, se_mean, cov, se_cov = _sample_stats(sgd.ys[:, i])
        exact_mean, exact_cov = _discrete_moments(i * SAVE_EVERY)
        assert np.all(np.abs(mean - exact_mean) <= 4 * se_mean)
        assert np.all(np.abs(cov - exact_cov) <= 4 * se_cov)
    # Not vacuous: the mean has moved and the spread is resolved.
    assert np.all(np.abs(mean - np.asarray(Y0)) > 20 * se_mean)
    assert np.all(np.diag(cov) > 10 * np.diag(se_cov))


def test_quotient_sde_matches_ou_closed_form(ensembles):
    _, sde, _, _ = ensembles
    for i in range(1, len(sde.ts)):
        t = float(sde.ts[i])
        mean, se_mean, cov, se_cov = _sample_stats(sde.ys[:, i])
        ou_mean, ou_cov = _ou_moments(t)
        em_mean, em_cov = _discrete_moments(i * SAVE_EVERY)
        assert np.all(np.abs(mean - ou_mean) <= 4 * se_mean + np.abs(em_mean - ou_mean))
        assert np.all(np.abs(cov - ou_cov) <= 4 * se_cov + np.abs(em_cov - ou_cov))
    np.testing.assert_allclose(sde.ys[:, 0], np.tile(Y0, (SEEDS, 1)), rtol=1e-15)


def test_quotient_sde_matches_projected_sgd(ensembles):
    sgd, sde, _, _ = ensembles
    for i in range(1, len(sde.ts)):
        m1, s1, c1, sc1 = _sample_stats(sgd.ys[:, i])
        m2, s2, c2, sc2 = _sample_stats(sde.ys[:, i])
        assert np.all(np.abs(m1 - m2) <= 4 * np.hypot(s1, s2))
        assert np.all(np.abs(c1 - c2) <= 4 * np.hypot(sc1, sc2))


def test_vmap_over_seeds_equals_loop(ensembles):
    sgd, sde, (drift, covariance), keys = ensembles
    for i in range(2):
        one = solve_quotient_sde(
            drift,
            covariance,
            Y0,
            learning_rate=ETA,
            t1=STEPS * ETA,
            keys=keys[i : i + 1],
        )
        np.testing.assert_allclose(one.ys[0, -1], sde.ys[i, -1], rtol=1e-12)
    keys_sgd = jax.random.split(jax.random.key(0), 2 * SEEDS)[:2]
    for i in range(2):
        one = _radial_sgd(keys_sgd[i : i + 1], save_every=STEPS)
        np.testing.assert_allclose(one.ys[0, -1], sgd.ys[i, -1], rtol=1e-13)


def _linear_drift(y, h):
    return h * (H @ (y - T_MEAN))


def _constant_covariance(y):
    return jnp.asarray(A) + 0.0 * y[0]


@eqx.filter_jit
def _final_mean(y0, h, eta, keys):
    path = solve_quotient_sde(
        lambda y: _linear_drift(y, h),
        _constant_covariance,
        y0,
        learning_rate=eta,
        t1=0.1,
        dt0=0.01,
        keys=keys,
        matrix_sqrt=CholeskySqrt(),
    )
    return path.ys[:, -1].mean(0)


def test_jit_grad_and_vmap_over_learning_rate():
    keys = jax.random.split(jax.random.key(3), 2)
    # Euler with dt = 0.01 over 10 steps: ∂Y_T/∂y0 = (I − 0.01 h H)^10 exactly.
    jac_y0, jac_h = jax.jacrev(_final_mean, argnums=(0, 1))(Y0, 1.0, ETA, keys)
    exact = np.linalg.matrix_power(np.eye(2) - 0.01 * np.asarray(H), 10)
    np.testing.assert_allclose(jac_y0, exact, rtol=1e-12)
    d = 1e-5
    fd = (_final_mean(Y0, 1.0 + d, ETA, keys) - _final_mean(Y0, 1.0 - d, ETA, keys)) / (
        2 * d
    )
    np.testing.assert_allclose(jac_h, fd, rtol=1e-7)

    etas = jnp.array([1e-3, 4e-3, 1.6e-2])
    batched = jax.vmap(lambda eta: _final_mean(Y0, 1.0, eta, keys))(etas)
    looped = np.stack([_final_mean(Y0, 1.0, eta, keys) for eta in etas])
    np.testing.assert_allclose(batched, looped, rtol=1e-13)
    # Same Brownian paths: the noise term scales exactly with sqrt(η).
    noise = looped - _final_mean(Y0, 1.0, 1e-30, keys)
    np.testing.assert_allclose(noise[1] / noise[0], 2.0, rtol=1e-8)


def test_projected_sgd_vmap_over_learning_rate_and_grad():
    keys = jax.random.split(jax.random.key(4), 2)

    @jax.jit
    def final(params0, eta):
        path = projected_sgd(
            radial_loss,
            RADIAL,
            params0,
            NOISE,
            learning_rate=eta,
            num_steps=10,
            keys=keys,
            save_every=10,
        )
        return path.ys[:, -1].mean(0)

    p0 = RADIAL.lift(Y0)
    etas = jnp.array([1e-3, 1e-2])
    np.testing.assert_allclose(
        jax.vmap(lambda eta: final(p0, eta))(etas),
        np.stack([final(p0, eta) for eta in etas]),
        rtol=1e-14,
    )
    # Y_{n+1} = Y_n − ηH(Y_n − t_n): ∂Y_10/∂Y_0 = (I − ηH)^10, and the radial
    # parameter θ_{k,0} is Y_k on the lift.
    jac = jax.jacobian(final)(p0, 1e-2)[:, :, 0]
    exact = np.linalg.matrix_power(np.eye(2) - 1e-2 * np.asarray(H), 10)
    np.testing.assert_allclose(jac, exact, rtol=1e-12)


def test_thm_2_2_increment_moments_on_relu_chart():
    """E[ΔY] = −ηb + O(η²) and Cov(ΔY) = η²A + O(η³), exactly over all minibatches."""
    chart = TwoLayerReLUChart(2, 1)
    x = jnp.linspace(-2.0, 2.0, 8)
    data = AllMinibatches(
        {"x": x.reshape(4, 2), "y": (x > 0).astype(float).reshape(4, 2)}
    )

    def bce(params, batch):
        z = chart.apply(params, batch["x"][:, None])
        return jnp.mean(jax.nn.softplus(z) - batch["y"] * z)

    params = chart.lift(jnp.array([1.3, -0.9, 0.4, 2.2, 0.1]))
    moments = projected_moments(bce, chart, params, data)

    @jax.jit
    def residuals(eta):
        def step(batch):
            grads = jax.grad(bce)(params, batch)
            new = jax.tree_util.tree_map(lambda p, g: p - eta * g, params, grads)
            return chart.project(new) - moments.point

        dy = jax.vmap(step)(data.batches)
        mean = dy.mean(0)
        cov = (dy - mean).T @ (dy - mean) / dy.shape[0]
        return (
            jnp.linalg.norm(mean + eta * moments.drift),
            jnp.linalg.norm(cov - eta**2 * moments.covariance),
        )

    (r1, c1), (r2, c2) = residuals(1e-2), residuals(5e-3)
    assert float(r1) > 1e-8 and float(c1) > 1e-12
    np.testing.assert_allclose(r1 / r2, 4.0, rtol=0.05)
    np.testing.assert_allclose(c1 / c2, 8.0, rtol=0.05)


def test_regauged_sgd_stays_balanced():
    chart = TwoLayerReLUChart(2, 1)
    x = jnp.linspace(-2.0, 2.0, 8)
    data = AllMinibatches({"x": x.reshape(4, 2), "y": jnp.sin(x).reshape(4, 2)})

    def mse(params, batch):
        return jnp.mean((chart.apply(params, batch["x"][:, None]) - batch["y"]) ** 2)

    params0 = chart.lift(jnp.array([1.3, -0.9, 0.4, 2.2, 0.1]))
    keys = jax.random.split(jax.random.key(5), 2)
    common = dict(learning_rate=0.05, num_steps=20, keys=keys, save_every=20)
    kept = projected_sgd(mse, chart, params0, data, regauge=True, **common)
    free = projected_sgd(mse, chart, params0, data, **common)
    balance = jax.vmap(chart.balance_error)
    assert float(jnp.max(balance(kept.params))) < 1e-12
    assert float(jnp.min(balance(free.params))) > 1e-6
    np.testing.assert_allclose(
        kept.ys[:, -1], jax.vmap(chart.project)(kept.params), rtol=1e-13
    )


def test_matrix_square_roots():
    a = jnp.asarray(A)
    for sqrt in (EighSqrt(), CholeskySqrt()):
        s = sqrt(a)
        np.testing.assert_allclose(s @ s.T, a, rtol=1e-13, atol=1e-16)
    singular = jnp.array([[1.0, 1.0], [1.0, 1.0]])
    s = EighSqrt()(singular)
    np.testing.assert_allclose(s @ s.T, singular, atol=1e-14)
    # Differentiable at a repeated eigenvalue: d√A = dA / (2√λ) at A = λI.
    direction = jnp.array([[0.3, 0.1], [0.1, -0.2]])
    _, tangent = jax.jvp(EighSqrt(), (4.0 * jnp.eye(2),), (direction,))
    np.testing.assert_allclose(tangent, direction / 4.0, rtol=1e-13)
    grad = jax.grad(lambda m: jnp.sum(EighSqrt()(m) ** 3))(4.0 * jnp.eye(2))
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_bad_input():
    keys = jax.random.split(jax.random.key(0), 2)
    drift, covariance = _linear_drift, _constant_covariance

    def b(y):
        return drift(y, 1.0)

    sde = dict(learning_rate=ETA, t1=0.1, keys=keys)
    with pytest.raises(ValueError, match="learning_rate must be finite and > 0"):
        solve_quotient_sde(b, covariance, Y0, **{**sde, "learning_rate": 0.0})
    with pytest.raises(ValueError, match=r"drift must return shape \(2,\)"):
        solve_quotient_sde(lambda y: y[:1], covariance, Y0, **sde)
    with pytest.raises(ValueError, match=r"covariance must return shape \(2, 2\)"):
        solve_quotient_sde(b, lambda y: y, Y0, **sde)
    with pytest.raises(ValueError, match=r"y0 must have shape \(m,\)"):
        solve_quotient_sde(b, covariance, Y0[None], **sde)
    with pytest.raises(ValueError, match="one leading seed axis"):
        solve_quotient_sde(b, covariance, Y0, **{**sde, "keys": keys[0]})
    with pytest.raises(ValueError, match="need t0 < t1"):
        solve_quotient_sde(b, covariance, Y0, **{**sde, "t1": 0.0})
    with pytest.raises(ValueError, match="matrix_sqrt must be"):
        solve_quotient_sde(b, covariance, Y0, matrix_sqrt=jnp.sqrt, **sde)

    with pytest.raises(eqx.EquinoxRuntimeError, match="not positive semidefinite"):
        EighSqrt()(jnp.array([[1.0, 0.0], [0.0, -0.5]]))
    with pytest.raises(eqx.EquinoxRuntimeError, match="not symmetric"):
        EighSqrt()(jnp.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(eqx.EquinoxRuntimeError, match="not positive definite"):
        CholeskySqrt()(jnp.array([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(eqx.EquinoxRuntimeError, match="not positive semidefinite"):
        solve_quotient_sde(
            b,
            lambda y: jnp.diag(jnp.array([1.0, -1.0])) + 0.0 * y[0],
            Y0,
            solver=diffrax.Euler(),
            **sde,
        )

    p0 = RADIAL.lift(Y0)
    sgd = dict(learning_rate=ETA, num_steps=4, keys=keys)
    with pytest.raises(ValueError, match="learning_rate must be finite and > 0"):
        projected_sgd(radial_loss, RADIAL, p0, NOISE, **{**sgd, "learning_rate": -1.0})
    with pytest.raises(
        eqx.EquinoxRuntimeError, match="learning_rate must be finite and > 0"
    ):
        eqx.filter_jit(
            lambda eta: (
                projected_sgd(
                    radial_loss, RADIAL, p0, NOISE, **{**sgd, "learning_rate": eta}
                ).ys
            )
        )(jnp.array(-1.0))
    with pytest.raises(ValueError, match="save_every must be a positive int dividing"):
        projected_sgd(radial_loss, RADIAL, p0, NOISE, save_every=3, **sgd)
    with pytest.raises(ValueError, match="callable `lift`"):
        chart = FunctionChart(project=RADIAL.project)
        projected_sgd(radial_loss, chart, p0, NOISE, regauge=True, **sgd)
    with pytest.raises(ValueError, match="chart.lift has a leaf of shape"):
        chart = FunctionChart(project=RADIAL.project, lift=lambda y: y)
        projected_sgd(radial_loss, chart, p0, NOISE, regauge=True, **sgd)
    with pytest.raises(ValueError, match="must return a scalar"):
        projected_sgd(lambda p, t: p, RADIAL, p0, NOISE, **sgd)


def test_quotient_sde_matches_regauged_sgd_on_relu_chart():
    """End to end on the two-layer ReLU chart (no closed form): the quotient SDE
    built by ``quotient_coefficients`` from the chart and the minibatch noise
    against SGD that keeps the balanced gauge (an exactly closed chain in q).

    Thm. 2.2 is a weak first-order statement: per step the SGD mean increment
    has an extra ``½η² E[D²Φ(∇L_B, ∇L_B)]`` that the SDE drops, so the means
    drift apart by ``O(ηT)`` while their standard error is ``O(sqrt(ηT/N))``.
    The test evaluates that leading-order bias along the mean path and requires
    it to stay below one standard error; then means and variances must agree
    within 4 standard errors (1024 seeds in all).
    """
    chart = TwoLayerReLUChart(2, 1)
    x = jnp.linspace(-2.0, 2.0, 8)
    data = AllMinibatches({"x": x.reshape(4, 2), "y": jnp.sin(x).reshape(4, 2)})

    def mse(params, batch):
        return jnp.mean((chart.apply(params, batch["x"][:, None]) - batch["y"]) ** 2)

    eta, steps, seeds = 2.5e-4, 500, 512
    y0 = jnp.array([1.3, -0.9, 0.4, 2.2, 0.1])
    keys = jax.random.split(jax.random.key(0), 2 * seeds)
    sgd = projected_sgd(
        mse,
        chart,
        chart.lift(y0),
        data,
        learning_rate=eta,
        num_steps=steps,
        keys=keys[:seeds],
        regauge=True,
        save_every=steps // 10,
    )
    sde, drift, _ = _sde_like(sgd, mse, chart, data, y0, eta, steps, keys[seeds:])

    @jax.vmap
    def local_bias(y):  # E_B[Φ(σ(y) − η∇L_B)] − (y − η b(y)): O(η²)
        params = chart.lift(y)

        def step(batch):
            grads = jax.grad(mse)(params, batch)
            return chart.project(
                jax.tree_util.tree_map(lambda p, g: p - eta * g, params, grads)
            )

        return jax.vmap(step)(data.batches).mean(0) - y + eta * drift(y)

    d = np.asarray(local_bias(sgd.ys.mean(0)))  # along the mean path, 11 times
    bias = steps * (0.5 * (d[0] + d[-1]) + d[1:-1].sum(0)) / (len(d) - 1)

    m1, s1, c1, sc1 = _sample_stats(sgd.ys[:, -1])
    m2, s2, c2, sc2 = _sample_stats(sde.ys[:, -1])
    se_mean = np.hypot(s1, s2)
    assert np.all(np.abs(bias) < se_mean)
    assert np.all(np.abs(m1 - m2) <= 4 * se_mean)
    var, se_var = np.diag(c1) - np.diag(c2), np.hypot(np.diag(sc1), np.diag(sc2))
    assert np.all(np.abs(var) <= 4 * se_var)
    # Not vacuous: the mean moved and the spread is resolved on every coordinate.
    assert np.all(np.abs(m1 - np.asarray(y0)) > 20 * se_mean)
    assert np.all(np.diag(c1) > 10 * np.diag(sc1))
