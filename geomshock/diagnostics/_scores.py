r"""Forecast scores: how well a training signal announces an objectively defined event.

The data are ``S`` seeds observed at ``C`` checkpoints ``steps`` (shared), each
seed with the step ``e_s`` of its event (``-1``: none) and signals
``x[s, c]``. A signal is first *oriented* (multiplied by ``+1`` or ``−1``, or
its absolute value taken) so that larger means "more alarm".

Which checkpoints count. For a seed with an event only the checkpoints
strictly before it (``steps[c] < e_s``) count: after the event there is
nothing left to forecast. A seed without an event contributes all of its
checkpoints, as negatives.

- **Label** of a counted checkpoint: positive when the event comes within the
  next ``W`` steps, ``0 < e_s − steps[c] ≤ W``; negative otherwise.
- **AUROC**: the Mann–Whitney statistic over the pooled checkpoints of all
  seeds, ``P(x_pos > x_neg) + ½ P(x_pos = x_neg)``, computed from the ranks
  (one sort, ``O(N log N)`` for ``N = S·C``).
- **Lead time at a false-alarm rate ``α``** (default 5 %): the threshold is the
  ``1 − α`` quantile (linear interpolation, as ``numpy.quantile``) of the
  oriented signal over the pooled negative checkpoints; a checkpoint alarms
  when the signal is strictly above it (the realised false-alarm rate is then
  within one checkpoint of ``α``). For each seed with an event, the lead
  is ``e_s − steps[c₁]`` with ``c₁`` the first alarming checkpoint before the
  event, and ``0`` when none alarms (a miss counts as no warning, not as
  missing data). The score is the median over the seeds with an event, in
  training steps. ``detection_rate`` is the fraction of those seeds that had
  an alarm at all.
- **Bootstrap** intervals resample the *seeds* with replacement
  (``num_resamples`` times, from a fixed key), recompute every score,
  threshold included, on each resample, and report the percentile interval
  ``[(1 − confidence)/2, (1 + confidence)/2]`` over the resamples on which
  the score is defined. A resample is a vector of seed multiplicities, so
  each statistic is a weighted one on the sorted data: no data are copied.

Degenerate inputs give NaN, with a warning that says why (eagerly and, via a
host callback, under ``jit``): no positive checkpoints (no seed has an event
with a checkpoint within ``W`` before it) or no negative ones make the AUROC
and the threshold undefined; no seed with an event makes the lead time
undefined. The counts ``n_positive``, ``n_negative`` and ``n_events`` are
returned so that a report can state the reason; :func:`score_note` writes it.
"""

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from .._checks import (
    check_shape,
    positive_int,
    positive_scalar,
    raise_if,
    warn_if,
)

# Larger = more alarm. Curvature going strongly negative is the paper's alarm
# (Sec. 6); sharpness and norms alarm by growing; a loss slope alarms in either
# direction (a drop out of a plateau or a spike); a forecast of fewer steps to a
# shock is the stronger alarm.
DEFAULT_ORIENTATION: dict[str, int | str] = {
    "quotient_min_eig": -1,
    "quotient_laplacian": -1,
    "quotient_max_eig": 1,
    "raw_min_eig": -1,
    "raw_laplacian": -1,
    "raw_max_eig": 1,
    "raw_norm": 1,
    "loss_slope": "abs",
    "forecast_steps": -1,
    "llc": 1,
}

_SCORE_KEYS = (
    "auroc",
    "auroc_ci",
    "lead_time",
    "lead_time_ci",
    "detection_rate",
    "detection_rate_ci",
    "threshold",
    "false_alarm_rate",
    "n_positive",
    "n_negative",
    "n_events",
)


def _orient(x, orientation, name: str):
    if orientation == "abs":
        return jnp.abs(x)
    if orientation in (1, -1) and not isinstance(orientation, bool):
        return orientation * x
    raise ValueError(
        f"orientation of signal {name!r} must be 1, -1 or 'abs' (larger = more "
        f"alarm after orienting); got {orientation!r}"
    )


def _orientation_for(name: str, orientation):
    if isinstance(orientation, Mapping):
        if name in orientation:
            return orientation[name]
    elif orientation is not None:
        return orientation
    if name not in DEFAULT_ORIENTATION:
        raise ValueError(
            f"no orientation known for signal {name!r}; pass orientation="
            f"{{{name!r}: 1 | -1 | 'abs'}} (known: {', '.join(DEFAULT_ORIENTATION)})"
        )
    return DEFAULT_ORIENTATION[name]


