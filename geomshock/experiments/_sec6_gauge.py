"""Sec. 6 lesson 1: random symmetry transformations applied during training.

Each model is trained by full-batch gradient descent while a random element
of its continuous symmetry group (``chart.gauge``, log-scales ``~ N(0,
0.5²)``) is applied to the parameters every ``gauge_every`` steps. The network
function is unchanged by each transform; the raw parameters, and so the raw
norm and the raw Hessian, are not.

- always: the two-layer ReLU MLP of
  :func:`~geomshock.experiments._sec6_signals.regression_problem`
  (:class:`~geomshock.charts.TwoLayerReLUChart`, per-unit rescaling), several
  seeds (vmapped). This run is also the Trace for the forecast scores.
  **Event**: the first checkpoint where the loss is below half its value at
  step 0.
- full run only (their dense quotient curvature takes minutes to compile on
  two cores): a deeper ReLU MLP (:class:`~geomshock.charts.ReLUMLPChart`
  ``(1, 4, 4, 1)``) on the same data, and a pre-LN Transformer block
  (:class:`~geomshock.charts.TransformerBlockChart`, ``d = 3``, one head,
  ``d_k = d_v = 1``, ``d_ff = 2``: LayerNorm gain rescalings, per-head
  ``GL(d_k) × GL(d_v)``, MLP unit rescalings) fitting a random teacher block
  on 8 sequences of length 4.

At every checkpoint every signal is recomputed after one more random gauge
transform (log-scales ``~ N(0, 1)``): the quotient coordinates ``q =
chart.project``, the quotient curvature (dense) and the quotient
observables (:func:`geomshock.diagnostics.observables`) should not move (to
~1e-8 relative), while the raw norm and the raw Hessian eigenvalues move by
large factors. Both are quantified: the maximum relative change, and the
range of the factor ``x_gauged / x``.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..charts import ReLUMLPChart
from ._sec6_eos import gd_checkpoints
from ._sec6_signals import (
    BATCHES,
    REGRESSION_POINTS,
    first_step,
    gauge_changes,
    init_two_layer,
    is_observable,
    make_trace,
    observables_extra,
    regression_problem,
    scalar_signals,
    signals_at_checkpoints,
)

LR = 0.1
INIT_SCALE = 0.5
TRAIN_GAUGE_SCALE = 0.5
PROBE_GAUGE_SCALE = 1.0
EVENT_FRACTION = 0.5
DEEP_SIZES = (1, 4, 4, 1)
BLOCK = {"d_model": 3, "heads": 1, "d_k": 1, "d_v": 1, "d_ff": 2}


def settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"steps": 200, "every": 20, "gauge_every": 50, "seeds": 2}
    return {
        "steps": 1200,
        "every": 40,
        "gauge_every": 50,
        "seeds": 16,
        "deep_steps": 600,
        "block_steps": 300,
        "extra_every": 100,
    }


def _gauged_training(chart, key, gauge_every):
    """A ``step_fn`` applying ``chart.gauge`` every ``gauge_every`` steps."""

    def step_fn(params, i):
        moved = chart.gauge(params, jax.random.fold_in(key, i), TRAIN_GAUGE_SCALE)
        apply = (i + 1) % gauge_every == 0
        return jax.tree_util.tree_map(
            lambda m, p: jnp.where(apply, m, p), moved, params
        )

    return step_fn


def _train_and_probe(problem, key, *, seeds, steps, every, gauge_every, lr, llc_n=None):
    """Train ``seeds`` seeds (vmapped) with gauge transforms, then probe every
    checkpoint: ``(signals, signals_gauged, loss)`` (with the LLC baseline
    for ``llc_n`` nominal samples)."""
    chart, loss, init, batch = problem
    k_init, k_train, k_probe = jax.random.split(key, 3)

    def one(k_first, k_gauge):
        return gd_checkpoints(
            loss,
            init(k_first),
            lr=lr,
            num_checkpoints=steps // every,
            every=every,
            step_fn=_gauged_training(chart, k_gauge, gauge_every),
        )

    params, losses = jax.jit(jax.vmap(one))(
        jax.random.split(k_init, seeds), jax.random.split(k_train, seeds)
    )
    here, gauged = signals_at_checkpoints(
        loss,
        chart,
        params,
        k_probe,
        gauge_scale=PROBE_GAUGE_SCALE,
        extra=observables_extra(chart, batch),
        llc_n=llc_n,
    )
    return here, gauged, np.asarray(losses)


def _invariance(here, gauged) -> dict[str, Any]:
    """Per scalar signal the gauge changes; per quotient coordinate/observable
    the max relative change (relative to its largest entry at that point)."""
    coords = {}
    for name in filter(is_observable, here):
        x, g = np.asarray(here[name], float), np.asarray(gauged[name], float)
        axes = tuple(range(2, x.ndim))
        scale = np.maximum(np.max(np.abs(x), axis=axes, initial=0.0), 1e-300)
        change = np.max(np.abs(g - x), axis=axes, initial=0.0) / scale
        coords[name] = float(np.max(change))
    table = gauge_changes(scalar_signals(here), scalar_signals(gauged))
    return {"signals": table, "observables": coords}


def _deep_problem():
    x = BATCHES["regression"]()
    y = jnp.sin(2.5 * x[:, 0])
    deep = ReLUMLPChart(DEEP_SIZES)

    def loss(params):
        return 0.5 * jnp.mean((deep.apply(params, x)[:, 0] - y) ** 2)

    def init(key):
        layers = []
        pairs = zip(DEEP_SIZES[:-1], DEEP_SIZES[1:], strict=True)
        for k, (n_in, n_out) in zip(jax.random.split(key, 3), pairs, strict=True):
            kw, kb = jax.random.split(k)
            layers.append(
                {
                    "W": jax.random.normal(kw, (n_out, n_in)) * jnp.sqrt(2 / n_in),
                    "b": 0.5 * jax.random.normal(kb, (n_out,)),
                }
            )
        return tuple(layers)

    return deep, loss, init, "regression"


def _block_problem():
    from ..charts import TransformerBlockChart

    chart = TransformerBlockChart(**BLOCK)
    x = BATCHES["block"]()

    def init(key):
        leaves, treedef = jax.tree_util.tree_flatten(chart.params_shape)
        keys = jax.random.split(key, len(leaves))
        values = [
            0.7 * jax.random.normal(k, s.shape, s.dtype)
            for k, s in zip(keys, leaves, strict=True)
        ]
        params = jax.tree_util.tree_unflatten(treedef, values)
        for ln in ("ln1", "ln2"):  # gains away from 0 (the stratum's edge)
            params[ln]["gain"] = 1.0 + 0.2 * params[ln]["gain"]
        return params

    target = chart.apply(init(jax.random.PRNGKey(43)), x)

    def loss(params):
        return 0.5 * jnp.mean((chart.apply(params, x) - target) ** 2)

    return chart, loss, init, "block"


def _probe_model(problem, cfg, key, steps) -> dict[str, Any]:
    """One seed of a full-run-only model trained with gauges, then probed."""
    chart = problem[0]
    here, gauged, losses = _train_and_probe(
        problem,
        key,
        seeds=1,
        steps=steps,
        every=cfg["extra_every"],
        gauge_every=cfg["gauge_every"],
        lr=LR / 2,
    )
    return {
        **_invariance(here, gauged),
        "chart": type(chart).__name__,
        "dim": chart.dim,
        "loss": losses[0].tolist(),
    }


def run(*, quick: bool, seeds: int | None = None, key=None) -> dict[str, Any]:
    """The gauge Trace (two-layer MLP), with ``"invariance"`` per model."""
    cfg = settings(quick)
    seeds = cfg["seeds"] if seeds is None else seeds
    key = jax.random.PRNGKey(0) if key is None else key
    k_main, k_deep, k_block = jax.random.split(key, 3)
    chart, loss = regression_problem()
    here, gauged, losses = _train_and_probe(
        (chart, loss, lambda k: init_two_layer(k, INIT_SCALE), "regression"),
        k_main,
        seeds=seeds,
        steps=cfg["steps"],
        every=cfg["every"],
        gauge_every=cfg["gauge_every"],
        lr=LR,
        llc_n=REGRESSION_POINTS,
    )
    steps = np.arange(cfg["steps"] // cfg["every"]) * cfg["every"]
    event = first_step(steps, losses < EVENT_FRACTION * losses[:, :1])
    invariance = {"two_layer_mlp": _invariance(here, gauged)}
    invariance["two_layer_mlp"].update(chart="TwoLayerReLUChart", dim=chart.dim)
    if not quick:
        invariance["deep_mlp"] = _probe_model(
            _deep_problem(), cfg, k_deep, cfg["deep_steps"]
        )
        invariance["transformer_block"] = _probe_model(
            _block_problem(), cfg, k_block, cfg["block_steps"]
        )
    meta = {
        "model": f"two-layer ReLU MLP, width {chart.width} (TwoLayerReLUChart, "
        f"dim {chart.dim}); full run also ReLUMLPChart{DEEP_SIZES} and "
        f"TransformerBlockChart {BLOCK}",
        "data": "sin(2.5 x) on 32 points of [-2, 2], mean squared error",
        "optimizer": f"full-batch GD, lr {LR}",
        "init": f"a ~ N(0, {INIT_SCALE}²/m), u ~ N(0, {INIT_SCALE}²)",
        "training_gauge": f"random chart.gauge (log-scales ~ N(0, "
        f"{TRAIN_GAUGE_SCALE}²)) every {cfg['gauge_every']} steps",
        "probe_gauge_scale": PROBE_GAUGE_SCALE,
        "steps": cfg["steps"],
        "checkpoint_every": cfg["every"],
        "seeds": seeds,
        "event_rule": f"first checkpoint with loss < {EVENT_FRACTION} × loss at step 0",
    }
    trace = make_trace(steps, losses, event, here, gauged, meta)
    trace["invariance"] = invariance
    return trace
