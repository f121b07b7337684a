"""Canonical ordering of permutable units (hidden units, channels, heads)."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, PRNGKeyArray

from .._checks import run_time_check
from .._custom_types import Point
from ._action import AbstractGroupAction, Params
from ._chart import AbstractPermutableChart, AbstractQuotientChart

_TIE_MESSAGE = (
    "tied permutation keys: units whose sort keys are equal (relative gap "
    "<= tie_rtol) cannot be ordered canonically; the point is on the stratum "
    "boundary. Perturb the tied units, or use the chart without "
    "CanonicalOrderChart"
)
_ORDER_MESSAGE = (
    "q is not in canonical order (keys must increase strictly); pass "
    "CanonicalOrderChart.project(params), which sorts the units"
)


def _tied(keys: Array, rtol: float) -> Bool[Array, ""]:
    """Whether two of ``keys`` are equal up to ``rtol`` times the largest key."""
    gaps = jnp.diff(jnp.sort(keys))
    scale = jnp.maximum(jnp.max(jnp.abs(keys)), jnp.finfo(keys.dtype).tiny)
    return ~jnp.all(gaps > rtol * scale)


class CanonicalOrderChart(AbstractQuotientChart):
    """Quotient a chart further by its unit permutations, by canonical ordering.

    ``chart`` is an :class:`AbstractPermutableChart`: it provides
    ``permutation_keys(q) -> tuple of (n_i,)`` (one gauge- and
    permutation-invariant sort key per permutable unit, per group of units) and
    ``permute(params, perms)``; the two-layer, MLP, CNN and attention charts
    do. ``project`` sorts every group by increasing key, so that the result is
    the same for every permutation of the units; ``lift`` requires ``q`` in
    canonical order. Ties (equal keys up to ``tie_rtol``) are the stratum
    boundary, where the ordering is not smooth: an equinox error (eagerly and
    under ``jit``). ``gauge`` applies a random permutation and a random
    continuous element. ``metric`` equals the underlying chart's metric at
    canonically ordered points.

    Example:
        >>> import jax.numpy as jnp
        >>> from geomshock.charts import TwoLayerReLUChart
        >>> chart = CanonicalOrderChart(TwoLayerReLUChart(2, 1))
        >>> params = {"a": jnp.array([2.0, 1.0]), "u": jnp.eye(2), "c": jnp.array(0.0)}
        >>> chart.project(params)[:2].tolist()  # γ sorted increasingly
        [1.0, 2.0]
    """

    chart: AbstractPermutableChart
    tie_rtol: float = 1e-9

    def __check_init__(self):
        if not isinstance(self.chart, AbstractPermutableChart):
            raise ValueError(
                "CanonicalOrderChart needs a chart with permutable units (an "
                "AbstractPermutableChart, e.g. TwoLayerReLUChart, ReLUMLPChart); "
                f"got {type(self.chart).__name__}"
            )

    @property
    def action(self) -> AbstractGroupAction:
        return self.chart.action

    @property
    def params_shape(self):
        return self.chart.params_shape

    @property
    def dim(self) -> int:
        return self.chart.dim

    @property
    def horizontal_gauge(self) -> bool:
        """The underlying chart's (permutations are discrete: no orbit tangents)."""
        return self.chart.horizontal_gauge

    def _any_tie(self, keys: tuple[Array, ...]) -> Bool[Array, ""]:
        return jnp.any(jnp.stack([_tied(k, self.tie_rtol) for k in keys]))

    def project(self, params: Params) -> Point:
        params = self.check_params(params)
        keys = self.chart.permutation_keys(self.chart.project(params))
        perms = tuple(jnp.argsort(k) for k in keys)
        q = self.chart.project(self.chart.permute(params, perms))
        return run_time_check(q, self._any_tie(keys), _TIE_MESSAGE)

    def lift(self, q: Point) -> Params:
        q = self.check_point(q)
        keys = self.chart.permutation_keys(q)
        unordered = jnp.any(jnp.stack([~jnp.all(jnp.diff(k) > 0) for k in keys]))
        q = run_time_check(q, unordered, _ORDER_MESSAGE)
        q = run_time_check(q, self._any_tie(keys), _TIE_MESSAGE)
        return self.chart.lift(q)

    def apply(self, params: Params, x: Array) -> Array:
        return self.chart.apply(params, x)

    def gauge(self, params: Params, key: PRNGKeyArray, scale: float = 0.5) -> Params:
        params = self.check_params(params)
        k_perm, k_cont = jax.random.split(key)
        sizes = [
            k.shape[0] for k in self.chart.permutation_keys(self.chart.project(params))
        ]
        perms = tuple(
            jax.random.permutation(k, n)
            for k, n in zip(jax.random.split(k_perm, len(sizes)), sizes, strict=True)
        )
        return self.chart.gauge(self.chart.permute(params, perms), k_cont, scale)
