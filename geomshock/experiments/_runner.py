"""Run experiments into a results folder that is consistent at every moment.

A run computes every experiment first and writes its outputs into a hidden
staging folder inside the results folder (same file system, so publishing is
a rename). Only when every experiment has finished are the files renamed into
place, experiment by experiment (its JSON last), and the combined
``report.json``/``report.md`` rebuilt from *all* experiments present in the
folder: re-running one experiment keeps the other experiments' sections, each
labelled with the run it came from and, when its settings differ from this
run's, marked stale. An interrupted run leaves the folder as it was; the
temporaries of a run that was killed are removed when the next run starts.
"""

import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from ._io import (
    atomic_save_figure,
    atomic_write_json,
    atomic_write_text,
    to_jsonable,
)
from ._registry import experiment_names, get_experiment

STAGING_PREFIX = ".staging-"


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("geomshock", "jax", "jaxlib", "diffrax", "equinox", "optax", "flax"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_revision() -> str | None:
    """The git commit of the geomshock source (``+dirty`` if modified), or None."""
    source = Path(__file__).resolve().parents[2]
    if not (source / ".git").exists():
        return None

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(source), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        revision = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return revision + ("+dirty" if dirty else "")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(out_dir: Path) -> list[str]:
    """Remove what killed runs left in ``out_dir``; returns the names removed.

    That is the ``.*.tmp`` files of interrupted atomic writes and the staging
    folders of runs whose process is gone (a live run's folder is kept).

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (out / ".report.md.x1.tmp").write_text("half a file")
    >>> (out / ".staging-999999999-abc").mkdir()
    >>> clean_stale(out)
    ['.report.md.x1.tmp', '.staging-999999999-abc']
    """
    removed = []
    for path in sorted(Path(out_dir).glob(".*")):
        if path.is_file() and path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)
        elif path.is_dir() and path.name.startswith(STAGING_PREFIX):
            pid = path.name[len(STAGING_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and _pid_alive(int(pid)) and int(pid) != os.getpid():
                continue
            shutil.rmtree(path, ignore_errors=True)
        else:
            continue
        removed.append(path.name)
    return removed


def _seeds_used(data: dict[str, Any]) -> list[int] | str:
    seeds = data.get("options", {}).get("seeds")
    return "deterministic" if seeds is None else list(seeds)


def _run_info(names, quick, seeds, seed) -> dict[str, Any]:
    versions = _versions()
    return {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "geomshock_version": versions["geomshock"],
        "git_revision": git_revision(),
        "options": {
            "quick": quick,
            "seeds_requested": seeds,
            "seed": seed,
            "experiments": list(names),
        },
        "versions": versions,
    }


def _compute_into(staging: Path, name: str, run, *, quick, seeds, seed, progress):
    """Compute, plot and report one experiment into ``staging``; its JSON data."""
    import time

    import matplotlib.pyplot as plt

    experiment = get_experiment(name)
    if progress is not None:
        progress(f"{name}: computing")
    start = time.perf_counter()
    data = experiment.compute(quick=quick, seeds=seeds, seed=seed)
    elapsed = time.perf_counter() - start
    if progress is not None:
        progress(f"{name}: plotting")
    files = []
    for stem, fig in experiment.plot(data).items():
        files.append(atomic_save_figure(staging / f"{stem}.png", fig).name)
        plt.close(fig)
    data = {**data, "seconds": elapsed, "figures": files}
    data["markdown"] = {
        "setup": None if experiment.setup is None else experiment.setup(data),
        "body": experiment.report(data),
    }
    data["run"] = {key: run[key] for key in ("created", "geomshock_version")}
    data["run"].update(git_revision=run["git_revision"], **run["options"])
    data["run"]["seeds_used"] = _seeds_used(data)
    atomic_write_json(staging / f"{name}.json", data)
    return to_jsonable(data)


def _publish(staging: Path, out_dir: Path, names) -> None:
    """Rename every staged file into ``out_dir``; drop figures a run no longer makes."""
    for name in names:
        new = json.loads((staging / f"{name}.json").read_text())
        old_path = out_dir / f"{name}.json"
        if old_path.exists():
            try:
                old_figures = json.loads(old_path.read_text()).get("figures", [])
            except (OSError, ValueError):
                old_figures = []
            for stale in set(old_figures) - set(new["figures"]):
                (out_dir / Path(stale).name).unlink(missing_ok=True)
        for figure in new["figures"]:
            os.replace(staging / figure, out_dir / figure)
        os.replace(staging / f"{name}.json", old_path)  # the JSON last


def _stale_reasons(section_run: dict[str, Any], run: dict[str, Any]) -> list[str]:
    reasons = []
    options = run["options"]
    if section_run.get("quick") != options["quick"]:
        reasons.append(
            f"quick={section_run.get('quick')}, this run quick={options['quick']}"
        )
    if section_run.get("seeds_requested") != options["seeds_requested"]:
        reasons.append(
            f"seeds={section_run.get('seeds_requested')}, this run "
            f"seeds={options['seeds_requested']}"
        )
    for key in ("geomshock_version", "git_revision"):
        if section_run.get(key) != run[key]:
            reasons.append(f"{key} {section_run.get(key)}, now {run[key]}")
    return reasons


def _collect(out_dir: Path, fresh: dict[str, Any]) -> dict[str, Any]:
    """Every experiment's data in ``out_dir`` (this run's from memory), in order."""
    results = {}
    for name in experiment_names():
        if name in fresh:
            results[name] = fresh[name]
            continue
        path = out_dir / f"{name}.json"
        if not path.exists():
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "markdown" in data and "run" in data:
            results[name] = data
    return results


def _describe_seeds(results: dict[str, Any]) -> str:
    """The seeds each experiment used, ranges shown by their ends (``fig2 0…15``)."""

    def show(value):
        if (
            isinstance(value, list)
            and len(value) > 2
            and value == list(range(value[0], value[0] + len(value)))
        ):
            return f"{value[0]}…{value[-1]}"
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)

    return "; ".join(
        f"{name} {show(data['run']['seeds_used'])}" for name, data in results.items()
    )


def _markdown(results: dict[str, Any], fresh, run: dict[str, Any]) -> str:
    options = run["options"]
    lines = [
        "# geomshock reproduction report\n",
        f"Last run {run['created']}: {', '.join(options['experiments'])} "
        f"(quick={options['quick']}, --seeds {options['seeds_requested']}; seeds "
        f"used: {_describe_seeds(results)}); "
        f"geomshock {run['geomshock_version']}, git "
        f"{run['git_revision'] or 'unknown'}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in run["versions"].items())
        + ".\n",
    ]
    setups: dict[str, str] = {}
    for name, data in results.items():
        md, section_run = data["markdown"], data["run"]
        heading, _, body = md["body"].partition("\n")
        lines.append(heading + "\n")
        if name not in fresh:
            reasons = _stale_reasons(section_run, run)
            note = f"**Stale** ({'; '.join(reasons)})" if reasons else "Same settings"
            lines.append(
                f"> From an earlier run ({section_run['created']}, "
                f"quick={section_run.get('quick')}, "
                f"seeds={section_run.get('seeds_requested')}). {note}.\n"
            )
        setup = md.get("setup")
        if setup is not None:
            if setup in setups:
                lines.append(f"Setup as in the {setups[setup]} section above.\n")
            else:
                setups[setup] = name
                lines.append(setup)
        lines.append(body.lstrip("\n"))
    return "\n".join(lines)


def run_experiments(
    names: list[str],
    out_dir: Path,
    *,
    quick: bool = False,
    seeds: int | None = None,
    seed: int | None = None,
    progress=None,
) -> dict[str, Any]:
    """Compute, plot and report each experiment in ``names`` into ``out_dir``.

    Writes ``<name>.json`` (the data, its markdown and the run it came from)
    and ``<stem>.png`` per experiment, published together once all of
    ``names`` have finished, then the combined ``report.json`` and
    ``report.md`` over every experiment in the folder. Returns the combined
    report dict. ``progress`` is an optional callable ``progress(stage: str)``
    called before each stage. ``seed`` picks the seed whose profiles the
    Sec. 3.1 figures show.
    """
    out_dir = Path(out_dir)
    for name in names:
        get_experiment(name)  # unknown or missing: fail before any work
    # Imported before the run starts: an interrupt inside the initialisation
    # of a C extension can crash the interpreter instead of unwinding.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale(out_dir)
    run = _run_info(names, quick, seeds, seed)
    staging = Path(
        tempfile.mkdtemp(dir=out_dir, prefix=f"{STAGING_PREFIX}{os.getpid()}-")
    )
    try:
        fresh = {
            name: _compute_into(
                staging,
                name,
                run,
                quick=quick,
                seeds=seeds,
                seed=seed,
                progress=progress,
            )
            for name in names
        }
        with _signals_deferred():
            _publish(staging, out_dir, names)
            return _write_report(out_dir, fresh, run)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT/SIGTERM until the block is done (publishing is all or nothing).

    Their handlers only record the signal meanwhile; it is raised again, to the
    previous handler (the default one too: then the process ends), when the
    block ends.
    """
    caught: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) not in (signal.SIG_IGN, None):
                previous[sig] = signal.signal(
                    sig, lambda signum, _: caught.append(signum)
                )
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


def _write_report(out_dir: Path, fresh, run) -> dict[str, Any]:
    """``report.json`` and ``report.md`` over every experiment in ``out_dir``."""
    results = _collect(out_dir, fresh)
    report = {
        **{k: v for k, v in run.items() if k != "options"},
        "options": {
            **run["options"],
            "seeds": {
                name: data["run"]["seeds_used"] for name, data in results.items()
            },
        },
        "sections": {
            name: {
                "created": data["run"]["created"],
                "this_run": name in fresh,
                "stale": [] if name in fresh else _stale_reasons(data["run"], run),
            }
            for name, data in results.items()
        },
        "results": results,
    }
    atomic_write_json(out_dir / "report.json", report)
    atomic_write_text(out_dir / "report.md", _markdown(results, fresh, run))
    return report
