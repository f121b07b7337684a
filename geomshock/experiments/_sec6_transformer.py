r"""Sec. 6 ``transformer``: the abrupt escape of a small attention model from
uniform attention.

Task (positional retrieval): a sequence of ``T`` tokens, each a Gaussian
content vector ``c_t ∈ R^{d_c}`` concatenated with the one-hot position
``e_t``, ``x_t = (c_t, e_t) ∈ R^{d_c + T}``; the target is the content of a
fixed position, ``y = c_{t*}``. The model is one multi-head self-attention
layer (:meth:`geomshock.charts.MultiHeadAttentionChart.apply`, ``H`` heads),
read at the last position, first ``d_c`` output coordinates. Loss
``½‖ŷ − y‖² / d_c`` averaged over a batch; fresh batches every step, SGD with
momentum (optax), small initialisation.

Why abrupt: at small weights the attention is uniform, and the best model with
uniform attention predicts the mean content, loss
``ε_p = ½(1 − 1/T)`` (the plateau value, in closed form). The query–key
product has to grow from near zero, its gradient proportional to the
value–output product: a saddle at the uniform-attention point (like the
symmetric plateau of the soft-committee machine), escaped abruptly once the
attention locks onto position ``t*``.

Event rule: the first step at which the training loss, averaged over the
trailing ``20`` steps, is below ``½ ε_p``; ``-1`` if none.

Signals at the checkpoints, on a fixed evaluation batch (the loss the
curvature is taken of, and the Trace's ``"loss"``): quotient curvature of that
loss on the chart of the attention parameters modulo per-head
``GL(d_k) × GL(d_v)`` and head permutations (``CanonicalOrderChart`` over
``MultiHeadAttentionChart``, evaluated at the canonically ordered
representative; permutations act by isometries, so the spectrum does not
depend on the order), raw curvature of the same loss (Euclidean Hessian of the
raw parameters), the raw norm, the LLC baseline (SGLD, nominal ``n`` = the
evaluation batch) and the loss slope (backward difference of ``log loss``,
:func:`~geomshock.experiments._sec6_signals.make_trace`). The
gauge is ``CanonicalOrderChart.gauge``: a random head permutation and a random
``GL`` element per head (same network function). ``GL`` is not orthogonal, so
raw norms and raw Hessian eigenvalues move under it, the quotient ones do not.

Known limit (measured): the attention chart's coordinates use the gauge whose
left factor starts with the identity block, ``X_V = W_V[d_v:] W_V[:d_v]⁻¹``.
Early in training the top ``d_v × d_v`` block of ``W_V`` can come close to
singular (seed 2 of the quick run: smallest singular value 5e-5 against 0.34),
the metric is then ill-conditioned, and the quotient curvature computed at a
gauged copy differs from the one at the original point by up to 150 % (2 of 72
quick checkpoints; all others agree to 1e-12). Scalar curvature does not depend
on the coordinate patch, so a pivoted patch choice would remove this; not done
yet.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._checks import positive_int
from ..charts import CanonicalOrderChart, MultiHeadAttentionChart
from ._sec6_signals import curvature_signals, make_trace

# Per point (measured on the loaded 2-core machine): dense quotient curvature
# ~0.08 s (Christoffel symbols by autodiff through the balanced-SVD lift), the
# LLC ~0.16 s; the signal budget is seeds × checkpoints × 2 (gauged) points.
# Checkpoints every 25 steps and a forecast window of 3 of them (75 steps):
# the events come at ~190-230 steps, so the early checkpoints are negatives.
_QUICK = {"steps": 300, "checkpoints": 12, "seeds": 6}
_FULL = {"steps": 600, "checkpoints": 24, "seeds": 32}
_WINDOW_CHECKPOINTS = 3
_CONTENT, _LENGTH, _HEADS, _D_K = 2, 6, 1, 1
_D_V = _CONTENT
_TARGET = 2
_LR, _MOMENTUM, _INIT_SCALE, _BATCH = 0.05, 0.9, 0.1, 64
_EVAL_BATCH = 128
_WINDOW = 20
_EVENT_FRACTION = 0.5


def attention_chart() -> CanonicalOrderChart:
    """The chart of the experiment's attention layer (``d_model = d_c + T``).

    Example:
        >>> attention_chart().dim
        43
    """
    d = _CONTENT + _LENGTH
    return CanonicalOrderChart(MultiHeadAttentionChart(d, _HEADS, _D_K, _D_V))


def plateau_value() -> float:
    """``ε_p = ½(1 − 1/T)``: the loss of the best uniform-attention predictor.

    Example:
        >>> plateau_value()
        0.4166666666666667
    """
    return 0.5 * (1 - 1 / _LENGTH)


def sample_batch(key, size: int):
    """``(X, y)``: ``X (size, T, d_c + T)`` tokens with one-hot positions,
    ``y = c_{t*}``.

    Example:
        >>> import jax
        >>> x, y = sample_batch(jax.random.PRNGKey(0), 3)
        >>> x.shape, y.shape
        ((3, 6, 8), (3, 2))
    """
    content = jax.random.normal(key, (size, _LENGTH, _CONTENT))
    pos = jnp.broadcast_to(
        jnp.eye(_LENGTH, dtype=content.dtype), (size, _LENGTH, _LENGTH)
    )
    return jnp.concatenate([content, pos], axis=-1), content[:, _TARGET]


def batch_loss(chart, params, x, y):
    """``½‖ŷ − y‖²/d_c`` averaged over the batch, ``ŷ`` the first ``d_c``
    outputs of the attention layer at the last position."""
    pred = chart.apply(params, x)[:, -1, :_CONTENT]
    return 0.5 * jnp.mean(jnp.sum((pred - y) ** 2, axis=-1)) / _CONTENT


def _init(chart, key):
    shapes = chart.params_shape
    keys = jax.random.split(key, len(shapes))
    d = _CONTENT + _LENGTH
    return {
        name: _INIT_SCALE / np.sqrt(d) * jax.random.normal(k, shapes[name].shape)
        for k, name in zip(keys, sorted(shapes), strict=True)
    }


def train(chart, key, steps: int, checkpoints: int):
    """SGD with momentum (optax) from a small random initialisation; returns the
    params at ``checkpoints`` equally spaced steps (pytree with a leading
    ``(checkpoints,)`` axis) and the training loss of every step.

    Example:
        >>> import jax
        >>> chart = attention_chart()
        >>> fn = jax.jit(train, static_argnums=(0, 2, 3))
        >>> ps, losses = fn(chart, jax.random.PRNGKey(0), 4, 2)
        >>> ps["wq"].shape, losses.shape
        ((2, 1, 8, 1), (4,))
    """
    k_init, k_data = jax.random.split(key)
    params = _init(chart, k_init)
    opt = optax.sgd(_LR, momentum=_MOMENTUM)
    every = steps // checkpoints

    def step(carry, k):
        p, s = carry
        x, y = sample_batch(k, _BATCH)
        loss, grad = jax.value_and_grad(lambda q: batch_loss(chart, q, x, y))(p)
        updates, s = opt.update(grad, s, p)
        return (optax.apply_updates(p, updates), s), loss

    def interval(carry, keys):
        carry, losses = jax.lax.scan(step, carry, keys)
        return carry, (carry[0], losses)

    keys = jax.random.split(k_data, checkpoints * every)
    keys = keys.reshape((checkpoints, every) + keys.shape[1:])
    _, (saved, losses) = jax.lax.scan(interval, (params, opt.init(params)), keys)
    return saved, losses.reshape(-1)


def event_step(losses, threshold, window: int = _WINDOW):
    """First step (counted from 1) whose trailing ``window``-step mean loss is
    below ``threshold``; ``-1`` if none.

    Example:
        >>> import jax.numpy as jnp
        >>> int(event_step(jnp.array([1.0, 1.0, 0.0, 0.0]), 0.6, window=2))
        3
    """
    csum = jnp.cumsum(jnp.concatenate([jnp.zeros(1, losses.dtype), losses]))
    trailing = (csum[window:] - csum[:-window]) / window  # ends at step window..
    below = trailing < threshold
    return jnp.where(jnp.any(below), jnp.argmax(below) + window, -1)


def _signals(chart, x, y, params, key):
    def loss(p):
        return batch_loss(chart.chart, p, x, y)

    out = curvature_signals(loss, chart, params, key, llc_n=_EVAL_BATCH)
    return out | {"loss": loss(params)}


def run(*, quick: bool, seeds: int | None = None, key=None) -> dict:
    """The transformer experiment as a Sec. 6 Trace (see the module docstring).

    ``quick``: 300 steps, 12 checkpoints, 6 seeds by default; full: 600 steps,
    24 checkpoints, 32 seeds (vmapped). The forecast window
    (``meta["window"]``) is 3 checkpoint intervals, 75 steps. ``key`` defaults
    to ``PRNGKey(0)``.

    Example:
        >>> import jax
        >>> key = jax.random.PRNGKey(0)
        >>> trace = run(quick=True, seeds=32, key=key)  # doctest: +SKIP
    """
    cfg = _QUICK if quick else _FULL
    seeds = positive_int(cfg["seeds"] if seeds is None else seeds, "seeds")
    key = jax.random.PRNGKey(0) if key is None else key
    chart = attention_chart()
    laps, t0 = {}, time.perf_counter()
    k_train, k_eval, k_gauge = jax.random.split(key, 3)
    steps_total, checkpoints = cfg["steps"], cfg["checkpoints"]
    every = steps_total // checkpoints
    saved, losses = jax.jit(
        jax.vmap(lambda k: train(chart, k, steps_total, checkpoints))
    )(jax.random.split(k_train, seeds))
    threshold = _EVENT_FRACTION * plateau_value()
    events = jax.vmap(lambda ls: event_step(ls, threshold))(losses)
    laps["train"] = round(time.perf_counter() - t0, 2)

    x, y = sample_batch(k_eval, _EVAL_BATCH)
    flat = jax.tree_util.tree_map(lambda a: a.reshape(-1, *a.shape[2:]), saved)
    count = seeds * checkpoints
    k_move, k_llc = jax.random.split(k_gauge)
    gauged = jax.jit(jax.vmap(chart.gauge))(flat, jax.random.split(k_move, count))
    sig = jax.jit(
        lambda ps, ks: jax.lax.map(
            lambda a: _signals(chart, x, y, *a), (ps, ks), batch_size=4
        )
    )
    both = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), flat, gauged)
    llc_keys = jax.random.split(k_llc, count)  # the same at a gauged point
    values = {
        k: np.asarray(v).reshape(2, seeds, checkpoints)
        for k, v in sig(both, jnp.concatenate([llc_keys, llc_keys])).items()
    }
    laps["signals"] = round(time.perf_counter() - t0 - laps["train"], 2)

    steps = every * (1 + np.arange(checkpoints))
    loss = values.pop("loss")
    events = np.asarray(events)
    meta = {
        "experiment": "transformer",
        "task": f"positional retrieval, y = content of token {_TARGET}",
        "model": "one multi-head self-attention layer, read at the last position",
        "d_content": _CONTENT,
        "length": _LENGTH,
        "heads": _HEADS,
        "d_k": _D_K,
        "d_v": _D_V,
        "optimizer": f"optax.sgd(lr={_LR}, momentum={_MOMENTUM})",
        "init_scale": _INIT_SCALE,
        "batch": _BATCH,
        "steps": steps_total,
        "checkpoint_every": every,
        "window": _WINDOW_CHECKPOINTS * every,
        "seeds": seeds,
        "loss": f"loss on a fixed evaluation batch of {_EVAL_BATCH} sequences",
        "plateau_value": plateau_value(),
        "event_rule": (
            f"first step whose trailing {_WINDOW}-step mean training loss is "
            f"below {_EVENT_FRACTION} x plateau value 0.5 (1 - 1/T)"
        ),
        "gauge": "CanonicalOrderChart.gauge: random head permutation and a "
        "random GL(d_k) x GL(d_v) element per head",
        "chart": "CanonicalOrderChart(MultiHeadAttentionChart), curvature at "
        "the ordered representative, method dense",
        "event_rate": float(np.mean(events >= 0)),
        "event_step_median": float(np.median(np.where(events >= 0, events, np.inf))),
        "seconds": laps,
    }
    signals = {k: v[0] for k, v in values.items()}
    signals_gauged = {k: v[1] for k, v in values.items()}
    return make_trace(steps, loss[0], events, signals, signals_gauged, meta)
