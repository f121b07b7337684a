"""Signals at training checkpoints, shared by the Sec. 6 sub-experiments.

A run of ``S`` seeds saved at ``C`` checkpoints becomes a *Trace* (a plain
dict): ``steps (C,)``, ``loss (S, C)``, ``event_step (S,)`` (``-1``: none),
``signals`` and ``signals_gauged`` ``{name: (S, C)}`` and a JSON-able
``meta``. The curvature signals come from
:func:`geomshock.diagnostics.quotient_curvature` and
:func:`~geomshock.diagnostics.raw_curvature` (dense: the charts here are
small), ``raw_norm`` is the Euclidean norm of the flattened parameters and
``loss_slope`` the backward difference of ``log loss`` per step (causal: the
value at a checkpoint uses only the past; ``0`` at the first one).
``signals_gauged`` recomputes every signal after a random ``chart.gauge`` of
the parameters at that checkpoint (one key per seed and checkpoint).
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..charts import TwoLayerReLUChart
from ..diagnostics import quotient_curvature, raw_curvature

WIDTH = 12


@functools.cache
def regression_problem():
    """The two-layer ReLU regression both the gauge and the EoS runs use.

    ``f(x) = Σ_j a_j relu(u_jᵀ(x, 1)) + c``, width 12, in_dim 1
    (:class:`~geomshock.charts.TwoLayerReLUChart`), fitting ``sin(2.5 x)`` on
    32 points of ``[−2, 2]`` with ``½ mean squared error``. Returns ``(chart,
    loss)``, the same objects on every call, so compiled signal functions are
    shared.
    """
    x = _two_layer_batch()
    y = jnp.sin(2.5 * x[:, 0])
    features = jnp.concatenate([x, jnp.ones_like(x)], axis=1)

    def loss(params):
        out = jax.nn.relu(features @ params["u"].T) @ params["a"] + params["c"]
        return 0.5 * jnp.mean((out - y) ** 2)

    return TwoLayerReLUChart(WIDTH, 1), loss


@functools.cache
def observables_extra(chart, batch_name: str):
    """An ``extra`` for :func:`signals_at_checkpoints`: the quotient observables
    :func:`geomshock.diagnostics.observables` on a named batch (cached, so runs
    with the same chart and batch share one compiled function)."""
    from ..diagnostics import observables

    batch = BATCHES[batch_name]()

    def extra(params):
        out = observables(chart, params, batch)
        return {f"observable:{k}": jnp.asarray(v) for k, v in out.items()}

    return extra


def _two_layer_batch():
    return jnp.linspace(-2.0, 2.0, 32)[:, None]


def _block_batch():
    return jax.random.normal(jax.random.PRNGKey(42), (8, 4, 3))


BATCHES = {"regression": _two_layer_batch, "block": _block_batch}


def init_two_layer(key, scale: float):
    """``a ~ N(0, scale²/m)``, ``u ~ N(0, scale²)``, ``c = 0``."""
    ka, ku = jax.random.split(key)
    return {
        "a": scale * jax.random.normal(ka, (WIDTH,)) / jnp.sqrt(WIDTH),
        "u": scale * jax.random.normal(ku, (WIDTH, 2)),
        "c": jnp.zeros(()),
    }


QUOTIENT_SIGNALS = ("quotient_min_eig", "quotient_max_eig", "quotient_laplacian")
RAW_SIGNALS = ("raw_min_eig", "raw_max_eig", "raw_norm")


def curvature_signals(loss: Callable, chart, params) -> dict[str, jax.Array]:
    """Quotient and raw curvature signals and the raw norm at one point."""
    quotient = quotient_curvature(loss, chart, params, method="dense")
    raw = raw_curvature(loss, params, method="dense")
    return {
        "quotient_min_eig": quotient["min_eig"],
        "quotient_max_eig": quotient["max_eig"],
        "quotient_laplacian": quotient["laplacian"],
        "raw_min_eig": raw["min_eig"],
        "raw_max_eig": raw["max_eig"],
        "raw_norm": jnp.linalg.norm(ravel_pytree(params)[0]),
    }


CHUNK = 8  # points per compiled call: one compilation serves runs of any size


@functools.cache
def _compiled(loss: Callable, chart, gauge_scale: float, extra):
    def point(p, k):
        moved = chart.gauge(p, k, gauge_scale)
        out = []
        for theta in (p, moved):
            values = curvature_signals(loss, chart, theta)
            values["q"] = chart.project(theta)
            if extra is not None:
                values.update(extra(theta))
            out.append(values)
        return tuple(out)

    return jax.jit(jax.vmap(point))


def signals_at_checkpoints(
    loss: Callable, chart, params, key, *, gauge_scale: float, extra=None
):
    """``(signals, signals_gauged)`` for params stacked as ``(S, C, ...)``.

    Evaluated ``CHUNK`` points per call of one compiled, vmapped function
    (cached per ``loss``, ``chart``, ``gauge_scale``, ``extra``: pass the same
    objects to share it between runs). Besides the signals, ``"q"`` holds the
    quotient coordinates ``chart.project``; ``extra(params) -> dict`` adds
    more per-point values (quotient observables). :func:`make_trace` keeps
    only the scalar signals.
    """
    leaves = jax.tree_util.tree_leaves(params)
    shape = leaves[0].shape[:2]
    total = shape[0] * shape[1]
    padded = -(-total // CHUNK) * CHUNK
    flat = jax.tree_util.tree_map(
        lambda x: jnp.concatenate(
            [x.reshape((total,) + x.shape[2:])]
            + [x.reshape((total,) + x.shape[2:])[:1]] * (padded - total)
        ),
        params,
    )
    keys = jax.random.split(key, padded)
    fn = _compiled(loss, chart, gauge_scale, extra)
    parts = [
        fn(
            jax.tree_util.tree_map(lambda x, i=i: x[i : i + CHUNK], flat),
            keys[i : i + CHUNK],
        )
        for i in range(0, padded, CHUNK)
    ]

    def gather(which):
        names = parts[0][which]
        return {
            k: np.concatenate([np.asarray(p[which][k]) for p in parts])[:total].reshape(
                shape + parts[0][which][k].shape[1:]
            )
            for k in names
        }

    return gather(0), gather(1)


def loss_slope(steps, loss) -> np.ndarray:
    """Backward difference of ``log loss`` per step, ``0`` at the first checkpoint."""
    log_loss = np.log(np.maximum(np.asarray(loss, float), 1e-300))
    slope = np.diff(log_loss, axis=1) / np.diff(np.asarray(steps, float))
    return np.concatenate([np.zeros((log_loss.shape[0], 1)), slope], axis=1)


def first_step(steps, mask) -> np.ndarray:
    """Per seed, the first checkpoint step where ``mask`` holds, else ``-1``."""
    mask = np.asarray(mask, bool)
    steps = np.asarray(steps)
    return np.where(mask.any(axis=1), steps[np.argmax(mask, axis=1)], -1)


def is_observable(name: str) -> bool:
    """Quotient coordinates and observables: checked for invariance, not scored."""
    return name == "q" or name.startswith("observable:")


def scalar_signals(d):
    return {k: v for k, v in d.items() if not is_observable(k)}


def make_trace(steps, loss, event_step, signals, signals_gauged, meta) -> dict:
    """A Trace of the scalar signals, with the loss slope added to both sets."""
    signals, signals_gauged = scalar_signals(signals), scalar_signals(signals_gauged)
    slope = loss_slope(steps, loss)
    return {
        "steps": np.asarray(steps),
        "loss": np.asarray(loss),
        "event_step": np.asarray(event_step),
        "signals": {**signals, "loss_slope": slope},
        "signals_gauged": {**signals_gauged, "loss_slope": slope},
        "meta": meta,
    }


def gauge_changes(signals, signals_gauged, *, floor: float = 1e-3) -> dict:
    """Per signal: how a random gauge transform changes it.

    ``max_rel_change = max |x_g − x| / max(|x|, floor · max|x|)`` over seeds and
    checkpoints (an eigenvalue crossing zero has no meaningful relative change,
    so the denominator is floored at ``floor`` times the signal's largest
    magnitude in the run), and the range ``[factor_min, factor_max]`` of
    ``x_g / x`` over the points where ``|x|`` is above that floor.
    """
    out = {}
    for name, x in signals.items():
        if name not in signals_gauged:
            continue
        x = np.asarray(x, float)
        g = np.asarray(signals_gauged[name], float)
        big = np.max(np.abs(x), initial=0.0)
        denom = np.maximum(np.abs(x), max(floor * big, 1e-300))
        keep = np.abs(x) >= floor * big
        ratio = g[keep] / x[keep] if big > 0 else np.ones(1)
        out[name] = {
            "max_rel_change": float(np.max(np.abs(g - x) / denom)),
            "factor_min": float(np.min(ratio)),
            "factor_max": float(np.max(ratio)),
        }
    return out
