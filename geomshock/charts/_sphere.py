"""Scale-invariant weights before BatchNorm / LayerNorm: the sphere chart."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._custom_types import Point
from ._action import AbstractRescalingAction, Params
from ._chart import AbstractQuotientChart
from ._sphere_coords import from_stereographic, normalize, to_stereographic


class PositiveScaling(AbstractRescalingAction):
    """``w -> e^t w`` on a single array (one generator: ``ξ·w = w``)."""

    @property
    def algebra_dim(self) -> int:
        return 1

    def exp(self, xi):
        return xi

    def act(self, params, g):
        return params * jnp.exp(g[0])

    def norm_sq_hessian(self, params, g):
        """``4 e^{2t} ‖w‖²`` at ``t = g[0]``, as a ``(1, 1)`` matrix."""
        return jnp.reshape(4 * jnp.sum(self.act(params, g) ** 2), (1, 1))


class SphereChart(AbstractQuotientChart):
    r"""Weights ``w`` followed by an ε-free normalization, ``w ~ c w`` (c > 0).

    - ``normalization="batch"``: ``w`` of shape ``(n,)``, the pre-activation
      ``z = x·w`` of a batch ``x: (N, n)`` is batch-normalized,
      ``(z − mean z) / std z`` (statistics over the batch).
    - ``normalization="layer"``: ``W`` of shape ``(d_out, d_in)``, ``z = x Wᵀ``
      is layer-normalized over its ``d_out`` features.

    Quotient: the unit sphere ``S^{n−1}`` (``n`` = number of weights); the gauge
    is ``‖w‖ = 1`` and the coordinates are stereographic from the pole ``−e_n``
    (last flattened weight equal to −1), ``y = ŵ_{:n−1} / (1 + ŵ_n)``,
    ``dim = n − 1``. The autodiff metric is the round metric,
    ``4 / (1 + |y|²)² I``. ``w = 0`` is off the stratum.
    """

    shape: tuple[int, ...]
    normalization: str = "batch"

    def __check_init__(self):
        expected = {"batch": 1, "layer": 2}
        if self.normalization not in expected:
            raise ValueError(
                "SphereChart: normalization must be 'batch' or 'layer', got "
                f"{self.normalization!r}"
            )
        shape = self.shape
        ok = isinstance(shape, tuple) and len(shape) == expected[self.normalization]
        if not ok or not all(isinstance(s, int) and s >= 1 for s in shape):
            raise ValueError(
                f"SphereChart: with normalization={self.normalization!r} shape must "
                f"be a tuple of {expected[self.normalization]} positive ints, "
                f"got {shape!r}"
            )
        if self._size < 2:
            raise ValueError(f"SphereChart needs at least 2 weights, got shape {shape}")

    @property
    def _size(self) -> int:
        size = 1
        for s in self.shape:
            size *= s
        return size

    @property
    def action(self) -> PositiveScaling:
        return PositiveScaling()

    @property
    def params_shape(self):
        return jax.ShapeDtypeStruct(self.shape, jnp.result_type(float))

    @property
    def dim(self) -> int:
        return self._size - 1

    @property
    def horizontal_gauge(self) -> bool:
        """True: the unit sphere is orthogonal to the scaling orbit (tangent ``w``)."""
        return True

    def project(self, params: Params) -> Point:
        w = self.check_params(params).reshape(-1)
        s, _ = normalize(w, "the scale-invariant weight vector")
        return to_stereographic(s)

    def lift(self, q: Point) -> Params:
        return from_stereographic(self.check_point(q)).reshape(self.shape)

    def apply(self, params: Params, x: Array) -> Array:
        """Normalized pre-activations for a batch ``x`` of shape ``(N, n_in)``."""
        w = self.check_params(params)
        x = jnp.asarray(x, dtype=jnp.result_type(float))
        n_in = self.shape[-1]
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ValueError(
                f"SphereChart expects a batch of shape (N, {n_in}), got {x.shape}"
            )
        z = x @ w.T
        axis = 0 if self.normalization == "batch" else -1
        centred = z - jnp.mean(z, axis=axis, keepdims=True)
        std = jnp.sqrt(jnp.mean(centred**2, axis=axis, keepdims=True))
        std = eqx.error_if(
            std, ~jnp.all(std > 0), "zero variance: normalization undefined (no ε)"
        )
        return centred / std
