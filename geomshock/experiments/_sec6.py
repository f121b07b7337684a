"""Sec. 6 of the paper put to the test: does quotient curvature anticipate
abrupt regime changes more reliably than raw parameter-space curvature?

Four sub-experiments each give a Trace (:mod:`._sec6_signals`): ``gauge``
(random symmetry transforms during training, :mod:`._sec6_gauge`),
``plateau`` (teacher–student escape, :mod:`._sec6_plateau`), ``transformer``
(an abrupt transition in an attention model, :mod:`._sec6_transformer`) and
``edge_of_stability`` (the negative control, :mod:`._sec6_eos`). A
sub-experiment whose module is not installed is skipped, with a note.

Each signal is scored by :func:`geomshock.diagnostics.forecast_scores`: the
AUROC of "an event within the next ``W`` steps" and the median lead time at a
5 % false-alarm rate, with seed-bootstrap intervals. ``W`` is the Trace's
``meta["window"]`` when it sets one, else 5 checkpoint intervals. How a random
gauge transform changes each signal compares ``signals`` with
``signals_gauged``.

The verdict on the prediction compares, per experiment, the quotient
curvature signal ``quotient_min_eig`` (the paper's "strongly negative reduced
curvature") with the *better* of the raw curvature signals ``raw_min_eig``
and ``raw_max_eig`` (the strongest raw baseline): the prediction *held* when
the quotient AUROC's interval lies above the raw one's, *failed* when below,
and is *inconclusive* when they overlap; with fewer than ``MIN_EVENTS``
seeds with an event it is not judged. It is decided on the real
transitions (``plateau``, ``transformer``); ``gauge`` (where the raw signals
are corrupted by construction) and the control are reported beside it.
"""

import importlib
import importlib.util
from typing import Any

import jax
import numpy as np

from ..diagnostics import DEFAULT_ORIENTATION, forecast_scores, score_note
from ._registry import Experiment
from ._sec6_signals import gauge_changes

# name -> (module, what it is)
SUBEXPERIMENTS: dict[str, tuple[str, str]] = {
    "gauge": (
        "geomshock.experiments._sec6_gauge",
        "random gauge transforms during training",
    ),
    "plateau": (
        "geomshock.experiments._sec6_plateau",
        "teacher–student plateau escape",
    ),
    "transformer": (
        "geomshock.experiments._sec6_transformer",
        "abrupt transition in an attention model",
    ),
    "edge_of_stability": (
        "geomshock.experiments._sec6_eos",
        "negative control: sharpness reaching 2/η",
    ),
}
REAL_TRANSITIONS = ("plateau", "transformer")
CONTROL = "edge_of_stability"
QUOTIENT = "quotient_min_eig"
RAW = ("raw_min_eig", "raw_max_eig")
WINDOW_CHECKPOINTS = 5
FALSE_ALARM = 0.05
MIN_EVENTS = 3  # fewer seeds with an event: the seed bootstrap cannot judge


def settings(quick: bool) -> dict[str, Any]:
    return {"resamples": 500 if quick else 2000}


def _load(name: str):
    module_name = SUBEXPERIMENTS[name][0]
    if importlib.util.find_spec(module_name) is None:
        return None
    return getattr(importlib.import_module(module_name), "run", None)


def _window(trace) -> float:
    meta = trace.get("meta", {})
    if "window" in meta:
        return float(meta["window"])
    return float(WINDOW_CHECKPOINTS * np.median(np.diff(np.asarray(trace["steps"]))))


def _score(trace, resamples: int) -> tuple[dict, list[str]]:
    known = {k: v for k, v in trace["signals"].items() if k in DEFAULT_ORIENTATION}
    skipped = sorted(set(trace["signals"]) - set(known))
    scores = forecast_scores(
        {**trace, "signals": known},
        window=_window(trace),
        false_alarm=FALSE_ALARM,
        num_resamples=resamples,
        key=jax.random.PRNGKey(0),
    )
    out = {}
    for name, s in scores.items():
        row = {k: np.asarray(v).tolist() for k, v in s.items()}
        row["note"] = score_note(s)
        out[name] = row
    return out, skipped


