"""Mean-field push-forward with measure comparison; flax and equinox adapters."""

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from flax import nnx

from geomshock.charts import (
    EmpiricalMeasure,
    MeanFieldChart,
    energy_distance,
    eqx_mlp_from_params,
    flax_variables_from_params,
    gaussian_mmd,
    mlp_chart_from_eqx,
    mlp_chart_from_flax,
    mlp_chart_from_nnx,
    nnx_mlp_from_params,
)


def particles(key, n, in_dim=1):
    ka, ku = jax.random.split(key)
    return {
        "a": jax.random.normal(ka, (n,)),
        "u": jax.random.normal(ku, (n, in_dim + 1)),
    }


def test_push_forward_is_gauge_and_permutation_invariant():
    chart = MeanFieldChart(in_dim=2)
    params = particles(jax.random.PRNGKey(0), 40, 2)
    moved = chart.gauge(params, jax.random.PRNGKey(1), scale=1.0)
    x = jax.random.normal(jax.random.PRNGKey(2), (7, 2))
    np.testing.assert_allclose(
        chart.apply(moved, x), chart.apply(params, x), rtol=1e-12
    )
    mu, mu_moved = chart.push_forward(params), chart.push_forward(moved)
    assert abs(float(energy_distance(mu, mu_moved))) < 1e-12
    # Raw particles move: the unreduced measures differ.
    raw = lambda p: EmpiricalMeasure(
        jnp.concatenate([p["a"][:, None], p["u"]], 1), mu.weights
    )
    assert energy_distance(raw(params), raw(moved)) > 1e-2
    # The balanced lift reproduces the measure and the network function.
    lifted = chart.lift(mu)
    np.testing.assert_allclose(
        jnp.abs(lifted["a"]), jnp.linalg.norm(lifted["u"], axis=1)
    )
    np.testing.assert_allclose(
        chart.apply(lifted, x), chart.apply(params, x), rtol=1e-12
    )


def test_energy_distance_matches_scipy_in_one_dimension():
    x = jax.random.normal(jax.random.PRNGKey(3), (30,))
    y = 0.5 + 1.3 * jax.random.normal(jax.random.PRNGKey(4), (25,))
    mu = EmpiricalMeasure(x[:, None], jnp.full(30, 1 / 30))
    nu = EmpiricalMeasure(y[:, None], jnp.full(25, 1 / 25))
    expected = scipy.stats.energy_distance(np.asarray(x), np.asarray(y))
    np.testing.assert_allclose(jnp.sqrt(energy_distance(mu, nu)), expected, rtol=1e-12)


def test_measure_distances_jit_vmap_grad():
    mu = MeanFieldChart(1).push_forward(particles(jax.random.PRNGKey(5), 12))
    shifts = jnp.linspace(0.0, 1.0, 3)

    def dist(shift):
        nu = EmpiricalMeasure(mu.points.at[:, 0].add(shift), mu.weights)
        return energy_distance(mu, nu), gaussian_mmd(mu, nu, 0.7)

    batched = jax.jit(jax.vmap(dist))(shifts)
    loop = [dist(s) for s in shifts]
    for k in range(2):
        np.testing.assert_allclose(
            batched[k], jnp.stack([r[k] for r in loop]), rtol=1e-12, atol=1e-15
        )
    assert abs(float(batched[0][0])) < 1e-14 and batched[0][2] > batched[0][1] > 0
    h = 1e-5
    fd = (dist(0.3 + h)[0] - dist(0.3 - h)[0]) / (2 * h)
    np.testing.assert_allclose(jax.grad(lambda s: dist(s)[0])(0.3), fd, rtol=1e-7)


def test_mean_field_bad_input():
    with pytest.raises(ValueError, match="in_dim must be >= 1"):
        MeanFieldChart(0)
    with pytest.raises(ValueError, match="expects particles"):
        MeanFieldChart(1).push_forward({"a": jnp.ones(3), "u": jnp.ones((3, 3))})
    with pytest.raises(
        (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError), match="dead particle"
    ):
        MeanFieldChart(1).push_forward({"a": jnp.ones(2), "u": jnp.zeros((2, 2))})


class FlaxMLP(nn.Module):
    features: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        for f in self.features[:-1]:
            x = nn.relu(nn.Dense(f)(x))
        return nn.Dense(self.features[-1])(x)


