"""The one diffrax call behind every time-stepper, its checks and its solution.

Inputs are checked through :mod:`geomshock._checks` (a ``ValueError`` now for
known values, an ``eqx.error_if`` threaded into the computation for traced
ones). Default tolerances follow the dtype of the state: ``rtol = atol =
1e-9`` in float64 and ``1e-6`` in float32, where ``1e-9`` is below round-off
(the controller would shrink the step until ``max_steps``).

>>> import diffrax, jax.numpy as jnp
>>> term = diffrax.ODETerm(lambda t, y, args: -y)
>>> sol = integrate(term, jnp.ones(2), check_taus([0.0, 1.0]), solver=diffrax.Tsit5(),
...                 return_solution=True)
>>> round(float(sol.values[-1, 0]), 6), bool(sol.num_steps > 0)
(0.367879, True)
"""

import warnings

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Int

from ... import _checks
from ..._custom_types import Array, Float


class PDESolution(eqx.Module):
    """What a time-stepper returns with ``return_solution=True``.

    Attributes:
        values: the solution at ``taus``, shape ``(len(taus), *grid shape)``
            (what the solver returns by default).
        taus: the save times.
        num_steps: steps taken by diffrax (accepted and rejected).
        num_rejected_steps: steps rejected by the step-size controller.
        grid: the spatial grid: a ``PeriodicAxis`` for ``solve_burgers``, the
            tuple of axes for ``solve_hj``/``solve_heat``.
    """

    values: Float[Array, "t ..."]
    taus: Float[Array, " t"]
    num_steps: Int[Array, ""]
    num_rejected_steps: Int[Array, ""]
    grid: object


def default_tolerance(dtype) -> float:
    """The default ``rtol = atol`` of the time-steppers for a state of ``dtype``.

    >>> default_tolerance(jnp.float64), default_tolerance(jnp.float32)
    (1e-09, 1e-06)
    """
    return _checks.per_dtype(dtype, float64=1e-9, float32=1e-6)


def check_taus(taus, dtype=None) -> Array:
    """Save times: a non-empty 1-D array, finite, non-negative and non-decreasing.

    >>> check_taus([0.0, float("nan")])
    Traceback (most recent call last):
    ...
    ValueError: taus must be finite; got [ 0. nan] (NaN or inf at 1 of 2 entries)
    """
    taus_c = _checks.concrete(taus)
    taus = jnp.asarray(taus, dtype=_checks.default_float() if dtype is None else dtype)
    if taus.ndim != 1 or taus.shape[0] == 0:
        raise ValueError(
            f"taus must be a non-empty 1-D array of times, got shape {taus.shape}"
        )
    if taus_c is not None:
        taus_c = np.asarray(taus_c, dtype=np.float64)
        finite = np.isfinite(taus_c)
        if not np.all(finite):
            raise ValueError(
                f"taus must be finite; got {taus_c} (NaN or inf at "
                f"{int((~finite).sum())} of {taus_c.size} entries)"
            )
        if np.any(taus_c < 0) or np.any(np.diff(taus_c) < 0):
            raise ValueError(
                f"taus must be non-negative and sorted (non-decreasing), got {taus_c}"
            )
        return taus
    bad = ~jnp.all(jnp.isfinite(taus)) | jnp.any(taus < 0) | jnp.any(jnp.diff(taus) < 0)
    return _checks.run_time_check(
        taus, bad, "taus must be finite, non-negative and sorted (non-decreasing)"
    )


def _controller(stepsize_controller, rtol, atol, taus, dtype):
    if stepsize_controller is None:
        default = default_tolerance(dtype)
        stepsize_controller = diffrax.PIDController(
            rtol=_tolerance(default if rtol is None else rtol, "rtol", dtype),
            atol=_tolerance(default if atol is None else atol, "atol", dtype),
        )
    elif rtol is not None or atol is not None:
        raise ValueError("pass rtol/atol or a stepsize_controller, not both")
    if isinstance(stepsize_controller, diffrax.PIDController):
        stepsize_controller = diffrax.ClipStepSizeController(
            stepsize_controller, step_ts=taus
        )
    return stepsize_controller


def _tolerance(value, name, dtype):
    return _checks.positive_scalar(value, name, dtype=dtype, hint="")


