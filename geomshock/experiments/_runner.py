"""Run experiments and write their figures and reports atomically into a folder."""

import platform
import time
from pathlib import Path
from typing import Any

from ._io import atomic_save_figure, atomic_write_json, atomic_write_text
from ._registry import get_experiment


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("geomshock", "jax", "jaxlib", "diffrax", "equinox", "optax", "flax"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def run_experiments(
    names: list[str],
    out_dir: Path,
    *,
    quick: bool = False,
    seeds: int | None = None,
    progress=None,
) -> dict[str, Any]:
    """Compute, plot and report each experiment in ``names`` into ``out_dir``.

    Writes ``<name>.json`` and ``<stem>.png`` per experiment, and the combined
    ``report.json`` and ``report.md``. Returns the combined report dict.
    ``progress`` is an optional callable ``progress(stage: str)`` called
    before each stage.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "options": {"quick": quick, "seeds": seeds, "experiments": names},
        "versions": _versions(),
        "results": {},
    }
    sections = []
    for name in names:
        experiment = get_experiment(name)
        if progress is not None:
            progress(f"{name}: computing")
        start = time.perf_counter()
        data = experiment.compute(quick=quick, seeds=seeds)
        elapsed = time.perf_counter() - start
        if progress is not None:
            progress(f"{name}: plotting")
        figures = experiment.plot(data)
        files = []
        for stem, fig in figures.items():
            files.append(atomic_save_figure(out_dir / f"{stem}.png", fig).name)
            plt.close(fig)
        data = {**data, "seconds": elapsed, "figures": files}
        atomic_write_json(out_dir / f"{name}.json", data)
        report["results"][name] = data
        sections.append(experiment.report(data))
    atomic_write_json(out_dir / "report.json", report)
    header = (
        "# geomshock reproduction report\n\n"
        f"Options: quick={quick}, seeds={seeds}. "
        f"Versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}.\n"
    )
    atomic_write_text(out_dir / "report.md", "\n".join([header, *sections]))
    return report
