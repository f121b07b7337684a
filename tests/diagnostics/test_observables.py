"""Quotient observables: invariance under chart.gauge (raw norms move), values
against independent numpy references, jit and vmap, errors (eager and jit)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomshock._checks import NonFiniteInputError
from geomshock.charts import (
    CanonicalOrderChart,
    MultiHeadAttentionChart,
    ProductChart,
    ReLUCNNChart,
    ReLUMLPChart,
    SphereChart,
    TransformerBlockChart,
    TwoLayerReLUChart,
)
from geomshock.diagnostics import observables, raw_observables

from .._errors import raises_eager_and_jit
from .test_curvature import random_params

_BLOCK = TransformerBlockChart(3, heads=1, d_k=1, d_v=1, d_ff=2)
CASES = {
    "mlp": (ReLUMLPChart((2, 3, 2, 1)), (6, 2)),
    "cnn": (ReLUCNNChart((1, 2, 1), kernel_size=(2, 2)), (2, 1, 3, 3)),
    "two-layer": (TwoLayerReLUChart(3, 2), (6, 2)),
    "sphere": (SphereChart((4,)), (6, 4)),
    "attention": (MultiHeadAttentionChart(3, heads=2, d_k=1, d_v=2), (2, 4, 3)),
    "transformer": (_BLOCK, (2, 4, 3)),
    "product": (
        ProductChart(
            {
                "sorted": CanonicalOrderChart(TwoLayerReLUChart(2, 2)),
                "w": SphereChart((2,)),
            }
        ),
        (6, 2),
    ),
}
GAUGE_SCALE = 1.5


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    chart, x_shape = CASES[request.param]
    params = random_params(chart, 0)
    batch = jax.random.normal(jax.random.PRNGKey(1), x_shape)
    action = chart.action

    stack = lambda *trees: jax.tree_util.tree_map(lambda *x: jnp.stack(x), *trees)

    @jax.jit  # one compiled function: the moves and every observable
    def run(p):
        # a random gauge, and a large deterministic one: every generator at 2
        big = action.act(p, action.exp(2.0 * jnp.ones(action.algebra_dim)))
        both = stack(p, chart.gauge(p, jax.random.PRNGKey(2), GAUGE_SCALE), big)
        return jax.vmap(lambda p: (observables(chart, p, batch), raw_observables(p)))(
            both
        )

    obs, raw = run(params)
    return request.param, chart, params, batch, obs, raw


def test_quotient_observables_invariant_raw_norms_move(case):
    name, _, _, _, obs, raw = case
    assert len(obs) >= (1 if name == "sphere" else 3), name
    for key, value in obs.items():
        value = np.asarray(value)
        scale = max(float(np.max(np.abs(value[0]))), 1e-300)
        err = float(np.max(np.abs(value[1:] - value[0])))
        assert err <= 1e-8 * scale, (name, key, err / scale)
    # the raw baseline moves by a large factor on some leaf (and in total)
    ratios = [float(v[2] / v[0]) for k, v in raw.items() if k.startswith("norm/")]
    big = max(max(r, 1 / r) for r in ratios)
    assert big > 5.0, (name, ratios)
    total = float(raw["norm"][2] / raw["norm"][0])
    assert max(total, 1 / total) > 1.5, (name, total)


def test_vmap_equals_loop(case):
    name, chart, params, batch, obs, _ = case
    if name not in ("two-layer", "attention"):
        pytest.skip("eager reference for two charts only (cost)")
    single = observables(chart, params, batch)
    assert set(single) == set(obs)
    for key, value in single.items():
        np.testing.assert_allclose(obs[key][0], value, rtol=1e-12, atol=1e-14)


def _paths_l2(layers):
    """sqrt(Σ_paths Π w²) by enumerating every path (biases start paths)."""
    sizes = [layers[0][0].shape[1]] + [w.shape[0] for w, _ in layers]
    total = 0.0
    for start in range(len(layers) + 1):  # start = 0: an input, l > 0: a bias
        units = [range(sizes[start])] + [range(n) for n in sizes[start + 1 :]]
        for path in itertools.product(*units):
            term = 1.0 if start == 0 else layers[start - 1][1][path[0]] ** 2
            for step, (i, j) in enumerate(zip(path[:-1], path[1:], strict=True)):
                term *= layers[start + step][0][j, i] ** 2
            total += term
    return np.sqrt(total)


def test_values_against_numpy_references():
    mlp, x_shape = CASES["mlp"]
    p = random_params(mlp, 0)
    layers = [(np.asarray(lay["W"]), np.asarray(lay["b"])) for lay in p]
    obs = jax.jit(lambda p: observables(mlp, p))(p)
    np.testing.assert_allclose(obs["path_norm_l2"], _paths_l2(layers), rtol=1e-12)

    two = TwoLayerReLUChart(3, 2)
    q = random_params(two, 3)
    got = observables(two, q)
    np.testing.assert_allclose(
        got["gamma"], np.asarray(q["a"]) * np.linalg.norm(np.asarray(q["u"]), axis=1)
    )

    att, x_shape = CASES["attention"]
    p = random_params(att, 4)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(5), x_shape))
    obs = jax.jit(lambda p: observables(att, p, x))(p)
    wq, wk, wv, wo = (np.asarray(p[k]) for k in ("wq", "wk", "wv", "wo"))
    entropy, energy, logits_all = [], [], []
    for h in range(att.heads):
        sv_qk = np.linalg.svd(wq[h] @ wk[h].T, compute_uv=False)[: att.d_k]
        sv_vo = np.linalg.svd(wv[h] @ wo[h], compute_uv=False)[: att.d_v]
        np.testing.assert_allclose(obs["qk_singular_values"][h], sv_qk, rtol=1e-12)
        np.testing.assert_allclose(obs["vo_singular_values"][h], sv_vo, rtol=1e-12)
        logits = (x @ wq[h]) @ np.swapaxes(x @ wk[h], 1, 2) / np.sqrt(att.d_k)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        entropy.append(np.mean(-np.sum(probs * np.log(probs), -1)))
        energy.append(np.mean(np.sum((probs @ x @ wv[h] @ wo[h]) ** 2, -1)))
        logits_all.append(logits)
    logits_all = np.stack(logits_all)
    np.testing.assert_allclose(obs["attention_entropy"], entropy, rtol=1e-12)
    np.testing.assert_allclose(obs["head_output_energy"], energy, rtol=1e-12)
    np.testing.assert_allclose(obs["logit_max_abs"], np.abs(logits_all).max())
    np.testing.assert_allclose(obs["logit_std"], logits_all.std(), rtol=1e-12)


def test_transformer_branch_balance_against_numpy(case):
    name, chart, params, batch, obs, _ = case
    if name != "transformer":
        pytest.skip("transformer only")
    from tests.charts.test_product import _reference_block

    x = np.asarray(batch)
    block = lambda p: np.stack([_reference_block(p, xi) for xi in x])
    full = block(params)
    zero_mlp = {
        **params,
        "mlp": tuple(
            {**lay, "W": 0 * lay["W"], "b": 0 * lay["b"]} for lay in params["mlp"]
        ),
    }
    hid = block(zero_mlp)
    e_attn = np.mean(np.sum((hid - x) ** 2, -1))
    e_mlp = np.mean(np.sum((full - hid) ** 2, -1))
    np.testing.assert_allclose(obs["attn_branch_energy"][0], e_attn, rtol=1e-12)
    np.testing.assert_allclose(obs["mlp_branch_energy"][0], e_mlp, rtol=1e-12)
    np.testing.assert_allclose(
        obs["branch_balance"][0], e_attn / (e_attn + e_mlp), rtol=1e-12
    )


def test_observables_bad_input():
    chart = ReLUMLPChart((2, 3, 1))
    params = random_params(chart, 7)
    with pytest.raises(ValueError, match="expects params with structure"):
        observables(chart, params[:1])
    with pytest.raises(ValueError, match="expects params with structure"):
        jax.jit(lambda p: observables(chart, p))(params[:1])
    bad = (params[0], {**params[1], "b": params[1]["b"].at[0].set(jnp.nan)})
    for fn in (lambda p: observables(chart, p), raw_observables):
        raises_eager_and_jit(
            lambda p, fn=fn: fn(p)[
                "path_norm_l1" if fn is not raw_observables else "norm"
            ],
            bad,
            match="non-finite input",
            eager=NonFiniteInputError,
        )
    x = jnp.ones((4, 2)).at[1, 0].set(jnp.inf)
    raises_eager_and_jit(
        lambda x: observables(chart, params, x)["active_fraction_1"],
        x,
        match="non-finite input",
        eager=NonFiniteInputError,
    )
    with pytest.raises(ValueError, match=r"inputs of shape \(\.\.\., 2\)"):
        observables(chart, params, jnp.ones((4, 3)))
    with pytest.raises(ValueError, match="no quotient observables for EuclideanChart"):
        from geomshock.charts import EuclideanChart

        observables(EuclideanChart((2,)), jnp.ones(2))
