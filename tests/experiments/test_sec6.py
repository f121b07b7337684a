"""Sec. 6 experiment: gauge and edge-of-stability end to end through the CLI,
gauge invariance of the results, the event rule, the verdict logic."""

import json
import re

import numpy as np
import pytest

from geomshock.cli import main
from geomshock.experiments import _sec6, _sec6_eos, _sec6_gauge
from geomshock.experiments._registry import QUICK_CHANGES

MINE = ("gauge", "edge_of_stability")


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    out = tmp_path_factory.mktemp("sec6")
    with pytest.MonkeyPatch.context() as mp:  # H4's sub-experiments have own tests
        mp.setattr(
            _sec6,
            "SUBEXPERIMENTS",
            {k: v for k, v in _sec6.SUBEXPERIMENTS.items() if k in MINE},
        )
        assert main(["reproduce", "sec6", "--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "sec6.json").read_text())


def test_cli_writes_figures_json_and_report(reproduced):
    out, data = reproduced
    assert sorted(data["figures"]) == [
        "sec6_edge_of_stability.png",
        "sec6_gauge.png",
        "sec6_summary.png",
    ]
    for name in data["figures"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "| signal | gauge | edge_of_stability |" in md
    assert "**Verdict.**" in md
    assert "Not tested on a real transition" in md  # plateau/transformer patched out


def test_json_has_auroc_and_lead_time_per_experiment_and_signal(reproduced):
    _, data = reproduced
    assert list(data["experiments"]) == list(MINE)
    for name, d in data["experiments"].items():
        assert {"quotient_min_eig", "raw_max_eig", "raw_norm", "loss_slope"} <= set(
            d["scores"]
        ), name
        for signal, s in d["scores"].items():
            if s["note"]:
                continue
            assert 0 <= s["auroc"] <= 1, (name, signal)
            lo, hi = s["auroc_ci"]
            assert lo <= s["auroc"] <= hi, (name, signal)
            assert s["lead_time"] >= 0 and s["lead_time_ci"][0] <= s["lead_time_ci"][1]
        seeds = len(d["event_step"])
        assert np.asarray(d["loss"]).shape == (seeds, len(d["steps"]))


def test_gauge_leaves_quotient_quantities_and_moves_raw_ones(reproduced):
    _, data = reproduced
    inv = data["experiments"]["gauge"]["invariance"]["two_layer_mlp"]
    assert inv["observables"]["q"] <= 1e-8
    gammas = [k for k in inv["observables"] if k.startswith("observable:")]
    assert "observable:gamma" in gammas and "observable:path_norm_l2" in gammas
    for name in gammas:
        assert inv["observables"][name] <= 1e-8, name
    for name in ("quotient_min_eig", "quotient_max_eig", "quotient_laplacian"):
        assert inv["signals"][name]["max_rel_change"] <= 1e-8, name
    for name in ("raw_norm", "raw_max_eig"):
        f = inv["signals"][name]
        assert max(f["factor_max"], 1 / f["factor_min"]) > 2, name
    # the same holds for the probes of the edge-of-stability run
    change = data["experiments"]["edge_of_stability"]["gauge_change"]
    assert change["quotient_max_eig"]["max_rel_change"] <= 1e-8
    assert change["raw_max_eig"]["factor_max"] > 2
    assert change["loss_slope"]["max_rel_change"] == 0


def test_edge_of_stability_events_follow_the_stated_rule(reproduced):
    _, data = reproduced
    d = data["experiments"]["edge_of_stability"]
    steps = np.asarray(d["steps"])
    sharp = np.asarray(d["signals"]["raw_max_eig"])
    loss = np.asarray(d["loss"])
    limit = 2 / _sec6_eos.LR
    for s, event in enumerate(d["event_step"]):
        hit = [
            c
            for c in range(len(steps))
            if sharp[s, c] >= 0.95 * limit
            or (c > 0 and loss[s, c] > 1.5 * loss[s, :c].min())
        ]
        assert event == (steps[hit[0]] if hit else -1)
    assert np.sum(np.asarray(d["event_step"]) >= 0) >= len(d["event_step"]) // 2
    # progressive sharpening: the sharpness rises from well below 2/η towards it
    assert np.all(sharp.max(axis=1) > 1.4 * sharp[:, 0])
    assert np.mean(sharp.max(axis=1) > 0.9 * limit) >= 0.5


def test_quick_changes_match_the_settings():
    text = " ".join(QUICK_CHANGES["sec6"].split())
    for module, name in ((_sec6_gauge, "gauge"), (_sec6_eos, "edge_of_stability")):
        quick, full = module.settings(True), module.settings(False)
        part = re.search(name + r": ([^;]*;[^;]*)", text).group(1)
        assert f"{quick['seeds']} instead of {full['seeds']} seeds" in part
        assert f"{quick['steps']} instead of {full['steps']} steps" in part
    quick, full = _sec6.settings(True), _sec6.settings(False)
    assert f"{quick['resamples']} instead of {full['resamples']} bootstrap" in text


def _scores(q, q_ci, r, r_ci):
    return {
        "scores": {
            "quotient_min_eig": {"auroc": q, "auroc_ci": q_ci},
            "raw_min_eig": {"auroc": r - 0.1, "auroc_ci": [0.0, r]},
            "raw_max_eig": {"auroc": r, "auroc_ci": r_ci},
        },
        "event_step": [10, 20, 30, -1],
    }


@pytest.mark.parametrize(
    ("q", "q_ci", "r", "r_ci", "outcome"),
    [
        (0.9, [0.85, 0.95], 0.6, [0.5, 0.7], "held"),
        (0.4, [0.3, 0.5], 0.8, [0.7, 0.9], "failed"),
        (0.7, [0.6, 0.8], 0.65, [0.55, 0.75], "inconclusive"),
    ],
)
def test_verdict_compares_with_the_best_raw_signal(q, q_ci, r, r_ci, outcome):
    c = _sec6.compare(_scores(q, q_ci, r, r_ci))
    assert c["outcome"] == outcome and c["raw_signal"] == "raw_max_eig"
    assert (c["seeds"], c["events"]) == (4, 3)
    v = _sec6.verdict({"plateau": _scores(q, q_ci, r, r_ci)})
    assert v[outcome] == 1 and v["real_transitions"] == ["plateau"]
    sentence = _sec6.verdict_sentence(v)
    assert f"{q:.2f} [{q_ci[0]:.2f}, {q_ci[1]:.2f}]" in sentence
    assert f"raw_max_eig {r:.2f}" in sentence and "on 4 seeds" in sentence


def test_verdict_needs_enough_events():
    data = _scores(0.9, [0.85, 0.95], 0.6, [0.5, 0.7])
    data["event_step"] = [10, 20, -1, -1]
    assert _sec6.compare(data)["outcome"].startswith("too few events")
    v = _sec6.verdict({"transformer": data})
    assert v["too_few_events"] == 1 and v["held"] == 0
    assert "too few events" in _sec6.verdict_sentence(v)


def test_missing_sub_experiment_is_skipped_with_a_note(monkeypatch):
    monkeypatch.setattr(
        _sec6, "SUBEXPERIMENTS", {"plateau": ("geomshock.experiments._nope", "x")}
    )
    data = _sec6.compute(quick=True)
    assert data["experiments"] == {} and "not available" in data["skipped"]["plateau"]
    assert "- plateau: not available" in _sec6.report(data)


def test_plot_and_report_from_the_json_data(reproduced):
    _, data = reproduced
    figures = _sec6.plot(data)
    assert list(figures) == ["sec6_gauge", "sec6_edge_of_stability", "sec6_summary"]
    eos_axes = figures["sec6_edge_of_stability"].axes
    assert len(eos_axes) == 4 and any("2/η" in t.get_text() for t in eos_axes[1].texts)
    md = _sec6.report(data)
    assert md == data["markdown"]["body"]
