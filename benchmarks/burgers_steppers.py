"""Basdevant viscous Burgers at N = 2048: exponax vs solve_burgers schemes.

Question: is geomshock's default Burgers stepper at least as fast as exponax's
ETDRK2 Burgers stepper with 8000 steps, at slope error <= 1e-5?

Problem: u_t + u u_x = (0.01/π) u_xx (classic ν_c = 0.01/π, paper ν = 0.02/π),
u0 = −sin(πx) on [−1, 1) periodic, t = 1.6037/π. Error: |max |∂_x u| − 152.005161576|
with ∂_x u by FFT of the final field (max at x = 0). float64, one process.
Times: median of several runs after a warm-up call (compile time reported apart).
"""

import diffrax
import exponax
import jax
import jax.numpy as jnp
import numpy as np
from _timing import timed  # noqa: E402

from geomshock.pde import (
    FiniteDifference,
    IntegratingFactorRK,
    PseudoSpectral,
    solve_burgers,
)

jax.config.update("jax_enable_x64", True)

N, PERIOD = 2048, 2.0
NU_C = 0.01 / np.pi
T_END = 1.6037 / np.pi
SLOPE = 152.005161576
X = np.linspace(-1.0, 1.0, N, endpoint=False)
V0 = jnp.asarray(-np.sin(np.pi * X))


def slope_error(v_final, x_index_of_zero):
    k = 2 * np.pi * np.fft.rfftfreq(N, d=PERIOD / N)
    slope = np.fft.irfft(1j * k * np.fft.rfft(np.asarray(v_final)), n=N)
    assert np.argmax(np.abs(slope)) == x_index_of_zero
    return abs(np.max(np.abs(slope)) - SLOPE)


def exponax_case(steps):
    stepper = exponax.stepper.Burgers(1, PERIOD, N, T_END / steps, diffusivity=NU_C)
    run = jax.jit(exponax.repeat(stepper, steps))
    # exponax's grid is [0, 2) with x_e = x + 1, so x = 0 is index N/2.
    u0 = -jnp.sin(jnp.pi * (jnp.arange(N) * PERIOD / N - 1.0))[None]
    out, c, t = timed(run, u0)
    return dict(time=t, compile=c, steps=steps, error=slope_error(out[0], N // 2))


def geomshock_case(**options):
    fn = jax.jit(
        lambda v0: solve_burgers(
            v0,
            X,
            2 * NU_C,
            jnp.array([T_END]),
            period=PERIOD,
            return_solution=True,
            **options,
        )
    )
    sol, c, t = timed(fn, V0)
    return dict(
        time=t,
        compile=c,
        steps=int(sol.num_steps),
        error=slope_error(sol.values[-1], N // 2),
    )


def main():
    cases = {
        "exponax ETDRK2, 8000 steps (peer)": lambda: exponax_case(8000),
        "exponax ETDRK2, 2000 steps": lambda: exponax_case(2000),
        "solve_burgers default (IF-Tsit5, rtol=atol=1e-9)": lambda: geomshock_case(),
        "IF-Tsit5, rtol=atol=1e-8": lambda: geomshock_case(rtol=1e-8, atol=1e-8),
        "IF-Dopri5, rtol=atol=1e-9": lambda: geomshock_case(
            solver=IntegratingFactorRK(diffrax.Dopri5.tableau, method_order=5)
        ),
        "IF-Bosh3, rtol=atol=1e-9": lambda: geomshock_case(
            solver=IntegratingFactorRK(diffrax.Bosh3.tableau, method_order=3)
        ),
        "spectral + plain diffrax Tsit5 (no IF)": lambda: geomshock_case(
            discretization=PseudoSpectral(), solver=diffrax.Tsit5()
        ),
        "2nd-order FD + diffrax Tsit5 (MOL baseline)": lambda: geomshock_case(
            discretization=FiniteDifference(), solver=diffrax.Tsit5()
        ),
    }
    rows = []
    for name, case in cases.items():
        rows.append((name, case()))
        print(f"done: {name}", flush=True)
    peer = rows[0][1]["time"]
    print(f"\nBasdevant Burgers, N = {N}, float64, {jax.devices()[0].device_kind}")
    header = (
        f"{'method':52s} {'time [s]':>9s} {'vs peer':>8s} "
        f"{'compile [s]':>11s} {'steps':>6s} {'slope err':>10s}"
    )
    print(header)
    print("-" * len(header))
    for name, r in rows:
        print(
            f"{name:52s} {r['time']:9.4f} {r['time'] / peer:8.3f} "
            f"{r['compile']:11.2f} {r['steps']:6d} {r['error']:10.2e}"
        )


if __name__ == "__main__":
    main()
