"""``solve_burgers``: source-corrected viscous Burgers, time-stepped with diffrax."""

import warnings
from collections.abc import Callable

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Float
from ._solver import (
    AbstractBurgersDiscretization,
    IntegratingFactorRK,
    PseudoSpectral,
)
from ._solver._integrate import check_nu, check_taus, concrete, integrate


class UnderResolvedWarning(UserWarning):
    """The grid cannot resolve the viscous layer that the data will form."""


def _check_grid(v0, x, period) -> tuple[Array, Array, int, float]:
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    v0 = jnp.asarray(v0, dtype=jnp.result_type(float))
    if x.ndim != 1 or x.shape[0] < 4:
        raise ValueError(f"x must be a 1-D grid of at least 4 points, got {x.shape}")
    if v0.shape != x.shape:
        raise ValueError(
            f"v0 must be sampled on x: expected shape {x.shape}, got {v0.shape}"
        )
    period_c = concrete(period)
    if period_c is None or period_c.ndim != 0 or not period_c > 0:
        raise ValueError(f"period must be a positive Python float, got {period!r}")
    n = x.shape[0]
    x_c = concrete(x)
    if x_c is not None:
        h = float(period_c) / n
        if not np.allclose(np.diff(x_c), h, rtol=1e-9, atol=1e-12 * float(period_c)):
            raise ValueError(
                "x must be uniform with spacing period / len(x) = "
                f"{h!r} (one period, endpoint excluded); got spacings in "
                f"[{np.diff(x_c).min()!r}, {np.diff(x_c).max()!r}]"
            )
    return v0, x, n, float(period_c)


def _check_resolution(v0, nu, n, period, discretization, on_under_resolved):
    """A-priori layer width ``2ν/Δv`` (Δv ≤ max v0 − min v0) vs the grid spacing."""
    if on_under_resolved == "ignore":
        return
    v0_c, nu_c = concrete(v0), concrete(nu)
    if v0_c is None or nu_c is None:
        return
    jump = float(np.max(v0_c) - np.min(v0_c))
    h = period / n
    if jump == 0.0:
        return
    width = 2.0 * float(nu_c) / jump
    cells = discretization.min_layer_cells
    if width < cells * h:
        message = (
            f"viscous layer width 2ν/|Δv| = {width:.3g} is below {cells:g} grid "
            f"spacings ({cells * h:.3g}) for ν = {float(nu_c):.3g}, |Δv| = "
            f"{jump:.3g}: a shock that forms will not be resolved; use at least "
            f"n = {int(np.ceil(cells * period / width))} points or a larger ν"
        )
        if on_under_resolved == "raise":
            raise ValueError(message)
        warnings.warn(message, UnderResolvedWarning, stacklevel=3)


