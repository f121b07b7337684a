"""The chart interfaces ``geomshock.sde`` uses, and a chart made of plain functions.

A chart for SGD needs ``project`` (``Φ = χ∘π``); some functions also need
``lift`` (a gauge-fixed section ``σ``) or ``gauge`` (a random symmetry
applied). These are declared as runtime-checkable protocols, so that the
charts of ``geomshock.charts``, a :class:`FunctionChart` or any user object
with those methods work, without inheriting from anything.
"""

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray, PyTree


@runtime_checkable
class ProjectingChart(Protocol):
    """Has ``project(params) -> q``, a 1-D array of quotient coordinates."""

    def project(self, params: PyTree) -> Float[Array, " m"]: ...


@runtime_checkable
class SectionChart(ProjectingChart, Protocol):
    """Also has ``lift(q) -> params``, with ``project(lift(q)) == q``."""

    def lift(self, q: Float[Array, " m"]) -> PyTree: ...


@runtime_checkable
class GaugedChart(ProjectingChart, Protocol):
    """Also has ``gauge(params, key) -> params``: a random symmetry applied."""

    def gauge(self, params: PyTree, key: PRNGKeyArray) -> PyTree: ...


_METHODS = {
    ProjectingChart: ("project",),
    SectionChart: ("project", "lift"),
    GaugedChart: ("project", "gauge"),
}


def require_chart(chart, interface: type, purpose: str):
    """``chart`` if it implements ``interface``, else a ``ValueError`` naming
    the missing method and what needed it."""
    if isinstance(chart, interface):
        return chart
    missing = [n for n in _METHODS[interface] if not callable(getattr(chart, n, None))]
    raise ValueError(
        f"{purpose} needs a chart with a callable `{missing[0]}` (the "
        f"{interface.__name__} interface: {', '.join(_METHODS[interface])}); "
        f"{type(chart).__name__} has none"
    )


class FunctionChart(eqx.Module):
    """Wrap plain callables as a chart for the functions of ``geomshock.sde``.

    Any object with ``project(params) -> q`` (``Φ = χ∘π``), and, where a
    function needs them, ``lift(q) -> params`` (a gauge-fixed section ``σ``) and
    ``gauge(params, key) -> params`` (a random symmetry applied) works as a
    chart (:class:`ProjectingChart`, :class:`SectionChart`,
    :class:`GaugedChart`); the charts of ``geomshock.charts`` do. This wrapper
    supplies those three names from functions. Missing ones stay ``None`` and
    the functions that need them say so.

    Example:
        >>> import jax.numpy as jnp
        >>> chart = FunctionChart(project=lambda p: jnp.linalg.norm(p)[None])
        >>> float(chart.project(jnp.array([3.0, 4.0]))[0])
        5.0
        >>> isinstance(chart, ProjectingChart), isinstance(chart, SectionChart)
        (True, False)
    """

    project: Callable[[PyTree], object]
    lift: Callable[[object], PyTree] | None = None
    gauge: Callable[[PyTree, object], PyTree] | None = None

    def __check_init__(self):
        for name in ("project", "lift", "gauge"):
            value = getattr(self, name)
            if name == "project" or value is not None:
                if not callable(value):
                    raise ValueError(
                        f"{name} must be callable, got {type(value).__name__}"
                    )
