"""``geomshock reproduce`` end to end (quick mode), its results folder and messages."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from geomshock import cli
from geomshock.cli import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, main
from geomshock.experiments import _sec6, get_experiment, run_experiments
from geomshock.experiments._registry import QUICK_CHANGES

STALE = (".report.md.k2j3.tmp", ".fig3.png.x9.tmp")
DEAD_STAGING = ".staging-999999999-abc"  # no such process


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    for name in STALE:  # what a SIGKILL during a write leaves behind
        (out / name).write_text("half a file")
    (out / DEAD_STAGING).mkdir()
    (out / DEAD_STAGING / "fig3.json").write_text("{}")
    # sec6's sub-experiments run end to end in their own tests: keep the cheapest
    sub = {"edge_of_stability": _sec6.SUBEXPERIMENTS["edge_of_stability"]}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_sec6, "SUBEXPERIMENTS", sub)
        args = ["reproduce", "all", "--quick", "--seeds", "4", "--out", str(out)]
        assert main(args) == 0
    return out


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_all_quick_writes_figures_and_reports(out_dir):
    report = json.loads((out_dir / "report.json").read_text())
    names = report["options"]["experiments"]
    assert names[:3] == ["geometry", "fig2", "table1"]
    for name in names:
        data = json.loads((out_dir / f"{name}.json").read_text())
        assert data["figures"], name
        for stem in data["figures"]:
            png = out_dir / stem
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out_dir / "report.md").read_text()
    assert "Table 1" in md and "4.663319" in md and "3.328405" in md
    assert not list(out_dir.glob(".*.tmp"))  # atomic writes left nothing behind


def test_stale_temporaries_of_a_killed_run_are_removed(out_dir):
    hidden = sorted(p.name for p in out_dir.iterdir() if p.name.startswith("."))
    assert hidden == []


def test_report_json_records_seeds_version_revision_time(out_dir):
    report = json.loads((out_dir / "report.json").read_text())
    seeds = report["options"]["seeds"]
    assert seeds["fig2"] == seeds["table1"] == [0, 1, 2, 3]
    assert seeds["fig3"] == "deterministic" and seeds["geometry"] == [4]
    assert report["options"]["seeds_requested"] == 4
    assert report["geomshock_version"] == report["versions"]["geomshock"]
    assert "git_revision" in report  # None outside a git checkout
    assert report["created"].endswith("+00:00")
    assert all(s["this_run"] and not s["stale"] for s in report["sections"].values())


def test_setup_paragraph_printed_once(out_dir):
    md = (out_dir / "report.md").read_text()
    assert md.count("Setup (our choices where the paper is silent)") == 1
    assert md.count("| training | paper |") == 1
    assert "Setup as in the fig2 section above." in md


def test_representative_seed_is_median_by_peak_curvature(out_dir):
    data = json.loads((out_dir / "fig2.json").read_text())
    row = data["table_peak_curvature"][len(data["tau"]) - 1]  # ν = 0.01, last τ
    assert (row["nu"], row["tau"]) == (0.01, 0.054)
    peaks = np.asarray(row["exact"]["per_seed"], float)
    train = data["training"]
    good = [
        s
        for s in range(len(peaks))
        if train["per_seed"]["accuracy"][s] == 1.0 and s not in train["stuck_seeds"]
    ]
    ranked = sorted(good, key=lambda s: peaks[s])
    assert data["representative_seed"] == ranked[(len(ranked) - 1) // 2]
    assert "median seed by peak curvature" in (out_dir / "report.md").read_text()


def test_table1_json_has_every_nu_row(out_dir):
    data = json.loads((out_dir / "table1.json").read_text())
    keys = [k for k in data if "table" in k]
    assert "table1" in keys
    rows = data["table1"]["rows"]
    assert [r["nu"] for r in rows] == [0.05, 0.1, 0.5]
    assert [r["paper"] for r in rows] == [4.663319, None, 3.328405]
    for row in rows:
        for scheme in ("first_order", "exact", "exact_theorem_convention"):
            assert len(row[scheme]["per_seed"]) == 4
            assert row[scheme]["p10"] <= row[scheme]["median"] <= row[scheme]["p90"]
    assert data["options"]["seeds"] == [0, 1, 2, 3]
    assert len(data["training"]["per_seed"]["final_loss"]) == 4


def test_spread_figure_marks_stuck_seeds_and_keeps_legend_off_the_data(out_dir):
    data = json.loads((out_dir / "table1.json").read_text())
    data["training"]["stuck_seeds"] = [1]  # mark one, whatever the training gave
    fig = get_experiment("table1").plot(data)["table1_seed_spread"]
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("stuck seed" in label for label in labels)
    fig.canvas.draw()
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.x0 >= ax.get_window_extent().x1  # outside the axes


def test_interrupted_run_leaves_the_folder_as_it_was(out_dir):
    before = _snapshot(out_dir)

    def interrupt(stage):
        if stage == "table1: plotting":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiments(
            ["geometry", "table1"], out_dir, quick=True, seeds=4, progress=interrupt
        )
    assert _snapshot(out_dir) == before
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")]


def test_second_run_into_same_dir(out_dir):
    before = json.loads((out_dir / "report.json").read_text())
    assert (
        main(
            [
                *("reproduce", "table1", "--quick", "--seeds", "4"),
                *("--seed", "1", "--out", str(out_dir)),
            ]
        )
        == 0
    )
    after = json.loads((out_dir / "report.json").read_text())
    assert after["options"]["experiments"] == ["table1"]
    assert (
        after["results"]["table1"]["table1"]["rows"][0]["exact"]["median"]
        == (before["results"]["table1"]["table1"]["rows"][0]["exact"]["median"])
    )
    assert (out_dir / "table1_seed_spread.png").exists()
    # --seed picks the plotted seed
    assert after["results"]["table1"]["representative_seed"] == 1
    assert after["results"]["table1"]["representative_rule"] == "--seed"
    # the other experiments' sections are kept, labelled with their run
    assert list(after["results"]) == list(before["results"])
    fig3 = after["sections"]["fig3"]
    assert (fig3["created"], fig3["this_run"]) == (before["created"], False)
    # same settings; only a commit made between the two runs could differ
    assert all(reason.startswith("git_revision") for reason in fig3["stale"])
    md = (out_dir / "report.md").read_text()
    for title in ("Geometry check", "Fig. 2 grid", "Table 1", "Fig. 3"):
        assert title in md
    # every section but table1's comes from the first run
    assert md.count("> From an earlier run") == len(after["sections"]) - 1
    assert "Profiles plotted: seed 1, chosen with `--seed`." in md


def _cli(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "geomshock.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def _main(args, capsys):
    """``main(args)`` in this process: exit code and stderr (argparse exits)."""
    try:
        code = main(args)
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err


BAD_INPUT = [
    (["reproduce", "fig9", "--out", "OUT"], "invalid choice: 'fig9'"),
    (["reproduce", "table1", "--seeds", "0", "--out", "OUT"], "positive integer"),
    (["reproduce", "table1", "--seed", "-1", "--out", "OUT"], "integer ≥ 0"),
    (["reproduce", "table1", "--out", "FILE/sub"], "is not writable"),
    (["reproduce", "table1", "--out", "FILE/sub"], "is a file, not a folder"),
    (["reproduce", "table1", "--out", "FILE"], "is a file, not a folder"),
    (["reproduce", "table1", "--out", ""], "got an empty string"),
]


def _fill(args, tmp_path):
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("a file, not a folder")
    return [
        a.replace("FILE", str(blocker)).replace("OUT", str(tmp_path / "o"))
        for a in args
    ]


@pytest.mark.parametrize("args, message", BAD_INPUT)
def test_bad_input_gives_clear_message(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    code, err = _main(_fill(args, tmp_path), capsys)
    assert code != 0
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker.txt"]


def test_bad_input_from_the_shell_has_no_traceback(tmp_path):
    args, message = BAD_INPUT[3]
    result = _cli(*_fill(args, tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_seed_outside_the_trained_seeds_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "o"
    start = time.perf_counter()
    args = ["reproduce", "table1", "--seeds", "2", "--seed", "5", "--out", str(out)]
    assert main(args) == 2
    assert time.perf_counter() - start < 30  # no training happened
    err = capsys.readouterr().err
    assert "seed 5 is not among the trained seeds 0…1" in err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "sig, code, word",
    [
        (signal.SIGINT, EXIT_INTERRUPTED, "interrupted"),
        (signal.SIGTERM, EXIT_TERMINATED, "terminated"),
    ],
)
def test_signal_during_a_run_exits_cleanly(tmp_path, sig, code, word):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("a file from before")
    proc = subprocess.Popen(
        [sys.executable, "-m", "geomshock.cli", "reproduce", "fig3", "--quick"]
        + ["--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a background job of a shell inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not list(out.glob(".staging-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    # rarely the interpreter itself ends by the signal after the clean-up
    assert proc.returncode in (code, -sig), stderr
    assert "Traceback" not in stderr
    assert f"geomshock: {word}" in stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_signal_handler_unwinds_like_ctrl_c_and_remembers(capsys):
    with cli._interrupts():
        with pytest.raises(Terminated):
            cli.on_signal(signal.SIGTERM, None)

        # swallowed where Python only prints exceptions (a gc callback, __del__):
        # quiet, and raised again at the run's next stage
        class Finalized:
            def __del__(self):
                cli.on_signal(signal.SIGINT, None)

        Finalized()
        with pytest.raises(Terminated):
            cli.raise_if_signalled()
    with pytest.raises(KeyboardInterrupt), cli._interrupts():
        cli._received.append(signal.SIGINT)  # raised inside a JAX callback:
        raise RuntimeError("CpuCallback error: ... KeyboardInterrupt")  # wrapped
    assert "KeyboardInterrupt" not in capsys.readouterr().err
    assert not issubclass(Terminated, Exception)  # not swallowed by except Exception
    cli.raise_if_signalled()  # forgotten when the run ends


def test_publishing_holds_signals_until_it_is_done():
    from geomshock.experiments._runner import _signals_deferred

    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _: seen.append(signum))
    try:
        with _signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            seen.append("published")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == ["published", signal.SIGTERM]


def test_help_shows_defaults_and_what_quick_changes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "(default: results)" in text
    assert "--quick changes" in text
    for change in QUICK_CHANGES.values():
        assert change.split()[0] in text
    assert "median seed by peak curvature" in " ".join(text.split())


def test_quick_changes_match_the_experiments_settings():
    from geomshock.experiments import _fig3, _geometry_check, _sec31

    points = _geometry_check.POINTS
    assert (
        f"{points['quick']} random points instead of {points['full']}"
        in (QUICK_CHANGES["geometry"])
    )
    nodes = _sec31.NODES
    assert f"{nodes['quick']} instead of {nodes['full']}" in QUICK_CHANGES["fig2"]
    quick, full = _fig3._settings(True), _fig3._settings(False)
    text = " ".join(QUICK_CHANGES["fig3"].split())
    for key in ("points", "nodes", "slope_taus"):
        assert f"{quick[key]} instead of {full[key]}" in text


def test_version_is_answered_without_the_parser(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("geomshock 0.")


def test_version_command_does_not_import_the_package():
    # the console script's entry point (_geomshock_cli.main) answers --version
    # from the installed metadata: neither geomshock nor JAX is imported
    code = (
        "import sys, _geomshock_cli; _geomshock_cli.main(['--version']); "
        "print(sorted(m for m in ('geomshock', 'jax') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0].startswith("geomshock 0.") and out[1] == "[]"


def test_import_geomshock_loads_neither_matplotlib_nor_flax():
    code = (
        "import sys, geomshock; "
        "print(sorted(m for m in ('matplotlib', 'flax') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.strip()
    assert "matplotlib" not in loaded  # loaded only where figures are drawn
    assert "flax" not in loaded  # loaded only by the flax adapters


def test_failed_run_time_check_is_one_line(tmp_path, monkeypatch, capsys):
    import geomshock.experiments as experiments

    def failing(*args, **kwargs):
        raise RuntimeError(
            "INTERNAL: CpuCallback error calling callback: Traceback ...\n"
            "_EquinoxRuntimeError: local_entropy: the heat kernel is narrower "
            "than the node spacing\n\n--------------------\nboilerplate"
        )

    monkeypatch.setattr(experiments, "run_experiments", failing)
    code, err = _main(["reproduce", "fig3", "--out", str(tmp_path / "o")], capsys)
    assert code == 1
    assert err.strip() == (
        "geomshock: error: a run-time check failed: local_entropy: the heat "
        "kernel is narrower than the node spacing"
    )
    monkeypatch.setattr(experiments, "run_experiments", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        main(["reproduce", "fig3", "--out", str(tmp_path / "o")])
