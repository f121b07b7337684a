"""Fig. 3 reproduction: data, figure, report and the CLI command."""

import json

import numpy as np
import pytest

from geomshock.cli import main
from geomshock.experiments import get_experiment


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig3")
    assert main(["reproduce", "fig3", "--out", str(out), "--quick"]) == 0
    return out, json.loads((out / "fig3.json").read_text())


def test_cli_writes_figure_json_and_report(reproduced):
    out, data = reproduced
    assert (out / "fig3.png").stat().st_size > 20_000
    report = (out / "report.md").read_text()
    assert "Fig. 3" in report and "τ* = 1" in report
    assert data["figures"] == ["fig3.png"]


def test_data_is_the_papers_setting_and_exact(reproduced):
    _, data = reproduced
    s = np.asarray(data["s"])
    v = np.asarray(data["v"])
    taus = data["taus"]
    assert data["nus"] == [0.02, 0.1, 0.4]
    assert data["tau_star"] == pytest.approx(1.0, abs=1e-14)
    assert v.shape == (3, len(taus), s.size)
    assert np.all(np.isfinite(v))
    # τ = 0 is the initial drift U0' = −s e^{−s²/2}, for every ν
    assert taus[0] == 0.0
    np.testing.assert_allclose(
        v[:, 0],
        np.broadcast_to(-s * np.exp(-(s**2) / 2), v[:, 0].shape),
        rtol=0,
        atol=1e-15,
    )
    # time samples are densest around τ* = 1, on both sides
    gaps = np.diff(taus)
    near = [g for t, g in zip(taus[1:], gaps, strict=True) if 0.8 < t <= 1.25]
    assert max(near) < min(gaps[0], gaps[-1])
    # max slope at τ = 0 is |inf U0''| = 1; the layer is steeper for smaller ν
    slopes = np.asarray(data["max_slope"])
    np.testing.assert_allclose(slopes[:, 0], 1.0, atol=1e-9)
    assert np.all(slopes[0, 5:] > slopes[1, 5:]) and np.all(
        slopes[1, 5:] > slopes[2, 5:]
    )
    # the inviscid shock of the symmetric bump sits at s = 0
    for shock in data["shocks"]:
        np.testing.assert_allclose(shock["positions"], 0.0, atol=1e-12)
    # first-order baseline error grows with τ
    errors = np.asarray(data["first_order_max_error_u"])
    assert np.all(errors[:, 1] > errors[:, 0])


def test_plot_and_report_from_data(reproduced):
    _, data = reproduced
    experiment = get_experiment("fig3")
    figures = experiment.plot(data)
    assert list(figures) == ["fig3"]
    assert len(figures["fig3"].axes) == 5  # three ν panels, colour bar, slopes
    assert "| 0.02 |" in experiment.report(data)