def test_flax_adapter_round_trips_real_model():
    model = FlaxMLP((4, 3, 2))
    x = jax.random.normal(jax.random.PRNGKey(6), (9, 3))
    variables = model.init(jax.random.PRNGKey(7), x)
    chart, params = mlp_chart_from_flax(variables, model)
    assert chart.layer_sizes == (3, 4, 3, 2)
    reference = model.apply(variables, x)
    np.testing.assert_allclose(chart.apply(params, x), reference, rtol=1e-12)
    back = flax_variables_from_params(params, variables)
    np.testing.assert_allclose(model.apply(back, x), reference, rtol=1e-12)
    moved = flax_variables_from_params(
        chart.gauge(params, jax.random.PRNGKey(8)), variables
    )
    np.testing.assert_allclose(model.apply(moved, x), reference, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(
        chart.project(mlp_chart_from_flax(moved, model)[1]),
        chart.project(params),
        atol=1e-12,
    )
    with pytest.raises(ValueError, match="Dense layers named like 'Dense_0'"):
        mlp_chart_from_flax({"params": {"Dense_0": {"weight": jnp.ones((2, 2))}}})


def test_eqx_adapter_round_trips_real_model():
    model = eqx.nn.MLP(3, 2, 4, 2, activation=jax.nn.relu, key=jax.random.PRNGKey(9))
    x = jax.random.normal(jax.random.PRNGKey(10), (9, 3))
    chart, params = mlp_chart_from_eqx(model)
    assert chart.layer_sizes == (3, 4, 4, 2)
    reference = jax.vmap(model)(x)
    np.testing.assert_allclose(chart.apply(params, x), reference, rtol=1e-12)
    moved = eqx_mlp_from_params(model, chart.gauge(params, jax.random.PRNGKey(11)))
    np.testing.assert_allclose(jax.vmap(moved)(x), reference, rtol=1e-12, atol=1e-13)
    lifted = jax.jit(lambda p: chart.lift(chart.project(p)))(params)
    balanced = eqx_mlp_from_params(model, lifted)
    np.testing.assert_allclose(jax.vmap(balanced)(x), reference, rtol=1e-11, atol=1e-12)
    with pytest.raises(ValueError, match="activation=jax.nn.relu"):
        mlp_chart_from_eqx(
            eqx.nn.MLP(3, 2, 4, 2, key=jax.random.PRNGKey(0), activation=jnp.tanh)
        )
    with pytest.raises(ValueError, match="expected an eqx.nn.MLP"):
        mlp_chart_from_eqx(eqx.nn.Linear(2, 2, key=jax.random.PRNGKey(0)))


class NnxMLP(nnx.Module):
    def __init__(self, sizes, *, rngs, activation=jax.nn.relu):
        pairs = zip(sizes[:-1], sizes[1:], strict=True)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in pairs])
        self.activation = activation

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


@pytest.mark.parametrize("kind", ["module", "sequential"])
def test_nnx_adapter_round_trips_real_model(kind):
    rngs = nnx.Rngs(12)
    if kind == "module":
        model = NnxMLP((3, 4, 4, 2), rngs=rngs)
    else:
        model = nnx.Sequential(
            nnx.Linear(3, 4, rngs=rngs),
            nnx.relu,
            nnx.Linear(4, 4, rngs=rngs),
            nnx.relu,
            nnx.Linear(4, 2, rngs=rngs),
        )
    x = jax.random.normal(jax.random.PRNGKey(13), (9, 3))
    chart, params = mlp_chart_from_nnx(model)
    assert chart.layer_sizes == (3, 4, 4, 2)
    # nnx keeps float32 parameters: compare at float32 precision
    reference = model(x.astype(jnp.float32))
    np.testing.assert_allclose(chart.apply(params, x), reference, rtol=1e-5, atol=1e-6)
    moved = chart.gauge(params, jax.random.PRNGKey(14))
    moved_model = nnx_mlp_from_params(model, moved)
    np.testing.assert_allclose(
        moved_model(x.astype(jnp.float32)), reference, rtol=1e-5, atol=1e-5
    )
    # the original model is untouched; the copy carries the gauge-moved weights
    assert not np.allclose(
        moved_model.layers[0].kernel[...], model.layers[0].kernel[...]
    )
    np.testing.assert_allclose(
        chart.project(mlp_chart_from_nnx(moved_model)[1]),
        chart.project(params),
        rtol=1e-5,
        atol=1e-5,
    )


def test_nnx_adapter_refuses_other_architectures():
    rngs = nnx.Rngs(15)
    with pytest.raises(ValueError, match="does not compute the ReLU MLP"):
        mlp_chart_from_nnx(NnxMLP((3, 4, 2), rngs=rngs, activation=jnp.tanh))
    with pytest.raises(ValueError, match="expected a flax.nnx.Module"):
        mlp_chart_from_nnx(eqx.nn.Linear(2, 2, key=jax.random.PRNGKey(0)))
    with pytest.raises(ValueError, match="no nnx.Linear layers"):
        mlp_chart_from_nnx(nnx.Sequential(nnx.relu))


class NamedLinenMLP(nn.Module):
    """Layers under chosen names, in module (setup) order."""

    activation: object = nn.relu

    def setup(self):
        self.hidden = nn.Dense(4)
        self.middle = nn.Dense(3)
        self.readout = nn.Dense(2)

    def __call__(self, x):
        x = self.activation(self.hidden(x))
        return self.readout(self.activation(self.middle(x)))


def test_flax_adapter_accepts_any_layer_names_in_module_order():
    model = NamedLinenMLP()
    x = jax.random.normal(jax.random.PRNGKey(20), (7, 3))
    variables = model.init(jax.random.PRNGKey(21), x)
    assert list(variables["params"]) == ["hidden", "middle", "readout"]
    chart, params = mlp_chart_from_flax(variables, model)
    assert chart.layer_sizes == (3, 4, 3, 2)
    np.testing.assert_allclose(
        chart.apply(params, x), model.apply(variables, x), rtol=1e-12
    )
    back = flax_variables_from_params(params, variables)
    np.testing.assert_allclose(
        model.apply(back, x), model.apply(variables, x), rtol=1e-12
    )


def test_flax_adapter_refuses_a_gelu_mlp_and_warns_without_model():
    from geomshock.charts._adapters import UncheckedArchitectureWarning

    gelu = NamedLinenMLP(activation=nn.gelu)
    variables = gelu.init(jax.random.PRNGKey(22), jnp.ones((1, 3)))
    with pytest.raises(ValueError, match="does not compute the ReLU MLP"):
        mlp_chart_from_flax(variables, gelu)
    with pytest.warns(UncheckedArchitectureWarning, match="pass model="):
        mlp_chart_from_flax(variables)


def test_import_geomshock_does_not_load_flax():
    import subprocess
    import sys

    code = "import geomshock, sys; print('flax' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
