"""``solve_burgers``: source-corrected viscous Burgers, time-stepped with diffrax."""

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._checks import UnderResolvedWarning as UnderResolvedWarning
from .._custom_types import Array, ArrayLike, Float
from ._solver import (
    AbstractBurgersDiscretization,
    IntegratingFactorRK,
    PeriodicAxis,
    PseudoSpectral,
    axis_from_nodes,
)
from ._solver._integrate import check_nu, check_taus, integrate


def _check_grid(v0, x, period) -> tuple[Array, PeriodicAxis]:
    """``v0`` (finite, sampled on ``x``) and the periodic axis of ``x``."""
    if period is None:
        raise ValueError(
            "solve_burgers needs period=P, the period of the grid x (one period "
            "[a, a + P), endpoint excluded); got period=None"
        )
    x = _checks.check_float_dtype(x, "x")
    if x.ndim != 1 or x.shape[0] < 4:
        raise ValueError(f"x must be a 1-D grid of at least 4 points, got {x.shape}")
    axis = axis_from_nodes(x, period, name="x")
    v0 = _checks.check_shape(
        _checks.check_float_dtype(v0, "v0"), x.shape, "v0", expected="sampled on x"
    )
    # Finite data first: NaN would burn every step, inf divides by zero below.
    v0 = _checks.finite_array(v0, "v0")
    return _checks.tie(v0, axis.start), axis


def _resolution_message(cells, h, values=None):
    if values is None:
        return (
            f"viscous layer width 2ν/|Δv| (|Δv| = max v0 − min v0) is below "
            f"{cells:g} grid spacings ({cells * h:.3g}): a shock that forms will "
            "not be resolved; use more grid points or a larger ν (checked at run "
            "time: ν or v0 is traced)"
        )
    width, nu, jump, period = values
    return (
        f"viscous layer width 2ν/|Δv| = {width:.3g} is below {cells:g} grid "
        f"spacings ({cells * h:.3g}) for ν = {nu:.3g}, |Δv| = "
        f"{jump:.3g}: a shock that forms will not be resolved; use at least "
        f"n = {int(np.ceil(cells * period / width))} points or a larger ν"
    )


