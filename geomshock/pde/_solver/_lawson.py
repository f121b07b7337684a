"""Integrating-factor (Lawson) Runge–Kutta schemes as a diffrax solver.

For a semilinear system ``ŷ' = L ŷ + N(t, ŷ)`` with ``L`` diagonal in Fourier
space and non-positive (diffusion), a Lawson scheme applies an explicit
Runge–Kutta tableau to ``z = e^{-(t - t_0) L} ŷ`` *restarted at the start of
every step*. Written back in ``ŷ`` every factor that appears is
``e^{(c_i - c_j) h L}`` with ``c_i ≥ c_j``, so nothing overflows however stiff
``L`` is (a global integrating factor ``e^{ν k² τ / 2}`` does overflow for
realistic grids), the diffusion is integrated exactly, and the step size is
limited by the nonlinearity only.
"""

from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._custom_types import Array, Float


class SplitSpectralTerm(diffrax.AbstractTerm):
    """ODE term ``y' = F⁻¹[L · F y + N̂(t, F y)]`` on a periodic grid.

    ``y`` is the real field on the grid (shape ``(n,)``); ``F`` is ``rfft``.
    ``symbol`` is the diagonal linear part ``L`` (shape ``(n // 2 + 1,)``) and
    ``nonlinear_hat(t, ŷ, args) -> N̂`` the rest, both in Fourier space. Any
    diffrax solver can integrate this term (through ``vf``); ``IntegratingFactorRK``
    uses the split directly. Make ``nonlinear_hat`` an ``eqx.Module`` holding
    its arrays (as ``PseudoSpectral`` does), not a closure: the term is then a
    pytree of arrays and a new ν or κ reuses the compiled solve, where a new
    closure per call compiles again.
    """

    symbol: Float[Array, " k"]
    nonlinear_hat: Callable
    n: int = eqx.field(static=True)

    def vf(self, t, y, args):
        y_hat = jnp.fft.rfft(y)
        return jnp.fft.irfft(
            self.symbol * y_hat + self.nonlinear_hat(t, y_hat, args), n=self.n
        )

    def contr(self, t0, t1, **kwargs):
        return t1 - t0

    def prod(self, vf, control):
        return vf * control

    def split(self) -> tuple[diffrax.ODETerm, diffrax.ODETerm]:
        """``(explicit nonlinear, implicit linear)`` terms for diffrax IMEX solvers."""
        return (
            diffrax.ODETerm(_SpectralPart(self, linear=False)),
            diffrax.ODETerm(_SpectralPart(self, linear=True)),
        )


class _SpectralPart(eqx.Module):
    """One half of a ``SplitSpectralTerm`` in physical space, as a vector field.

    A Module holding the term (not a closure), so a new ``L`` or ``N̂`` with
    the same shapes reuses the compiled IMEX solve.
    """

    term: SplitSpectralTerm
    linear: bool = eqx.field(static=True)

    def __call__(self, t, y, args):
        y_hat = jnp.fft.rfft(y)
        if self.linear:
            out = self.term.symbol * y_hat
        else:
            out = self.term.nonlinear_hat(t, y_hat, args)
        return jnp.fft.irfft(out, n=self.term.n)