def compute(
    *, quick: bool = False, seeds: int | None = None, seed: int | None = None
) -> dict[str, Any]:
    """Run every available sub-experiment, score its signals (plain data).

    ``seeds`` overrides each sub-experiment's number of seeds (default: its
    own, see ``QUICK_CHANGES``); ``seed`` is unused.
    """
    del seed
    cfg = settings(quick)
    experiments, notes = {}, {}
    for index, name in enumerate(SUBEXPERIMENTS):
        run = _load(name)
        if run is None:
            notes[name] = "not available in this installation (skipped)"
            continue
        trace = run(quick=quick, seeds=seeds, key=jax.random.PRNGKey(index))
        scores, skipped = _score(trace, cfg["resamples"])
        data = {
            "description": SUBEXPERIMENTS[name][1],
            "meta": trace.get("meta", {}),
            "window": _window(trace),
            "steps": np.asarray(trace["steps"]),
            "loss": np.asarray(trace["loss"]),
            "event_step": np.asarray(trace["event_step"]),
            "signals": {k: np.asarray(v) for k, v in trace["signals"].items()},
            "scores": scores,
            "gauge_change": gauge_changes(
                trace["signals"], trace.get("signals_gauged", {})
            ),
            "unscored_signals": skipped,
        }
        if "invariance" in trace:
            data["invariance"] = trace["invariance"]
        experiments[name] = data
    num_seeds = max((len(d["event_step"]) for d in experiments.values()), default=0)
    return {
        "quick": quick,
        "options": {"quick": quick, "seeds": list(range(num_seeds))},
        "false_alarm": FALSE_ALARM,
        "resamples": cfg["resamples"],
        "experiments": experiments,
        "skipped": notes,
        "verdict": verdict(experiments),
    }


def _best_raw(scores) -> str | None:
    present = [r for r in RAW if r in scores and np.isfinite(scores[r]["auroc"])]
    if not present:
        return None
    return max(present, key=lambda r: scores[r]["auroc"])


def compare(data: dict[str, Any]) -> dict[str, Any] | None:
    """Quotient vs the best raw curvature signal in one experiment's data."""
    scores = data["scores"]
    raw = _best_raw(scores)
    if QUOTIENT not in scores or raw is None:
        return None
    q, r = scores[QUOTIENT], scores[raw]
    if not np.isfinite(q["auroc"]):
        return None
    q_lo, q_hi = q["auroc_ci"]
    r_lo, r_hi = r["auroc_ci"]
    events = int(np.sum(np.asarray(data["event_step"]) >= 0))
    if events < MIN_EVENTS:
        outcome = f"too few events (< {MIN_EVENTS})"
    elif q_lo > r_hi:
        outcome = "held"
    elif q_hi < r_lo:
        outcome = "failed"
    else:
        outcome = "inconclusive"
    return {
        "outcome": outcome,
        "raw_signal": raw,
        "quotient_auroc": q["auroc"],
        "quotient_ci": [q_lo, q_hi],
        "raw_auroc": r["auroc"],
        "raw_ci": [r_lo, r_hi],
        "seeds": len(data["event_step"]),
        "events": events,
    }


def verdict(experiments: dict[str, Any]) -> dict[str, Any]:
    per = {name: compare(data) for name, data in experiments.items()}
    real = {n: c for n, c in per.items() if n in REAL_TRANSITIONS and c is not None}
    outcomes = ("held", "failed", "inconclusive")
    counts = {o: sum(c["outcome"] == o for c in real.values()) for o in outcomes}
    counts["too_few_events"] = len(real) - sum(counts.values())
    return {"per_experiment": per, "real_transitions": sorted(real), **counts}


def _fmt_ci(value, ci, digits=2) -> str:
    # float(): data read back from JSON hold non-finite values as strings
    if value is None or not np.isfinite(float(value)):
        return "n/a"
    value, (lo, hi) = float(value), (float(c) for c in ci)
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _cell(score) -> str:
    if score is None:
        return "—"
    auroc = _fmt_ci(score["auroc"], score["auroc_ci"])
    lead = _fmt_ci(score["lead_time"], score["lead_time_ci"], 0)
    note = f" ({score['note']})" if score.get("note") else ""
    return f"{auroc}; lead {lead}{note}"


