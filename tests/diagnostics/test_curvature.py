"""Quotient and raw curvature: dense against an independent reference, Lanczos
against dense, exact quadratics, gauge invariance, errors (eager and jit)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from geomshock.charts import (
    ProductChart,
    ReLUMLPChart,
    SphereChart,
    TwoLayerReLUChart,
)
from geomshock.diagnostics import quotient_curvature, raw_curvature
from geomshock.diagnostics._curvature import _quotient_lanczos

from .._errors import RUNTIME_ERRORS, raises_eager_and_jit


def random_params(chart, seed):
    leaves, treedef = jax.tree_util.tree_flatten(chart.params_shape)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return treedef.unflatten(
        [jax.random.normal(k, s.shape) for k, s in zip(keys, leaves, strict=True)]
    )


def mse_loss(chart, in_dim, seed=0):
    """A gauge-invariant, non-quadratic loss (the network function on data)."""
    kx, ky = jax.random.split(jax.random.PRNGKey(100 + seed))
    x = jax.random.normal(kx, (16, in_dim))
    y = jnp.sin(2 * x[:, 0]) + jax.random.normal(ky, (16,)) * 0.1
    return lambda p: 0.5 * jnp.mean((chart.apply(p, x).reshape(-1) - y) ** 2)


def reference(loss, chart, params):
    """g, Γ, ∂U, ∂²U by plain jax.jacfwd / jax.hessian; scipy's generalized eigh."""
    q = chart.project(params)
    U = lambda p: loss(chart.lift(p))
    # dg[a, b, c] = ∂_c g_ab
    g, dg, hess, dU = jax.jit(
        lambda q: (
            chart.metric(q),
            jax.jacfwd(chart.metric)(q),
            jax.hessian(U)(q),
            jax.grad(U)(q),
        )
    )(q)
    g, dg = np.asarray(g), np.asarray(dg)
    lowered = 0.5 * (np.einsum("lji->lij", dg) + dg - np.einsum("ijl->lij", dg))
    gamma = np.linalg.solve(g, lowered.reshape(len(q), -1)).reshape(lowered.shape)
    h_cov = np.asarray(hess) - np.einsum("kij,k->ij", gamma, np.asarray(dU))
    h_cov = 0.5 * (h_cov + h_cov.T)
    vals, vecs = scipy.linalg.eigh(h_cov, g)
    lap = np.trace(np.linalg.solve(g, h_cov))
    return lap, vals, vecs[:, 0], g


def assert_same_vector(v, ref, g):
    """Equal up to sign, in the g inner product (both g-normalised)."""
    assert abs(abs(float(v @ g @ ref)) - 1.0) < 1e-8
    np.testing.assert_allclose(float(v @ g @ v), 1.0, rtol=1e-10)


@pytest.fixture(scope="module")
def saddle():
    """dim 10 (stereographic directions), at a saddle of a data loss."""
    chart = TwoLayerReLUChart(width=3, in_dim=2)
    loss = mse_loss(chart, 2)
    return chart, random_params(chart, 1), loss, dense_jit(loss, chart)


def dense_jit(loss, chart):
    return jax.jit(lambda p: quotient_curvature(loss, chart, p, method="dense"))


