"""Spatial discretizations of source-corrected viscous Burgers on a periodic grid.

The equation is written in conservative form,
``∂_τ v = (ν/2) ∂_xx v + ∂_x[(ν/2) κ v − v²/2]``, which equals
``(ν/2)(∂_xx v + κ ∂_x v + κ' v) − v ∂_x v``. Each discretization turns it into
a diffrax term on the grid values ``v_j = v(x_j)``.
"""

import abc

import diffrax
import equinox as eqx
import jax.numpy as jnp

from ..._custom_types import Array, Float
from ._lawson import SplitSpectralTerm


class AbstractBurgersDiscretization(eqx.Module):
    """Interface: build the diffrax term of the semi-discrete equation.

    ``term(nu, kappa_grid, n, period)`` receives ``ν`` (paper convention),
    ``κ`` sampled on the grid (``None`` for κ ≡ 0), the number of points and
    the period, and returns a ``diffrax.AbstractTerm`` for ``y = v`` on the grid.
    ``min_layer_cells`` is the number of grid spacings a viscous layer
    (width ``2ν/|Δv|``) must span to be resolved by this discretization.
    """

    min_layer_cells: eqx.AbstractVar[float]

    @abc.abstractmethod
    def term(self, nu, kappa_grid, n: int, period: float) -> diffrax.AbstractTerm:
        raise NotImplementedError


def wavenumbers(n: int, period: float, dtype=None) -> Float[Array, " k"]:
    """Angular wavenumbers ``2π m / P`` of ``rfft`` for ``n`` points, period ``P``.

    >>> k = wavenumbers(4, 2.0, "float32")
    >>> k.dtype, round(float(k[2]), 4)
    (dtype('float32'), 6.2832)
    """
    k = 2.0 * jnp.pi / period * jnp.arange(n // 2 + 1)
    return k if dtype is None else k.astype(dtype)


class PseudoSpectral(AbstractBurgersDiscretization):
    """Fourier pseudo-spectral discretization with dealiasing.

    Diffusion is the diagonal symbol ``−(ν/2) k²`` (exact under
    ``IntegratingFactorRK``); the flux ``(ν/2) κ v − v²/2`` is formed in
    physical space from modes ``|m| ≤ dealias · n / 2`` and truncated again
    (``dealias = 2/3`` is Orszag's rule, exact for the quadratic term).
    The Nyquist mode's first derivative is set to zero.
    """

    dealias: float = 2.0 / 3.0
    min_layer_cells: float = 2.0

    def __check_init__(self):
        if not 0.0 < self.dealias <= 1.0:
            raise ValueError(f"dealias must be in (0, 1], got {self.dealias}")

    def term(self, nu, kappa_grid, n, period):
        # The state's dtype (that of ν, cast to v0's by solve_burgers).
        k = wavenumbers(n, period, jnp.result_type(nu))
        m = jnp.arange(n // 2 + 1)
        keep = m <= self.dealias * n / 2
        if n % 2 == 0:
            keep = keep & (m < n // 2)
        ik = jnp.where(keep, 1j * k, 0.0)
        mask = keep.astype(k.dtype)
        half_nu = 0.5 * nu

        def nonlinear_hat(t, v_hat, args):
            v = jnp.fft.irfft(v_hat * mask, n=n)
            flux = -0.5 * v * v
            if kappa_grid is not None:
                flux = flux + half_nu * kappa_grid * v
            return ik * jnp.fft.rfft(flux)

        return SplitSpectralTerm(-half_nu * k * k, nonlinear_hat, n)


class FiniteDifference(AbstractBurgersDiscretization):
    """Second-order central finite differences (method-of-lines baseline).

    ``∂_xx v ≈ (v_{j+1} − 2 v_j + v_{j−1}) / h²`` and the conservative flux
    difference ``(f_{j+1} − f_{j−1}) / (2h)``. Explicit solvers pay the
    diffusive step limit ``~h² / ν``; kept as the classical baseline.
    """

    min_layer_cells: float = 4.0

    def term(self, nu, kappa_grid, n, period):
        h = period / n
        half_nu = 0.5 * nu

        def rhs(t, v, args):
            flux = -0.5 * v * v
            if kappa_grid is not None:
                flux = flux + half_nu * kappa_grid * v
            right, left = jnp.roll(v, -1), jnp.roll(v, 1)
            diffusion = (right - 2.0 * v + left) / (h * h)
            advection = (jnp.roll(flux, -1) - jnp.roll(flux, 1)) / (2.0 * h)
            return half_nu * diffusion + advection

        return diffrax.ODETerm(rhs)
