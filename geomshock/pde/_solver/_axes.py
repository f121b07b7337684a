"""One-dimensional spectral axes of a chart grid (tensor-product grids).

Each axis owns its nodes and differentiates along one array axis:

- ``PeriodicAxis``: Fourier collocation on a uniform periodic grid.
- ``NeumannAxis``: cosine (even-reflection) collocation on the cell-centred
  grid ``a + (j + ½) h`` of ``[a, b]``; it imposes the reflecting boundary
  condition ``∂_n u = 0`` at both ends and never evaluates the endpoints. This
  is also the pole condition of zonal (axisymmetric) fields in polar-type
  coordinates such as the colatitude of a sphere: a smooth zonal field is even
  about ``θ = 0`` and ``θ = π``, and the metric's ``1/sin²θ`` is never sampled
  at the poles themselves.
"""

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ..._custom_types import Array


class AbstractAxis(eqx.Module):
    """Interface: ``nodes()`` and ``derivative(u, axis, order)`` (order 1 or 2)."""

    n: eqx.AbstractVar[int]

    @abc.abstractmethod
    def nodes(self) -> np.ndarray:
        raise NotImplementedError

    @abc.abstractmethod
    def derivative(self, u: Array, axis: int, order: int) -> Array:
        raise NotImplementedError


def _fourier_derivative(u, axis, order, n, period):
    m = jnp.arange(n // 2 + 1)
    k = 2.0 * jnp.pi / period * m
    if order == 1:
        factor = jnp.where((n % 2 == 0) & (m == n // 2), 0.0, 1j * k)
    else:
        factor = -(k**2)
    shape = [1] * u.ndim
    shape[axis] = n // 2 + 1
    u_hat = jnp.fft.rfft(u, axis=axis)
    return jnp.fft.irfft(factor.reshape(shape) * u_hat, n=n, axis=axis)


class PeriodicAxis(AbstractAxis):
    """Uniform periodic axis ``start + j · period / n``, ``j = 0..n-1`` (Fourier)."""

    start: float
    period: float
    n: int

    def __check_init__(self):
        if not (self.period > 0 and self.n >= 1):
            raise ValueError(
                f"PeriodicAxis needs period > 0 and n >= 1, got {self.period}, {self.n}"
            )

    def nodes(self):
        return self.start + self.period * np.arange(self.n) / self.n

    def derivative(self, u, axis, order):
        return _fourier_derivative(u, axis, order, self.n, self.period)


class NeumannAxis(AbstractAxis):
    """Cell-centred axis on ``[start, stop]`` with reflecting (Neumann) ends.

    Nodes ``start + (j + ½)(stop − start)/n``; derivatives are those of the
    even extension, a ``2n``-point periodic grid of period ``2(stop − start)``
    (a discrete cosine expansion, spectrally accurate for data with vanishing
    odd derivatives at the ends).
    """

    start: float
    stop: float
    n: int

    def __check_init__(self):
        if not (self.stop > self.start and self.n >= 2):
            raise ValueError(
                "NeumannAxis needs stop > start and n >= 2, got "
                f"[{self.start}, {self.stop}], n={self.n}"
            )

    def nodes(self):
        h = (self.stop - self.start) / self.n
        return self.start + h * (np.arange(self.n) + 0.5)

    def derivative(self, u, axis, order):
        extended = jnp.concatenate([u, jnp.flip(u, axis=axis)], axis=axis)
        du = _fourier_derivative(
            extended, axis, order, 2 * self.n, 2.0 * (self.stop - self.start)
        )
        return jnp.take(du, jnp.arange(self.n), axis=axis)
