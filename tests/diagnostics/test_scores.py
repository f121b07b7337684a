"""forecast_scores against brute-force references: AUROC (Mann–Whitney pairs and
scipy), thresholds and leads (numpy), the seed bootstrap (explicit resampling)."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from geomshock.diagnostics import forecast_scores
from geomshock.diagnostics._scores import _weighted_quantile, score_note
from tests._errors import raises_eager_and_jit

RNG = np.random.default_rng(7)
STEPS = np.arange(0, 200, 10)  # C = 20 checkpoints
EVENTS = np.array([95, 150, -1, 40, 195, -1, 120, 60])  # S = 8, two without event
WINDOW = 30
NUM = 400  # bootstrap resamples


def _signal(rng=RNG, ties=True):
    x = rng.normal(size=(EVENTS.size, STEPS.size))
    # rising before each event, so the AUROC is far from 1/2; rounded: ties
    for s, e in enumerate(EVENTS):
        if e >= 0:
            x[s] += 2.0 * np.exp(-np.maximum(e - STEPS, 0) / WINDOW)
    return np.round(x, 1) if ties else x


def _labels_loop(steps, events, window):
    pos, neg = [], []
    for s, e in enumerate(events):
        for c, t in enumerate(steps):
            if e >= 0 and t >= e:
                continue
            (pos if e >= 0 and e - t <= window else neg).append((s, c))
    return pos, neg


def _auroc_pairs(x, pos, neg):
    xp = np.array([x[i] for i in pos])
    xn = np.array([x[i] for i in neg])
    diff = xp[:, None] - xn[None, :]
    return (np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size


def _lead_loop(x, steps, events, neg, alpha=0.05):
    thr = np.quantile([x[i] for i in neg], 1 - alpha)
    leads = []
    for s, e in enumerate(events):
        if e < 0:
            continue
        alarms = [t for c, t in enumerate(steps) if t < e and x[s, c] > thr]
        leads.append(e - alarms[0] if alarms else 0)
    return thr, np.median(leads), np.mean([lead > 0 for lead in leads])


@pytest.fixture(scope="module")
def scored():
    x = _signal()
    trace = {"steps": STEPS, "event_step": EVENTS, "signals": {"raw_max_eig": x}}
    fn = jax.jit(lambda t: forecast_scores(t, window=WINDOW, num_resamples=NUM))
    return x, fn, fn(trace)["raw_max_eig"]


def test_auroc_is_mann_whitney_by_pairs_and_scipy(scored):
    x, _, out = scored
    pos, neg = _labels_loop(STEPS, EVENTS, WINDOW)
    assert (int(out["n_positive"]), int(out["n_negative"])) == (len(pos), len(neg))
    assert int(out["n_events"]) == 6
    ref = _auroc_pairs(x, pos, neg)
    assert 0.7 < ref < 1.0  # a test that could fail
    np.testing.assert_allclose(out["auroc"], ref, rtol=1e-13)
    u = stats.mannwhitneyu([x[i] for i in pos], [x[i] for i in neg]).statistic
    np.testing.assert_allclose(out["auroc"], u / (len(pos) * len(neg)), rtol=1e-13)


def test_threshold_and_lead_time_match_numpy(scored):
    x, _, out = scored
    _, neg = _labels_loop(STEPS, EVENTS, WINDOW)
    thr, lead, detect = _lead_loop(x, STEPS, EVENTS, neg)
    np.testing.assert_allclose(out["threshold"], thr, rtol=1e-13)
    np.testing.assert_allclose(out["lead_time"], lead, rtol=1e-13)
    np.testing.assert_allclose(out["detection_rate"], detect, rtol=1e-13)
    rate = np.mean([x[i] > thr for i in neg])
    np.testing.assert_allclose(out["false_alarm_rate"], rate, rtol=1e-13)
    assert rate <= 0.05 + 1 / len(neg)  # linear quantile: within one checkpoint


def test_lead_time_on_a_constructed_example():
    steps = np.arange(0, 100, 10)
    events = np.array([55, 85, 75, -1, -1, -1, -1, -1])
    x = np.zeros((8, 10))
    x[0, 3] = 5.0  # seed 0 alarms at step 30: lead 25
    x[1, 2] = 5.0  # seed 1 alarms at step 20 (and later): lead 65
    x[1, 6] = 5.0
    x[2, 8] = 5.0  # seed 2 alarms only after its event (80 > 75): a miss, lead 0
    out = forecast_scores(
        x, steps=steps, event_step=events, window=20, num_resamples=NUM
    )
    # counted before the events: 6 + 9 + 8, of which 2 + 2 + 2 within 20 steps;
    # 50 checkpoints of the seeds without event. 3 of the 67 negatives are 5
    # (steps 30, 20, 60, all more than 20 before their event), so the 95 %
    # quantile (index 62.7 of 66) is 0.
    assert (int(out["n_positive"]), int(out["n_negative"])) == (6, 67)
    assert float(out["threshold"]) == 0.0
    assert float(out["lead_time"]) == 25.0  # median of 25, 65, 0
    np.testing.assert_allclose(out["detection_rate"], 2 / 3, rtol=1e-15)
    np.testing.assert_allclose(out["false_alarm_rate"], 3 / 67, rtol=1e-15)


def test_bootstrap_is_the_explicit_resampling_of_seeds():
    x = _signal(np.random.default_rng(1))
    key = jax.random.PRNGKey(5)
    num = NUM
    out = forecast_scores(
        x, steps=STEPS, event_step=EVENTS, window=WINDOW, num_resamples=num, key=key
    )
    draws = np.asarray(jax.random.randint(key, (num, EVENTS.size), 0, EVENTS.size))
    aurocs, leads = [], []
    for idx in draws:
        xs, ev = x[idx], EVENTS[idx]
        pos, neg = _labels_loop(STEPS, ev, WINDOW)
        aurocs.append(_auroc_pairs(xs, pos, neg) if pos and neg else np.nan)
        leads.append(_lead_loop(xs, STEPS, ev, neg)[1] if np.any(ev >= 0) else np.nan)
    for name, samples in (("auroc", aurocs), ("lead_time", leads)):
        ref = np.nanquantile(samples, [0.025, 0.975])
        np.testing.assert_allclose(out[f"{name}_ci"], ref, rtol=1e-12)
    assert out["auroc_ci"][0] < out["auroc"] < out["auroc_ci"][1]


def test_bootstrap_interval_covers_the_truth_on_synthetic_data():
    # Positives N(d, 1), negatives N(0, 1), independent: AUROC = Φ(d/√2).
    d, seeds, reps = 1.0, 12, 40
    truth = stats.norm.cdf(d / math.sqrt(2))
    steps = jnp.arange(0, 100, 5)
    events = jnp.full((seeds,), 100)
    pos = (100 - steps) <= 30

    def one(key):
        x = jax.random.normal(key, (seeds, steps.size)) + d * pos
        out = forecast_scores(
            x, steps=steps, event_step=events, window=30, num_resamples=500
        )
        return out["auroc"], out["auroc_ci"]

    keys = jax.random.split(jax.random.PRNGKey(11), reps)
    point, ci = jax.jit(jax.vmap(one))(keys)
    covered = np.sum((ci[:, 0] <= truth) & (truth <= ci[:, 1]))
    assert covered >= 34  # nominal 38 of 40
    assert np.all(ci[:, 1] - ci[:, 0] < 0.35)  # and not trivially wide
    np.testing.assert_allclose(np.mean(point), truth, atol=0.03)


def test_weighted_quantile_is_numpy_quantile_of_the_repeated_sample():
    values = np.sort(RNG.normal(size=9))
    counts = np.array([0, 3, 1, 0, 2, 1, 0, 4, 1])
    for p in (0.0, 0.13, 0.5, 0.95, 1.0):
        got = _weighted_quantile(jnp.asarray(values), jnp.asarray(counts, float), p)
        np.testing.assert_allclose(
            got, np.quantile(np.repeat(values, counts), p), rtol=1e-14
        )


def test_jit_vmap_over_window_and_orientation(scored):
    x, _, out = scored
    trace = {"steps": STEPS, "event_step": EVENTS, "signals": {"raw_max_eig": x}}

    def scores(w, orientation=None):
        return forecast_scores(
            trace, window=w, num_resamples=NUM, orientation=orientation
        )["raw_max_eig"]

    eager = scores(WINDOW)  # compiled inside, as the fixture's outer jit
    for name in out:
        np.testing.assert_allclose(out[name], eager[name], rtol=1e-13)
    windows = jnp.array([20.0, 30.0, 50.0])
    loop = [scores(w)["auroc"] for w in windows]
    vmapped = jax.vmap(lambda w: scores(w)["auroc"])(windows)
    np.testing.assert_allclose(vmapped, loop, rtol=1e-13)
    assert len(set(np.round(loop, 12))) == 3
    flipped = scores(WINDOW, orientation={"raw_max_eig": -1})
    np.testing.assert_allclose(flipped["auroc"], 1 - out["auroc"], rtol=1e-13)


def test_degenerate_inputs_give_nan_with_a_reason():
    x = _signal(np.random.default_rng(2))
    with pytest.warns(UserWarning, match="no seed has an event"):
        out = forecast_scores(
            x,
            steps=STEPS,
            event_step=np.full(EVENTS.size, -1),
            window=WINDOW,
            num_resamples=NUM,
        )
    assert np.isnan(out["auroc"]) and np.isnan(out["lead_time"])
    assert np.all(np.isnan(out["auroc_ci"]))
    assert "no positive checkpoints" in score_note(out)
    assert "no seed has an event" in score_note(out)
    # every counted checkpoint is within the window: no negatives
    with pytest.warns(UserWarning, match="no negative checkpoints"):
        out = forecast_scores(
            x,
            steps=STEPS,
            event_step=np.full(EVENTS.size, 250),
            window=500,
            num_resamples=NUM,
        )
    assert np.isnan(out["auroc"]) and np.isnan(out["threshold"])
    assert np.isnan(out["lead_time"]) and score_note(out) == "no negative checkpoints"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fine = forecast_scores(
            x, steps=STEPS, event_step=EVENTS, window=WINDOW, num_resamples=NUM
        )
    assert score_note(fine) == ""


def _scores_of(x, steps, events, window=10.0):
    return forecast_scores(
        x, steps=steps, event_step=events, window=window, num_resamples=NUM
    )["auroc"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"x": np.nan}, "contains NaN"),
        ({"steps": 1}, "strictly increasing"),
        ({"events": -3}, "event_step must be"),
        ({"window": -1.0}, "window must be finite and > 0"),
    ],
)
def test_bad_input_raises_eager_and_under_jit(change, match):
    x = np.zeros((2, 4))
    x[0, 1] = 1.0
    steps, events, window = np.arange(4.0) * 10, np.array([25.0, -1.0]), 10.0
    if "x" in change:
        x[1, 2] = change["x"]
    if "steps" in change:
        steps[2] = steps[1]
    if "events" in change:
        events[1] = change["events"]
    window = change.get("window", window)
    raises_eager_and_jit(_scores_of, x, steps, events, window, match=match)


def test_static_misuse_is_a_clear_value_error():
    x = np.zeros((2, 4))
    steps, events = np.arange(4), np.array([2, -1])
    with pytest.raises(ValueError, match=r"shape \(2, 4\)"):
        forecast_scores(x[:, :3], steps=steps, event_step=events, window=1)
    with pytest.raises(ValueError, match="needs steps= and event_step="):
        forecast_scores(x, window=1)
    with pytest.raises(ValueError, match="no orientation known for signal 'mystery'"):
        forecast_scores(
            {"steps": steps, "event_step": events, "signals": {"mystery": x}}, window=1
        )
    with pytest.raises(ValueError, match="must be 1, -1 or 'abs'"):
        forecast_scores(x, steps=steps, event_step=events, window=1, orientation="down")
