"""Deep MLP, CNN, sphere, attention and canonical-ordering charts."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from geomshock.charts import (
    CanonicalOrderChart,
    MultiHeadAttentionChart,
    ProductChart,
    ReLUCNNChart,
    ReLUMLPChart,
    SphereChart,
    TransformerBlockChart,
    TwoLayerReLUChart,
    orbit_tangents,
)

RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)


def random_params(chart, seed):
    leaves, treedef = jax.tree_util.tree_flatten(chart.params_shape)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return treedef.unflatten(
        [jax.random.normal(k, s.shape) for k, s in zip(keys, leaves, strict=True)]
    )


_MLP, _SORTED = ReLUMLPChart((2, 2, 1)), CanonicalOrderChart(TwoLayerReLUChart(2, 2))
PRODUCT = ProductChart(
    {"mlp": _MLP, "two": _SORTED},
    forward=lambda p, x: _MLP.apply(p["mlp"], x)[..., 0] + _SORTED.apply(p["two"], x),
)

CHARTS = {
    "mlp": (ReLUMLPChart((2, 3, 2, 1)), (6, 2)),
    "mlp-nobias": (ReLUMLPChart((2, 3, 2), use_bias=False), (6, 2)),
    "cnn": (ReLUCNNChart((1, 2, 1), kernel_size=(2, 2)), (2, 1, 3, 3)),
    "sphere-bn": (SphereChart((4,)), (8, 4)),
    "sphere-ln": (SphereChart((3, 2), normalization="layer"), (8, 2)),
    "attention": (MultiHeadAttentionChart(d_model=3, heads=2, d_k=1, d_v=2), (4, 3)),
    "sorted-two-layer": (CanonicalOrderChart(TwoLayerReLUChart(3, 1)), (6, 1)),
    "sorted-mlp": (CanonicalOrderChart(ReLUMLPChart((1, 3, 1))), (6, 1)),
    "sorted-cnn": (
        CanonicalOrderChart(ReLUCNNChart((1, 3, 1), kernel_size=(2, 2))),
        (2, 1, 3, 3),
    ),
    "product": (PRODUCT, (6, 2)),
    "transformer": (TransformerBlockChart(3, heads=1, d_k=1, d_v=1, d_ff=2), (4, 3)),
}


@pytest.fixture(scope="module", params=list(CHARTS))
def case(request):
    """Everything the per-chart tests check, from one compiled function."""
    chart, x_shape = CHARTS[request.param]
    params = random_params(chart, 0)
    x = jax.random.normal(jax.random.PRNGKey(1), x_shape)

    @jax.jit
    def summary(params, x):
        q = chart.project(params)
        lifted = chart.lift(q)
        moved = [chart.gauge(params, jax.random.PRNGKey(s), 0.8) for s in (2, 3)]
        q_moved = jnp.stack([chart.project(p) for p in moved])
        return {
            "q": q,
            "q_lifted": chart.project(lifted),
            "q_moved": q_moved,
            "f": chart.apply(params, x),
            "f_lifted": chart.apply(lifted, x),
            "f_moved": jnp.stack([chart.apply(p, x) for p in moved]),
            "change": jnp.stack(
                [
                    jnp.max(jnp.abs(ravel_pytree(p)[0] - ravel_pytree(params)[0]))
                    for p in moved
                ]
            ),
            "g": jax.vmap(chart.metric)(jnp.concatenate([q[None], q_moved[:1]])),
            "section_vs_orbit": _section_vs_orbit(chart, q),
        }

    return request.param, chart, params, summary(params, x)


def _section_vs_orbit(chart, q):
    """``max |⟨ξ_a·σ, ∂_iσ⟩| / (‖ξ_a·σ‖ ‖∂_iσ‖)``: 0 iff the gauge is horizontal."""
    jac = jax.jacfwd(lambda p: ravel_pytree(chart.lift(p))[0])(q)
    tangents = orbit_tangents(chart.action, chart.lift(q))
    cosines = (tangents / jnp.linalg.norm(tangents, axis=0)).T @ (
        jac / jnp.linalg.norm(jac, axis=0)
    )
    return jnp.max(jnp.abs(cosines))


def test_horizontal_gauge_flag_states_the_section(case):
    # A chart that claims a horizontal gauge has a section tangent to the
    # complement of the orbits; the others (attention's top-block gauge) do not.
    name, chart, _, out = case
    if chart.horizontal_gauge:
        assert out["section_vs_orbit"] < 1e-12, name
    else:
        assert out["section_vs_orbit"] > 1e-3, name


def test_dim_counts_parameters_minus_orbit(case):
    _, chart, params, out = case
    size = ravel_pytree(params)[0].size
    assert chart.dim == size - chart.action.algebra_dim
    assert out["q"].shape == (chart.dim,)


def test_roundtrip_gauge_and_network_function(case):
    name, _, _, out = case
    tol = {"rtol": 1e-11, "atol": 1e-12}
    np.testing.assert_allclose(out["q_lifted"], out["q"], **tol)
    np.testing.assert_allclose(out["f_lifted"], out["f"], **tol)
    assert jnp.all(out["change"] > 1e-2), name
    np.testing.assert_allclose(out["q_moved"], jnp.stack([out["q"]] * 2), **tol)
    np.testing.assert_allclose(out["f_moved"], jnp.stack([out["f"]] * 2), **tol)


def test_metric_spd_and_same_from_any_representative(case):
    _, _, _, out = case
    g, g_moved = out["g"]
    np.testing.assert_allclose(g, g.T, atol=0)
    assert jnp.linalg.eigvalsh(g)[0] > 0
    np.testing.assert_allclose(g_moved, g, rtol=1e-9, atol=1e-11)


def _layer_norms(layer):
    incoming = jnp.concatenate(
        [layer["W"].reshape(layer["W"].shape[0], -1), layer["b"][:, None]], axis=1
    )
    return jnp.linalg.norm(incoming, axis=1)


def test_mlp_lift_is_layerwise_balanced_and_minimum_norm():
    chart = ReLUMLPChart((2, 3, 2, 1))
    params = random_params(chart, 5)
    lifted = jax.jit(lambda p: chart.lift(chart.project(p)))(params)
    assert chart.balance_error(lifted) < 1e-12
    incoming = _layer_norms(lifted[1])
    outgoing = jnp.linalg.norm(lifted[2]["W"], axis=0)
    np.testing.assert_allclose(incoming, outgoing, rtol=1e-12)
    # Balanced = minimum norm on the orbit: every gauge move increases it.
    norm = jnp.sum(ravel_pytree(lifted)[0] ** 2)
    for seed in range(3):
        moved = chart.gauge(lifted, jax.random.PRNGKey(seed), scale=0.1)
        assert jnp.sum(ravel_pytree(moved)[0] ** 2) > norm


def test_mlp_lift_derivatives_and_loss_grad_match_central_differences():
    chart = ReLUMLPChart((2, 3, 2, 1))
    q = chart.project(random_params(chart, 6))
    v = jax.random.normal(jax.random.PRNGKey(7), q.shape)
    x = jax.random.normal(jax.random.PRNGKey(8), (5, 2))
    h = 1e-5

    @jax.jit
    def derivatives_and_differences():
        flat = lambda t: ravel_pytree(chart.lift(q + t * v))[0]
        loss = lambda t: jnp.sum(chart.apply(chart.lift(q + t * v), x) ** 2)
        # Not gauge invariant: sees the orbit part of the lift's second
        # derivative (one frozen-Hessian Newton step in ``balance`` got it wrong).
        quartic = lambda t: sum(
            jnp.sum(w**4) for w in jax.tree_util.tree_leaves(chart.lift(q + t * v))
        )
        steps = jnp.array([h, -h])
        flats, losses = jax.vmap(flat)(steps), jax.vmap(loss)(steps)
        slopes = jax.vmap(jax.grad(quartic))(steps)
        return (
            jax.jvp(flat, (0.0,), (1.0,))[1],
            (flats[0] - flats[1]) / (2 * h),
            jax.grad(loss)(0.0),
            (losses[0] - losses[1]) / (2 * h),
            jax.grad(jax.grad(quartic))(0.0),
            (slopes[0] - slopes[1]) / (2 * h),
        )

    jvp, fd, grad, fd_loss, second, fd_second = derivatives_and_differences()
    np.testing.assert_allclose(jvp, fd, atol=1e-8)
    np.testing.assert_allclose(grad, fd_loss, rtol=1e-8)
    np.testing.assert_allclose(second, fd_second, rtol=1e-6)


def test_mlp_chart_agrees_with_two_layer_chart_metric():
    # One hidden layer, one output: the same quotient as TwoLayerReLUChart in other
    # coordinates (stereographic direction instead of angle); the metric must
    # transform as a tensor, g_mlp = Jᵀ g_two J with J = ∂q_two/∂q_mlp.
    mlp, two = ReLUMLPChart((1, 2, 1)), TwoLayerReLUChart(2, 1)

    def to_two_layer(p):
        u = jnp.concatenate([p[0]["W"], p[0]["b"][:, None]], axis=1)
        return {"a": p[1]["W"][0], "u": u, "c": p[1]["b"][0]}

    q = mlp.project(random_params(mlp, 9))
    change = lambda q: two.project(to_two_layer(mlp.lift(q)))

    @jax.jit
    def both(q):
        jac = jax.jacfwd(change)(q)
        return mlp.metric(q), jac.T @ two.metric(change(q)) @ jac

    g, expected = both(q)
    np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape, normalization", [((4,), "batch"), ((3, 2), "layer")])
def test_sphere_metric_is_round_metric(shape, normalization):
    chart = SphereChart(shape, normalization)
    qs = jax.random.normal(jax.random.PRNGKey(10), (4, chart.dim))
    g = jax.jit(jax.vmap(chart.metric))(qs)
    exact = jax.vmap(lambda y: 4 / (1 + y @ y) ** 2 * jnp.eye(chart.dim))(qs)
    np.testing.assert_allclose(g, exact, rtol=1e-12, atol=1e-14)
    lifted = jax.jit(jax.vmap(chart.lift))(qs)
    norms = jnp.sqrt(jnp.sum(lifted.reshape(4, -1) ** 2, axis=1))
    np.testing.assert_allclose(norms, 1.0, rtol=1e-14)


def test_attention_lift_is_balanced_svd():
    chart = MultiHeadAttentionChart(d_model=4, heads=2, d_k=2, d_v=2)
    params = random_params(chart, 11)
    lifted = jax.jit(lambda p: chart.lift(chart.project(p)))(params)
    gram = lambda w: jnp.swapaxes(w, 1, 2) @ w
    np.testing.assert_allclose(gram(lifted["wq"]), gram(lifted["wk"]), atol=1e-12)
    wo_t = jnp.swapaxes(lifted["wo"], 1, 2)
    np.testing.assert_allclose(gram(lifted["wv"]), gram(wo_t), atol=1e-12)
    # Gram matrices are diagonal: the singular values of W_Q W_Kᵀ.
    sv = jnp.linalg.svd(params["wq"] @ jnp.swapaxes(params["wk"], 1, 2))[1][:, :2]
    np.testing.assert_allclose(
        jnp.diagonal(gram(lifted["wq"]), axis1=1, axis2=2), sv, rtol=1e-11
    )


def test_vmap_project_equals_loop():
    chart = ReLUMLPChart((2, 3, 1))
    batch = [random_params(chart, s) for s in range(3)]
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *batch)
    loop = jnp.stack([chart.project(p) for p in batch])
    np.testing.assert_allclose(jax.vmap(chart.project)(stacked), loop, rtol=1e-14)


def test_canonical_order_is_permutation_invariant():
    chart = CanonicalOrderChart(TwoLayerReLUChart(3, 1))
    params = random_params(chart, 12)
    q = chart.project(params)
    assert jnp.all(jnp.diff(q[:3]) > 0)
    perm = jnp.array([2, 0, 1])
    permuted = {"a": params["a"][perm], "u": params["u"][perm], "c": params["c"]}
    np.testing.assert_allclose(chart.project(permuted), q, rtol=1e-14)


def test_bad_inputs_and_off_stratum_points():
    mlp = ReLUMLPChart((2, 3, 1))
    params = random_params(mlp, 13)
    with pytest.raises(ValueError, match="layer_sizes must be a tuple of at least 3"):
        ReLUMLPChart((2, 3))
    with pytest.raises(ValueError, match="channels must be a tuple"):
        ReLUCNNChart((1, 0, 1))
    with pytest.raises(ValueError, match="kernel_size must have 2 entries"):
        ReLUCNNChart((1, 2, 1), kernel_size=(2, 2, 2))
    with pytest.raises(ValueError, match="normalization must be 'batch' or 'layer'"):
        SphereChart((3,), "group")
    with pytest.raises(ValueError, match="shape must be a tuple of 2 positive ints"):
        SphereChart((3,), "layer")
    with pytest.raises(ValueError, match="d_k, d_v <= d_model"):
        MultiHeadAttentionChart(d_model=2, heads=1, d_k=3, d_v=1)
    with pytest.raises(ValueError, match="expects params with shapes"):
        mlp.project((params[0], {"W": jnp.ones((1, 2)), "b": jnp.ones(1)}))
    with pytest.raises(ValueError, match="expects params with structure"):
        mlp.project(params[:1])
    with pytest.raises(ValueError, match=r"inputs of shape \(\.\.\., 2\)"):
        mlp.apply(params, jnp.ones((3, 5)))
    dead = (
        {"W": params[0]["W"].at[1].set(0.0), "b": params[0]["b"].at[1].set(0.0)},
        params[1],
    )
    with pytest.raises(RUNTIME_ERRORS, match="hidden layer 1 \\(dead unit\\)"):
        jax.jit(mlp.project)(dead)
    mute = (params[0], {**params[1], "W": params[1]["W"].at[0, 2].set(0.0)})
    with pytest.raises(RUNTIME_ERRORS, match="zero outgoing weights"):
        mlp.project(mute)
    with pytest.raises(RUNTIME_ERRORS, match="scale-invariant weight vector"):
        SphereChart((3,)).project(jnp.zeros(3))
    att = MultiHeadAttentionChart(d_model=3, heads=1, d_k=2, d_v=1)
    p = random_params(att, 14)
    rank1 = {**p, "wk": p["wk"].at[0, :, 1].set(p["wk"][0, :, 0])}
    with pytest.raises(RUNTIME_ERRORS, match="rank-deficient attention factors"):
        att.lift(att.project(rank1))
    top = {**p, "wq": p["wq"].at[0, :2].set(0.0)}
    with pytest.raises(RUNTIME_ERRORS, match="outside this chart's domain"):
        att.project(top)
    sorted_chart = CanonicalOrderChart(TwoLayerReLUChart(2, 1))
    tie = {
        "a": jnp.array([1.0, 1.0]),
        "u": jnp.array([[1.0, 0.0], [0.0, 1.0]]),
        "c": 0.0,
    }
    with pytest.raises(RUNTIME_ERRORS, match="tied permutation keys"):
        sorted_chart.project(tie)
    q = sorted_chart.project(random_params(sorted_chart, 15))
    unsorted = q.at[:2].set(q[1::-1])
    with pytest.raises(RUNTIME_ERRORS, match="not in canonical order"):
        sorted_chart.lift(unsorted)


@pytest.mark.parametrize(
    "chart",
    [ReLUMLPChart((3, 4, 5, 2), use_bias=False), ReLUCNNChart((1, 2, 3, 1), (2, 2))],
)
def test_closed_form_balancing_hessian_matches_autodiff(chart):
    params = random_params(chart, 16)
    t = 0.3 * jax.random.normal(jax.random.PRNGKey(17), (chart.action.algebra_dim,))
    norm_sq = lambda t: jnp.sum(ravel_pytree(chart.action.act(params, t))[0] ** 2)
    np.testing.assert_allclose(
        chart.action.norm_sq_hessian(params, t), jax.hessian(norm_sq)(t), rtol=1e-12
    )


def test_attention_cheap_tangent_map_gives_the_exp_orbit_tangents():
    from geomshock.charts import orbit_tangents

    chart = MultiHeadAttentionChart(d_model=3, heads=2, d_k=2, d_v=1)
    params = random_params(chart, 18)
    action = chart.action
    via_exp = jax.jacfwd(
        lambda xi: ravel_pytree(action.act(params, action.exp(xi)))[0]
    )(jnp.zeros(action.algebra_dim))
    np.testing.assert_allclose(orbit_tangents(action, params), via_exp, atol=1e-13)


@pytest.mark.parametrize(
    "chart",
    [
        ReLUMLPChart((2, 3, 2, 1)),
        ReLUMLPChart((3, 40, 40, 2)),  # k = 80: conjugate-gradient Gram solve
        MultiHeadAttentionChart(d_model=3, heads=2, d_k=1, d_v=2),
        MultiHeadAttentionChart(d_model=10, heads=3, d_k=4, d_v=4),  # k = 96
    ],
)
def test_metric_operator_matches_dense_metric(chart):
    params = jax.tree_util.tree_map(
        lambda x: x / jnp.sqrt(x.shape[-1]), random_params(chart, 5)
    )
    q = chart.project(params)
    v = jax.random.normal(jax.random.PRNGKey(6), q.shape)
    gv = jax.jit(lambda q, v: chart.metric_operator(q).mv(v))(q, v)
    dense = jax.jit(chart.metric)(q) @ v
    assert float(jnp.linalg.norm(gv - dense) / jnp.linalg.norm(dense)) < 1e-10


@pytest.mark.parametrize(
    "chart",
    [ReLUMLPChart((3, 40, 40, 2)), MultiHeadAttentionChart(10, 3, 4, 4)],
    ids=["mlp-k80", "attention-k96"],
)
def test_matrix_free_horizontal_projection_agrees_with_every_solver(chart):
    import lineax as lx

    from geomshock.charts import (
        horizontal_projection,
        orbit_tangent_operator,
        orbit_tangents,
    )

    params = chart.lift(chart.project(random_params(chart, 21)))
    action = chart.action
    tangents = orbit_tangents(action, params)
    materialised = lx.materialise(orbit_tangent_operator(action, params))
    np.testing.assert_allclose(materialised.as_matrix(), tangents, atol=1e-14)
    flat, unravel = ravel_pytree(params)
    vector = unravel(jax.random.normal(jax.random.PRNGKey(22), flat.shape))
    solvers = {
        "default": None,
        "cholesky": lx.Cholesky(),
        "lsmr": lx.LSMR(rtol=1e-13, atol=1e-13),
        "qr": lx.QR(),
    }
    out = {
        name: ravel_pytree(
            jax.jit(lambda p, v, s=s: horizontal_projection(action, p, v, solver=s))(
                params, vector
            )
        )[0]
        for name, s in solvers.items()
    }
    scale = jnp.linalg.norm(out["cholesky"])
    for name, value in out.items():
        assert float(jnp.linalg.norm(value - out["cholesky"]) / scale) < 1e-10, name
        # horizontal: orthogonal to every orbit tangent
        assert float(jnp.max(jnp.abs(tangents.T @ value))) < 1e-9 * scale, name
    # the orbit part removed is a real fraction of the vector (not vacuous)
    assert float(jnp.linalg.norm(out["default"] - flat)) > 1e-2 * scale


def test_matrix_free_metric_operator_vmap_and_jvp():
    chart = MultiHeadAttentionChart(10, 3, 4, 4)  # k = 96: matrix-free path
    qs = jax.vmap(chart.project)(
        jax.vmap(lambda s: random_params(chart, s))(jnp.arange(2))
    )
    v = jax.random.normal(jax.random.PRNGKey(23), qs.shape[1:])
    mv = jax.jit(lambda q: chart.metric_operator(q).mv(v))
    batched = jax.vmap(mv)(qs)
    for i in range(2):
        np.testing.assert_allclose(batched[i], mv(qs[i]), rtol=1e-10, atol=1e-12)
    # d/dq (g(q) v) along a direction equals central differences
    d = jax.random.normal(jax.random.PRNGKey(24), qs.shape[1:])
    _, jvp = jax.jvp(mv, (qs[0],), (d,))
    h = 1e-5
    fd = (mv(qs[0] + h * d) - mv(qs[0] - h * d)) / (2 * h)
    np.testing.assert_allclose(jvp, fd, rtol=1e-6, atol=1e-6 * jnp.max(jnp.abs(fd)))


def test_projection_solver_must_be_a_lineax_solver():
    from geomshock.charts import horizontal_projection

    chart = ReLUMLPChart((2, 3, 1))
    params = random_params(chart, 25)
    with pytest.raises(TypeError, match="lineax solver"):
        horizontal_projection(chart.action, params, params, solver="cg")
