"""geomshock.optim: quotient local-entropy optimizers in real optax loops.

Exact references: the chart-format run (for the nnx/equinox loops), the
deterministic inner chain at ν → 0 (a linear recursion), quotient gradient
descent ``q − η∇U`` and ``q − η g⁻¹∇U`` (the ν → 0 limit of the Feynman–Kac
step), and the gauge: runs from two representatives of one orbit.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from geomshock.charts import CanonicalOrderChart, mlp_chart_from_eqx, mlp_chart_from_nnx
from geomshock.optim import (
    ParamsMap,
    eqx_params_map,
    nnx_params_map,
    quotient_entropy_sgd,
    quotient_local_entropy,
)
from tests._errors import raises_eager_and_jit

X = jax.random.normal(jax.random.key(0), (32, 2))
Y = jnp.sin(2 * X[:, :1]) * X[:, 1:]
STEPS = 12
INNER = 4


def _batches(key):
    idx = jax.random.randint(key, (INNER, 8), 0, X.shape[0])
    return X[idx], Y[idx]


def _chart_loss(chart):
    def loss(params, batch):
        xb, yb = batch
        return jnp.mean((chart.apply(params, xb) - yb) ** 2)

    return loss


def _run(opt, value_fn, params, *, minibatch):
    """``STEPS`` optax steps under jit; the params after every step."""

    def step(carry, key):
        params, state = carry
        if minibatch:
            extra = {"value_fn": value_fn, "batches": _batches(key)}
        else:
            extra = {"value_fn": value_fn}
        updates, state = opt.update(params, state, params, key=key, **extra)
        params = optax.apply_updates(params, updates)
        return (params, state), params

    keys = jax.random.split(jax.random.key(1), STEPS)
    return jax.lax.scan(step, (params, opt.init(params)), keys)[1]


def _sgld(chart, **kw):
    return quotient_entropy_sgd(chart, 0.05, 1e-3, 0.5, 0.05, **kw)


def _nnx_model():
    f64 = {"param_dtype": jnp.float64}
    return nnx.Sequential(
        nnx.Linear(2, 4, rngs=nnx.Rngs(0), **f64),
        nnx.relu,
        nnx.Linear(4, 1, rngs=nnx.Rngs(1), **f64),
    )


@pytest.fixture(scope="module")
def nnx_setup():
    model = _nnx_model()
    chart, params = mlp_chart_from_nnx(model)
    run = jax.jit(lambda p: _run(_sgld(chart), _chart_loss(chart), p, minibatch=True))
    return chart, params, run(params)


def test_nnx_optimizer_loop_matches_the_chart_run(nnx_setup):
    chart, _, reference = nnx_setup
    model = _nnx_model()
    graphdef, _ = nnx.split(model)

    def value_fn(state, batch):
        return jnp.mean((nnx.merge(graphdef, state)(batch[0]) - batch[1]) ** 2)

    optimizer = nnx.Optimizer(
        model, _sgld(chart, params_map=nnx_params_map(model)), wrt=nnx.Param
    )

    @nnx.jit
    def train_step(model, optimizer, key):
        grads = nnx.grad(lambda m: jnp.mean((m(X) - Y) ** 2))(model)
        optimizer.update(
            model, grads, value_fn=value_fn, batches=_batches(key), key=key
        )

    losses = []
    for i, key in enumerate(jax.random.split(jax.random.key(1), STEPS)):
        train_step(model, optimizer, key)
        _, got = mlp_chart_from_nnx(model)
        want = jax.tree_util.tree_map(lambda a, i=i: a[i], reference)
        for a, b in zip(
            jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        losses.append(float(jnp.mean((model(X) - Y) ** 2)))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("natural", [False, True])
def test_equinox_loop_at_zero_viscosity_is_quotient_gradient_descent(natural):
    """ν → 0: u^ν → U, so the step is q − η∇U (or q − η g⁻¹∇U), exactly up to
    the paths' spread sqrt(ντ) = 1e-12 (the loop runs on an equinox model)."""
    model = eqx.nn.MLP(2, 1, 4, 1, activation=jax.nn.relu, key=jax.random.key(2))
    chart, chart_params = mlp_chart_from_eqx(model)
    params, static = eqx.partition(model, eqx.is_array)

    def value_fn(p):
        return jnp.mean((jax.vmap(eqx.combine(p, static))(X) - Y) ** 2)

    lr = 0.05
    opt = quotient_local_entropy(
        chart,
        lr,
        1e-24,
        1.0,
        num_paths=2,
        metric=None,
        natural=natural,
        params_map=eqx_params_map(),
    )
    got = jax.jit(lambda p: _run(opt, value_fn, p, minibatch=False))(params)
    potential = lambda q: _chart_loss(chart)(chart.lift(q), (X, Y))  # noqa: E731

    def exact(q, _):
        g = jax.grad(potential)(q)
        q = q - lr * (jnp.linalg.solve(chart.metric(q), g) if natural else g)
        return q, q

    _, want = jax.lax.scan(exact, chart.project(chart_params), None, length=STEPS)
    got_q = jax.vmap(lambda p: chart.project(eqx_params_map().to_chart(p)))(got)
    np.testing.assert_allclose(got_q, want, rtol=1e-9, atol=1e-11)
    assert value_fn(jax.tree_util.tree_map(lambda a: a[-1], got)) < value_fn(params)