def _sentence(name: str, c: dict) -> str:
    return (
        f"{name}: quotient_min_eig AUROC "
        f"{_fmt_ci(c['quotient_auroc'], c['quotient_ci'])}"
        f" vs {c['raw_signal']} {_fmt_ci(c['raw_auroc'], c['raw_ci'])} "
        f"({c['events']} events on {c['seeds']} seeds): {c['outcome']}"
    )


def verdict_sentence(v: dict[str, Any]) -> str:
    """The plain sentence on the Sec. 6 prediction, from the numbers."""
    per = v["per_experiment"]
    real = v["real_transitions"]
    if real:
        n = len(real)
        if v["held"] == n:
            head = f"The prediction held on all {n} real transition(s)"
        elif v["failed"] == n:
            head = f"The prediction failed on all {n} real transition(s)"
        elif v["held"] == 0 and v["failed"] == 0:
            head = f"The data do not decide the prediction on {n} real transition(s)"
        else:
            head = (
                f"The prediction held on {v['held']}, failed on {v['failed']}, was "
                f"inconclusive on {v['inconclusive']} and had too few events on "
                f"{v['too_few_events']} of {n} real transition(s)"
            )
        text = head + " — " + "; ".join(_sentence(k, per[k]) for k in real) + "."
    else:
        text = "Not tested on a real transition: neither plateau nor transformer ran."
    others = [k for k in per if k not in REAL_TRANSITIONS and per[k] is not None]
    if others:
        text += " Beside it: " + "; ".join(_sentence(k, per[k]) for k in others)
        text += " (gauge corrupts raw signals by construction; edge_of_stability is "
        text += "the control, where raw curvature may legitimately win)."
    return text


