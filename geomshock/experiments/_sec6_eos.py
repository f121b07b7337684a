"""Sec. 6 negative control: the edge of stability (Cohen et al. 2021).

Full-batch gradient descent at learning rate ``η`` on the two-layer ReLU
regression of :func:`~geomshock.experiments._sec6_signals.regression_problem`
(width 12, ``sin(2.5 x)`` on 32 points, mean squared error) from a small
initialisation (``a ~ N(0, 0.25/m)``, ``u ~ N(0, 0.25)``): the raw sharpness
(top Hessian eigenvalue) rises ("progressive sharpening") until it reaches
``2/η``, where GD stops being stable along that direction and the loss spikes.

**Event** (objective, per seed): the first checkpoint where the raw sharpness
reaches ``0.95 · 2/η``, or where the loss exceeds ``1.5 ×`` its minimum over
the earlier checkpoints (a spike), whichever comes first.

The ``2/η`` threshold is a statement about raw coordinates (GD's stability in
the Euclidean metric), so raw curvature may legitimately win here. Seeds are
vmapped (``jax.vmap`` over the initialisation keys).
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._sec6_signals import (
    REGRESSION_POINTS,
    WIDTH,
    first_step,
    init_two_layer,
    make_trace,
    observables_extra,
    regression_problem,
    signals_at_checkpoints,
)

LR = 0.25
SHARPNESS_FRACTION = 0.95
SPIKE_FACTOR = 1.5
INIT_SCALE = 0.5
GAUGE_SCALE = 1.0


def settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"steps": 200, "every": 20, "seeds": 4}
    return {"steps": 800, "every": 10, "seeds": 16}


def gd_checkpoints(loss, first, *, lr, num_checkpoints, every, step_fn=None):
    """Full-batch GD from ``first``: params and loss at steps ``0, every, …``.

    ``step_fn(params, i) -> params`` (default none) runs after each GD step
    (the gauge run applies its symmetry transforms there).
    """

    def step(params, i):
        grads = jax.grad(loss)(params)
        params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
        return (params if step_fn is None else step_fn(params, i)), None

    def chunk(params, start):
        after, _ = jax.lax.scan(step, params, start + jnp.arange(every))
        return after, (params, loss(params))

    starts = jnp.arange(num_checkpoints) * every
    return jax.lax.scan(chunk, first, starts)[1]


def run(*, quick: bool, seeds: int | None = None, key=None) -> dict[str, Any]:
    """The edge-of-stability Trace (see the module docstring)."""
    cfg = settings(quick)
    seeds = cfg["seeds"] if seeds is None else seeds
    key = jax.random.PRNGKey(0) if key is None else key
    chart, loss = regression_problem()
    num = cfg["steps"] // cfg["every"]
    init_keys, gauge_key = jax.random.split(key)
    train = jax.jit(
        jax.vmap(
            lambda k: gd_checkpoints(
                loss,
                init_two_layer(k, INIT_SCALE),
                lr=LR,
                num_checkpoints=num,
                every=cfg["every"],
            )
        )
    )
    params, losses = train(jax.random.split(init_keys, seeds))
    steps = np.arange(num) * cfg["every"]
    signals, gauged = signals_at_checkpoints(
        loss,
        chart,
        params,
        gauge_key,
        gauge_scale=GAUGE_SCALE,
        extra=observables_extra(chart, "regression"),  # shared with the gauge run
        llc_n=REGRESSION_POINTS,
    )
    losses = np.asarray(losses)
    sharp = signals["raw_max_eig"] >= SHARPNESS_FRACTION * 2 / LR
    running_min = np.minimum.accumulate(losses, axis=1)
    spike = np.zeros_like(sharp)
    spike[:, 1:] = losses[:, 1:] > SPIKE_FACTOR * running_min[:, :-1]
    meta = {
        "model": f"two-layer ReLU, width {WIDTH}, in_dim 1 (TwoLayerReLUChart, "
        f"dim {chart.dim})",
        "data": "sin(2.5 x) on 32 points of [-2, 2], mean squared error",
        "optimizer": f"full-batch GD, lr {LR} (2/lr = {2 / LR:g})",
        "init": f"a ~ N(0, {INIT_SCALE}²/m), u ~ N(0, {INIT_SCALE}²)",
        "steps": cfg["steps"],
        "checkpoint_every": cfg["every"],
        "seeds": seeds,
        "event_rule": f"first checkpoint with raw sharpness ≥ {SHARPNESS_FRACTION}"
        f"·2/lr = {SHARPNESS_FRACTION * 2 / LR:g}, or loss > {SPIKE_FACTOR}× its "
        "minimum over earlier checkpoints",
        "gauge_scale": GAUGE_SCALE,
        "lr": LR,
    }
    return make_trace(
        steps, losses, first_step(steps, sharp | spike), signals, gauged, meta
    )