def test_function_space_trajectory_is_gauge_invariant(nnx_setup):
    chart, params, _ = nnx_setup
    ordered = CanonicalOrderChart(chart)
    moved = ordered.gauge(params, jax.random.key(5), scale=1.0)  # rescale + permute
    loss = _chart_loss(chart)

    def outputs(opt):
        run = jax.jit(lambda p: _run(opt, loss, p, minibatch=True))
        return [jax.vmap(lambda p: chart.apply(p, X))(run(p)) for p in (params, moved)]

    a, b = outputs(_sgld(ordered))
    assert float(jnp.max(jnp.abs(a - b))) < 1e-10
    raw_a, raw_b = outputs(_sgld(None))
    assert float(jnp.max(jnp.abs(raw_a - raw_b))) > 1e-3  # raw Entropy-SGD is not


def _quadratic():
    a = jnp.array([1.0, 3.0])
    return a, lambda p, batch=None: 0.5 * jnp.sum(a * p**2)


def test_inner_chain_at_zero_temperature_is_the_exact_recursion():
    a, loss = _quadratic()
    q = jnp.array([1.0, -2.0])
    lr, tau, eta = 0.3, 0.5, 0.1
    opt = quotient_entropy_sgd(None, lr, 1e-30, tau, eta)
    updates, _ = opt.update(
        q,
        opt.init(q),
        q,
        value_fn=loss,
        batches=jnp.zeros((5, 1)),
        key=jax.random.key(0),
    )
    y, ys = np.asarray(q), []
    for _ in range(5):  # y ← y − η'(a y + (y − q)/τ)
        y = y - eta * (np.asarray(a) * y + (y - np.asarray(q)) / tau)
        ys.append(y)
    want = -lr * (np.asarray(q) - np.mean(ys, axis=0)) / tau
    np.testing.assert_allclose(updates, want, rtol=1e-13)


def test_inject_hyperparams_schedules_and_vmaps_nu():
    _, loss = _quadratic()
    q = jnp.array([1.0, -2.0])
    batches, key = jnp.zeros((3, 1)), jax.random.key(3)
    schedule = optax.piecewise_constant_schedule(0.01, {2: 10.0})
    opt = optax.inject_hyperparams(quotient_entropy_sgd)(
        chart=None, learning_rate=0.2, nu=schedule, tau=0.5, inner_learning_rate=0.1
    )
    update = jax.jit(
        lambda s: opt.update(q, s, q, value_fn=loss, batches=batches, key=key)
    )
    state = opt.init(q)
    for _ in range(3):
        updates, state = update(state)
    assert float(state.hyperparams["nu"]) == pytest.approx(0.1)
    plain = quotient_entropy_sgd(None, 0.2, 0.1, 0.5, 0.1)
    want, _ = plain.update(q, plain.init(q), q, value_fn=loss, batches=batches, key=key)
    np.testing.assert_allclose(updates, want, rtol=1e-13)

    def step(nu):
        opt = quotient_entropy_sgd(None, 0.2, nu, 0.5, 0.1)
        return opt.update(q, opt.init(q), q, value_fn=loss, batches=batches, key=key)[0]

    nus = jnp.array([1e-3, 1e-2, 1e-1])
    one = jax.jit(step)
    np.testing.assert_allclose(
        jax.jit(jax.vmap(step))(nus), jnp.stack([one(n) for n in nus]), rtol=1e-12
    )


