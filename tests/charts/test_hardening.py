"""The error contract of the charts: eager and under jit/vmap alike (Part 6)."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from geomshock.charts import (
    AbstractGroupAction,
    AbstractPermutableChart,
    AbstractRescalingAction,
    CanonicalOrderChart,
    MultiHeadAttentionChart,
    PositiveScaling,
    ReLUMLPChart,
    SphereChart,
    TwoLayerReLUChart,
    TwoLayerRescaling,
    balance,
    quotient_metric,
)

from .._errors import RUNTIME_ERRORS, raises_eager_and_jit


def random_params(chart, seed):
    leaves, treedef = jax.tree_util.tree_flatten(chart.params_shape)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return treedef.unflatten(
        [jax.random.normal(k, s.shape) for k, s in zip(keys, leaves, strict=True)]
    )


SORTED = CanonicalOrderChart(TwoLayerReLUChart(2, 1))
TIE = {"a": jnp.array([1.0, 1.0]), "u": jnp.eye(2), "c": jnp.array(0.0)}


# --- defect 1: error_if results used, so jit keeps the checks --------------------


def test_tied_units_refused_by_project_eager_jit_vmap():
    raises_eager_and_jit(
        SORTED.project, TIE, match="tied permutation keys", eager=RUNTIME_ERRORS
    )
    good = {**TIE, "a": jnp.array([1.0, 2.0])}
    batch = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b, a]), good, TIE)
    batch = {**batch, "a": batch["a"].at[2].set(jnp.array([3.0, 0.5]))}
    with pytest.raises(RUNTIME_ERRORS, match="tied permutation keys"):
        jax.block_until_ready(jax.jit(jax.vmap(SORTED.project))(batch))
    ok = jax.tree_util.tree_map(lambda x: x[jnp.array([0, 2])], batch)
    np.testing.assert_allclose(
        jax.jit(jax.vmap(SORTED.project))(ok)[:, :2], [[1.0, 2.0], [0.5, 3.0]]
    )


def test_tied_units_refused_by_lift_eager_jit():
    # strictly increasing, but equal up to tie_rtol: a tie, not an ordering error
    q = jnp.array([1.0, 1.0 + 1e-12, 0.3, 1.2, 0.0])
    raises_eager_and_jit(
        SORTED.lift, q, match="tied permutation keys", eager=RUNTIME_ERRORS
    )
    raises_eager_and_jit(
        SORTED.lift,
        q.at[:2].set(jnp.array([2.0, 1.0])),
        match="not in canonical order",
        eager=RUNTIME_ERRORS,
    )


@pytest.mark.parametrize("factor", ["wq", "wv"])
def test_zero_attention_head_refused_eager_jit(factor):
    att = MultiHeadAttentionChart(d_model=3, heads=2, d_k=1, d_v=2)
    params = random_params(att, 3)
    zero_head = {**params, factor: params[factor].at[1].set(0.0)}
    what = "W_Q" if factor == "wq" else "W_V"
    raises_eager_and_jit(
        att.project,
        zero_head,
        match=f"top .* block of {what} is singular",
        eager=RUNTIME_ERRORS,
    )


# --- defect 6: non-finite input to project / lift --------------------------------

_NAN_CASES = {
    "two-layer": TwoLayerReLUChart(2, 1),
    "mlp": ReLUMLPChart((2, 3, 1)),
    "sphere": SphereChart((3,)),
    "attention": MultiHeadAttentionChart(d_model=3, heads=1, d_k=1, d_v=1),
    "sorted": SORTED,
}


@pytest.mark.parametrize("name", sorted(_NAN_CASES))
@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf])
def test_non_finite_params_and_points_refused(name, bad):
    chart = _NAN_CASES[name]
    params = random_params(chart, 4)
    if name == "sorted":
        params = {**params, "a": jnp.array([1.0, 2.0])}
    leaves, treedef = jax.tree_util.tree_flatten(params)
    poisoned = treedef.unflatten(
        [leaves[0].reshape(-1).at[0].set(bad).reshape(leaves[0].shape), *leaves[1:]]
    )
    raises_eager_and_jit(chart.project, poisoned, match="non-finite input")
    q = chart.project(params)
    raises_eager_and_jit(chart.lift, q.at[-1].set(bad), match="non-finite input")
    raises_eager_and_jit(chart.metric, q.at[0].set(bad), match="non-finite input")
    # one bad member of a vmapped batch
    batch = jnp.stack([q, q.at[0].set(bad)])
    with pytest.raises(RUNTIME_ERRORS, match="non-finite input"):
        jax.block_until_ready(jax.jit(jax.vmap(chart.lift))(batch))


# --- defect 9: a scale-aware test of dependent orbit tangents ---------------------


def test_tiny_gamma_is_a_valid_point():
    chart = TwoLayerReLUChart(2, 1)
    q = jnp.array([1e-13, -0.7, 0.4, 2.0, 0.1])
    expected = np.diag([1 / (2e-13), 1 / 1.4, 1e-13, 0.7, 1.0])
    for metric in (chart.metric, jax.jit(chart.metric)):
        np.testing.assert_allclose(metric(q), expected, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(chart.project(chart.lift(q)), q, rtol=1e-12)


class _TwiceTheSameScaling(AbstractGroupAction):
    """Two generators that move ``w`` along the same direction: not free."""

    @property
    def algebra_dim(self):
        return 2

    def exp(self, xi):
        return xi

    def act(self, params, g):
        return params * jnp.exp(g[0] + 1e-9 * g[1])


def test_dependent_tangents_of_any_length_are_refused():
    # the second tangent is 1e-9 times the first: parallel, whatever the length
    def lift(q):
        return jnp.concatenate([q, jnp.ones(1)])

    raises_eager_and_jit(
        lambda q: quotient_metric(lift, _TwiceTheSameScaling(), q),
        jnp.array([0.3, 0.5]),
        match="orbit tangents are linearly dependent",
        eager=RUNTIME_ERRORS,
    )


# --- declared interfaces ---------------------------------------------------------


def test_permutable_and_rescaling_interfaces_are_declared():
    assert issubclass(TwoLayerReLUChart, AbstractPermutableChart)
    assert issubclass(MultiHeadAttentionChart, AbstractPermutableChart)
    assert issubclass(ReLUMLPChart, AbstractPermutableChart)
    assert not issubclass(SphereChart, AbstractPermutableChart)
    with pytest.raises(ValueError, match="needs a chart with permutable units"):
        CanonicalOrderChart(SphereChart((3,)))
    with pytest.raises(ValueError, match="balance needs a rescaling action"):
        balance(_TwiceTheSameScaling(), jnp.ones(3))


@pytest.mark.parametrize(
    "action,params",
    [
        (
            TwoLayerRescaling(3),
            {
                "a": jnp.array([0.5, -2.0, 1.0]),
                "u": jnp.arange(6.0).reshape(3, 2) - 2.5,
                "c": jnp.array(0.3),
            },
        ),
        (PositiveScaling(), jnp.array([0.3, -1.2, 2.0])),
    ],
)
def test_closed_form_rescaling_hessians_match_autodiff(action, params):
    assert isinstance(action, AbstractRescalingAction)
    t = 0.3 * jax.random.normal(jax.random.PRNGKey(5), (action.algebra_dim,))
    norm_sq = lambda t: sum(
        jnp.sum(x**2) for x in jax.tree_util.tree_leaves(action.act(params, t))
    )
    np.testing.assert_allclose(
        action.norm_sq_hessian(params, t), jax.hessian(norm_sq)(t), rtol=1e-13
    )


# --- defect 16: the dense and matrix-free metrics against independent references --


def _numpy_quotient_metric(chart, q, h=1e-5):
    """``(P_H J)ᵀ(P_H J)`` with ``J`` (of the lift) and the orbit tangents (of the
    action) by central differences, ``P_H`` by ``numpy.linalg.lstsq``: no
    autodiff, no lineax."""
    q = np.asarray(q, dtype=np.float64)
    flat_lift = jax.jit(jax.vmap(lambda p: ravel_pytree(chart.lift(p))[0]))
    steps = h * np.eye(q.size)
    jac = (np.asarray(flat_lift(q + steps)) - np.asarray(flat_lift(q - steps))).T
    jac /= 2 * h
    theta = chart.lift(jnp.asarray(q))
    action = chart.action
    orbit = jax.jit(
        jax.vmap(lambda xi: ravel_pytree(action.act(theta, action.exp(xi)))[0])
    )
    xi = h * np.eye(action.algebra_dim)
    tangents = (np.asarray(orbit(xi)) - np.asarray(orbit(-xi))).T / (2 * h)
    coefficients = np.linalg.lstsq(tangents, jac, rcond=None)[0]
    horizontal = jac - tangents @ coefficients
    return horizontal.T @ horizontal


def _dense_and_lsmr_metrics(chart, q):
    """The dense metric and the matrix-free LSMR one, materialised (the
    default operator is compared with the dense one in test_charts.py)."""
    lsmr = lx.LSMR(rtol=1e-14, atol=0.0, max_steps=1000)
    operator = jax.vmap(lambda v: chart.metric_operator(q, solver=lsmr).mv(v))
    return {
        "dense": jax.jit(chart.metric)(q),
        "lsmr": jax.jit(operator)(jnp.eye(q.size)),
    }


_REFERENCE_CHARTS = {
    "two-layer": TwoLayerReLUChart(3, 1),
    "sphere": SphereChart((4,)),
    "mlp": ReLUMLPChart((2, 3, 2, 1)),
    "attention": MultiHeadAttentionChart(d_model=3, heads=2, d_k=1, d_v=2),
}


@pytest.mark.parametrize("name", sorted(_REFERENCE_CHARTS))
def test_dense_and_matrix_free_metrics_match_independent_references(name):
    chart = _REFERENCE_CHARTS[name]
    params = jax.tree_util.tree_map(
        lambda x: x / jnp.sqrt(max(x.size, 1)), random_params(chart, 30)
    )
    q = chart.project(params)
    if name == "two-layer":  # |γ_j| ~ 1, where differences of √|γ| are accurate
        q = jnp.array([0.8, -1.3, 0.6, 0.3, 2.0, -1.0, 0.5])
    reference = _numpy_quotient_metric(chart, q)
    scale = np.linalg.norm(reference)
    metrics = _dense_and_lsmr_metrics(chart, q)
    for path, g in metrics.items():
        err = np.linalg.norm(np.asarray(g) - reference) / scale
        assert err < 1e-8, (path, err)
    closed = {  # closed forms, exact to round-off
        "two-layer": lambda q: np.diag(
            np.concatenate([1 / (2 * np.abs(q[:3])), np.abs(q[:3]), [1.0]])
        ),
        "sphere": lambda q: 4 / (1 + q @ q) ** 2 * np.eye(q.size),
    }
    if name in closed:
        exact = closed[name](np.asarray(q))
        for path, g in metrics.items():
            np.testing.assert_allclose(g, exact, rtol=1e-10, atol=1e-13, err_msg=path)