def _weighted_quantile(values_sorted, weights, p):
    """``numpy.quantile(p)`` (linear) of the multiset with ``weights`` copies of
    each of ``values_sorted`` (ascending); NaN when the weights sum to 0."""
    cum = jnp.cumsum(weights)
    total = cum[-1]
    h = p * jnp.maximum(total - 1, 0)
    lo = jnp.floor(h)
    frac = h - lo
    last = values_sorted.shape[0] - 1

    def at(k):  # the k-th (0-based) element of the expanded multiset
        return values_sorted[jnp.clip(jnp.searchsorted(cum, k, side="right"), 0, last)]

    below = at(lo)
    above = at(jnp.minimum(lo + 1, total - 1))
    value = below + jnp.where(frac > 0, frac * (above - below), 0.0)
    return jnp.where(total > 0, value, jnp.nan)


def _ranks(x):
    """Sort order and tie blocks of the pooled checkpoints (weight-independent)."""
    order = jnp.argsort(x.reshape(-1))
    xs = x.reshape(-1)[order]
    left = jnp.searchsorted(xs, xs, side="left", method="compare_all")
    right = jnp.searchsorted(xs, xs, side="right", method="compare_all")
    return order, xs, left, right


def _statistics(x, ranks, steps, event, pos, neg, w, false_alarm):
    """Scores for seed multiplicities ``w`` (ones: the data; counts: a resample)."""
    order, xs, left, right = ranks
    pw = (pos * w[:, None]).reshape(-1)[order]
    nw = (neg * w[:, None]).reshape(-1)[order]
    cum_neg = jnp.concatenate([jnp.zeros((1,), x.dtype), jnp.cumsum(nw)])
    u = jnp.sum(pw * (cum_neg[left] + 0.5 * (cum_neg[right] - cum_neg[left])))
    n_pos, n_neg = jnp.sum(pw), jnp.sum(nw)
    auroc = jnp.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), jnp.nan)

    threshold = _weighted_quantile(xs, nw, 1 - false_alarm)
    alarm = (pos | neg) & (x > threshold)
    has_event = event >= 0
    alarmed = jnp.any(alarm, axis=1)
    first = jnp.argmax(alarm, axis=1)
    lead = jnp.where(alarmed, event - steps[first], 0).astype(x.dtype)
    ew = w * has_event
    order_lead = jnp.argsort(lead)
    lead_time = _weighted_quantile(lead[order_lead], ew[order_lead], 0.5)
    n_ev = jnp.sum(ew)
    detection = jnp.where(n_ev > 0, jnp.sum(ew * alarmed) / n_ev, jnp.nan)
    ok = jnp.isfinite(threshold)
    false_rate = jnp.sum(nw * (xs > threshold)) / n_neg
    return {
        "auroc": auroc,
        "lead_time": jnp.where(ok, lead_time, jnp.nan),
        "detection_rate": jnp.where(ok, detection, jnp.nan),
        "threshold": threshold,
        "false_alarm_rate": jnp.where(ok, false_rate, jnp.nan),
    }


def _labels(steps, event, window):
    has_event = event >= 0
    before = steps[None, :] < event[:, None]
    pos = has_event[:, None] & before & (event[:, None] - steps[None, :] <= window)
    neg = (~has_event[:, None] | before) & ~pos
    return pos, neg


def _interval(samples, confidence):
    a = (1 - confidence) / 2
    return jnp.nanquantile(samples, jnp.array([a, 1 - a]))


