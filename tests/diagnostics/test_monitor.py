"""The Monitor inside real optax loops (flax.nnx and equinox), compiled once,
against direct curvature calls, gauge behaviour; the JSON-lines logger."""

import json
import math

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from geomshock.charts import TwoLayerReLUChart, mlp_chart_from_eqx, mlp_chart_from_nnx
from geomshock.diagnostics import JSONLinesLogger, Monitor, quotient_curvature

X = jax.random.normal(jax.random.PRNGKey(0), (32, 2))
Y = jnp.sin(2 * X[:, :1]) * X[:, 1:]
QUOTIENT = ("quotient_laplacian", "quotient_min_eig", "quotient_max_eig")
RAW = ("raw_laplacian", "raw_min_eig", "raw_max_eig", "raw_norm")


def counted_loss(chart, counter):
    def loss(params, batch):
        counter.append(1)  # runs once per trace, never when a compiled call runs
        x, y = batch
        return jnp.mean((chart.apply(params, x) - y) ** 2)

    return loss


def eqx_params(model):
    """Chart params of an ``eqx.nn.MLP`` (jittable; the adapter's checks are not)."""
    return tuple({"W": layer.weight, "b": layer.bias} for layer in model.layers)


TRACES = []


@pytest.fixture(scope="module")
def chart():
    model = eqx.nn.MLP(2, 1, 8, 1, activation=jax.nn.relu, key=jax.random.PRNGKey(3))
    return mlp_chart_from_eqx(model)[0]


@pytest.fixture(scope="module")
def monitor(chart):
    # One monitor for both loops (the nnx and eqx adapters give the same chart):
    # compiling quotient curvature for a ReLU MLP chart takes ~30 s on a loaded
    # CPU, so it is compiled once here (dense; lanczos is checked against it in
    # tests/diagnostics/test_curvature.py).
    return Monitor(counted_loss(chart, TRACES), chart, method="dense")


@pytest.fixture(scope="module")
def nnx_run(chart, monitor):
    model = nnx.Sequential(
        nnx.Linear(2, 8, rngs=nnx.Rngs(1)), nnx.relu, nnx.Linear(8, 1, rngs=nnx.Rngs(2))
    )
    optimizer = nnx.Optimizer(model, optax.sgd(0.05), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        optimizer.update(model, grads)

    assert mlp_chart_from_nnx(model)[0] == chart
    records, counts = [], []
    for step in range(30):
        train_step(model, optimizer, X, Y)
        if step % 10 == 0:
            params = mlp_chart_from_nnx(model)[1]
            records.append((params, monitor(params, (X, Y), step)))
            counts.append(len(TRACES))
    return records, counts


def test_nnx_loop_compiles_once(chart, monitor, nnx_run):
    records, counts = nnx_run
    assert counts[0] > 0 and counts[-1] == counts[0], counts  # no retrace
    params, out = records[-1]
    assert int(out["step"]) == 20
    loss = lambda p: jnp.mean((chart.apply(p, X) - Y) ** 2)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    value, hess = jax.jit(
        lambda v: (loss(unravel(v)), jax.hessian(lambda w: loss(unravel(w)))(v))
    )(flat)
    assert float(out["loss"]) == pytest.approx(float(value), rel=1e-12)
    # Raw curvature against numpy on the dense Hessian.
    eigs = np.linalg.eigvalsh(np.asarray(hess))
    assert float(out["raw_max_eig"]) == pytest.approx(eigs[-1], rel=1e-9)
    assert float(out["raw_min_eig"]) == pytest.approx(eigs[0], rel=1e-9)
    assert float(out["raw_laplacian"]) == pytest.approx(np.trace(hess), rel=1e-9)
    assert float(out["raw_norm"]) == pytest.approx(np.linalg.norm(flat), rel=1e-12)
    # Training moved the loss; the monitor saw it.
    assert float(records[-1][1]["loss"]) < float(records[0][1]["loss"])


def test_gauge_moves_raw_not_quotient(chart, monitor, nnx_run):
    records, counts = nnx_run
    params, out = records[-1]
    gauged = chart.gauge(params, jax.random.PRNGKey(7), 1.0)
    moved = monitor(gauged, (X, Y), 20)
    assert len(TRACES) == counts[0]
    for name in ("loss", "quotient_min_eig", "quotient_max_eig"):
        assert float(moved[name]) == pytest.approx(float(out[name]), rel=1e-7), name
    assert abs(float(moved["raw_norm"]) / float(out["raw_norm"]) - 1) > 1e-2
    assert abs(float(moved["raw_max_eig"]) / float(out["raw_max_eig"]) - 1) > 1e-2


def test_equinox_loop_and_logger(monitor, tmp_path):
    model = eqx.nn.MLP(2, 1, 8, 1, activation=jax.nn.relu, key=jax.random.PRNGKey(3))
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def train_step(model, opt_state, step):
        loss = lambda m: jnp.mean((jax.vmap(m)(X) - Y) ** 2)
        value, grads = eqx.filter_value_and_grad(loss)(model)
        updates, opt_state = optimizer.update(grads, opt_state, model)
        return eqx.apply_updates(model, updates), opt_state, value

    path = tmp_path / "run.jsonl"
    before = len(TRACES)
    with JSONLinesLogger(path) as log:
        for step in range(12):
            model, opt_state, value = train_step(model, opt_state, step)
            if step % 5 == 0:
                log(monitor(eqx_params(model), (X, Y), step), train_loss=value)
    assert len(TRACES) == before  # the nnx loop compiled it; same shapes here
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 5, 10]
    for line in lines:
        assert all(math.isfinite(line[name]) for name in QUOTIENT + RAW + ("loss",))
        assert line["train_loss"] > line["loss"]  # measured after the update


