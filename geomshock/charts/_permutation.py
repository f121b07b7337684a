"""Canonical ordering of permutable units (hidden units, channels, heads)."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._custom_types import Point
from ._action import AbstractGroupAction, Params
from ._chart import AbstractQuotientChart


def _tie_free(keys: Array, rtol: float, message: str) -> Array:
    gaps = jnp.diff(keys)
    scale = jnp.maximum(jnp.max(jnp.abs(keys)), jnp.finfo(keys.dtype).tiny)
    return eqx.error_if(keys, ~jnp.all(gaps > rtol * scale), message)


class CanonicalOrderChart(AbstractQuotientChart):
    """Quotient a chart further by its unit permutations, by canonical ordering.

    ``chart`` must provide ``permutation_keys(q) -> tuple of (n_i,)`` (one
    gauge- and permutation-invariant sort key per permutable unit, per group of
    units) and ``permute(params, perms)``: the two-layer, MLP, CNN and attention
    charts do. ``project`` sorts every group by increasing key, so that the
    result is the same for every permutation of the units; ``lift`` requires
    ``q`` in canonical order. Ties (equal keys up to ``tie_rtol``) are the
    stratum boundary, where the ordering is not smooth: an equinox error.
    ``gauge`` applies a random permutation and a random continuous element.
    ``metric`` equals the underlying chart's metric at canonically ordered points.
    """

    chart: AbstractQuotientChart
    tie_rtol: float = 1e-9

    @property
    def action(self) -> AbstractGroupAction:
        return self.chart.action

    @property
    def params_shape(self):
        return self.chart.params_shape

    @property
    def dim(self) -> int:
        return self.chart.dim

    def _checked_keys(self, q):
        message = (
            "tied permutation keys: units that cannot be ordered canonically are "
            "on the stratum boundary"
        )
        return tuple(
            _tie_free(jnp.sort(k), self.tie_rtol, message)
            for k in self.chart.permutation_keys(q)
        )

    def project(self, params: Params) -> Point:
        params = self.check_params(params)
        q = self.chart.project(params)
        keys = self.chart.permutation_keys(q)
        self._checked_keys(q)
        perms = tuple(jnp.argsort(k) for k in keys)
        return self.chart.project(self.chart.permute(params, perms))

    def lift(self, q: Point) -> Params:
        q = self.check_point(q)
        for key in self.chart.permutation_keys(q):
            q = eqx.error_if(
                q,
                ~jnp.all(jnp.diff(key) > 0),
                "q is not in canonical order (keys must increase strictly)",
            )
        self._checked_keys(q)
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
