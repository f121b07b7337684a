"""The experiments that ``geomshock reproduce`` knows, and how they are run.

An experiment is three plain functions, kept separate so each can be tested and
called from user code on its own:

- ``compute(*, quick, seeds, seed) -> dict``: numbers only (arrays, floats,
  strings); ``seeds`` is how many training seeds, ``seed`` the one to plot;
- ``plot(data) -> dict[str, Figure]``: figures from that data, keyed by file stem;
- ``report(data) -> str``: a markdown section setting the paper beside ours;
- optionally ``setup(data) -> str``: a setup paragraph several sections share
  (printed once in the combined report when it is the same).

Modules are imported lazily so that ``geomshock --help`` stays fast.
"""

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    compute: Callable[..., dict[str, Any]]
    plot: Callable[[dict[str, Any]], dict[str, Any]]
    report: Callable[[dict[str, Any]], str]
    setup: Callable[[dict[str, Any]], str] | None = None


# name -> (module, attribute). Order is the order of ``reproduce all``.
_EXPERIMENTS: dict[str, tuple[str, str]] = {
    "geometry": ("geomshock.experiments._geometry_check", "EXPERIMENT"),
    "fig2": ("geomshock.experiments._sec31", "FIG2"),
    "table1": ("geomshock.experiments._sec31", "TABLE1"),
    "fig3": ("geomshock.experiments._fig3", "FIG3"),
    "sec6": ("geomshock.experiments._sec6", "SEC6"),
}


# What ``--quick`` changes, per experiment (shown by ``geomshock reproduce --help``;
# a test checks these numbers against the experiments' settings).
QUICK_CHANGES: dict[str, str] = {
    "geometry": "1000 random points instead of 100000",
    "fig2": "2048 instead of 8192 quadrature nodes on the circle for the exact "
    "scheme, no node-doubling check (training unchanged)",
    "table1": "as fig2",
    "fig3": "321 instead of 1201 points in s, 801 instead of 3201 quadrature "
    "nodes, 16 instead of 49 times for the slope curve",
    "sec6": "gauge: 2 instead of 16 seeds, 200 instead of 1200 steps, no deep-MLP "
    "and Transformer-block probes; edge_of_stability: 4 instead of 16 seeds, 200 "
    "instead of 800 steps; 500 instead of 2000 bootstrap resamples; plateau, "
    "transformer: their modules' quick settings",
}


def experiment_names() -> list[str]:
    return list(_EXPERIMENTS)


def available_experiments() -> list[str]:
    """Names whose implementation is present in this installation."""
    return [name for name in _EXPERIMENTS if _load(name) is not None]


def _load(name: str) -> Experiment | None:
    module_name, attr = _EXPERIMENTS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            return None
        raise
    return getattr(module, attr, None)


def get_experiment(name: str) -> Experiment:
    if name not in _EXPERIMENTS:
        raise ValueError(
            f"unknown experiment {name!r}; choose from {', '.join(_EXPERIMENTS)}"
        )
    experiment = _load(name)
    if experiment is None:
        raise ValueError(f"experiment {name!r} is not implemented yet")
    return experiment
