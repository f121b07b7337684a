"""Shared input checks and the one diffrax call behind every time-stepper."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._custom_types import Array


def concrete(a) -> np.ndarray | None:
    """``a`` as a NumPy array when its value is known at trace time, else None."""
    try:
        return np.asarray(a)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_nu(nu) -> Array:
    """ν as a float array; ν ≤ 0 is a ValueError (concrete) or a runtime error."""
    nu_c = concrete(nu)
    if nu_c is not None and (nu_c.ndim != 0 or not nu_c > 0):
        raise ValueError(
            f"nu must be a positive scalar (paper convention ν = 2 ν_c), got {nu_c!r}"
        )
    nu = jnp.asarray(nu, dtype=jnp.result_type(float))
    if nu.ndim != 0:
        raise ValueError(f"nu must be a scalar (vmap over it), got shape {nu.shape}")
    return eqx.error_if(nu, ~(nu > 0), "nu must be positive")


def check_taus(taus) -> Array:
    """Save times: 1-D, non-negative and non-decreasing."""
    taus_c = concrete(taus)
    taus = jnp.asarray(taus, dtype=jnp.result_type(float))
    if taus.ndim != 1 or taus.shape[0] == 0:
        raise ValueError(
            f"taus must be a non-empty 1-D array of times, got shape {taus.shape}"
        )
    if taus_c is not None:
        if np.any(taus_c < 0) or np.any(np.diff(taus_c) < 0):
            raise ValueError(
                f"taus must be non-negative and sorted (non-decreasing), got {taus_c}"
            )
        return taus
    bad = jnp.any(taus < 0) | jnp.any(jnp.diff(taus) < 0)
    return eqx.error_if(taus, bad, "taus must be non-negative and sorted")


_DEFAULT_TOLERANCES = dict(rtol=1e-9, atol=1e-9)


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
    return_stats: bool = False,
    **diffeqsolve_options,
):
    """Integrate ``term`` from ``τ = 0`` and return ``y`` at ``taus``.

    Adaptive PID control (``rtol``/``atol``, default 1e-8) with steps clipped to
    land on every save time. ``taus[-1] = 0`` returns copies of ``y0``.
    """
    if stepsize_controller is None:
        stepsize_controller = diffrax.PIDController(
            rtol=_DEFAULT_TOLERANCES["rtol"] if rtol is None else rtol,
            atol=_DEFAULT_TOLERANCES["atol"] if atol is None else atol,
        )
    elif rtol is not None or atol is not None:
        raise ValueError("pass rtol/atol or a stepsize_controller, not both")
    if isinstance(stepsize_controller, diffrax.PIDController):
        stepsize_controller = diffrax.ClipStepSizeController(
            stepsize_controller, step_ts=taus
        )
    # A zero-length interval is replaced by a unit one that saves only at 0.
    t1 = taus[-1]
    degenerate = t1 <= 0
    t1_safe = jnp.where(degenerate, 1.0, t1)
    sol = diffrax.diffeqsolve(
        term,
        solver,
        t0=0.0,
        t1=t1_safe,
        dt0=dt0,
        y0=y0,
        args=args,
        saveat=diffrax.SaveAt(ts=taus),
        stepsize_controller=stepsize_controller,
        max_steps=max_steps,
        adjoint=diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint,
        **diffeqsolve_options,
    )
    ys = jnp.where(degenerate, jnp.broadcast_to(y0, sol.ys.shape), sol.ys)
    ys = eqx.error_if(
        ys,
        ~jnp.all(jnp.isfinite(ys)),
        "time-stepper produced non-finite values: the solution is not resolved "
        "(increase the grid, the viscosity or tighten the tolerances)",
    )
    if return_stats:
        return ys, sol.stats
    return ys
