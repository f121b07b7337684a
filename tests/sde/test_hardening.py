"""The error contract of geomshock.sde, float32, per-seed initial parameters and
the Monte-Carlo covariance normalisation (Part 6)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomshock._checks import NonFiniteInputError
from geomshock.charts import TwoLayerReLUChart
from geomshock.sde import (
    AllMinibatches,
    FunctionChart,
    GaugedChart,
    ProjectingChart,
    SampledMinibatches,
    SectionChart,
    check_projectability,
    default_projectability_rtol,
    projected_moments,
    projected_sgd,
    solve_quotient_sde,
)

from .._errors import RUNTIME_ERRORS, raises_eager_and_jit
from ._models import RADIAL, RADIAL_PARAMS, TARGETS, radial_loss

KEYS = jax.random.split(jax.random.key(0), 3)
NOISE = AllMinibatches(TARGETS)
Y0 = jnp.array([1.7, 1.2])


def _drift(y):
    return y - 1.0


def _covariance(y):
    return jnp.diag(0.1 + 0.0 * y)


def _sde(drift=_drift, covariance=_covariance, y0=Y0, **kwargs):
    options = dict(learning_rate=1e-2, t1=0.05, keys=KEYS)
    return solve_quotient_sde(drift, covariance, y0, **{**options, **kwargs}).ys


def _sgd(params0=RADIAL_PARAMS, **kwargs):
    options = dict(learning_rate=1e-2, num_steps=4, keys=KEYS)
    return projected_sgd(radial_loss, RADIAL, params0, NOISE, **{**options, **kwargs})


# --- defect 9: messages that name the real cause ---------------------------------


def test_zero_seeds_refused():
    none = jax.random.split(jax.random.key(0), 0)
    with pytest.raises(ValueError, match="at least one PRNG key .* got 0 keys"):
        _sgd(keys=none)
    with pytest.raises(ValueError, match="at least one PRNG key .* got 0 keys"):
        _sde(keys=none)


@pytest.mark.parametrize("eta", [jnp.inf, jnp.nan])
def test_non_finite_learning_rate_refused(eta):
    match = "learning_rate must be finite and > 0"
    raises_eager_and_jit(lambda e: _sgd(learning_rate=e).ys, eta, match=match)
    raises_eager_and_jit(lambda e: _sde(learning_rate=e), eta, match=match)


# --- defect 6: non-finite input up front --------------------------------------------


def test_non_finite_sde_coefficients_refused_eager_jit_vmap():
    nan_drift = lambda y: y * jnp.nan
    nan_cov = lambda y: jnp.where(y[0] > 2.0, jnp.nan, 1.0) * jnp.eye(2)
    raises_eager_and_jit(
        lambda y: _sde(drift=nan_drift, y0=y), Y0, match="non-finite input: drift b"
    )
    bad_y0 = jnp.array([2.5, 1.0])
    raises_eager_and_jit(
        lambda y: _sde(covariance=nan_cov, y0=y),
        bad_y0,
        match=r"non-finite input: covariance A\(y0\)",
    )
    raises_eager_and_jit(
        lambda y: _sde(y0=y), Y0.at[1].set(jnp.nan), match="non-finite input: y0"
    )
    batch = jnp.stack([Y0, bad_y0, Y0])
    solve = jax.jit(jax.vmap(lambda y: _sde(covariance=nan_cov, y0=y)))
    with pytest.raises(RUNTIME_ERRORS, match="non-finite input: covariance"):
        jax.block_until_ready(solve(batch))
    assert solve(batch[::2]).shape == (2, 3, 2, 2)


def test_non_finite_params0_refused():
    raises_eager_and_jit(
        lambda p: _sgd(params0=p).ys,
        RADIAL_PARAMS.at[0, 1].set(jnp.inf),
        match="non-finite input: params0",
    )
    with pytest.raises(NonFiniteInputError):
        projected_moments(radial_loss, RADIAL, RADIAL_PARAMS * jnp.nan, NOISE)


# --- defect 15: per-seed initial parameters -----------------------------------------


def test_per_seed_params0_equals_each_seed_alone():
    starts = RADIAL_PARAMS[None] * jnp.array([1.0, 1.3, 0.7])[:, None, None]
    batched = _sgd(params0=starts, per_seed=True, num_steps=6, save_every=2)
    for s in range(3):
        alone = _sgd(params0=starts[s], keys=KEYS[s : s + 1], num_steps=6, save_every=2)
        np.testing.assert_allclose(batched.ys[s], alone.ys[0], rtol=1e-14)
        np.testing.assert_allclose(batched.params[s], alone.params[0], rtol=1e-14)
    # a shared params0 is the default and differs from the per-seed runs
    shared = _sgd(params0=starts[0], num_steps=6, save_every=2)
    assert not np.allclose(shared.ys[1], batched.ys[1])
    with pytest.raises(
        ValueError, match="leading seed axis of length len\\(keys\\) = 3"
    ):
        _sgd(params0=starts[:2], per_seed=True)


# --- defect 13: float32 ---------------------------------------------------------------


def test_projected_sgd_in_float32():
    f32 = _sgd(params0=RADIAL_PARAMS.astype(jnp.float32), learning_rate=0.05)
    f64 = _sgd(learning_rate=0.05)
    assert f32.ys.dtype == jnp.float32 and f32.ts.dtype == jnp.float32
    np.testing.assert_allclose(f32.ys, f64.ys, rtol=1e-5)


def test_solve_quotient_sde_in_float32():
    assert _sde(y0=Y0.astype(jnp.float32)).dtype == jnp.float32
    # without noise Euler–Maruyama is y_n = 1 + (y0 − 1)(1 − η)^n exactly
    zero = lambda y: jnp.zeros((2, 2), y.dtype)
    eta, n = 1e-2, 5
    ys = _sde(covariance=zero, y0=Y0.astype(jnp.float32), t1=eta * n)
    assert ys.dtype == jnp.float32
    exact = np.broadcast_to(1 + (Y0 - 1) * (1 - eta) ** n, (3, 2))
    np.testing.assert_allclose(ys[:, -1], exact, rtol=2e-6)


def test_check_projectability_in_float32():
    """Rotations are isometries: the radial model is projectable; float32
    rounding must not be called "not invariant"."""
    params = RADIAL_PARAMS.astype(jnp.float32)
    noise = AllMinibatches(TARGETS.astype(jnp.float32))
    key = jax.random.key(3)

    def rotate(p, k):  # the chart's rotations, kept in float32
        return RADIAL.gauge(p, k).astype(p.dtype)

    report = check_projectability(radial_loss, RADIAL, params, noise, key, gauge=rotate)
    assert report.rtol == default_projectability_rtol(jnp.float32) == 1e-4
    assert report.drift.dtype == jnp.float32
    assert bool(report.projectable)
    # the old float64 default on float32 data: rounding fails the test
    strict = check_projectability(
        radial_loss, RADIAL, params, noise, key, gauge=rotate, rtol=1e-8
    )
    assert not bool(strict.projectable)
    assert default_projectability_rtol(jnp.float64) == 1e-8


# --- defect 16: the Monte-Carlo covariance is the unbiased 1/(k−1) one ---------------


@pytest.mark.parametrize("k", [2, 3, 5])
def test_sampled_minibatch_covariance_is_np_cov_ddof1(k):
    """``loss = tᵀp`` and ``Φ = identity``: the projected gradients are the draws."""

    def sampler(key):
        return jax.random.normal(key, (3,)) * jnp.array([1.0, 2.0, 0.5])

    noise = SampledMinibatches(sampler, k)
    key = jax.random.key(11)
    draws = np.asarray(jax.vmap(sampler)(jax.random.split(key, k)))
    moments = projected_moments(
        lambda p, t: t @ p, FunctionChart(project=lambda p: p), jnp.ones(3), noise, key
    )
    np.testing.assert_allclose(moments.drift, draws.mean(0), rtol=1e-14)
    np.testing.assert_allclose(
        moments.covariance, np.cov(draws.T, ddof=1), rtol=1e-13, atol=1e-15
    )


# --- declared chart interfaces --------------------------------------------------------


def test_chart_interfaces_are_declared_protocols():
    chart = TwoLayerReLUChart(2, 1)
    assert isinstance(chart, ProjectingChart)
    assert isinstance(chart, SectionChart) and isinstance(chart, GaugedChart)
    only_project = FunctionChart(project=RADIAL.project)
    assert isinstance(only_project, ProjectingChart)
    assert not isinstance(only_project, SectionChart)
    assert not isinstance(only_project, GaugedChart)
    with pytest.raises(ValueError, match="SectionChart interface: project, lift"):
        projected_sgd(
            radial_loss,
            only_project,
            RADIAL_PARAMS,
            NOISE,
            learning_rate=0.1,
            num_steps=1,
            keys=KEYS,
            regauge=True,
        )
    with pytest.raises(ValueError, match="needs a chart with a callable `project`"):
        projected_moments(radial_loss, object(), RADIAL_PARAMS, NOISE)