def test_monitor_is_the_curvature_calls_under_jit():
    chart = TwoLayerReLUChart(width=2, in_dim=1)
    x = jnp.linspace(-1.0, 1.0, 8)[:, None]
    batch = (x, jnp.abs(x))
    loss = lambda p, b: jnp.mean((chart.apply(p, b[0]) - b[1]) ** 2)
    params = chart.lift(jnp.array([1.0, -0.5, 0.3, 2.0, 0.1]))
    monitor = Monitor(
        loss, chart, raw=False, observables=lambda p, b: {"extra": p["c"]}
    )

    @jax.jit
    def both(p):
        potential = lambda q: loss(q, batch)
        return monitor(p, batch, 4), quotient_curvature(potential, chart, p)

    out, quotient = both(params)
    for name in ("laplacian", "min_eig", "max_eig"):
        assert float(out[f"quotient_{name}"]) == pytest.approx(float(quotient[name]))
    assert float(out["extra"]) == float(params["c"]) and int(out["step"]) == 4


def test_json_lines_logger(tmp_path):
    path = tmp_path / "log.jsonl"
    with JSONLinesLogger(path) as log:
        log({"a": jnp.array(1.5), "v": jnp.arange(3), "ok": jnp.array(True)})
        log({"x": jnp.array([jnp.inf, jnp.nan, 2.0])}, step=np.int64(4))
    with JSONLinesLogger(path) as log:  # appends
        log({"m": np.ones((2, 2), np.float32)})
    first, second, third = (json.loads(s) for s in path.read_text().splitlines())
    assert first == {"a": 1.5, "v": [0, 1, 2], "ok": True}
    assert second["step"] == 4 and second["x"][0] == "inf" and second["x"][2] == 2.0
    assert math.isnan(float(second["x"][1]))
    assert third == {"m": [[1.0, 1.0], [1.0, 1.0]]}
    with pytest.raises(ValueError, match="closed"):
        log({"late": 1.0})


def test_monitor_rejects_bad_arguments():
    chart, _ = mlp_chart_from_eqx(
        eqx.nn.MLP(2, 1, 4, 1, activation=jax.nn.relu, key=jax.random.PRNGKey(0))
    )
    with pytest.raises(ValueError, match="loss must be callable"):
        Monitor(None, chart)
    with pytest.raises(ValueError, match="observables must be"):
        Monitor(lambda p, b: 0.0, chart, observables="yes")