def solve_burgers(
    v0: Float[ArrayLike, " n"],
    x: Float[ArrayLike, " n"],
    nu: Float[ArrayLike, ""],
    taus: Float[ArrayLike, " t"],
    *,
    period: float,
    kappa: Callable | None = None,
    discretization: AbstractBurgersDiscretization | None = None,
    solver: diffrax.AbstractSolver | None = None,
    on_under_resolved: str = "warn",
    **solver_options,
) -> Float[Array, "t n"]:
    r"""Source-corrected viscous Burgers on a periodic grid, time-stepped with diffrax.

    Solves ``∂_τ v + v ∂_x v = (ν/2)(∂_xx v + κ ∂_x v + κ' v)`` (paper
    convention, Thm. 4.2: ``ν = 2 ν_c`` relative to the classic
    ``u_t + u u_x = ν_c u_xx``; κ ≡ 0 is plain viscous Burgers) from
    ``v(0) = v0`` and returns ``v`` at the times ``taus``.

    Default scheme: Fourier pseudo-spectral in space (2/3 dealiasing) with the
    diffusion integrated exactly by a Lawson integrating-factor Tsitouras 5(4)
    scheme (``IntegratingFactorRK``), adaptive PID step control and steps that
    land on every save time. ``κ'`` comes from ``jax.grad(kappa)``.

    Args:
        v0: initial samples ``v0(x_j)``, shape ``(n,)``.
        x: uniform grid of one period, endpoint excluded (``x_j = x_0 + j P/n``).
        nu: viscosity ``ν > 0`` (paper convention).
        taus: non-negative, non-decreasing save times (``τ = 0`` is allowed).
        period: the period ``P`` (a Python float).
        kappa: ``s -> κ(s)`` (scalar JAX function) or None for κ ≡ 0.
        discretization: ``PseudoSpectral()`` (default) or ``FiniteDifference()``.
        solver: a diffrax solver; default ``IntegratingFactorRK()`` for spectral
            and ``diffrax.Tsit5()`` otherwise. Any diffrax solver works with the
            spectral term; IMEX solvers (``diffrax.KenCarp4()`` …) get the
            linear part as their implicit term.
        on_under_resolved: ``"warn"`` (default), ``"raise"`` or ``"ignore"`` when
            the a-priori layer width ``2ν/(max v0 − min v0)`` is below
            ``discretization.min_layer_cells`` grid spacings (checked when ν
            and v0 are concrete; under ``jit`` non-finite states raise instead).
        **solver_options: ``rtol``, ``atol`` (default 1e-9), ``dt0``,
            ``max_steps``, ``stepsize_controller``, ``adjoint``, ``return_stats``
            and any other ``diffrax.diffeqsolve`` keyword.

    Returns:
        ``v`` at ``taus``, shape ``(len(taus), n)`` (with ``return_stats=True``,
        also diffrax's statistics, e.g. ``num_steps``).

    Supports ``jit``, ``vmap`` over ``nu``, ``v0`` and ``taus``, and reverse-mode
    ``grad`` in ``nu`` and ``v0`` (diffrax's ``RecursiveCheckpointAdjoint``).

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.linspace(-1.0, 1.0, 64, endpoint=False)
        >>> v = solve_burgers(-jnp.sin(jnp.pi * x), x, 0.2, jnp.array([0.0, 0.1]),
        ...                   period=2.0)
        >>> v.shape
        (2, 64)
    """
    v0, x, n, period = _check_grid(v0, x, period)
    nu = check_nu(nu)
    taus = check_taus(taus)
    if on_under_resolved not in ("warn", "raise", "ignore"):
        raise ValueError(
            f"on_under_resolved must be 'warn', 'raise' or 'ignore', "
            f"got {on_under_resolved!r}"
        )
    if discretization is None:
        discretization = PseudoSpectral()
    if not isinstance(discretization, AbstractBurgersDiscretization):
        raise ValueError(
            "discretization must be an AbstractBurgersDiscretization, got "
            f"{type(discretization).__name__}"
        )
    _check_resolution(v0, nu, n, period, discretization, on_under_resolved)
    kappa_grid = None if kappa is None else _sample_kappa(kappa, x)
    term = discretization.term(nu, kappa_grid, n, period)
    if solver is None:
        spectral = isinstance(discretization, PseudoSpectral)
        solver = IntegratingFactorRK() if spectral else diffrax.Tsit5()
    if _is_imex(solver):
        if not hasattr(term, "split"):
            raise ValueError(
                f"{type(solver).__name__} is IMEX and needs a split term; "
                f"{type(discretization).__name__} gives a single term"
            )
        term = diffrax.MultiTerm(*term.split())
    return integrate(term, v0, taus, solver=solver, **solver_options)


def _sample_kappa(kappa: Callable, x: Array) -> Array:
    out = jax.eval_shape(kappa, x[0])
    if getattr(out, "shape", None) != ():
        raise ValueError(
            f"kappa must map a scalar s to a scalar; it returned shape "
            f"{getattr(out, 'shape', None)}"
        )
    return jax.vmap(kappa)(x)


def _is_imex(solver) -> bool:
    structure = getattr(solver, "term_structure", None)
    return isinstance(structure, diffrax.MultiTerm) or (
        getattr(structure, "__origin__", None) is diffrax.MultiTerm
    )


def burgers_sweep(
    v0s: Float[ArrayLike, "b n"],
    x: Float[ArrayLike, " n"],
    nus: Float[ArrayLike, " m"],
    taus: Float[ArrayLike, " t"],
    *,
    period: float,
    **options,
) -> Float[Array, "m b t n"]:
    """``solve_burgers`` on the grid ``nus × v0s`` in one jitted, vmapped call.

    The batch axes are leading array dimensions of a single computation
    (``vmap`` over ``v0`` inside ``vmap`` over ``ν``), so a GPU runs all
    ``len(nus) · len(v0s)`` fields in lock-step. Keyword options go to
    ``solve_burgers``; resolution is not pre-checked for traced ``ν``.

    Returns:
        ``(len(nus), len(v0s), len(taus), len(x))``.
    """
    x = jnp.asarray(x)
    taus = check_taus(taus)
    options.setdefault("on_under_resolved", "ignore")

    def one(nu, v0):
        return solve_burgers(v0, x, nu, taus, period=period, **options)

    return jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None)))(
        jnp.asarray(nus), jnp.asarray(v0s)
    )
