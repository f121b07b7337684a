"""Sec. 6 plateau: closed forms, ODE against the simulation, chart, quick Trace."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import erf

from geomshock.charts import quotient_metric
from geomshock.diagnostics import quotient_curvature
from geomshock.experiments import _sec6_plateau as sp
from geomshock.experiments._sec6_signals import curvature_signals
from tests._errors import raises_eager_and_jit
from tests.experiments._traces import CURVATURE_SIGNALS, assert_well_formed

SIGNALS = CURVATURE_SIGNALS


def _gauss_nodes(cov, nodes=24):
    """Tensor Gauss–Hermite nodes and weights for ``N(0, cov)`` (numpy)."""
    x, w = hermegauss(nodes)
    w = w / w.sum()
    d = cov.shape[0]
    grid = np.stack(np.meshgrid(*[x] * d, indexing="ij"), -1).reshape(-1, d)
    weight = np.prod(np.stack(np.meshgrid(*[w] * d, indexing="ij"), -1), -1)
    return grid @ np.linalg.cholesky(cov).T, weight.reshape(-1)


def _gauss(cov, fn):
    """``E[fn(z)]`` for ``z ~ N(0, cov)`` by quadrature (independent of the
    closed forms)."""
    z, weight = _gauss_nodes(cov)
    return np.sum(weight * fn(z))


def _g(u):
    return erf(u / np.sqrt(2))


def _gp(u):
    return np.sqrt(2 / np.pi) * np.exp(-(u**2) / 2)


def _random_cov(seed, d):
    a = np.random.default_rng(seed).normal(size=(d, d)) * 0.5
    return a @ a.T + 0.3 * np.eye(d)


def test_erf_expectations_against_quadrature():
    c = _random_cov(0, 4)
    i2 = _gauss(c[:2, :2], lambda z: _g(z[:, 0]) * _g(z[:, 1]))
    i3 = _gauss(c[:3, :3], lambda z: _gp(z[:, 0]) * z[:, 1] * _g(z[:, 2]))
    i4 = _gauss(c, lambda z: _gp(z[:, 0]) * _gp(z[:, 1]) * _g(z[:, 2]) * _g(z[:, 3]))
    np.testing.assert_allclose(sp.erf_i2(c[0, 0], c[0, 1], c[1, 1]), i2, atol=1e-8)
    np.testing.assert_allclose(sp.erf_i3(jnp.asarray(c[:3, :3])), i3, atol=1e-8)
    np.testing.assert_allclose(sp.erf_i4(jnp.asarray(c)), i4, atol=1e-8)


def test_ode_rhs_and_error_against_quadrature():
    """K = M = 2: the drift and the η² term of the ODE and ε_g are Gaussian
    expectations of the SGD increment over the fields (h, y)."""
    c = _random_cov(1, 4)
    q, r, t = c[:2, :2], c[:2, 2:], np.eye(2)
    c = np.block([[q, r], [r.T, t]])
    eta = 0.7
    dq, dr = sp.order_parameter_rhs(jnp.asarray(q), jnp.asarray(r), jnp.asarray(t), eta)

    z, weight = _gauss_nodes(c, nodes=32)
    err = _g(z[:, 2:]).sum(1) - _g(z[:, :2]).sum(1)
    delta = _gp(z[:, :2]) * err[:, None]
    want_r = eta * np.einsum("p,pi,pj->ij", weight, delta, z[:, 2:])
    drift = np.einsum("p,pi,pj->ij", weight, delta, z[:, :2])
    noise = np.einsum("p,pi,pj->ij", weight, delta, delta)
    # 32 nodes: R and ε_g to ~1e-11, the δδ term (slowest to converge: 5e-6,
    # 1e-7, 3e-9 at 24, 32, 40 nodes) to ~1e-7
    np.testing.assert_allclose(dr, want_r, atol=1e-9)
    np.testing.assert_allclose(dq, eta * (drift + drift.T) + eta**2 * noise, atol=3e-7)
    want_e = np.sum(weight * 0.5 * err**2)
    got = jax.jit(sp.generalization_error)(q, r, t)
    np.testing.assert_allclose(got, want_e, atol=1e-8)
    batched = jax.vmap(sp.generalization_error, (0, None, None))(
        jnp.stack([q, 2 * q]), r, t
    )
    np.testing.assert_allclose(batched[0], got, rtol=1e-14)


def _overlap_point(q, r):
    """Chart coordinates ``(R, tril chol(Q − R Rᵀ))`` (independent of the chart)."""
    chol = np.linalg.cholesky(q - r @ r.T)
    return jnp.asarray(np.concatenate([r.reshape(-1), chol[np.tril_indices(len(q))]]))


# --- the simulation against the ODE ---------------------------------------------------

_Q0 = 0.2 * np.eye(3)
_R0 = 0.2 * np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, -1.0]])


def test_simulation_matches_ode_at_large_n():
    """N = 2000, a fixed O(1) asymmetry of the initial overlaps: the mean ε_g of
    8 runs follows the ODE within 0.01 (15 % of the plateau value) at every
    checkpoint, and the mean escape α agrees within 3 standard errors + 2 %."""
    n, seeds, alpha_max = 2000, 8, 60
    t = jnp.eye(3)
    eps_p = sp.plateau_value(_Q0, _R0, t, 1.0, 300.0)
    alphas = jnp.linspace(0.0, alpha_max, 121)
    qs, rs = sp.solve_overlap_ode(_Q0, _R0, t, 1.0, alphas)
    ode = jax.vmap(lambda a, b: sp.generalization_error(a, b, t))(qs, rs)
    ode_escape = float(sp.first_crossing(alphas, ode, 0.5 * eps_p))
    assert 40 < ode_escape < alpha_max  # a real plateau, then the escape

    def chain(key):
        return sp.simulate_overlaps(key, _Q0, _R0, t, 1.0, n, 120, n // 2, 0.5 * eps_p)

    (q, r), event = jax.jit(jax.vmap(chain))(jax.random.split(jax.random.key(0), seeds))
    eps = jax.vmap(jax.vmap(lambda a, b: sp.generalization_error(a, b, t)))(q, r)
    assert np.max(np.abs(eps.mean(0) - ode[1:])) < 0.01
    escape = np.asarray(event) / n
    assert np.all(event > 0)
    se = escape.std(ddof=1) / np.sqrt(seeds)
    assert abs(escape.mean() - ode_escape) < 3 * se + 0.02 * ode_escape


def test_overlap_chain_matches_weight_sgd():
    """The overlap chain is the weight SGD in law: mean ε_g and R of 48 runs
    each agree within 4 combined standard errors at N = 30."""
    n, seeds, checkpoints, every = 30, 48, 2, 60
    chart, b = sp.overlap_chart(n, 3, 3)
    inner = chart.chart
    w0 = inner.lift(_overlap_point(_Q0, _R0))["w"]
    t = jnp.eye(3)
    keys = jax.random.split(jax.random.key(1), seeds)
    ws, _ = jax.jit(
        jax.vmap(lambda k: sp.simulate_sgd(k, w0, b, 1.0, checkpoints, every))
    )(keys)
    q0, r0 = w0 @ w0.T, w0 @ b.T
    keys = jax.random.split(jax.random.key(2), seeds)
    (q, r), _ = jax.jit(
        jax.vmap(
            lambda k: sp.simulate_overlaps(k, q0, r0, t, 1.0, n, checkpoints, every)
        )
    )(keys)
    stats_sgd = [
        jax.vmap(jax.vmap(lambda w: sp.generalization_error(w @ w.T, w @ b.T, t)))(ws),
        jnp.einsum("scin,mn->scim", ws, b),
    ]
    stats_chain = [
        jax.vmap(jax.vmap(lambda a, c: sp.generalization_error(a, c, t)))(q, r),
        r,
    ]
    for a, c in zip(stats_sgd, stats_chain, strict=True):
        a, c = np.asarray(a), np.asarray(c)
        se = np.sqrt((a.var(0, ddof=1) + c.var(0, ddof=1)) / seeds)
        assert np.all(np.abs(a.mean(0) - c.mean(0)) < 4 * se + 1e-12)


# --- the chart ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart_and_teacher():
    return sp.overlap_chart(12, 3, 3)


def test_overlap_chart(chart_and_teacher):
    chart, b = chart_and_teacher
    inner = chart.chart
    w = jax.random.normal(jax.random.key(3), (3, 12))
    q = jax.jit(lambda p: inner.project(p))({"w": w})
    # coordinates against numpy: R = W Bᵀ and the Cholesky factor of Q − R Rᵀ
    r = np.asarray(w @ b.T)
    np.testing.assert_allclose(q, _overlap_point(np.asarray(w @ w.T), r), atol=1e-12)
    np.testing.assert_allclose(inner.project(inner.lift(q)), q, atol=1e-12)
    # the cheaper metric is the library's checked derivation
    metrics = jax.jit(
        lambda p: (inner.metric(p), quotient_metric(inner.lift, inner.action, p))
    )
    np.testing.assert_allclose(*metrics(q), atol=1e-12)
    # gauge (unit permutation + complement rotation) keeps the sorted q and ε_g
    gauged = jax.jit(lambda p, k: chart.gauge(p, k))({"w": w}, jax.random.key(4))
    np.testing.assert_allclose(
        chart.project(gauged), chart.project({"w": w}), atol=1e-12
    )
    assert not np.allclose(gauged["w"], w)
    t = jnp.eye(3)
    np.testing.assert_allclose(
        sp.generalization_error(gauged["w"] @ gauged["w"].T, gauged["w"] @ b.T, t),
        sp.generalization_error(w @ w.T, w @ b.T, t),
        rtol=1e-12,
    )
    # vmap over params
    batch = jax.vmap(inner.project)({"w": jnp.stack([w, 2 * w])})
    np.testing.assert_allclose(batch[0], q, atol=1e-12)


def test_ordered_representative_curvature_is_the_chart_curvature(chart_and_teacher):
    """The experiments' shortcut (the inner chart's curvature at the ordered
    representative) against ``quotient_curvature`` on the
    ``CanonicalOrderChart`` itself, at an unordered generic point."""
    chart, b = chart_and_teacher
    w = jax.random.normal(jax.random.key(5), (3, 12))
    (keys,) = chart.chart.permutation_keys(chart.chart.project({"w": w}))
    assert not np.all(np.diff(np.asarray(keys)) > 0)  # not already ordered

    def loss(p):
        return sp._student_error(p["w"], b)

    short, direct = jax.jit(
        lambda p: (
            curvature_signals(loss, chart, p),
            quotient_curvature(loss, chart, p, method="dense"),
        )
    )({"w": w})
    for name in ("min_eig", "max_eig", "laplacian"):
        np.testing.assert_allclose(
            short[f"quotient_{name}"], direct[name], rtol=1e-10, atol=1e-12
        )


def test_overlap_chart_off_stratum(chart_and_teacher):
    """W inside the teacher's span: W_⊥ = 0, the rotations do not act freely."""
    chart, b = chart_and_teacher
    raises_eager_and_jit(
        lambda p: chart.chart.project(p), {"w": jnp.asarray(b)}, match="rank-deficient"
    )
    with pytest.raises(ValueError, match="K <= N - M"):
        sp.overlap_chart(5, 3, 3)