def report(data: dict[str, Any]) -> str:
    experiments = data["experiments"]
    names = list(experiments)
    signals = []
    for d in experiments.values():
        signals += [s for s in d["scores"] if s not in signals]
    lines = [
        "## Sec. 6: does quotient curvature anticipate regime changes?\n",
        "Paper (Sec. 6): strongly negative reduced (quotient) curvature should "
        "anticipate abrupt regime changes more reliably than raw parameter-space "
        "curvature. Here: per experiment and signal, the AUROC of 'an event within "
        "the next W steps' from the signal at each checkpoint (checkpoints before "
        f"the event only) and the median lead time in steps at a "
        f"{100 * data['false_alarm']:g} % false-alarm rate, with 95 % "
        f"seed-bootstrap intervals ({data['resamples']} resamples).\n",
        "| signal | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for s in signals:
        cells = [_cell(experiments[n]["scores"].get(s)) for n in names]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| experiment | seeds | events | W (steps) | event rule |")
    lines.append("|---|---|---|---|---|")
    for n in names:
        d = experiments[n]
        events = int(np.sum(np.asarray(d["event_step"]) >= 0))
        rule = d["meta"].get("event_rule", "see the module")
        lines.append(
            f"| {n} | {len(d['event_step'])} | {events} | {d['window']:g} | {rule} |"
        )
    lines.append("")
    lines.append(
        "Gauge transform mid-run (each checkpoint re-evaluated after a random "
        "chart.gauge): max relative change / factor range of each signal.\n"
    )
    lines.append("| signal | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for s in signals:
        cells = []
        for n in names:
            g = experiments[n]["gauge_change"].get(s)
            cells.append(
                "—"
                if g is None
                else f"{g['max_rel_change']:.1e} / "
                f"[{g['factor_min']:.3g}, {g['factor_max']:.3g}]"
            )
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("")
    if "gauge" in experiments and "invariance" in experiments["gauge"]:
        lines += _invariance_lines(experiments["gauge"]["invariance"])
    for name, note in data["skipped"].items():
        lines.append(f"- {name}: {note}")
    lines.append("")
    lines.append("**Verdict.** " + verdict_sentence(data["verdict"]) + "\n")
    return "\n".join(lines)


def _invariance_lines(invariance) -> list[str]:
    lines = [
        "Gauge experiment (random gauge transforms during training): quotient "
        "quantities vs raw ones under one more random transform per checkpoint.\n",
        "| model (chart, dim) | quotient coords/observables max rel. change | "
        "quotient curvature max rel. change | raw norm factor | raw max eig factor "
        "| raw min eig factor |",
        "|---|---|---|---|---|---|",
    ]
    for model, inv in invariance.items():
        sig = inv["signals"]
        q_change = max(inv["observables"].values(), default=float("nan"))
        curv = max(sig[k]["max_rel_change"] for k in sig if k.startswith("quotient"))

        def factor(k, sig=sig):
            return f"[{sig[k]['factor_min']:.3g}, {sig[k]['factor_max']:.3g}]"

        lines.append(
            f"| {model} ({inv['chart']}, {inv['dim']}) | {q_change:.1e} | {curv:.1e} "
            f"| {factor('raw_norm')} | {factor('raw_max_eig')} "
            f"| {factor('raw_min_eig')} |"
        )
    lines.append("")
    return lines


def plot(data: dict[str, Any]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    figures = {}
    panels = (
        ("loss", None),
        ("quotient curvature", ("quotient_min_eig", "quotient_max_eig")),
        ("raw curvature and norm", ("raw_min_eig", "raw_max_eig", "raw_norm")),
        ("baselines: loss slope, LLC", ("loss_slope", "llc")),
    )
    for name, d in data["experiments"].items():
        steps = np.asarray(d["steps"])
        events = np.asarray(d["event_step"])
        fig, axes = plt.subplots(2, 2, figsize=(11, 7), layout="constrained")
        for ax, (title, keys) in zip(axes.flat, panels, strict=True):
            series = (
                {"loss": np.asarray(d["loss"])}
                if keys is None
                else {k: np.asarray(d["signals"][k]) for k in keys if k in d["signals"]}
            )
            for i, (k, values) in enumerate(series.items()):
                for s, row in enumerate(values):
                    ax.plot(
                        steps, row, color=f"C{i}", lw=0.8, alpha=0.6,
                        label=k if s == 0 else None,
                    )  # fmt: skip
            for e in events[events >= 0]:
                ax.axvline(e, color="k", lw=0.5, ls=":", alpha=0.5)
            if keys is None:
                ax.set_yscale("log")
            elif "lr" in d["meta"] and "curvature" in title:
                ax.axhline(2 / d["meta"]["lr"], color="r", lw=0.8, ls="--")
                ax.text(steps[0], 2 / d["meta"]["lr"], " 2/η", va="bottom", color="r")
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("step")
            ax.grid(alpha=0.25)
            if series and keys is not None:
                ax.legend(fontsize=7, frameon=False)
        fig.suptitle(
            f"Sec. 6 {name}: {d['description']} (dotted: events, "
            f"{int(np.sum(events >= 0))} of {len(events)} seeds)",
            fontsize=11,
        )
        figures[f"sec6_{name}"] = fig
    figures["sec6_summary"] = _summary_figure(data)
    return figures


def _summary_figure(data):
    import matplotlib.pyplot as plt

    experiments = data["experiments"]
    fig, ax = plt.subplots(figsize=(11, 4), layout="constrained")
    signals = []
    for d in experiments.values():
        signals += [s for s in d["scores"] if s not in signals]
    width = 0.8 / max(len(experiments), 1)
    for j, (name, d) in enumerate(experiments.items()):
        xs, ys, err = [], [], []
        for i, s in enumerate(signals):
            score = d["scores"].get(s)
            if score is None or not np.isfinite(float(score["auroc"])):
                continue
            lo, hi = (float(c) for c in score["auroc_ci"])
            xs.append(i + (j - (len(experiments) - 1) / 2) * width)
            ys.append(score["auroc"])
            err.append([score["auroc"] - lo, hi - score["auroc"]])
        err = np.asarray(err).T if err else None
        ax.bar(xs, ys, width=width, yerr=err, capsize=2, label=name, color=f"C{j}")
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xticks(range(len(signals)), signals, rotation=20, fontsize=8)
    ax.set_ylabel("AUROC (95 % bootstrap CI)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    ax.set_title("Event within the next W steps: AUROC per signal and experiment")
    return fig


SEC6 = Experiment(
    name="sec6",
    title="Sec. 6: quotient vs raw curvature as forecasts of regime changes",
    compute=compute,
    plot=plot,
    report=report,
)