def _score_signal(x, steps, event, window, weights, false_alarm, confidence):
    pos, neg = _labels(steps, event, window)
    ranks = _ranks(x)

    def stats(w):
        return _statistics(x, ranks, steps, event, pos, neg, w, false_alarm)

    point = stats(jnp.ones(event.shape, x.dtype))
    boot = jax.vmap(stats)(weights)
    n_pos, n_neg = jnp.sum(pos), jnp.sum(neg)
    n_ev = jnp.sum(event >= 0)
    why = "forecast_scores: {}: {} are NaN"
    point["auroc"] = warn_if(
        point["auroc"],
        n_pos == 0,
        why.format(
            "no positive checkpoints (no event with a checkpoint within W steps "
            "before it)",
            "the AUROC and its interval",
        ),
    )
    point["threshold"] = warn_if(
        point["threshold"],
        n_neg == 0,
        why.format(
            "no negative checkpoints", "the AUROC, the threshold and the lead time"
        ),
    )
    point["lead_time"] = warn_if(
        point["lead_time"],
        n_ev == 0,
        why.format("no seed has an event", "the lead time and detection rate"),
    )
    out = dict(point)
    for name in ("auroc", "lead_time", "detection_rate"):
        out[f"{name}_ci"] = _interval(boot[name], confidence)
    out.update(n_positive=n_pos, n_negative=n_neg, n_events=n_ev)
    return {k: out[k] for k in _SCORE_KEYS}


@functools.partial(jax.jit, static_argnums=(5, 6, 7))
def _score_all(signals, steps, event, window, key, num_resamples, alpha, confidence):
    # One compiled program per shape, the signals stacked and mapped over by a
    # loop (the compile cost of one signal); eager calls would dispatch every
    # bootstrap op separately.
    dtype = steps.dtype
    n_seeds = event.shape[0]
    draws = jax.random.randint(key, (num_resamples, n_seeds), 0, n_seeds)
    weights = jax.vmap(lambda i: jnp.zeros(n_seeds, dtype).at[i].add(1.0))(draws)
    names = list(signals)
    stacked = jnp.stack([signals[name] for name in names])
    scores = jax.lax.map(
        lambda x: _score_signal(x, steps, event, window, weights, alpha, confidence),
        stacked,
    )
    return {name: {k: v[i] for k, v in scores.items()} for i, name in enumerate(names)}


def _check_inputs(steps, event, signals, window):
    steps = jnp.asarray(steps)
    event = jnp.asarray(event)
    if steps.ndim != 1 or steps.shape[0] < 1:
        raise ValueError(
            f"steps must be a 1-D array of checkpoint steps; got shape {steps.shape}"
        )
    if event.ndim != 1:
        raise ValueError(
            f"event_step must have shape (S,) (one step per seed, -1 for none); "
            f"got shape {event.shape}"
        )
    steps = raise_if(
        steps,
        jnp.any(jnp.diff(steps) <= 0),
        "steps must be strictly increasing checkpoint steps",
    )
    event = raise_if(
        event,
        jnp.any(~jnp.isfinite(event) | (event < -1)),
        "event_step must be a finite step ≥ 0 per seed, or -1 for no event",
    )
    shape = (event.shape[0], steps.shape[0])
    checked = {}
    for name, x in signals.items():
        x = check_shape(
            jnp.asarray(x), shape, f"signal {name!r}", expected="(seeds, checkpoints)"
        )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.result_type(float))
        x = raise_if(x, jnp.any(jnp.isnan(x)), f"signal {name!r} contains NaN")
        # ±inf keep their rank but would make interpolated thresholds NaN.
        big = jnp.finfo(x.dtype).max
        checked[name] = jnp.clip(x, -big, big)
    window = positive_scalar(window, "window", hint=" (the horizon W, in steps)")
    return steps, event, checked, window


