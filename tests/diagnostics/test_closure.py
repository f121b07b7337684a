"""1-D closure fit and shock forecast: a known 1-D SDE embedded in 5 dimensions
(random rotation, stiff small noise across it) recovered within its statistical
errors, an isotropic random walk refused, jit, vmap over seeds, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomshock._checks import NonFiniteInputError
from geomshock.diagnostics import describe_forecast, fit_closure, shock_forecast

from .._errors import RUNTIME_ERRORS

# A failed check in an already-compiled jitted function (the shared ``jit_fit``)
# comes back through JAX's C++ dispatch path as a ValueError wrapping the same
# message; a first call raises one of RUNTIME_ERRORS.
RUN_TIME = (ValueError, *RUNTIME_ERRORS)

LR, SIGMA, STEPS, DIM = 0.05, 2.0, 4000, 5
# Ū(s) = −s²/2 + s⁴/4: b̄ = Ū' = −s + s³, inf Ū'' = Ū''(0) = −1, τ* = 1.
TRUE_DRIFT = np.array([0.0, -1.0, 0.0, 1.0])


def simulate(seed, steps=STEPS):
    """Euler–Maruyama of ds = −b̄ dt + sqrt(η) σ dB (t = η n) and, across s,
    d − 1 stiff OU coordinates (rate 10, noise 0.2), rotated by a random Q."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    s = np.zeros(steps)
    across = np.zeros((steps, DIM - 1))
    s[0] = 0.05
    for n in range(steps - 1):
        b = np.polyval(TRUE_DRIFT[::-1], s[n])
        s[n + 1] = s[n] - LR * b + LR * SIGMA * rng.normal()
        across[n + 1] = across[n] * (1 - 10 * LR) + LR * 0.2 * rng.normal(size=DIM - 1)
    return np.concatenate([s[:, None], across], 1) @ rotation.T, rotation, s, across


@pytest.fixture(scope="module")
def known():
    qs, rotation, s, across = simulate(0)
    fit = fit_closure(qs, lr=LR)
    return qs, rotation, s, across, fit, shock_forecast(fit)


def test_recovers_direction_drift_noise_and_score(known):
    qs, rotation, s, across, fit, _ = known
    assert abs(float(fit.direction @ rotation[:, 0])) > 1 - 1e-5
    err = np.asarray(fit.drift_coefficients) - TRUE_DRIFT
    stderr = np.asarray(fit.drift_stderr)
    assert np.all(stderr < 0.15), stderr  # the tolerance itself is tight
    assert np.all(np.abs(err) < 4 * stderr), (err, stderr)
    # ν = η σ² (paper convention); the variance estimate has rel. s.e. sqrt(2/N).
    assert abs(float(fit.nu) / (LR * SIGMA**2) - 1) < 4 * np.sqrt(2 / STEPS)
    assert float(fit.nu_classic) == pytest.approx(float(fit.nu) / 2, rel=1e-14)
    assert (
        abs(float(fit.noise_coefficients[0]) - SIGMA**2)
        < 4 * np.sqrt(2 / STEPS) * SIGMA**2
    )
    # Score against the true split of the increments' mean square.
    along = np.sum(np.diff(s) ** 2)
    expected = along / (along + np.sum(np.diff(across, axis=0) ** 2))
    assert float(fit.closure_score) == pytest.approx(expected, abs=1e-4)
    assert float(fit.closure_score) > 0.9


