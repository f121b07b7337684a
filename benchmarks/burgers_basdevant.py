"""Basdevant et al. (1986) viscous Burgers: exact Hopf–Cole vs exponax ETDRK2.

Question: how much faster and more accurate is geomshock's exact log-domain
Hopf–Cole field than a spectral time stepper on the classic benchmark?

``u_t + u u_x = (0.01/π) u_xx`` on [−1, 1) periodic, ``u0 = −sin πx``,
t = 1.6037/π, N = 2048; error = |max slope − 152.005161576| (the steepest
slope sits at x = 0). In geomshock's convention ν = 2·(0.01/π) and
``U = cos(πx)/π`` (``U' = u0``).

exponax's ``Burgers`` solves ``u_t + ½ b (u²)_x = ν u_xx``: with b = 1 and
diffusivity 0.01/π that is exactly the equation above. Its grid is [0, 2), so
it is fed ``u0(x_e − 1) = sin(π x_e)`` and x = 0 is its index N/2; its slope
is the spectral derivative of the final field.

The exact field is evaluated at all N nodes by node tiles (see
``local_entropy``'s cost notes); ``benchmarks/hopf_cole_scaling.py`` shows
how it scales with N against the dense formulation, with peak memory.

Run: ``.venv/bin/python benchmarks/burgers_basdevant.py`` (float64, CPU).
"""

import jax

jax.config.update("jax_enable_x64", True)

import exponax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _timing import timed  # noqa: E402

from geomshock.pde import burgers_hopf_cole  # noqa: E402

N = 2048
NU_C = 0.01 / jnp.pi
T = 1.6037 / jnp.pi
REFERENCE = 152.005161576
REPEATS = 5


def potential(y):
    return jnp.cos(jnp.pi * y) / jnp.pi


def exponax_case(steps: int):
    stepper = exponax.stepper.Burgers(1, 2.0, N, float(T / steps), diffusivity=NU_C)
    x_e = jnp.arange(N) * 2.0 / N
    u0 = jnp.sin(jnp.pi * x_e)[None, :]

    @jax.jit
    def run(u):
        final = jax.lax.fori_loop(0, steps, lambda _, w: stepper(w), u)[0]
        k = jnp.fft.rfftfreq(N, 2.0 / N) * 2 * jnp.pi
        slope = jnp.fft.irfft(1j * k * jnp.fft.rfft(final), n=N)
        return final, jnp.max(jnp.abs(slope))

    (_, slope), first, median = timed(run, u0, repeats=REPEATS)
    return first, median, abs(float(slope) - REFERENCE)


def hopf_cole_cases():
    nodes = jnp.linspace(-1.0, 1.0, N, endpoint=False)

    def field(nu, tau, x):
        return burgers_hopf_cole(potential, nu, tau, x, nodes=nodes, period=2.0)

    slope_at = jax.grad(field, argnums=2)
    # grids are passed as arguments, not closed over, so XLA does not try to
    # constant-fold N × N intermediate arrays at compile time
    nu, tau = 2 * NU_C, T
    whole = jax.jit(lambda a, b, x: field(a, b, x))
    slopes = jax.jit(lambda a, b, x: jax.vmap(lambda s: slope_at(a, b, s))(x))
    slope0 = float(jax.jit(slope_at)(nu, tau, 0.0))
    err = abs(-slope0 - REFERENCE)
    rows = []
    single, first, median = timed(whole, nu, tau, nodes, repeats=REPEATS)
    rows.append(("geomshock burgers_hopf_cole, field", first, median, err))
    out, first, median = timed(slopes, nu, tau, nodes, repeats=REPEATS)
    err_field = abs(float(jnp.max(jnp.abs(out))) - REFERENCE)
    rows.append(("geomshock slope field (vmap grad)", first, median, err_field))
    # the points are independent: the gradient of the summed field is the slope
    summed = jax.jit(jax.grad(lambda a, b, x: jnp.sum(field(a, b, x)), argnums=2))
    out, first, median = timed(summed, nu, tau, nodes, repeats=REPEATS)
    err_field = abs(float(jnp.max(jnp.abs(out))) - REFERENCE)
    rows.append(("geomshock slope field (grad of the sum)", first, median, err_field))
    # a ν×τ sweep as one plain batch: 4 × 4 whole fields
    nus = nu * jnp.array([0.5, 1.0, 2.0, 4.0])
    taus = tau * jnp.array([0.25, 0.5, 0.75, 1.0])
    grid_nu, grid_tau = (a.ravel() for a in jnp.meshgrid(nus, taus, indexing="ij"))
    sweep = jax.jit(jax.vmap(field, in_axes=(0, 0, None)))
    out, first, median = timed(sweep, grid_nu, grid_tau, nodes, repeats=REPEATS)
    sweep_err = float(jnp.max(jnp.abs(out[1 * 4 + 3] - single)))  # (ν, τ) = (2ν_c, T)
    rows.append(("geomshock 4×4 ν×τ sweep (16 fields)", first, median, sweep_err))
    # the same 16 fields one call each (3 of them take the image sum)
    singles = [
        timed(whole, a, b, nodes, repeats=REPEATS)
        for a, b in zip(grid_nu, grid_tau, strict=True)
    ]
    loop_err = max(
        float(jnp.max(jnp.abs(t.out - out[i]))) for i, t in enumerate(singles)
    )
    total = sum(t.median for t in singles)
    rows.append(
        ("  the same, sum of 16 single calls", singles[0].first, total, loop_err)
    )
    return rows


def main():
    rows = []
    for steps in (2000, 8000):
        first, median, err = exponax_case(steps)
        rows.append((f"exponax ETDRK2 Burgers, {steps} steps", first, median, err))
    rows.extend(hopf_cole_cases())
    ref_time, ref_err = rows[1][2], rows[1][3]
    print(f"Basdevant viscous Burgers, N = {N}, float64, {jax.devices()[0]}")
    print(
        f"{'method':40s} {'compile+1st (s)':>15s} {'median (s)':>11s} "
        f"{'slope error':>12s} {'speed-up vs 8000':>17s} {'err / exponax8000':>18s}"
    )
    for name, first, median, err in rows:
        print(
            f"{name:40s} {first:15.3f} {median:11.4f} {err:12.2e} "
            f"{ref_time / median:17.1f} {err / ref_err:18.1e}"
        )
    print(
        "(sweep rows: their error column is max |sweep field − single field| at "
        "the matching (ν, τ), not a slope error)"
    )
    field = rows[2][2]
    print(
        f"exact field vs exponax-8000: {ref_time / field:.1f}× faster (goal ≥ 50×), "
        f"slope error {rows[2][3]:.1e} vs {ref_err:.1e}"
    )


if __name__ == "__main__":
    main()