def _check_resolution(v0, nu, axis, discretization, on_under_resolved):
    """A-priori layer width ``2ν/Δv`` (Δv ≤ max v0 − min v0) vs the grid spacing.

    Known ν and v0: a ``ValueError`` (``"raise"``) or an ``UnderResolvedWarning``
    now; traced: the same at run time (``error_if`` / a host callback).
    Returns ``v0`` (with the run-time check threaded into it).
    """
    if on_under_resolved == "ignore":
        return v0
    cells = discretization.min_layer_cells
    h = axis.spacing
    v0_c, nu_c = _checks.concrete(v0), _checks.concrete(nu)
    if v0_c is not None and nu_c is not None:
        jump = float(np.max(v0_c) - np.min(v0_c))
        if jump == 0.0:
            return v0
        width = 2.0 * float(nu_c) / jump
        if width >= cells * h:
            return v0
        message = _resolution_message(cells, h, (width, float(nu_c), jump, axis.period))
        if on_under_resolved == "raise":
            raise ValueError(message)
        return _checks.warn_if(v0, True, message, UnderResolvedWarning)
    # 2ν/jump < cells·h  ⇔  2ν < cells·h·jump (no division: jump may be 0)
    bad = 2.0 * nu < cells * h * (jnp.max(v0) - jnp.min(v0))
    message = _resolution_message(cells, h)
    if on_under_resolved == "raise":
        return _checks.run_time_check(v0, bad, message)
    return _checks.warn_if(v0, bad, message, UnderResolvedWarning)


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
            linear part as their implicit term. Give them a root finder as
            tight as the step control (diffrax's default ``VeryChord`` does
            not converge at ``rtol = 1e-9`` and the solve runs out of steps),
            e.g. ``diffrax.KenCarp4(root_finder=optimistix.Chord(rtol=1e-10,
            atol=1e-10))``.
        on_under_resolved: ``"warn"`` (default, an ``UnderResolvedWarning``),
            ``"raise"`` or ``"ignore"`` when the a-priori layer width
            ``2ν/(max v0 − min v0)`` is below ``discretization.min_layer_cells``
            grid spacings. Checked now when ν and v0 are known, at run time
            (a host-side warning or an ``eqx.error_if``) when they are traced.
        **solver_options: ``rtol``, ``atol`` (default ``1e-9`` in float64,
            ``1e-6`` in float32: the dtype of ``v0``), ``dt0``, ``max_steps``
            (default 100 000), ``stepsize_controller``, ``adjoint``,
            ``return_solution`` and any other ``diffrax.diffeqsolve`` keyword.

    Returns:
        ``v`` at ``taus``, shape ``(len(taus), n)``, in the dtype of ``v0``. With
        ``return_solution=True``, a :class:`PDESolution` (``values`` as above,
        ``taus``, ``num_steps``, ``num_rejected_steps``, ``grid``: the
        ``PeriodicAxis`` of ``x``).

    Raises:
        ValueError: for a bad grid (not uniform, not one period), NaN or inf in
            ``v0`` (``NonFiniteInputError``), ``ν ≤ 0``, bad ``taus`` or solver
            options; under ``jit`` the same checks fail at run time.

    Supports ``jit``, ``vmap`` over ``nu``, ``v0`` and ``taus``, and reverse-mode
    ``grad`` in ``nu`` and ``v0`` (diffrax's ``RecursiveCheckpointAdjoint``).

    Eager calls are cheap after the first: the checks run now, on the known
    values, and the time stepping is one cached ``eqx.filter_jit``
    computation in which ν, κ on the grid, ``v0`` and ``taus`` are traced.
    A new ν, new initial data, new save times or a new grid of the same
    shapes and dtypes reuse it (the period enters the spectral term only
    through its wavenumbers, an array); new shapes (``n``, ``len(taus)``),
    dtypes, ``discretization`` (and the period with ``FiniteDifference``,
    whose spacing is static), ``solver``, solver options (``max_steps``,
    ``adjoint`` …) or ``kappa`` given vs not given compile again. ``kappa``
    itself is sampled on the grid eagerly, so a new ``kappa`` function does
    not recompile.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.linspace(-1.0, 1.0, 64, endpoint=False)
        >>> v = solve_burgers(-jnp.sin(jnp.pi * x), x, 0.2, jnp.array([0.0, 0.1]),
        ...                   period=2.0)
        >>> v.shape
        (2, 64)
        >>> sol = solve_burgers(-jnp.sin(jnp.pi * x), x, 0.2, jnp.array([0.1]),
        ...                     period=2.0, return_solution=True)
        >>> sol.values.shape, bool(sol.num_steps > 0)
        ((1, 64), True)
    """
    v0, axis = _check_grid(v0, x, period)
    dtype = v0.dtype
    nu = check_nu(nu, dtype)
    taus = check_taus(taus, dtype)
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
    v0 = _check_resolution(v0, nu, axis, discretization, on_under_resolved)
    kappa_grid = None if kappa is None else _sample_kappa(kappa, x, dtype)
    term = discretization.term(nu, kappa_grid, axis.n, axis.period)
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
    return integrate(term, v0, taus, solver=solver, grid=axis, **solver_options)


def _sample_kappa(kappa: Callable, x, dtype) -> Array:
    x = jnp.asarray(x, dtype=dtype)
    # The shape is checked on the values (no separate eval_shape trace per call).
    values = jax.vmap(kappa)(x)
    if jnp.shape(values)[1:] != ():
        raise ValueError(
            f"kappa must map a scalar s to a scalar; it returned shape "
            f"{jnp.shape(values)[1:]}"
        )
    return _checks.finite_array(values.astype(dtype), "kappa on the grid")


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
    ``solve_burgers``; ``on_under_resolved`` defaults to ``"ignore"`` here
    (pass ``"warn"`` or ``"raise"`` for the run-time check).

    Compiled once per configuration (``eqx.filter_jit``): new values of
    ``v0s``, ``x``, ``nus`` and ``taus`` with the same shapes and dtypes reuse
    the compiled sweep; new shapes, a new ``period`` or other keyword options,
    or a new ``kappa`` function object compile again.

    Returns:
        ``(len(nus), len(v0s), len(taus), len(x))``.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.linspace(0.0, 2 * jnp.pi, 32, endpoint=False)
        >>> v0s = jnp.stack([-jnp.sin(x), jnp.cos(x)])
        >>> burgers_sweep(v0s, x, jnp.array([0.5, 1.0]), jnp.array([0.0, 0.2]),
        ...               period=2 * jnp.pi).shape
        (2, 2, 2, 32)
    """
    x = jnp.asarray(x)
    taus = check_taus(taus)
    options.setdefault("on_under_resolved", "ignore")
    return _sweep(jnp.asarray(nus), jnp.asarray(v0s), x, taus, period, options)


@eqx.filter_jit
def _sweep(nus, v0s, x, taus, period, options):
    """The jitted double ``vmap`` behind ``burgers_sweep`` (one module-level
    function, so its compilation is cached across calls)."""

    def one(nu, v0):
        return solve_burgers(v0, x, nu, taus, period=period, **options)

    return jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))(nus, v0s)