def integrate(
    term: diffrax.AbstractTerm,
    y0: Array,
    taus: Array,
    *,
    solver: diffrax.AbstractSolver,
    args=None,
    rtol: float | None = None,
    atol: float | None = None,
    dt0: float | None = None,
    max_steps: int = 100_000,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    adjoint: diffrax.AbstractAdjoint | None = None,
    grid=None,
    return_solution: bool = False,
    return_stats: bool = False,
    **diffeqsolve_options,
):
    """Integrate ``term`` from ``τ = 0`` and return ``y`` at ``taus``.

    Adaptive PID control (``rtol``/``atol``, default :func:`default_tolerance`
    of ``y0``'s dtype) with steps clipped to land on every save time.
    ``taus[-1] = 0`` returns copies of ``y0``. Returns the array of values, or
    a :class:`PDESolution` with ``return_solution=True`` (``return_stats=True``
    is a deprecated alias returning ``(values, diffrax stats)``).

    Options are checked here, eagerly; the solve itself is one
    ``eqx.filter_jit`` computation, compiled once per *static* configuration:
    array leaves of ``term``, ``y0``, ``taus``, ``args``, ``dt0`` and the
    controller (ν, κ on the grid, tolerances, the data) are traced, so new
    values of the same shape and dtype reuse it. Recompiles on new shapes or
    dtypes, another solver, controller type, adjoint, ``max_steps`` or other
    static option, or a new Python function object inside ``term`` (build
    terms from Modules holding arrays, not closures).
    """
    dtype = y0.dtype
    max_steps = _checks.positive_int(max_steps, "max_steps")
    if dt0 is not None:
        dt0 = _checks.positive_scalar(dt0, "dt0", dtype=dtype, hint="")
    controller = _controller(stepsize_controller, rtol, atol, taus, dtype)
    if adjoint is None:
        adjoint = diffrax.RecursiveCheckpointAdjoint()
    ys, stats, counts = _solve(
        term, solver, y0, taus, args, dt0, max_steps, controller, adjoint,
        diffeqsolve_options,
    )  # fmt: skip
    if return_stats:
        warnings.warn(
            "return_stats=True is deprecated: use return_solution=True, which "
            "returns a PDESolution (values, taus, num_steps, num_rejected_steps, "
            "grid)",
            DeprecationWarning,
            stacklevel=3,
        )
        return ys, stats
    if not return_solution:
        return ys
    return PDESolution(
        values=ys,
        taus=taus,
        num_steps=counts[0],
        num_rejected_steps=counts[1],
        grid=grid,
    )


@eqx.filter_jit
def _solve(term, solver, y0, taus, args, dt0, max_steps, controller, adjoint, options):
    """The diffrax solve, the degenerate-interval fix-up and the output check;
    returns the values, diffrax's stats and the step counts (0 when degenerate)."""
    # A zero-length interval is replaced by a unit one that saves only at 0.
    t1 = taus[-1]
    degenerate = t1 <= 0
    t1_safe = jnp.where(degenerate, jnp.ones_like(t1), t1)
    sol = diffrax.diffeqsolve(
        term,
        solver,
        t0=jnp.zeros_like(t1),
        t1=t1_safe,
        dt0=dt0,
        y0=y0,
        args=args,
        saveat=diffrax.SaveAt(ts=taus),
        stepsize_controller=controller,
        max_steps=max_steps,
        adjoint=adjoint,
        **options,
    )
    ys = jnp.where(degenerate, jnp.broadcast_to(y0, sol.ys.shape), sol.ys)
    ys = _checks.run_time_check(
        ys,
        ~jnp.all(jnp.isfinite(ys)),
        "time-stepper produced non-finite values: the solution is not resolved "
        "(increase the grid, the viscosity or tighten the tolerances)",
    )
    counts = tuple(
        jnp.where(degenerate, jnp.zeros_like(sol.stats[name]), sol.stats[name])
        for name in ("num_steps", "num_rejected_steps")
    )
    return ys, sol.stats, counts


def check_nu(nu, dtype=None) -> Array:
    """ν > 0 (paper convention ν = 2 ν_c) as a scalar of ``dtype``."""
    return _checks.positive_scalar(nu, "nu", dtype=dtype)
