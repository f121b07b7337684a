r"""Quotient coordinates around the user's parameters, and the step back.

A quotient optimizer reads the user's parameters ``θ`` (any pytree: chart
format, an ``nnx.State``, a filtered equinox model) through a
:class:`ParamsMap` into the chart's format, projects them to ``q = Φ(θ)``,
takes its step ``q → q'`` in the chart, and returns the optax update

    updates = from_chart(σ(q'), like=θ) − θ,

so that ``optax.apply_updates(θ, updates) = σ(q')``, the chart's gauge-fixed
representative of ``q'`` (the **regauging** rule).

**Why regauge.** The step ``q → q'`` depends on ``θ`` only through
``q = Φ(θ)``, which is constant on orbits. Mapping the result back through the
section ``σ`` makes the new parameters, hence the network function and every
later step, the same for every representative of the starting orbit: the
function-space trajectory is exactly gauge invariant (to rounding). The
alternatives keep the user's gauge but lose this: (i) ``θ' = h·σ(q')`` with
``θ = h·σ(q)`` needs the group element ``h``, which a general chart does not
expose; (ii) the horizontal lift ``Δθ = (DΦ_θ|_H)⁻¹ Δq`` at ``θ`` is first
order only (``Φ(θ + Δθ) ≠ q'``) and, for symmetries that are not isometries of
the parameters (ReLU rescalings), the horizontal space at ``h·θ`` is not the
push-forward of the one at ``θ``, so different representatives take different
steps. After the first step the parameters lie on the section ``σ(M)``.

**Canonical orderings.** A :class:`~geomshock.charts.CanonicalOrderChart`
sorts in ``project`` and refuses an unsorted ``q`` in ``lift``; a step (or an
inner Langevin chain) may reorder the units, so points are lifted by the
underlying chart, which accepts any order. The ordering only chooses the
representative; the next ``project`` sorts again.

**Raw coordinates.** ``chart=None`` means the flattened user parameters
(``jax.flatten_util.ravel_pytree``): the raw-coordinate optimizers of the
literature (Entropy-SGD), which are not gauge invariant.
"""

from collections.abc import Callable

import equinox as eqx
import jax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PyTree

from .._checks import callable_arg, check_structure
from ..charts import AbstractQuotientChart, CanonicalOrderChart


def _identity_to(params):
    return params


def _identity_from(chart_params, like):
    del like
    return chart_params


class ParamsMap(eqx.Module):
    """How the user's parameters map to the chart's format and back.

    ``to_chart(params) -> chart_params`` and ``from_chart(chart_params, like)
    -> params`` (``like``: the user's current parameters, a template for the
    structure). Both must be exact re-arrangements (transposes, renames), so
    that ``from_chart(to_chart(θ), θ) == θ``. The default is the identity (the
    user's parameters are already in the chart's format).

    Example:
        >>> import jax.numpy as jnp
        >>> swap = ParamsMap(lambda p: {"w": p["W"].T}, lambda c, like: {"W": c["w"].T})
        >>> swap.to_chart({"W": jnp.ones((2, 3))})["w"].shape
        (3, 2)
    """

    to_chart: Callable = _identity_to
    from_chart: Callable = _identity_from

    def __check_init__(self):
        callable_arg(self.to_chart, "ParamsMap.to_chart")
        callable_arg(self.from_chart, "ParamsMap.from_chart")


class Coordinates(eqx.Module):
    """``q = Φ(θ)`` and ``θ = σ(q)`` in the user's format (module docstring)."""

    chart: AbstractQuotientChart | None
    params_map: ParamsMap

    def __check_init__(self):
        if self.chart is not None and not isinstance(self.chart, AbstractQuotientChart):
            raise ValueError(
                "chart must be a geomshock chart (AbstractQuotientChart) or None "
                f"for raw coordinates; got {type(self.chart).__name__}"
            )
        if not isinstance(self.params_map, ParamsMap):
            raise ValueError(
                f"params_map must be a ParamsMap; got {type(self.params_map).__name__}"
            )

    @property
    def free_chart(self) -> AbstractQuotientChart | None:
        """The chart whose ``lift`` and metric accept any unit order."""
        if isinstance(self.chart, CanonicalOrderChart):
            return self.chart.chart
        return self.chart

    def project(self, params: PyTree) -> Array:
        if self.chart is None:
            return ravel_pytree(params)[0]
        return self.chart.project(self.params_map.to_chart(params))

    def lift(self, q: Array, like: PyTree) -> PyTree:
        """The user-format parameters at ``q`` (``like`` gives the structure)."""
        if self.chart is None:
            return ravel_pytree(like)[1](q)
        return self.params_map.from_chart(self.free_chart.lift(q), like)

    def updates(self, q_new: Array, params: PyTree) -> PyTree:
        """``lift(q_new) − params``: applying it regauges onto the section."""
        new = self.lift(q_new, params)
        check_structure(new, params, "from_chart(lift(q))", "the params")
        return jax.tree_util.tree_map(lambda a, b: a - b, new, params)


def coordinates(chart, params_map) -> Coordinates:
    return Coordinates(chart, ParamsMap() if params_map is None else params_map)


def _eqx_to_chart(model):
    return tuple(
        {"W": lin.weight} if lin.bias is None else {"W": lin.weight, "b": lin.bias}
        for lin in model.layers
    )


def _eqx_from_chart(chart_params, like):
    from ..charts import eqx_mlp_from_params

    return eqx_mlp_from_params(like, chart_params)


def eqx_params_map() -> ParamsMap:
    """The :class:`ParamsMap` of an ``eqx.nn.MLP`` optimised as
    ``eqx.filter(model, eqx.is_array)`` (the chart of
    :func:`~geomshock.charts.mlp_chart_from_eqx`: layer ``l`` is
    ``{"W": weight, "b": bias}``).

    Example:
        >>> import equinox as eqx, jax
        >>> relu, key = jax.nn.relu, jax.random.key(0)
        >>> model = eqx.nn.MLP(2, 1, 4, 1, activation=relu, key=key)
        >>> params = eqx.filter(model, eqx.is_array)
        >>> eqx_params_map().to_chart(params)[0]["W"].shape
        (4, 2)
    """
    return ParamsMap(_eqx_to_chart, _eqx_from_chart)


def nnx_params_map(model) -> ParamsMap:
    """The :class:`ParamsMap` of a ``flax.nnx`` ReLU MLP optimised through its
    ``nnx.Param`` state (``nnx.Optimizer(model, tx, wrt=nnx.Param)`` passes
    ``nnx.as_pure(nnx.state(model, nnx.Param))``); the chart is that of
    :func:`~geomshock.charts.mlp_chart_from_nnx` (layer ``l`` is
    ``{"W": kernelᵀ, "b": bias}``). ``model`` gives the graph (its values are
    not used).
    """
    from flax import nnx

    from ..charts import nnx_mlp_from_params
    from ..charts._adapters import _nnx_linears

    graphdef, _, rest = nnx.split(model, nnx.Param, ...)

    def to_chart(state):
        merged = nnx.merge(graphdef, state, rest)
        return tuple(
            {"W": lin.kernel.get_value().T}
            if lin.bias is None
            else {"W": lin.kernel.get_value().T, "b": lin.bias.get_value()}
            for lin in _nnx_linears(merged)
        )

    def from_chart(chart_params, like):
        merged = nnx_mlp_from_params(nnx.merge(graphdef, like, rest), chart_params)
        return nnx.as_pure(nnx.state(merged, nnx.Param))

    return ParamsMap(to_chart, from_chart)
