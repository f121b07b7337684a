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
        half_nu = 0.5 * nu
        flux = _SpectralFlux(
            k=jnp.where(keep, k, 0.0),
            mask=keep.astype(k.dtype),
            half_nu=half_nu,
            kappa_grid=kappa_grid,
            n=n,
        )
        return SplitSpectralTerm(-half_nu * k * k, flux, n)


class _SpectralFlux(eqx.Module):
    """``N̂(t, v̂) = i k F[(ν/2) κ v − v²/2]`` from dealiased modes.

    A Module holding arrays (not a closure), so that a new ν or κ reuses the
    compiled solver instead of tracing a new function. ``k`` holds the kept
    wavenumbers (0 for dropped modes), real: diffrax warns on complex leaves.
    """

    k: Array
    mask: Array
    half_nu: Array
    kappa_grid: Array | None
    n: int = eqx.field(static=True)

    def __call__(self, t, v_hat, args):
        v = jnp.fft.irfft(v_hat * self.mask, n=self.n)
        flux = -0.5 * v * v
        if self.kappa_grid is not None:
            flux = flux + self.half_nu * self.kappa_grid * v
        return (1j * self.k) * jnp.fft.rfft(flux)


class FiniteDifference(AbstractBurgersDiscretization):
    """Second-order central finite differences (method-of-lines baseline).

    ``∂_xx v ≈ (v_{j+1} − 2 v_j + v_{j−1}) / h²`` and the conservative flux
    difference ``(f_{j+1} − f_{j−1}) / (2h)``. Explicit solvers pay the
    diffusive step limit ``~h² / ν``; kept as the classical baseline.
    """

    min_layer_cells: float = 4.0

    def term(self, nu, kappa_grid, n, period):
        return diffrax.ODETerm(_FiniteDifferenceField(period / n, 0.5 * nu, kappa_grid))


class _FiniteDifferenceField(eqx.Module):
    """The central-difference right-hand side (a Module: see ``_SpectralFlux``)."""

    h: float = eqx.field(static=True)
    half_nu: Array
    kappa_grid: Array | None

    def __call__(self, t, v, args):
        h = self.h
        flux = -0.5 * v * v
        if self.kappa_grid is not None:
            flux = flux + self.half_nu * self.kappa_grid * v
        right, left = jnp.roll(v, -1), jnp.roll(v, 1)
        diffusion = (right - 2.0 * v + left) / (h * h)
        advection = (jnp.roll(flux, -1) - jnp.roll(flux, 1)) / (2.0 * h)
        return self.half_nu * diffusion + advection
