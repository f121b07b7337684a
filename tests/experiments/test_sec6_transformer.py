"""Sec. 6 transformer: task, event rule, quick Trace end to end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomshock.experiments import _sec6_transformer as st
from tests.experiments._traces import CURVATURE_SIGNALS, assert_well_formed


def test_plateau_value_is_the_uniform_attention_optimum():
    """Zero query/key weights: uniform attention; with ``W_V W_O`` the
    identity on the content, the prediction is the mean content and the loss
    is ``½(1 − 1/T)`` (Monte Carlo, 4096 sequences, 5 standard errors)."""
    chart = st.attention_chart().chart
    d = st._CONTENT + st._LENGTH
    shapes = chart.params_shape
    eye = jnp.eye(d)
    params = {
        "wq": jnp.zeros(shapes["wq"].shape).at[0, 0, 0].set(1e-300),
        "wk": jnp.zeros(shapes["wk"].shape),
        "wv": eye[None, :, : st._D_V],
        "wo": eye[None, : st._D_V, :],
    }
    x, y = st.sample_batch(jax.random.key(0), 4096)
    pred = chart.apply(params, x)[:, -1, : st._CONTENT]
    per = 0.5 * jnp.sum((pred - y) ** 2, -1) / st._CONTENT
    se = float(per.std()) / np.sqrt(per.shape[0])
    assert abs(float(per.mean()) - st.plateau_value()) < 5 * se
    np.testing.assert_allclose(
        st.batch_loss(chart, params, x, y), per.mean(), rtol=1e-12
    )


def test_event_step_against_numpy():
    losses = np.abs(np.random.default_rng(0).normal(size=200)) + np.where(
        np.arange(200) < 120, 1.0, 0.0
    )
    window, level = 20, 0.9
    trailing = np.convolve(losses, np.ones(window) / window, "valid")
    want = np.flatnonzero(trailing < level)[0] + window
    got = jax.jit(lambda ls: st.event_step(ls, level, window))(jnp.asarray(losses))
    assert int(got) == want
    assert int(st.event_step(jnp.ones(50), 0.5, 10)) == -1
    batched = jax.vmap(lambda ls: st.event_step(ls, level, window))(
        jnp.stack([jnp.asarray(losses), jnp.ones(200)])
    )
    assert batched.tolist() == [want, -1]


@pytest.fixture(scope="module")
def trace():
    return st.run(quick=True, seeds=4, key=jax.random.key(0))


def test_quick_trace(trace):
    steps, loss, event = assert_well_formed(trace, CURVATURE_SIGNALS)
    # the transition is abrupt: near the plateau before, far below it after
    eps_p = trace["meta"]["plateau_value"]
    assert np.all(loss[:, 0] > 0.8 * eps_p)
    assert np.all(loss[event >= 0, -1] < 0.05 * eps_p)


def test_quick_trace_gauge(trace):
    """Quotient signals are gauge-invariant: min eig to 1e-8 of its scale, the
    Laplacian (third derivatives of the lift, where the GL
    gauge's rounding in ``project`` is amplified most) to 1e-5 (measured: 1.5e-6
    at worst over 32 seeds); raw norm and raw Hessian eigenvalues move by large
    factors."""
    sig, gauged = trace["signals"], trace["signals_gauged"]
    tolerance = {
        "quotient_min_eig": 1e-8,
        "quotient_laplacian": 1e-5,
    }
    for name, rel in tolerance.items():
        scale = np.max(np.abs(sig[name]))
        np.testing.assert_allclose(gauged[name], sig[name], rtol=0, atol=rel * scale)
    for name in ("raw_norm", "raw_max_eig"):
        ratio = np.abs(gauged[name] / sig[name])
        assert np.max(np.abs(np.log(ratio))) > np.log(1.5)