def _sgld_step(nu, tau, eta):
    _, loss = _quadratic()
    q = jnp.array([1.0, -2.0])
    opt = quotient_entropy_sgd(None, 0.2, nu, tau, eta)
    return opt.update(
        q,
        opt.init(q),
        q,
        value_fn=loss,
        batches=jnp.zeros((2, 1)),
        key=jax.random.key(0),
    )[0]


@pytest.mark.parametrize(
    "args, match",
    [
        ((-1.0, 0.5, 0.1), "nu must be finite and > 0"),
        ((0.1, 0.0, 0.1), "tau must be finite and > 0"),
        ((0.1, 0.5, jnp.nan), "inner_learning_rate must be finite and > 0"),
    ],
)
def test_bad_hyperparameters_raise_eagerly_and_under_jit(args, match):
    raises_eager_and_jit(_sgld_step, *map(jnp.asarray, args), match=match)


def test_bad_local_entropy_nu_raises_eagerly_and_under_jit():
    _, loss = _quadratic()
    q = jnp.array([1.0, -2.0])

    def step(nu):
        opt = quotient_local_entropy(None, 0.1, nu, 0.5, num_paths=2, metric=None)
        return opt.update(q, opt.init(q), q, value_fn=loss, key=jax.random.key(0))[0]

    raises_eager_and_jit(step, jnp.asarray(-1.0), match="nu must be finite and > 0")


def test_bad_arguments_raise():
    _, loss = _quadratic()
    q = jnp.array([1.0, -2.0])
    opt = quotient_entropy_sgd(None, 0.2, 0.1, 0.5, 0.1)
    state = opt.init(q)
    with pytest.raises(ValueError, match="value_fn .* must be callable"):
        opt.update(q, state, q, batches=jnp.zeros((2, 1)), key=jax.random.key(0))
    with pytest.raises(ValueError, match="needs key="):
        opt.update(q, state, q, value_fn=loss, batches=jnp.zeros((2, 1)))
    with pytest.raises(ValueError, match="same leading axis"):
        opt.update(
            q,
            state,
            q,
            value_fn=loss,
            key=jax.random.key(0),
            batches=(jnp.zeros((2, 1)), jnp.zeros((3, 1))),
        )
    with pytest.raises(ValueError, match="num_paths must be an integer ≥ 2"):
        quotient_local_entropy(None, 0.1, 0.1, 0.5, num_paths=1, metric=None).init(q)
    traced = optax.inject_hyperparams(quotient_local_entropy)(
        chart=None, learning_rate=0.1, nu=0.1, tau=0.5, num_paths=4, metric=None
    )
    with pytest.raises(ValueError, match="static_args=\\('num_paths',\\)"):
        jax.jit(lambda s: traced.update(q, s, q, value_fn=loss, key=jax.random.key(0)))(
            traced.init(q)
        )
    with pytest.raises(ValueError, match="flat metric only"):
        quotient_local_entropy(None, 0.1, 0.1, 0.5, metric="chart")
    with pytest.raises(ValueError, match="chart must be a geomshock chart"):
        quotient_entropy_sgd("mlp", 0.1, 0.1, 0.5, 0.1)
    with pytest.raises(ValueError, match="ParamsMap.to_chart must be callable"):
        ParamsMap(to_chart=3)