class IntegratingFactorRK(diffrax.AbstractAdaptiveSolver):
    """Lawson integrating-factor Runge–Kutta solver (adaptive, embedded pair).

    Takes any explicit diffrax Butcher tableau with an embedded error estimate
    (default: Tsitouras 5(4), FSAL). Requires a ``SplitSpectralTerm``. Dense
    output is linear between steps: ``solve_burgers`` forces steps to land on
    the save times (``diffrax.ClipStepSizeController(step_ts=taus)``), where it
    is exact.

    Example:
        >>> import diffrax
        >>> import jax.numpy as jnp
        >>> from geomshock.pde import solve_burgers
        >>> solver = IntegratingFactorRK(diffrax.Dopri5.tableau, method_order=5)
        >>> x = jnp.linspace(0.0, 2 * jnp.pi, 32, endpoint=False)
        >>> solve_burgers(-jnp.sin(x), x, 0.5, jnp.array([0.1]), period=2 * jnp.pi,
        ...               solver=solver).shape
        (1, 32)
    """

    _tableau: "_ByIdentity" = eqx.field(static=True)
    method_order: int = eqx.field(static=True)

    term_structure: ClassVar = SplitSpectralTerm
    interpolation_cls: ClassVar = diffrax.LocalLinearInterpolation

    def __init__(
        self,
        tableau: diffrax.ButcherTableau = diffrax.Tsit5.tableau,
        method_order: int = 5,
    ):
        self._tableau = _ByIdentity(tableau)
        self.method_order = method_order

    @property
    def tableau(self) -> diffrax.ButcherTableau:
        """The explicit Butcher tableau with its embedded error estimate."""
        return self._tableau.value

    def __check_init__(self):
        if self.tableau.implicit or self.tableau.c1 != 0:
            raise ValueError(
                "IntegratingFactorRK needs an explicit Butcher tableau with c1 = 0, "
                f"got implicit={self.tableau.implicit}, c1={self.tableau.c1}"
            )
        c = np.concatenate([[0.0], self.tableau.c])
        for i, row in enumerate(self.tableau.a_lower, start=1):
            if np.any((c[i] < c[: len(row)]) & (row != 0)):
                raise ValueError(
                    "IntegratingFactorRK needs non-decreasing stage times where "
                    "stages couple (so every factor e^{(c_i - c_j) h L} is bounded)"
                )

    def order(self, terms):
        return self.method_order

    def init(self, terms, t0, t1, y0, args):
        terms = _unwrap(terms)
        if not self.tableau.fsal:
            return None
        return terms.nonlinear_hat(t0, jnp.fft.rfft(y0), args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        terms = _unwrap(terms)
        tab = self.tableau
        # Python floats: NumPy scalars from the tableau are strongly typed in JAX
        # and would promote a float32 state to float64.
        c = [0.0, *map(float, tab.c)]
        h = t1 - t0
        hl = h * terms.symbol
        n = terms.n
        y0_hat = jnp.fft.rfft(y0)

        def first_stage():
            return terms.nonlinear_hat(t0, y0_hat, args)

        if tab.fsal:
            k0 = jax.lax.cond(made_jump, first_stage, lambda: solver_state)
        else:
            k0 = first_stage()
        ks = [k0]
        for i, row in enumerate(tab.a_lower, start=1):
            z = jnp.exp(c[i] * hl) * y0_hat
            for j, a_ij in enumerate(row):
                if a_ij != 0:
                    z = z + (h * float(a_ij)) * jnp.exp((c[i] - c[j]) * hl) * ks[j]
            if tab.fsal and i == len(tab.a_lower):
                y1_hat = z  # the FSAL stage is the solution itself
            ks.append(terms.nonlinear_hat(t0 + c[i] * h, z, args))

        def combine(weights, base):
            out = base
            for j, b_j in enumerate(weights):
                if b_j != 0:
                    out = out + (h * float(b_j)) * jnp.exp((1.0 - c[j]) * hl) * ks[j]
            return out

        if not tab.fsal:
            y1_hat = combine(tab.b_sol, jnp.exp(hl) * y0_hat)
        err_hat = combine(tab.b_error, jnp.zeros_like(y0_hat))
        y1 = jnp.fft.irfft(y1_hat, n=n)
        y_error = jnp.fft.irfft(err_hat, n=n)
        new_state = ks[-1] if tab.fsal else None
        dense_info = dict(y0=y0, y1=y1)
        return y1, y_error, dense_info, new_state, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


class _ByIdentity:
    """A static field compared by identity: the key of a compiled solve.

    A ``diffrax.ButcherTableau`` holds NumPy arrays, which neither hash nor
    compare to a bool, so as a static field it breaks the jit cache lookup
    (``eqx.filter_jit``). The tableaus are module-level singletons
    (``diffrax.Tsit5.tableau``), so the same tableau object reuses the
    compilation and a new one compiles again.
    """

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return id(self.value)

    def __eq__(self, other):
        return isinstance(other, _ByIdentity) and other.value is self.value

    def __repr__(self):
        return f"{type(self.value).__name__}(...)"


def _unwrap(terms) -> SplitSpectralTerm:
    # diffeqsolve wraps terms (diffrax's WrapTerm carries the time direction,
    # which is always forward here).
    while not isinstance(terms, SplitSpectralTerm) and hasattr(terms, "term"):
        terms = terms.term
    if not isinstance(terms, SplitSpectralTerm):
        raise ValueError(
            "IntegratingFactorRK integrates a SplitSpectralTerm (a pseudo-spectral "
            f"discretization); got {type(terms).__name__}. Use a plain diffrax "
            "solver such as diffrax.Tsit5() with finite differences."
        )
    return terms
