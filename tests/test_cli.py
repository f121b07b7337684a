"""``geomshock reproduce`` end to end (quick mode) and its error messages."""

import json
import subprocess
import sys

import pytest

from geomshock.cli import main


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    assert main(["reproduce", "all", "--quick", "--seeds", "4", "--out", str(out)]) == 0
    return out


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


def test_second_run_into_same_dir(out_dir):
    before = json.loads((out_dir / "report.json").read_text())
    assert (
        main(["reproduce", "table1", "--quick", "--seeds", "4", "--out", str(out_dir)])
        == 0
    )
    after = json.loads((out_dir / "report.json").read_text())
    assert after["options"]["experiments"] == ["table1"]
    assert (
        after["results"]["table1"]["table1"]["rows"][0]["exact"]["median"]
        == (before["results"]["table1"]["table1"]["rows"][0]["exact"]["median"])
    )
    assert (out_dir / "table1_seed_spread.png").exists()


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "geomshock.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["reproduce", "fig9", "--out", "OUT"], "invalid choice: 'fig9'"),
        (["reproduce", "table1", "--seeds", "0", "--out", "OUT"], "positive integer"),
        (["reproduce", "table1", "--out", "FILE/sub"], "is not writable"),
    ],
)
def test_bad_input_gives_clear_message(tmp_path, args, message):
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("a file, not a folder")
    args = [
        a.replace("FILE", str(blocker)).replace("OUT", str(tmp_path / "o"))
        for a in args
    ]
    result = _cli(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
