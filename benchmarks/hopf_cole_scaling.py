"""How does the exact Hopf–Cole field scale with the grid, against a dense prototype?

Question: what does one (point, node) pair cost in geomshock's blocked and
banded quadrature, against the dense log-domain formulation that holds every
pair at once, for N = 1024 … 16384, and how much memory does each need?

The problem is Basdevant et al. (1986), ``u_t + u u_x = (0.01/π) u_xx`` on
[−1, 1) periodic, ``u0 = −sin πx``, t = 1.6037/π, evaluated at all N nodes
(N² pairs). The prototype is the 30-line dense formulation: nearest periodic
image, softmax weights over the nodes for every point at once. Columns:
first call (compile + run), median, ns per pair, peak temporary memory of the
compiled computation (XLA's ``memory_analysis``), and the largest difference
between the two fields; then the resident-memory growth of one call at the
largest N, each method in its own subprocess (``VmHWM``). Quote the
latter: XLA's temporary size does not count buffers inside ``lax.cond``
branches (it gave 1.4 MB for the earlier all-pairs geomshock code, whose call
grew the process by 4.3 GB). ``--float32``
runs the same in float32 (x64 off) and reports the error against the float64
field.

Run: ``.venv/bin/python benchmarks/hopf_cole_scaling.py [--sizes 1024,2048]``.
"""

import argparse
import subprocess
import sys

import jax

if "--float32" not in sys.argv:
    jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _timing import timed  # noqa: E402

from geomshock.pde import burgers_hopf_cole  # noqa: E402

NU = 0.02 / np.pi
T = 1.6037 / np.pi
REPEATS = 5


def potential(y):
    return jnp.cos(jnp.pi * y) / jnp.pi


def geomshock_field(nu, tau, nodes):
    return burgers_hopf_cole(potential, nu, tau, nodes, nodes=nodes, period=2.0)


def dense_prototype(nu, tau, nodes):
    d = nodes[:, None] - nodes[None, :]
    d = d - 2.0 * jnp.round(d / 2.0)
    logits = -(d**2) / (2 * nu * tau) - potential(nodes)[None] / nu
    weights = jax.nn.softmax(logits, axis=1)
    return jnp.sum(weights * d, axis=1) / tau


def peak_bytes(fn, *args) -> float:
    """Temporary memory of the compiled ``fn`` (GB), as XLA allocates it."""
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    return stats.temp_size_in_bytes / 1e9


def measure(n: int, dtype):
    nodes = jnp.linspace(-1.0, 1.0, n, endpoint=False, dtype=dtype)
    nu, tau = jnp.asarray(NU, dtype), jnp.asarray(T, dtype)
    rows = []
    for name, fn in (("geomshock", geomshock_field), ("dense", dense_prototype)):
        out = timed(jax.jit(fn), nu, tau, nodes, repeats=REPEATS)
        rows.append((name, out, peak_bytes(fn, nu, tau, nodes)))
    return rows


def peak_rss(method: str, n: int) -> None:
    """Print the resident-memory growth (GB) of one call, in this process."""
    fn = {"geomshock": geomshock_field, "dense": dense_prototype}[method]
    nodes = jnp.linspace(-1.0, 1.0, n, endpoint=False)
    before = _high_water()
    jax.block_until_ready(jax.jit(fn)(NU, T, nodes))
    after = _high_water()
    print(f"{(after - before) / 1e6:.3f} {after / 1e6:.3f}")  # kB -> GB


def _high_water() -> int:
    """Peak resident memory of this process in kB (Linux ``VmHWM``).

    Not ``ru_maxrss``: that keeps the parent's peak across fork and exec.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_row(n: int) -> None:
    cells = []
    for method in ("geomshock", "dense"):
        out = subprocess.run(
            [sys.executable, __file__, "--rss", method, "--sizes", str(n)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        cells.append(f"{method} +{out[0]} GB (process peak {out[1]} GB)")
    print(f"peak resident memory of one call at N = {n}: " + "; ".join(cells))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1024,2048,4096,8192,16384")
    parser.add_argument("--float32", action="store_true")
    parser.add_argument("--rss", choices=("geomshock", "dense"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.rss:
        peak_rss(args.rss, sizes[0])
        return
    dtype = jnp.float32 if args.float32 else jnp.float64
    print(
        f"Basdevant field at all N nodes, {jnp.dtype(dtype).name}, {jax.devices()[0]}"
    )
    print(
        f"{'N':>6s} {'method':10s} {'first (s)':>9s} {'median (s)':>10s} "
        f"{'ns/pair':>8s} {'peak (GB)':>9s} {'dense / gs':>10s} {'max |Δv|':>9s}"
    )
    for n in sizes:
        (_, gs, gs_mem), (_, dense, dense_mem) = measure(n, dtype)
        diff = float(jnp.max(jnp.abs(gs.out - dense.out)))
        for name, t, mem in (("geomshock", gs, gs_mem), ("dense", dense, dense_mem)):
            print(
                f"{n:6d} {name:10s} {t.first:9.2f} {t.median:10.4f} "
                f"{t.median / n**2 * 1e9:8.2f} {mem:9.3f} "
                f"{dense.median / t.median:10.2f} {diff:9.1e}"
            )
        if args.float32:  # error against the float64 field, from a subprocess
            np.save("/tmp/_hc_float32.npy", np.asarray(gs.out))
    if not args.float32:
        rss_row(max(sizes))
    if not args.float32 and 2048 in sizes:
        print("float32 (x64 off), N = 2048, error against the float64 field:")
        subprocess.run(
            [sys.executable, __file__, "--float32", "--sizes", "2048"], check=True
        )
        (_, gs, _), _ = measure(2048, jnp.float64)
        single = np.load("/tmp/_hc_float32.npy")
        err = np.max(np.abs(single - np.asarray(gs.out)))
        print(f"  max |v32 − v64| = {err:.2e} (max |v| = {np.max(np.abs(gs.out)):.3f})")


if __name__ == "__main__":
    main()
