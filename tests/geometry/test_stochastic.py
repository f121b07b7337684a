"""Stochastic Laplace–Beltrami: unbiased, calibrated standard error, structured metrics.

References: the conformal closed form ``Δf = e^{−2φ}(Δ₀f + (n − 2)∇φ·∇f)``
(n = 60), the diagonal closed form ``Σ_i d_i^{-1}(φ''(q_i) + φ'(q_i) ∂_i
log√|g|)`` for ``d_i = exp(b tanh q_{i+1})`` (n = 2000), and the exact
``geomshock.laplace_beltrami`` at n = 6 for every metric structure.
"""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import geomshock as gs
from geomshock._checks import NonFiniteInputError
from geomshock.geometry import (
    low_rank_plus_diagonal,
    scaled_identity,
    stochastic_laplace_beltrami,
)

from .._errors import raises_eager_and_jit

_KEYS = jax.random.split(jax.random.key(0), 400)


def _over_keys(lap, q, keys):
    """Estimates and standard errors over ``keys``, one jit."""
    return jax.jit(jax.vmap(lap, in_axes=(None, 0)))(q, keys)


def _check_unbiased_and_calibrated(estimates, stderrs, exact):
    """Mean within 4 standard errors of ``exact``; reported stderr matches spread."""
    estimates, stderrs = np.asarray(estimates), np.asarray(stderrs)
    spread = estimates.std(ddof=1)
    assert spread > 0
    se_of_mean = spread / np.sqrt(estimates.size)
    assert abs(estimates.mean() - exact) < 4 * se_of_mean, (
        estimates.mean(),
        exact,
        se_of_mean,
    )
    ratio = np.sqrt(np.mean(stderrs**2)) / spread
    assert 0.6 < ratio < 1.6, ratio


def test_conformal_n60_closed_form():
    n = 60
    k = jnp.arange(1, n + 1)

    def f(q):
        return jnp.sum(jnp.sin(k * q) / k) + jnp.sum(q) ** 2 / n

    def phi(q):
        return 0.3 * jnp.sum(jnp.sin(q)) / jnp.sqrt(n)

    lap = stochastic_laplace_beltrami(
        f, lambda q: scaled_identity(jnp.exp(2 * phi(q)), n), num_probes=16
    )
    q = jnp.linspace(-1.0, 1.5, n)
    flat = jnp.trace(jax.hessian(f)(q))
    exact = jnp.exp(-2 * phi(q)) * (flat + (n - 2) * jax.grad(phi)(q) @ jax.grad(f)(q))
    _check_unbiased_and_calibrated(*_over_keys(lap, q, _KEYS[:256]), float(exact))


def test_diagonal_n2000_separable_closed_form():
    n, b = 2000, 0.5

    def log_d(q):  # d_i depends on q_{i+1}: off-diagonal J, nonzero variance
        return b * jnp.tanh(jnp.roll(q, -1))

    def f(q):
        return jnp.sum(jnp.sin(q) + 0.1 * q**3)

    lap = stochastic_laplace_beltrami(
        f, lambda q: lx.DiagonalLinearOperator(jnp.exp(log_d(q))), num_probes=8
    )
    q = jnp.sin(jnp.arange(n, dtype=float))
    d_log_sqrt_g = 0.5 * b / jnp.cosh(q) ** 2  # ∂_i ½ Σ_k log d_k
    exact = jnp.sum(
        jnp.exp(-log_d(q))
        * (-jnp.sin(q) + 0.6 * q + (jnp.cos(q) + 0.3 * q**2) * d_log_sqrt_g)
    )
    _check_unbiased_and_calibrated(*_over_keys(lap, q, _KEYS[:128]), float(exact))


N = 6
_A = jax.random.normal(jax.random.PRNGKey(1), (N, N))
_U = jax.random.normal(jax.random.PRNGKey(2), (N, 2))


def _f(q):
    return jnp.sum(jnp.sin(q)) + jnp.prod(jnp.cos(q[:3])) + q[0] * q[-1] ** 2


def _diag(q):
    return jnp.exp(0.3 * jnp.sin(_A @ q))


def _dense(q):
    m = jnp.cos(_A * q[None, :])
    return m @ m.T + jnp.eye(N)


def _low_rank(q):
    return low_rank_plus_diagonal(_diag(q), jnp.tanh(_U + 0.2 * q[:, None]))


def _low_rank_dense(q):
    return _low_rank(q).as_matrix()


_Q = jnp.linspace(-0.5, 0.7, N)


@pytest.fixture(scope="module")
def exact():
    """Exact ``Δf(_Q)`` (the dense path) for the dense and low-rank metrics."""
    return {
        "dense": float(jax.jit(gs.laplace_beltrami(_f, _dense))(_Q)),
        "low_rank": float(jax.jit(gs.laplace_beltrami(_f, _low_rank_dense))(_Q)),
    }


def test_expectation_equals_exact_laplace_beltrami(exact):
    # Structured (Woodbury) low rank plus diagonal, and dense (Cholesky).
    for name, metric in (("low_rank", _low_rank), ("dense", _dense)):
        lap = stochastic_laplace_beltrami(_f, metric, num_probes=4)
        _check_unbiased_and_calibrated(*_over_keys(lap, _Q, _KEYS), exact[name])