def test_polynomials_agree_with_reported_coefficients(known):
    *_, fit, _ = known
    grid = jnp.linspace(fit.s_min, fit.s_max, 7)
    coef = np.asarray(fit.drift_coefficients)
    np.testing.assert_allclose(
        fit.drift(grid), np.polyval(coef[::-1], grid), rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(
        jax.vmap(jax.grad(fit.potential))(grid), fit.drift(grid), rtol=1e-10
    )
    assert float(fit.potential((fit.s_min + fit.s_max) / 2)) == pytest.approx(0.0)
    np.testing.assert_allclose(
        fit.noise_variance(grid), fit.noise_coefficients[0], rtol=1e-12
    )


def test_forecast_against_closed_form_and_truth(known):
    *_, fit, out = known
    # Closed form on the fitted cubic: inf of b̄' = c1 + 2 c2 s + 3 c3 s² on the range.
    c = np.asarray(fit.drift_coefficients)
    lo, hi = float(fit.s_min), float(fit.s_max)
    candidates = [lo, hi] + [x for x in [-c[2] / (3 * c[3])] if lo < x < hi]
    inf_curvature = min(c[1] + 2 * c[2] * x + 3 * c[3] * x**2 for x in candidates)
    assert float(out["inf_curvature"]) == pytest.approx(inf_curvature, rel=1e-10)
    assert float(out["tau_star"]) == pytest.approx(-1 / inf_curvature, rel=1e-10)
    # The exact τ* = 1 of the generating SDE lies in the 90 % interval.
    assert float(out["tau_low"]) < 1.0 < float(out["tau_high"])
    assert float(out["tau_high"]) - float(out["tau_low"]) < 0.5
    assert float(out["steps"]) == pytest.approx(float(out["tau_star"]) / LR, rel=1e-14)
    assert float(out["steps_low"]) == pytest.approx(float(out["tau_low"]) / LR)
    assert bool(out["trusted"])
    assert "shock in" in describe_forecast(out)
    heat = shock_forecast(fit, time_scaling="heat")
    assert float(heat["steps"]) == pytest.approx(
        float(fit.nu) * float(out["tau_star"]) / LR, rel=1e-12
    )


def test_isotropic_random_walk_is_not_trusted():
    rng = np.random.default_rng(5)
    qs = np.cumsum(0.01 * rng.normal(size=(STEPS, DIM)), axis=0)
    out = shock_forecast(fit_closure(qs, lr=LR))
    # The top of 5 equal variances: about 1/5 plus sampling spread.
    assert float(out["closure_score"]) < 0.3
    assert not bool(out["trusted"])
    assert describe_forecast(out).startswith("not trusted")


def test_jit_and_vmap_over_seeds_match_eager(known):
    windows = np.stack([known[0], simulate(1)[0]])
    analyse = jax.jit(jax.vmap(lambda q: shock_forecast(fit_closure(q, lr=LR))))
    batched = analyse(windows)
    for i, window in enumerate(windows):
        single = known[5] if i == 0 else shock_forecast(fit_closure(window, lr=LR))
        for name in ("tau_star", "tau_low", "tau_high", "nu", "closure_score"):
            assert float(batched[name][i]) == pytest.approx(
                float(single[name]), rel=1e-9
            ), name
    assert float(batched["tau_low"][1]) < 1.0 < float(batched["tau_high"][1])


SHORT = np.cumsum(np.random.default_rng(3).normal(size=(12, 2)), axis=0)


@pytest.fixture(scope="module")
def jit_fit():
    return jax.jit(lambda q, n: fit_closure(q, lr=LR, length=n).drift_coefficients)


def test_length_masks_a_buffer(jit_fit):
    full = fit_closure(SHORT[:10], lr=LR)
    masked = fit_closure(SHORT, lr=LR, length=10)
    for name in ("drift_coefficients", "drift_covariance", "nu", "closure_score"):
        np.testing.assert_allclose(
            getattr(masked, name), getattr(full, name), rtol=1e-10, err_msg=name
        )
    np.testing.assert_allclose(
        jit_fit(SHORT, 12), fit_closure(SHORT, lr=LR).drift_coefficients, rtol=1e-10
    )


def test_metric_whitening_is_coordinate_free():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(2, 2))
    g = a @ a.T + np.eye(2)
    chol = np.linalg.cholesky(g)
    plain = fit_closure(SHORT, lr=LR)
    # q with Lᵀ q = x: the same trajectory seen in coordinates with metric g.
    curved = fit_closure(SHORT @ np.linalg.inv(chol), lr=LR, metric=g)
    for name in ("s", "drift_coefficients", "nu", "closure_score"):
        np.testing.assert_allclose(
            getattr(curved, name), getattr(plain, name), rtol=1e-9, err_msg=name
        )
    v = np.asarray(curved.direction)
    assert v @ g @ v == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(curved.coordinate, g @ v, rtol=1e-12)
    given = fit_closure(SHORT @ np.linalg.inv(chol), lr=LR, metric=g, direction=v)
    np.testing.assert_allclose(given.s, plain.s, rtol=1e-9)


def test_window_too_short_static():
    with pytest.raises(ValueError, match="window too short"):
        fit_closure(SHORT[:8], lr=LR)
    with pytest.raises(ValueError, match="window too short"):
        jax.jit(lambda q: fit_closure(q, lr=LR).nu)(SHORT[:8])
    with pytest.raises(ValueError, match="window too short"):
        fit_closure(SHORT[:8], lr=LR, degree=1, noise_degree=5)


def test_window_too_short_traced_length(jit_fit):
    with pytest.raises(ValueError, match="window too short"):
        fit_closure(SHORT, lr=LR, length=5)
    with pytest.raises(RUN_TIME, match="window too short"):
        jax.block_until_ready(jit_fit(SHORT, 5))


def test_degenerate_and_non_finite_windows(jit_fit):
    still = np.ones_like(SHORT)
    with pytest.raises(ValueError, match="does not move"):
        fit_closure(still, lr=LR)
    with pytest.raises(RUN_TIME, match="does not move"):
        jax.block_until_ready(jit_fit(still, 12))
    bad = SHORT.copy()
    bad[3, 1] = np.nan
    with pytest.raises(NonFiniteInputError, match="non-finite"):
        fit_closure(bad, lr=LR)
    with pytest.raises(RUN_TIME, match="non-finite"):
        jax.block_until_ready(jit_fit(bad, 12))
    with pytest.raises(ValueError, match="shape"):
        fit_closure(SHORT[:, 0], lr=LR)
    with pytest.raises(ValueError, match="lr must be"):
        fit_closure(SHORT, lr=-1.0)
    with pytest.raises(ValueError, match="time_scaling"):
        shock_forecast(fit_closure(SHORT, lr=LR), time_scaling="steps")