# --- the experiment, quick, end to end ------------------------------------------------


@pytest.fixture(scope="module")
def trace():
    return sp.run(quick=True, seeds=8, key=jax.random.key(0))


def test_quick_trace(trace):
    steps, loss, event = assert_well_formed(trace, SIGNALS)
    seeds = loss.shape[0]
    # the event rule: the first crossing, so no checkpoint before it is below
    threshold = 0.5 * trace["meta"]["plateau_value"]
    for s in np.flatnonzero(event >= 0):
        assert np.all(loss[s, steps < event[s]] >= threshold)
    assert np.all(loss[event < 0] >= threshold)
    assert np.mean(loss[:, -1] < threshold) >= 0.75  # escaped by the end
    meta = trace["meta"]
    assert len(meta["ode_escape_alpha"]) == seeds
    assert 0.0 < meta["plateau_value"] < 0.2


def test_quick_trace_gauge(trace):
    """Quotient signals are gauge-invariant to 1e-8 relative. The raw ones are
    invariant too (every symmetry here is orthogonal, see the module
    docstring), but the raw curvature is a different quantity from the quotient
    one."""
    sig, gauged = trace["signals"], trace["signals_gauged"]
    for name in ("quotient_min_eig", "quotient_laplacian"):
        scale = np.max(np.abs(sig[name]))
        np.testing.assert_allclose(gauged[name], sig[name], rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(gauged["raw_norm"], sig["raw_norm"], rtol=1e-10)
    np.testing.assert_allclose(gauged["raw_max_eig"], sig["raw_max_eig"], rtol=1e-6)
    assert np.max(np.abs(sig["raw_min_eig"] - sig["quotient_min_eig"])) > 1e-3
