"""TwoLayerReLUChart and the generic machinery it rests on (orbit tangents,
horizontal projector, autodiff quotient metric)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from geomshock.charts import (
    TwoLayerReLUChart,
    horizontal_projection,
    orbit_tangents,
    quotient_metric,
)
from geomshock.geometry import laplace_beltrami

RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)


def random_params(key, width, in_dim):
    ka, ku, kc = jax.random.split(key, 3)
    return {
        "a": jax.random.normal(ka, (width,)),
        "u": jax.random.normal(ku, (width, in_dim + 1)),
        "c": jax.random.normal(kc, ()),
    }


def closed_form(q, width):
    gamma = q[:width]
    return jnp.diag(
        jnp.concatenate([1 / (2 * jnp.abs(gamma)), jnp.abs(gamma), jnp.ones(1)])
    )


@pytest.fixture(scope="module")
def chart1():
    return TwoLayerReLUChart(width=3, in_dim=1)


@pytest.fixture(scope="module")
def metric1(chart1):
    return jax.jit(jax.vmap(chart1.metric))


@pytest.fixture(scope="module")
def points1(chart1):
    keys = jax.random.split(jax.random.PRNGKey(0), 6)
    return jax.vmap(lambda k: chart1.project(random_params(k, 3, 1)))(keys)


def test_metric_closed_form_in_dim_1(chart1, metric1, points1):
    # diag(1/(2|γ_j|), |γ_j|, 1) in (γ, φ, c) order, the paper's Sec. 3.1 model.
    g = metric1(points1)
    exact = jax.vmap(lambda q: closed_form(q, 3))(points1)
    np.testing.assert_allclose(g, exact, rtol=1e-12, atol=1e-14)


def test_vmap_metric_equals_loop(chart1, metric1, points1):
    loop = jnp.stack([chart1.metric(q) for q in points1[:2]])
    np.testing.assert_allclose(metric1(points1[:2]), loop, rtol=1e-13, atol=1e-15)


def test_grad_of_metric_matches_central_differences(chart1, points1):
    q = points1[0]
    v = jnp.linspace(0.3, 1.1, chart1.dim)
    f = lambda t: jnp.sum(chart1.metric(q + t * v) ** 2)
    h = 1e-5
    values = jax.jit(jax.vmap(f))(jnp.array([h, -h]))
    fd = (values[0] - values[1]) / (2 * h)
    np.testing.assert_allclose(jax.jit(jax.grad(f))(0.0), fd, rtol=1e-7)


@pytest.mark.parametrize("in_dim", [1, 3])
def test_roundtrip_balanced_and_gauge(in_dim):
    chart = TwoLayerReLUChart(width=4, in_dim=in_dim)
    params = random_params(jax.random.PRNGKey(1), 4, in_dim)
    q = chart.project(params)
    assert q.shape == (chart.dim,) == (4 * (in_dim + 1) + 1,)
    lifted = chart.lift(q)
    np.testing.assert_allclose(chart.project(lifted), q, rtol=1e-13, atol=1e-14)
    assert chart.balance_error(lifted) < 1e-14
    x = jax.random.normal(jax.random.PRNGKey(2), (50, in_dim))
    reference = chart.apply(params, x)
    for k in range(3):
        moved = chart.gauge(params, jax.random.PRNGKey(10 + k), scale=1.0)
        assert jnp.max(jnp.abs(moved["a"] - params["a"])) > 1e-2
        np.testing.assert_allclose(chart.project(moved), q, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(chart.apply(moved, x), reference, rtol=1e-12)
    # The balanced lift is the same network as the original parameters.
    np.testing.assert_allclose(chart.apply(lifted, x), reference, rtol=1e-12)


def test_gamma_and_angle_match_definition(chart1):
    params = random_params(jax.random.PRNGKey(3), 3, 1)
    q = chart1.project(params)
    r = np.linalg.norm(np.asarray(params["u"]), axis=1)
    np.testing.assert_allclose(q[:3], np.asarray(params["a"]) * r, rtol=1e-14)
    phi = np.arctan2(params["u"][:, 1], params["u"][:, 0])
    np.testing.assert_allclose(q[3:6], phi, rtol=1e-14)
    assert q[6] == params["c"]


def test_higher_in_dim_metric_spd_and_gauge_independent():
    chart = TwoLayerReLUChart(width=2, in_dim=2)
    params = random_params(jax.random.PRNGKey(4), 2, 2)
    metric = jax.jit(chart.metric)
    g = metric(chart.project(params))
    g_moved = metric(chart.project(chart.gauge(params, jax.random.PRNGKey(5))))
    np.testing.assert_allclose(g, g.T, atol=0)
    assert jnp.linalg.eigvalsh(g)[0] > 1e-6
    np.testing.assert_allclose(g_moved, g, rtol=1e-11, atol=1e-13)
    # The γ block keeps its closed form 1/(2|γ|) in any input dimension.
    gamma = chart.project(params)[:2]
    np.testing.assert_allclose(jnp.diag(g)[:2], 1 / (2 * jnp.abs(gamma)), rtol=1e-12)


def test_metric_ignores_vertical_part_of_section(chart1, points1):
    # σ'(q) = exp(ξ(q))·σ(q) with ξ(q0) = 0 and ∂ξ ≠ 0 differs from σ only by
    # orbit directions at q0: P_H must remove them, so the metric is unchanged,
    # although the raw pullback metric DσᵀDσ changes.
    q0 = points1[1]
    action = chart1.action
    w = jnp.linspace(-1.0, 2.0, 3 * chart1.dim).reshape(3, chart1.dim)

    def tilted(q):
        return action.act(chart1.lift(q), action.exp(w @ (q - q0)))

    g_tilted = quotient_metric(tilted, action, q0)
    np.testing.assert_allclose(g_tilted, chart1.metric(q0), rtol=1e-12, atol=1e-14)
    jac = jax.jacfwd(lambda q: ravel_pytree(tilted(q))[0])(q0)
    assert jnp.max(jnp.abs(jac.T @ jac - chart1.metric(q0))) > 1e-2


def test_orbit_tangents_and_horizontal_projection(chart1):
    params = random_params(jax.random.PRNGKey(6), 3, 1)
    action = chart1.action
    tangents = orbit_tangents(action, params)
    h = 1e-6
    for a in range(3):
        e = jnp.zeros(3).at[a].set(h)
        fd = (
            ravel_pytree(action.act(params, e))[0]
            - ravel_pytree(action.act(params, -e))[0]
        ) / (2 * h)
        np.testing.assert_allclose(tangents[:, a], fd, rtol=1e-8, atol=1e-10)
    vector = jax.tree_util.tree_map(jnp.ones_like, params)
    ph = horizontal_projection(action, params, vector)
    flat = ravel_pytree(ph)[0]
    np.testing.assert_allclose(tangents.T @ flat, 0, atol=1e-13)
    again = ravel_pytree(horizontal_projection(action, params, ph))[0]
    np.testing.assert_allclose(again, flat, atol=1e-14)


def test_metric_operator_matches_dense(chart1, points1):
    q = points1[2]
    dense = lx.materialise(chart1.metric_operator(q)).as_matrix()
    np.testing.assert_allclose(dense, chart1.metric(q), rtol=1e-12, atol=1e-14)


def bce_loss(chart, x, y):
    def loss(params):
        logits = chart.apply(params, x)
        return jnp.mean(jax.nn.softplus(logits) - y * logits)

    return loss


def test_laplace_beltrami_of_loss_jit_and_gauge_invariant(chart1):
    x = jnp.linspace(-2, 2, 24)[:, None]
    y = (x[:, 0] > 0).astype(float)
    loss = bce_loss(chart1, x, y)
    lap = jax.jit(laplace_beltrami(lambda q: loss(chart1.lift(q)), chart1.metric))
    params = random_params(jax.random.PRNGKey(7), 3, 1)
    value = lap(chart1.project(params))
    moved = chart1.gauge(params, jax.random.PRNGKey(8), scale=1.0)
    np.testing.assert_allclose(lap(chart1.project(moved)), value, rtol=1e-10)
    # Same operator with the closed-form metric typed in as a reference.
    reference = jax.jit(
        laplace_beltrami(lambda q: loss(chart1.lift(q)), lambda q: closed_form(q, 3))
    )(chart1.project(params))
    np.testing.assert_allclose(value, reference, rtol=1e-10)


def test_bad_inputs(chart1):
    params = random_params(jax.random.PRNGKey(9), 3, 1)
    with pytest.raises(ValueError, match="width must be an integer ≥ 1"):
        TwoLayerReLUChart(width=0, in_dim=1)
    with pytest.raises(ValueError, match="in_dim must be an integer ≥ 1"):
        TwoLayerReLUChart(width=2, in_dim=1.5)
    with pytest.raises(ValueError, match="expects params with structure"):
        chart1.project({"a": params["a"], "u": params["u"]})
    with pytest.raises(ValueError, match="expects params with shapes"):
        chart1.project({**params, "u": jnp.ones((3, 3))})
    with pytest.raises(ValueError, match=r"expects a point q of shape \(7,\)"):
        chart1.lift(jnp.ones(6))
    with pytest.raises(ValueError, match=r"inputs of shape \(\.\.\., 1\)"):
        chart1.apply(params, jnp.ones((4, 2)))
    dead = {**params, "u": params["u"].at[1].set(0.0)}
    with pytest.raises(RUNTIME_ERRORS, match="dead unit"):
        jax.jit(chart1.project)(dead)
    silent = {**params, "a": params["a"].at[0].set(0.0)}
    with pytest.raises(RUNTIME_ERRORS, match="γ_j = a_j‖u_j‖ = 0"):
        chart1.project(silent)
    q = chart1.project(params).at[2].set(0.0)
    with pytest.raises(RUNTIME_ERRORS, match="boundary of the regular stratum"):
        chart1.metric(q)
    degenerate = TwoLayerReLUChart(width=2, in_dim=2)
    pole = {"a": jnp.ones(2), "u": jnp.array([[0.0, 0, -2], [1, 0, 0]]), "c": 0.0}
    with pytest.raises(RUNTIME_ERRORS, match="stereographic pole"):
        degenerate.project(pole)


def test_degenerate_orbit_is_refused(chart1):
    # A lift that puts a dead unit on the section: orbit tangents degenerate.
    def bad_lift(q):
        p = chart1.lift(q)
        return {**p, "u": p["u"].at[0].set(0.0), "a": p["a"].at[0].set(0.0)}

    q = chart1.project(random_params(jax.random.PRNGKey(11), 3, 1))
    with pytest.raises(RUNTIME_ERRORS, match="orbit tangents are linearly dependent"):
        quotient_metric(bad_lift, chart1.action, q)