def test_dense_matches_independent_reference(saddle):
    chart, params, loss, dense = saddle
    out = dense(params)
    lap, vals, vec, g = reference(loss, chart, params)
    np.testing.assert_allclose(out["laplacian"], lap, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(out["max_eig"], vals[-1], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(out["min_eig"], vals[0], rtol=1e-8, atol=1e-10)
    assert vals[0] < 0 < vals[-1]  # a saddle: both ends are tested
    assert_same_vector(np.asarray(out["min_eig_vector"]), np.asarray(vec), g)
    v = out["min_eig_vector"]
    assert v[jnp.argmax(jnp.abs(v))] > 0  # the stated sign rule


def test_quadratic_in_quotient_coordinates_exact():
    width = 3
    chart = TwoLayerReLUChart(width, 1)
    q0 = jnp.array([0.7, -1.5, 2.5, 0.3, -2.0, 1.1, 0.4])
    m = jax.random.normal(jax.random.PRNGKey(3), (7, 7))
    a = m @ m.T - 3.0 * jnp.eye(7)  # indefinite
    loss = lambda p: 0.5 * (chart.project(p) - q0) @ a @ (chart.project(p) - q0)
    gamma = jnp.abs(q0[:width])
    g = jnp.diag(jnp.concatenate([1 / (2 * gamma), gamma, jnp.ones(1)]))
    vals = scipy.linalg.eigh(np.asarray(a), np.asarray(g), eigvals_only=True)
    lap = jnp.trace(jnp.linalg.solve(g, a))
    out = dense_jit(loss, chart)(chart.lift(q0))
    np.testing.assert_allclose(out["max_eig"], vals[-1], rtol=1e-10)
    np.testing.assert_allclose(out["min_eig"], vals[0], rtol=1e-10)
    np.testing.assert_allclose(out["laplacian"], lap, rtol=1e-10)


@pytest.fixture(scope="module")
def wide():
    chart = TwoLayerReLUChart(width=15, in_dim=1)  # dim 31
    params = random_params(chart, 2)
    loss = mse_loss(chart, 1, seed=1)
    return chart, params, loss, dense_jit(loss, chart)


def test_metric_solve_lanczos_matches_dense_at_full_depth(wide):
    # The form for charts whose gauge is not horizontal (attention's top
    # block): Lanczos in the g inner product with CG solves of the metric, run
    # here on a chart where the dense pencil is cheap.
    chart, params, loss, dense = wide
    dense = dense(params)

    @jax.jit
    def out(p):
        q = chart.project(p)
        k = chart.dim
        return _quotient_lanczos(
            lambda q: loss(chart.lift(q)), chart, q, k, *[None] * 3
        )

    out = out(params)
    np.testing.assert_allclose(out["max_eig"], dense["max_eig"], rtol=1e-8)
    np.testing.assert_allclose(out["min_eig"], dense["min_eig"], rtol=1e-8)
    np.testing.assert_allclose(out["laplacian"], dense["laplacian"], rtol=1e-10)
    g = np.asarray(chart.metric(chart.project(params)))
    assert_same_vector(
        np.asarray(out["min_eig_vector"]), np.asarray(dense["min_eig_vector"]), g
    )


def _wd(loss, rate):
    """A loss that is not gauge invariant: weight decay (or a quartic) added."""
    return lambda p: (
        loss(p) + rate * sum(jnp.sum(x**2) for x in jax.tree_util.tree_leaves(p))
    )


def _horizontal_cases():
    two = TwoLayerReLUChart(width=3, in_dim=2)
    mlp = ReLUMLPChart((2, 2, 2, 1))
    sphere = SphereChart((5,))
    xb = jax.random.normal(jax.random.PRNGKey(2), (32, 5))
    sphere_loss = lambda w: jnp.mean(jnp.tanh(sphere.apply(w, xb)) ** 3 * xb[:, 0])
    product = ProductChart({"net": two, "w": sphere})
    two_loss, mlp_loss = mse_loss(two, 2), mse_loss(mlp, 2, seed=2)
    quartic = lambda p: (
        mlp_loss(p) + 0.05 * sum(jnp.sum(x**4) for x in jax.tree_util.tree_leaves(p))
    )
    return {
        "two-layer+wd": (two, random_params(two, 1), _wd(two_loss, 0.1)),
        "mlp+quartic": (mlp, random_params(mlp, 3), quartic),
        "sphere+linear": (
            sphere,
            random_params(sphere, 4),
            lambda w: sphere_loss(w) + 0.3 * jnp.sum(w**2) + w[0],
        ),
        "product": (
            product,
            random_params(product, 5),
            lambda p: two_loss(p["net"]) * sphere_loss(p["w"]),
        ),
    }


@pytest.mark.parametrize("name", list(_horizontal_cases()))
def test_horizontal_lanczos_matches_dense(name):
    # Horizontal gauges: plain Lanczos on P_H(∇²loss + (D·P_H)∇loss) on H, no
    # metric solve, against the dense pencil (H_cov, g), for invariant losses
    # and for losses that are not (the Weingarten term).
    chart, params, loss = _horizontal_cases()[name]
    assert chart.horizontal_gauge

    @jax.jit
    def both(p):
        return quotient_curvature(loss, chart, p, method="dense"), quotient_curvature(
            loss, chart, p, method="lanczos", num_lanczos=chart.dim
        )

    dense, out = both(params)
    for key in ("laplacian", "max_eig", "min_eig"):
        np.testing.assert_allclose(out[key], dense[key], rtol=1e-10, err_msg=key)
    g = np.asarray(chart.metric(chart.project(params)))
    assert_same_vector(
        np.asarray(out["min_eig_vector"]), np.asarray(dense["min_eig_vector"]), g
    )


def test_gauge_invariant_while_raw_curvature_moves(wide):
    chart, params, loss, dense = wide
    moved = chart.gauge(params, jax.random.PRNGKey(7), scale=1.5)
    before, after = dense(params), dense(moved)
    for name in ("laplacian", "max_eig", "min_eig"):
        np.testing.assert_allclose(after[name], before[name], rtol=1e-8)
    np.testing.assert_allclose(
        after["min_eig_vector"], before["min_eig_vector"], rtol=1e-6, atol=1e-8
    )
    raw = jax.jit(lambda p: raw_curvature(loss, p)["max_eig"])
    assert abs(raw(moved) / raw(params) - 1) > 0.1


def test_vmap_over_params(saddle):
    chart, params, loss, one = saddle
    batch = [params, random_params(chart, 5)]
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *batch)
    out = jax.jit(jax.vmap(lambda p: quotient_curvature(loss, chart, p)))(stacked)
    for i, p in enumerate(batch):
        np.testing.assert_allclose(out["min_eig"][i], one(p)["min_eig"], rtol=1e-12)
        np.testing.assert_allclose(out["laplacian"][i], one(p)["laplacian"], rtol=1e-12)


@pytest.mark.parametrize("method", ["dense", "lanczos"])
def test_raw_curvature_matches_numpy_eigh(method):
    chart = ReLUMLPChart((2, 3, 2, 1))
    params = random_params(chart, 6)
    loss = mse_loss(chart, 2)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    hess = np.asarray(jax.jit(jax.hessian(lambda x: loss(unravel(x))))(flat))
    vals, vecs = np.linalg.eigh(hess)
    out = jax.jit(
        lambda p: raw_curvature(loss, p, method=method, num_lanczos=flat.size)
    )(params)
    np.testing.assert_allclose(out["max_eig"], vals[-1], rtol=1e-8)
    np.testing.assert_allclose(out["min_eig"], vals[0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(out["laplacian"], np.trace(hess), rtol=1e-10)
    assert abs(abs(float(out["min_eig_vector"] @ vecs[:, 0])) - 1) < 1e-8


def test_stochastic_laplacian_option():
    # Rademacher probes are exact for a diagonal Hessian; Ritz values of a
    # shallow Krylov space lie inside the spectrum.
    c = jnp.linspace(-2.0, 3.0, 12)
    loss = lambda p: 0.5 * jnp.sum(c * p["x"] ** 2)
    fn = jax.jit(
        lambda p: raw_curvature(loss, p, method="lanczos", num_lanczos=4, num_probes=3)
    )
    out = fn({"x": jnp.ones(12)})
    np.testing.assert_allclose(out["laplacian"], jnp.sum(c), rtol=1e-12)
    assert -2.0 - 1e-12 <= out["min_eig"] <= out["max_eig"] <= 3.0 + 1e-12


# --- errors -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    chart = TwoLayerReLUChart(width=2, in_dim=1)
    return chart, random_params(chart, 0), mse_loss(chart, 1)


def test_wrong_structure_is_a_clear_value_error(small):
    chart, params, loss = small
    bad = {"a": params["a"], "u": params["u"]}
    fn = lambda p: quotient_curvature(lambda p: jnp.sum(p["a"]), chart, p)
    for f in (fn, jax.jit(fn)):
        with pytest.raises(ValueError, match="expects params with structure"):
            f(bad)


def test_off_the_stratum_is_an_error(small):
    chart, params, loss = small
    dead = {**params, "u": params["u"].at[0].set(0.0)}
    raises_eager_and_jit(
        lambda p: quotient_curvature(loss, chart, p)["min_eig"],
        dead,
        match="off the stratum",
        eager=RUNTIME_ERRORS,
    )


def test_vmap_with_one_bad_member_is_an_error(small):
    chart, params, loss = small
    dead = {**params, "u": params["u"].at[0].set(0.0)}
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), params, dead)
    with pytest.raises(RUNTIME_ERRORS, match="off the stratum"):
        jax.block_until_ready(
            jax.jit(jax.vmap(lambda p: quotient_curvature(loss, chart, p)))(stacked)
        )


@pytest.mark.parametrize("jit", [False, True])
def test_unknown_method_and_non_scalar_loss(small, jit):
    chart, params, loss = small
    wrap = (lambda f: jax.jit(f)) if jit else (lambda f: f)
    with pytest.raises(ValueError, match="method must be 'dense', 'lanczos' or None"):
        wrap(lambda p: quotient_curvature(loss, chart, p, method="eigh"))(params)
    with pytest.raises(ValueError, match="method must be"):
        wrap(lambda p: raw_curvature(loss, p, method="exact"))(params)
    vector_loss = lambda p: p["a"] ** 2
    with pytest.raises(ValueError, match="loss must map params to a scalar"):
        wrap(lambda p: quotient_curvature(vector_loss, chart, p))(params)
    with pytest.raises(ValueError, match="loss must map params to a scalar"):
        wrap(lambda p: raw_curvature(vector_loss, p))(params)


def test_lanczos_survives_krylov_breakdown(wide):
    # 17 zero and several repeated Hessian eigenvalues (dead units): the Krylov
    # space becomes invariant before full depth and matfree continues on
    # rounding noise, losing orthogonality; the Ritz step must still return
    # the extremes (regression: full depth gave min_eig -38.4 for -3.83).
    chart, params, loss, _ = wide
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    vals = np.linalg.eigvalsh(jax.jit(jax.hessian(lambda x: loss(unravel(x))))(flat))
    out = jax.jit(
        lambda p: raw_curvature(loss, p, method="lanczos", num_lanczos=flat.size)
    )(params)
    np.testing.assert_allclose(out["max_eig"], vals[-1], rtol=1e-8)
    np.testing.assert_allclose(out["min_eig"], vals[0], rtol=1e-8)
