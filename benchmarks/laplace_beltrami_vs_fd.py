"""Autodiff Laplace–Beltrami vs second-order finite differences (py-pde/findiff way).

Question: at d = 2, 4, 8 and 1e4 random points, how accurate and how fast is
``gs.laplace_beltrami`` compared with central differences of the divergence
form at their best step ``h``? Exact answer: the conformally flat metric
``g = e^{2φ} I``, for which ``Δf = e^{−2φ}(Δ₀f + (d − 2)∇φ·∇f)``.
"""

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
from _timing import timed  # noqa: E402

import geomshock as gs  # noqa: E402
from geomshock.geometry import laplace_beltrami_fd  # noqa: E402

NUM_POINTS = 10_000
# One jitted vmap over all points on both sides. (With a 2-worker XLA pool the
# FD side's batched LAPACK det/solve deadlocked jaxlib 0.10.2 every time at d = 4;
# importing geomshock widens the pool first, see geomshock/_runtime.py.)
STEPS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)


def phi(q):
    return 0.3 * jnp.sum(jnp.sin(q))


def metric(q):
    return jnp.exp(2 * phi(q)) * jnp.eye(q.shape[0], dtype=q.dtype)


def f(q):
    k = jnp.arange(1, q.shape[0] + 1)
    return jnp.sum(jnp.cos(k * q) / k) + q[0] * q[-1]


def exact(q):
    d = q.shape[0]
    flat = jnp.trace(jax.hessian(f)(q))
    return jnp.exp(-2 * phi(q)) * (flat + (d - 2) * jax.grad(phi)(q) @ jax.grad(f)(q))


def batched(pointwise):
    return jax.jit(jax.vmap(pointwise))


def main():
    header = (
        f"{'d':>3} | {'autodiff err':>12} {'time [ms]':>9} {'compile [s]':>11} | "
        f"{'FD best h':>9} {'FD err':>9} {'time [ms]':>9} {'compile [s]':>11} | "
        f"{'err ratio FD/AD':>15} {'time ratio FD/AD':>16}"
    )
    print(
        f"Laplace–Beltrami on {NUM_POINTS} random points, float64, {jax.devices()[0]}"
    )
    print(header)
    print("-" * len(header))
    for d in (2, 4, 8):
        points = jax.random.uniform(
            jax.random.PRNGKey(d), (NUM_POINTS, d), minval=-2, maxval=2
        )
        reference = batched(exact)(points)
        autodiff = batched(gs.laplace_beltrami(f, metric))
        _, ad_compile, ad_time = timed(autodiff, points, repeats=7)
        ad_err = float(jnp.max(jnp.abs(autodiff(points) - reference)))
        best = None
        for h in STEPS:
            fd = batched(laplace_beltrami_fd(f, metric, h))
            _, fd_compile, fd_time = timed(fd, points, repeats=7)
            err = float(jnp.max(jnp.abs(fd(points) - reference)))
            if best is None or err < best[1]:
                best = (h, err, fd_time, fd_compile)
        h, fd_err, fd_time, fd_compile = best
        print(
            f"{d:>3} | {ad_err:>12.2e} {1e3 * ad_time:>9.2f} {ad_compile:>11.2f} | "
            f"{h:>9.0e} {fd_err:>9.2e} {1e3 * fd_time:>9.2f} {fd_compile:>11.2f} | "
            f"{fd_err / ad_err:>15.1e} {fd_time / ad_time:>16.2f}"
        )


if __name__ == "__main__":
    main()
