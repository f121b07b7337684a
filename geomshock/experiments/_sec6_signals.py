"""Signals at training checkpoints, shared by the Sec. 6 sub-experiments.

A run of ``S`` seeds saved at ``C`` checkpoints becomes a *Trace* (a plain
dict): ``steps (C,)``, ``loss (S, C)``, ``event_step (S,)`` (``-1``: none),
``signals`` and ``signals_gauged`` ``{name: (S, C)}`` and a JSON-able
``meta``. The curvature signals come from
:func:`geomshock.diagnostics.quotient_curvature` and
:func:`~geomshock.diagnostics.raw_curvature` (quotient dense: the charts
here are small; raw dense unless a run asks for lanczos), ``raw_norm`` is
the Euclidean norm of the flattened parameters,
``llc`` the local learning coefficient by SGLD
(:func:`~geomshock.diagnostics.local_learning_coefficient`, devinterp's
estimator) and ``loss_slope`` the backward difference of ``log loss`` per step
(causal: the value at a checkpoint uses only the past; ``0`` at the first
one).
``signals_gauged`` recomputes every signal after a random ``chart.gauge`` of
the parameters at that checkpoint (one key per seed and checkpoint).
"""

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..charts import CanonicalOrderChart, TwoLayerReLUChart
from ..diagnostics import (
    local_learning_coefficient,
    quotient_curvature,
    raw_curvature,
)

WIDTH = 12
REGRESSION_POINTS = 32  # the regression's sample count: the LLC's nominal n


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
    return jnp.linspace(-2.0, 2.0, REGRESSION_POINTS)[:, None]


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

# The LLC baseline (devinterp's SGLD estimator): chains, steps and localisation
# γ; the step size is half the Euler stability limit of the stiffest direction,
# ε = 0.5 / (nβ·max(λ_max, 0) + γ), λ_max the raw top Hessian eigenvalue there.
LLC_CHAINS = 4
LLC_STEPS = 100
LLC_LOCALIZATION = 100.0


def llc_signal(loss: Callable, params, key, *, n: int, sharpness) -> jax.Array:
    """The local learning coefficient at ``params`` (nominal ``n`` samples,
    ``β = 1/log n``), with the step size set from ``sharpness`` (see above)."""
    n_beta = n / math.log(n)
    step = 0.5 / (n_beta * jnp.maximum(sharpness, 0.0) + LLC_LOCALIZATION)
    out = local_learning_coefficient(
        loss,
        params,
        key,
        n=n,
        num_chains=LLC_CHAINS,
        num_steps=LLC_STEPS,
        step_size=step,
        localization=LLC_LOCALIZATION,
    )
    return out["llc"]


def curvature_signals(
    loss: Callable,
    chart,
    params,
    key=None,
    *,
    llc_n: int | None = None,
    raw_method: str = "dense",
    raw_krylov: int | None = None,
) -> dict[str, jax.Array]:
    """Quotient and raw curvature signals, the raw norm and (with ``llc_n``,
    the nominal sample count, and a ``key``) the LLC at one point.

    For a :class:`~geomshock.charts.CanonicalOrderChart` the quotient
    curvature is that of its inner chart at the canonically ordered
    representative ``lift(project(θ))``: the same numbers as
    ``quotient_curvature(loss, chart, θ)`` (same lift and metric at ordered
    points; checked by the tests), without differentiating through the sort.
    ``raw_method``/``raw_krylov`` select the raw curvature's method and Krylov
    depth.
    """
    inner, rep = chart, params
    if isinstance(chart, CanonicalOrderChart):
        inner = chart.chart
        rep = inner.lift(chart.project(params))
    quotient = quotient_curvature(loss, inner, rep, method="dense")
    raw = raw_curvature(loss, params, method=raw_method, num_lanczos=raw_krylov)
    out = {
        "quotient_min_eig": quotient["min_eig"],
        "quotient_max_eig": quotient["max_eig"],
        "quotient_laplacian": quotient["laplacian"],
        "raw_min_eig": raw["min_eig"],
        "raw_max_eig": raw["max_eig"],
        "raw_norm": jnp.linalg.norm(ravel_pytree(params)[0]),
    }
    if llc_n is not None:
        out["llc"] = llc_signal(loss, params, key, n=llc_n, sharpness=raw["max_eig"])
    return out


CHUNK = 8  # points per compiled call: one compilation serves runs of any size


@functools.cache
def _compiled(loss: Callable, chart, gauge_scale: float, extra, llc_n):
    def point(p, k):
        k_gauge, k_llc = jax.random.split(k)
        moved = chart.gauge(p, k_gauge, gauge_scale)
        out = []
        for theta in (p, moved):
            values = curvature_signals(loss, chart, theta, k_llc, llc_n=llc_n)
            values["q"] = chart.project(theta)
            if extra is not None:
                values.update(extra(theta))
            out.append(values)
        return tuple(out)

    return jax.jit(jax.vmap(point))


def signals_at_checkpoints(
    loss: Callable, chart, params, key, *, gauge_scale: float, extra=None, llc_n=None
):
    """``(signals, signals_gauged)`` for params stacked as ``(S, C, ...)``.

    Evaluated ``CHUNK`` points per call of one compiled, vmapped function
    (cached per ``loss``, ``chart``, ``gauge_scale``, ``extra``: pass the same
    objects to share it between runs). Besides the signals, ``"q"`` holds the
    quotient coordinates ``chart.project``; ``extra(params) -> dict`` adds
    more per-point values (quotient observables); ``llc_n`` (the nominal
    sample count) adds the ``"llc"`` baseline, with the same SGLD key at a
    point and at its gauged copy. :func:`make_trace` keeps only the scalar
    signals.
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
    fn = _compiled(loss, chart, gauge_scale, extra, llc_n)
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