def forecast_scores(
    trace,
    *,
    window,
    orientation=None,
    steps=None,
    event_step=None,
    false_alarm: float = 0.05,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    key=None,
) -> dict:
    r"""AUROC of "an event within the next ``window`` steps" and lead time at a
    fixed false-alarm rate, per signal, with bootstrap intervals over seeds.

    The definitions (which checkpoints count, labels, threshold, lead, misses,
    the bootstrap) are in this module's docstring; in short, for each seed only
    checkpoints strictly before its event count, a checkpoint is positive when
    the event comes within ``window`` steps after it, and the lead time is the
    median over seeds of ``event − first alarm``, alarms above the
    ``1 − false_alarm`` quantile of the signal over negative checkpoints.

    Args:
        trace: a mapping with ``"steps"`` ``(C,)``, ``"event_step"`` ``(S,)``
            (``-1``: no event) and ``"signals"`` ``{name: (S, C)}`` (the Trace
            of the Sec. 6 experiments; other keys are ignored), or one signal
            as an ``(S, C)`` array together with ``steps`` and ``event_step``.
        window: the horizon ``W`` in steps (``> 0``; may be traced).
        orientation: ``1``, ``-1`` or ``"abs"`` for every signal, or a dict
            name → orientation; signals not in it use
            :data:`DEFAULT_ORIENTATION` (an array signal defaults to ``1``).
            After orienting, larger means more alarm.
        steps, event_step: only with an array ``trace``.
        false_alarm: the false-alarm rate ``α`` fixing the threshold.
        num_resamples: bootstrap resamples of the seeds.
        confidence: the level of the percentile intervals.
        key: PRNG key of the bootstrap (default ``PRNGKey(0)``).

    Returns:
        For a mapping, ``{name: scores}``; for an array, ``scores``: a dict of
        arrays ``auroc``, ``lead_time`` (steps), ``detection_rate``, each with
        ``*_ci`` (shape ``(2,)``), ``threshold`` (in oriented units),
        ``false_alarm_rate`` (realised on the negatives), ``n_positive``,
        ``n_negative``, ``n_events``. Undefined scores are NaN with a warning
        (see the module docstring; :func:`score_note` states the reason).

    Cost ``O(num_resamples · S · C)`` after one sort per signal. Works under
    ``jax.jit`` (``window`` and the arrays may be traced; ``orientation``,
    ``false_alarm``, ``num_resamples``, ``confidence`` are static) and
    ``jax.vmap``. NaN in a signal, steps that do not increase, or an event
    step below ``-1`` raise a ``ValueError`` (an equinox runtime error under
    ``jit``).

    Example:
        >>> import jax.numpy as jnp
        >>> steps = jnp.arange(10) * 10            # checkpoints 0, 10, ..., 90
        >>> ramp = jnp.stack([steps, steps]) / 10.0  # two seeds, rising to an event
        >>> out = forecast_scores(ramp, steps=steps, event_step=jnp.array([95, 95]),
        ...                       window=20, num_resamples=200)
        >>> int(out["n_positive"]), int(out["n_negative"])  # 80, 90 vs 0 ... 70
        (4, 16)
        >>> float(out["threshold"])  # 95 % quantile of the negatives: 7
        7.0
        >>> float(out["auroc"]), float(out["lead_time"])  # first alarm at 80
        (1.0, 15.0)
    """
    if isinstance(trace, Mapping):
        if steps is not None or event_step is not None:
            raise ValueError(
                "forecast_scores: steps/event_step come from the trace mapping; "
                "pass them only with a single (S, C) signal array"
            )
        missing = [k for k in ("steps", "event_step", "signals") if k not in trace]
        if missing:
            raise ValueError(f"forecast_scores: the trace has no {missing} entries")
        signals, single = dict(trace["signals"]), False
        steps, event_step = trace["steps"], trace["event_step"]
    else:
        if steps is None or event_step is None:
            raise ValueError(
                "forecast_scores: an array signal needs steps= and event_step="
            )
        signals, single = {"signal": trace}, True
        orientation = 1 if orientation is None else orientation
    if not 0 < false_alarm < 1:
        raise ValueError(f"false_alarm must be in (0, 1); got {false_alarm}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    num_resamples = positive_int(num_resamples, "num_resamples")
    steps, event, signals, window = _check_inputs(steps, event_step, signals, window)
    dtype = jnp.result_type(float)
    steps, event = steps.astype(dtype), event.astype(dtype)
    key = jax.random.PRNGKey(0) if key is None else key
    oriented = {
        name: _orient(x, _orientation_for(name, orientation), name)
        for name, x in signals.items()
    }
    out = _score_all(
        oriented, steps, event, window, key, num_resamples, false_alarm, confidence
    )
    return out["signal"] if single else out


def score_note(scores: Mapping) -> str:
    """Why a score is NaN, from the counts :func:`forecast_scores` returns ("" if
    every point score is defined).

    >>> score_note({"n_positive": 0, "n_negative": 5, "n_events": 2})
    'no positive checkpoints (no event with a checkpoint within the window before it)'
    """
    notes = []
    if int(scores["n_positive"]) == 0:
        notes.append(
            "no positive checkpoints (no event with a checkpoint within the "
            "window before it)"
        )
    if int(scores["n_negative"]) == 0:
        notes.append("no negative checkpoints")
    if int(scores["n_events"]) == 0:
        notes.append("no seed has an event")
    return "; ".join(notes)
