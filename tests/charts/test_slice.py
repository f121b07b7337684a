"""The Sec. 3.1 slice of the two-layer ReLU quotient: rotation of s_1, chart metric."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomshock.charts import TwoLayerReLUChart, quotient_slice
from geomshock.experiments._sec31_train import TrainConfig, bce_loss, make_data


@pytest.fixture(scope="module")
def params():
    """Balanced parameters of a width-2 ReLU network (any regular point will do)."""
    chart = TwoLayerReLUChart(2, 1)
    raw = {
        "a": jnp.array([0.7, -2.0]),
        "u": jnp.array([[1.5, -0.3], [-0.2, 0.9]]),
        "c": jnp.array(0.1),
    }
    return chart.lift(chart.project(raw))


def _rotated_loss(params, theta, unit, x, y):
    s = params["u"][unit] / np.linalg.norm(params["u"][unit])
    J = np.array([[0.0, -1.0], [1.0, 0.0]])
    rotated = np.linalg.norm(params["u"][unit]) * (
        np.cos(theta) * s + np.sin(theta) * J @ s
    )
    manual = {**params, "u": jnp.asarray(params["u"]).at[unit].set(rotated)}
    return bce_loss(manual, x, y)


@pytest.mark.parametrize("unit", [0, 1])
def test_slice_is_rotation_of_s_unit_with_chart_metric(params, unit):
    x, y = make_data(TrainConfig())
    chart = TwoLayerReLUChart(2, 1)
    angles = jnp.array([0.0, 0.4, 0.4 + 2 * np.pi, 0.7])

    @jax.jit
    def along(p):
        U, g, variation = quotient_slice(
            chart, p, lambda q: bce_loss(q, x, y), unit=unit
        )
        return jax.vmap(U)(angles), g, variation

    values, g, variation = along(params)
    gamma = params["a"][unit] * np.linalg.norm(params["u"][unit])
    np.testing.assert_allclose(g, abs(gamma), rtol=1e-12)  # g_θθ = |γ_j|
    assert variation < 1e-12
    np.testing.assert_allclose(values[0], bce_loss(params, x, y), rtol=1e-12)
    np.testing.assert_allclose(values[2], values[1], rtol=1e-12)  # 2π-periodic
    # Independently: s_j(θ) = cos θ s_j* + sin θ J s_j*, J the quarter turn.
    np.testing.assert_allclose(
        values[3], _rotated_loss(params, 0.7, unit, x, y), rtol=1e-12
    )


def test_slice_errors():
    p = {"a": jnp.ones(2), "u": jnp.ones((2, 2)), "c": jnp.zeros(())}
    with pytest.raises(ValueError, match=r"TwoLayerReLUChart\(width, 1\)"):
        quotient_slice(TwoLayerReLUChart(2, 2), p, lambda q: 0.0)
    with pytest.raises(
        ValueError, match=r"unit must be a hidden unit index in \[0, 2\)"
    ):
        quotient_slice(TwoLayerReLUChart(2, 1), p, lambda q: 0.0, unit=2)
    with pytest.raises(ValueError, match="loss must be callable"):
        quotient_slice(TwoLayerReLUChart(2, 1), p, "bce")
