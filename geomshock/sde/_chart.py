"""A chart made of plain functions, for users who have no chart Module."""

from collections.abc import Callable

import equinox as eqx
from jaxtyping import PyTree


class FunctionChart(eqx.Module):
    """Wrap plain callables as a chart for the functions of ``geomshock.sde``.

    Any object with ``project(params) -> q`` (``Φ = χ∘π``), and, where a
    function needs them, ``lift(q) -> params`` (a gauge-fixed section ``σ``) and
    ``gauge(params, key) -> params`` (a random symmetry applied) works as a
    chart; the charts of ``geomshock.charts`` do. This wrapper supplies those
    three names from functions. Missing ones stay ``None`` and the functions
    that need them say so.

    Example:
        >>> import jax.numpy as jnp
        >>> chart = FunctionChart(project=lambda p: jnp.linalg.norm(p)[None])
        >>> float(chart.project(jnp.array([3.0, 4.0]))[0])
        5.0
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
