"""ProductChart and TransformerBlockChart beyond the per-chart suite of
test_charts.py (which runs both through round trips, gauge invariance, the
network function and the metric)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomshock._checks import NonFiniteInputError
from geomshock.charts import (
    EuclideanChart,
    ProductChart,
    SphereChart,
    TransformerBlockChart,
    TwoLayerReLUChart,
    quotient_metric,
)
from tests._errors import RUNTIME_ERRORS, raises_eager_and_jit
from tests.charts.test_charts import random_params

BLOCK = TransformerBlockChart(3, heads=1, d_k=1, d_v=1, d_ff=2)
SMALL = ProductChart({"a": TwoLayerReLUChart(1, 1), "b": SphereChart((3,))})


@pytest.mark.parametrize("chart", [SMALL, BLOCK], ids=["product", "transformer"])
def test_metric_is_autodiff_metric_and_matches_operator(chart):
    q = chart.project(random_params(chart, 3))
    v = jax.random.normal(jax.random.PRNGKey(4), q.shape)

    @jax.jit
    def metrics(q, v):
        return chart.metric(q), chart.metric_operator(q).mv(v)

    g, gv = metrics(q, v)
    np.testing.assert_allclose(gv, g @ v, rtol=1e-10, atol=1e-12)
    if chart is SMALL:
        # the block-diagonal metric against the autodiff metric of the whole
        # product action (the transformer's metric is that autodiff metric)
        generic = jax.jit(quotient_metric, static_argnums=(0, 1))(
            chart.lift, chart.action, q
        )
        np.testing.assert_allclose(g, generic, rtol=1e-11, atol=1e-13)
        m = SMALL.charts["a"].dim
        assert jnp.all(g[:m, m:] == 0) and jnp.all(g[m:, :m] == 0)


def _reference_block(p, x, eps=1e-5):
    """The pre-LN block written out in numpy (independent of the chart)."""
    p = jax.tree_util.tree_map(np.asarray, p)
    x = np.asarray(x)

    def ln(u, which):
        c = u - u.mean(-1, keepdims=True)
        n = c / np.sqrt((c**2).mean(-1, keepdims=True) + eps)
        return p[which]["gain"] * n + p[which]["bias"]

    u = ln(x, "ln1")
    a = p["attn"]
    out = 0.0
    for h in range(a["wq"].shape[0]):
        logits = (u @ a["wq"][h]) @ (u @ a["wk"][h]).T / np.sqrt(a["wq"].shape[2])
        w = np.exp(logits - logits.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        out = out + w @ u @ a["wv"][h] @ a["wo"][h]
    hid = x + out
    (l1, l2) = p["mlp"]
    z = np.maximum(ln(hid, "ln2") @ l1["W"].T + l1["b"], 0)
    return hid + z @ l2["W"].T + l2["b"]


def test_transformer_block_function_symmetries_and_the_unquotiented_ones():
    p = random_params(BLOCK, 5)
    x = jax.random.normal(jax.random.PRNGKey(6), (4, 3))
    c = jnp.array([-2.0, 0.5, 3.0])  # LN gain rescaling, with a sign flip
    flipped = {
        **p,
        "ln1": {k: v * c for k, v in p["ln1"].items()},
        "attn": {
            k: (w / c[None, :, None] if k != "wo" else w) for k, w in p["attn"].items()
        },
    }
    # a key shift common to all positions (not quotiented: a coordinate move)
    shifted = {
        **p,
        "attn": {**p["attn"], "wk": p["attn"]["wk"] + 0.7 / p["ln1"]["gain"][:, None]},
    }

    @jax.jit
    def outputs(p, flipped, shifted):
        return (
            BLOCK.apply(p, x),
            BLOCK.apply(flipped, x),
            BLOCK.apply(shifted, x),
            BLOCK.project(p),
            BLOCK.project(flipped),
            BLOCK.project(shifted),
        )

    f, f_flip, f_shift, q, q_flip, q_shift = outputs(p, flipped, shifted)
    np.testing.assert_allclose(f, _reference_block(p, x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(f_flip, f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(q_flip, q, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(f_shift, f, rtol=1e-12, atol=1e-12)
    assert float(jnp.max(jnp.abs(q_shift - q))) > 1e-2  # documented: not quotiented


def test_product_and_transformer_bad_input():
    with pytest.raises(ValueError, match="non-empty dict"):
        ProductChart({})
    with pytest.raises(ValueError, match="must be a quotient chart"):
        ProductChart({"a": "mlp"})
    with pytest.raises(ValueError, match="shape must be a tuple of positive ints"):
        EuclideanChart((0,))
    with pytest.raises(ValueError, match="d_ff must be an integer"):
        TransformerBlockChart(3, 1, 1, 1, 0)
    product = ProductChart({"a": TwoLayerReLUChart(1, 1), "b": SphereChart((2,))})
    params = random_params(product, 7)
    with pytest.raises(ValueError, match="ProductChart expects params with structure"):
        product.project({"a": params["a"]})
    raises_eager_and_jit(
        product.project,
        {**params, "b": params["b"].at[0].set(jnp.nan)},
        match="non-finite input",
        eager=NonFiniteInputError,
    )
    # a factor's off-stratum point is the product's, eagerly and under jit
    dead = {**params, "b": jnp.zeros(2)}
    for fn in (product.project, jax.jit(product.project)):
        with pytest.raises(RUNTIME_ERRORS, match="scale-invariant weight vector"):
            jax.block_until_ready(fn(dead))
    p = random_params(BLOCK, 8)
    off = {**p, "ln2": {**p["ln2"], "gain": p["ln2"]["gain"].at[1].set(0.0)}}
    for fn in (BLOCK.project, jax.jit(BLOCK.project)):
        with pytest.raises(RUNTIME_ERRORS, match="LayerNorm-2 gain entry is zero"):
            jax.block_until_ready(fn(off))
    with pytest.raises(ValueError, match=r"inputs of shape \(\.\.\., T, 3\)"):
        BLOCK.apply(p, jnp.ones((4, 2)))