def test_xtrace_and_matrix_free_solver(exact):
    xtrace = stochastic_laplace_beltrami(_f, _dense, num_probes=2, estimator="xtrace")
    estimates, _ = _over_keys(xtrace, _Q, _KEYS)
    se = estimates.std(ddof=1) / np.sqrt(estimates.size)
    assert abs(float(estimates.mean()) - exact["dense"]) < 4 * se
    # 2 num_probes ≥ n: XTrace is exact.
    full = stochastic_laplace_beltrami(_f, _dense, num_probes=3, estimator="xtrace")
    np.testing.assert_allclose(
        jax.jit(full)(_Q, _KEYS[0])[0], exact["dense"], rtol=1e-10
    )

    # A matrix-free metric operator (as a chart's metric_operator) with CG
    # gives the estimates of the Cholesky path, probe for probe.
    def operator(q):
        g = _dense(q)
        return lx.FunctionLinearOperator(
            lambda v: g @ v, jax.ShapeDtypeStruct((N,), q.dtype)
        )

    cg = lx.CG(rtol=1e-12, atol=1e-12)
    lap_cg = stochastic_laplace_beltrami(_f, operator, num_probes=4, solver=cg)
    lap_chol = stochastic_laplace_beltrami(_f, _dense, num_probes=4)
    both = jax.jit(lambda q, key: (lap_cg(q, key), lap_chol(q, key)))(_Q, _KEYS[1])
    np.testing.assert_allclose(*both, rtol=1e-9, atol=1e-12)
    # One probe: no spread to estimate the error from.
    one_probe = jax.jit(stochastic_laplace_beltrami(_f, _dense, num_probes=1))
    assert np.isfinite(one_probe(_Q, _KEYS[0])[0])
    assert one_probe(_Q, _KEYS[0])[1] == np.inf


def test_exact_when_the_trace_operator_is_diagonal():
    # g_ii(q_i) and a separable f: A is diagonal, Rademacher probes are exact.
    n = 50
    metric = lambda q: lx.DiagonalLinearOperator(jnp.exp(0.5 * jnp.sin(q)))  # noqa: E731
    f = lambda q: jnp.sum(jnp.cos(q))  # noqa: E731
    q = jnp.linspace(-2.0, 2.0, n)
    lap = stochastic_laplace_beltrami(f, metric, num_probes=3)
    exact = gs.laplace_beltrami(f, metric)
    (est, err), want = jax.jit(lambda q: (lap(q, _KEYS[0]), exact(q)))(q)
    np.testing.assert_allclose(est, want, rtol=1e-12)
    assert float(err) < 1e-13 * abs(float(est))  # rounding only


def test_jit_and_vmap_over_points_and_keys_equal_the_loop():
    lap = stochastic_laplace_beltrami(
        _f, lambda q: lx.DiagonalLinearOperator(_diag(q)), num_probes=3
    )
    qs = jnp.stack([_Q, 0.5 * _Q[::-1]])
    keys = _KEYS[:2]
    batched = jax.jit(jax.vmap(jax.vmap(lap, (None, 0)), (0, None)))(qs, keys)
    jitted = jax.jit(lap)
    for i, q in enumerate(qs):
        for j, key in enumerate(keys):
            one = jitted(q, key)
            np.testing.assert_allclose(batched[0][i, j], one[0], rtol=1e-12)
            np.testing.assert_allclose(batched[1][i, j], one[1], rtol=1e-12)
    assert len(set(np.asarray(batched[0]).ravel().tolist())) == 4
    # A raw uint32 key works too.
    assert np.isfinite(jitted(_Q, jax.random.PRNGKey(3))[0])


@pytest.mark.parametrize("num_probes", [0, -2, 1.5, True, None])
def test_num_probes_must_be_a_positive_int(num_probes):
    with pytest.raises(ValueError, match="num_probes"):
        stochastic_laplace_beltrami(_f, _dense, num_probes=num_probes)
    with pytest.raises(ValueError, match="num_probes"):
        jax.jit(
            lambda q: stochastic_laplace_beltrami(_f, _dense, num_probes=num_probes)(
                q, _KEYS[0]
            )
        )(_Q)


def test_bad_input_raises_eager_and_under_jit():
    lap = stochastic_laplace_beltrami(_f, _dense, num_probes=2)
    key = _KEYS[0]
    fixed = stochastic_laplace_beltrami(_f, lambda q: jnp.eye(N), num_probes=2)
    for checked, bad_q in ((lap, jnp.ones((2, N))), (fixed, jnp.ones(N + 1))):
        for fn in (checked, jax.jit(checked)):
            with pytest.raises(ValueError, match="shape"):
                fn(bad_q, key)
    raises_eager_and_jit(
        lambda q: lap(q, key)[0],
        _Q.at[2].set(jnp.nan),
        match="non-finite",
        eager=NonFiniteInputError,
    )
    not_spd = stochastic_laplace_beltrami(
        _f, lambda q: lx.DiagonalLinearOperator(jnp.sin(q)), num_probes=2
    )
    raises_eager_and_jit(lambda q: not_spd(q, key)[0], _Q, match="positive definite")
    for fn in (lap, jax.jit(lap)):
        with pytest.raises(ValueError, match="key"):
            fn(_Q, jnp.zeros(3))
        with pytest.raises(ValueError, match="key"):
            fn(_Q, _KEYS[:2])
    with pytest.raises(ValueError, match="estimator"):
        stochastic_laplace_beltrami(_f, _dense, num_probes=2, estimator="gauss")
    with pytest.raises(ValueError, match="solver"):
        stochastic_laplace_beltrami(_f, _dense, num_probes=2, solver="cg")
    too_many = stochastic_laplace_beltrami(
        _f, _dense, num_probes=N + 1, estimator="xtrace"
    )
    with pytest.raises(ValueError, match="num_probes"):
        too_many(_Q, key)
