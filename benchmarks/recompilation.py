"""Cost of a repeated eager call: does a new ν / new data / new point recompile?

Question: after the first (compiling) call, what does an eager call of
``solve_burgers``, ``solve_hj``, ``burgers_sweep`` and a chart's ``metric``
cost when every call gets *new* numerical arguments (a new ν, new initial
data of the same shape, a new point)? Each row: the first call (compile +
run), the median of the repeated calls, their ratio, and what a
``jax.monitoring`` listener saw during the repeated calls (XLA compilations
and jaxpr traces: 0 means nothing was recompiled). The "new lambda" row
passes a new Python function as the metric on every call: its geometry at
the nodes compiles again (a function is a static argument), the time
stepper does not. For the chart metric, the
peer is an explicit ``jax.jit(chart.metric)`` called on the same new points:
the ratio eager/jit is the cost of the eager wrapper (the checks on the point
and one dispatch). Peak memory: the process's peak resident set after the row
(``ru_maxrss``; it only grows, so it bounds every row above it).

Before this change (commit 86eb953) the repeated calls recompiled: 2.4–3.1 s
per ``burgers_sweep``, 1.5–2 s per eager solver call, 0.6 s per eager
``ReLUMLPChart.metric`` (12.3 s for the first), as quoted in issue 13.

Run: ``python benchmarks/recompilation.py`` (``--quick`` for smaller sizes).
"""

import resource
import statistics
import sys
import time

import jax

import geomshock  # noqa: F401  (before jax starts its CPU backend)

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from geomshock import pde  # noqa: E402
from geomshock.charts import ReLUMLPChart  # noqa: E402

sys.path.insert(0, "tests")
from _compile_counter import count_compilations  # noqa: E402

REPEATS = 7


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def first_and_repeated(fn, calls):
    """``fn(calls[0])`` timed (compile + run), then the median over the other
    calls (new arguments each) and what was compiled / traced during them."""
    start = time.perf_counter()
    with count_compilations() as first_count:
        jax.block_until_ready(fn(calls[0]))
    first = time.perf_counter() - start
    runs = []
    with count_compilations() as repeated:
        for call in calls[1:]:
            start = time.perf_counter()
            jax.block_until_ready(fn(call))
            runs.append(time.perf_counter() - start)
    return first, first_count, statistics.median(runs), repeated


def _row(name, size, first, first_count, median, repeated, peer=None):
    peer_col = f"{peer * 1e3:10.3f} {median / peer:9.1f}" if peer else f"{'':10} {'':9}"
    print(
        f"{name:<22} {size:<18} {first:8.2f} {first_count.seconds:8.2f} "
        f"{median * 1e3:10.3f} {median / first:10.2e} "
        f"{repeated.compiles:4d}/{repeated.traces:<4d} {peer_col} "
        f"{_peak_rss_mb():8.0f}"
    )


def burgers_calls(n):
    x = np.linspace(-1.0, 1.0, n, endpoint=False)
    taus = np.array([0.0, 0.1, 0.3])
    calls = [
        (-(1.0 + 0.05 * i) * np.sin(np.pi * x) + 0.1 * i * np.cos(2 * np.pi * x),
         0.15 + 0.01 * i, taus)
        for i in range(REPEATS + 1)
    ]  # fmt: skip
    return x, calls


def main(quick: bool):
    n = 128 if quick else 256
    print(
        f"{'function':<22} {'size':<18} {'first s':>8} {'XLA s':>8} "
        f"{'repeat ms':>10} {'rep/first':>10} {'comp/trc':>9} "
        f"{'jit ms':>10} {'eager/jit':>9} {'peak MB':>8}"
    )
    x, calls = burgers_calls(n)
    res = first_and_repeated(
        lambda c: pde.solve_burgers(c[0], x, c[1], c[2], period=2.0), calls
    )
    _row("solve_burgers", f"n={n}, 3 saves", *res)

    b, m = (2, 2) if quick else (4, 4)
    sweep_calls = [
        (np.stack([c[0] * (1 + 0.1 * j) for j in range(b)]),
         np.linspace(0.3, 0.6, m) + 0.01 * i)
        for i, c in enumerate(calls)
    ]  # fmt: skip
    res = first_and_repeated(
        lambda c: pde.burgers_sweep(c[0], x, c[1], np.array([0.0, 0.2]), period=2.0),
        sweep_calls,
    )
    _row("burgers_sweep", f"{m} ν × {b} v0, n={n}", *res)

    grid = (
        pde.NeumannAxis(0.0, np.pi, 12 if quick else 24),
        pde.PeriodicAxis(0.0, 2 * np.pi, 8),
    )
    nodes = np.asarray(pde.grid_points(grid))

    def sphere(q):
        return jnp.diag(jnp.array([1.0, jnp.sin(q[0]) ** 2]))

    hj_calls = [
        (np.cos(nodes[..., 0]) + 0.05 * i * np.sin(nodes[..., 1]), 0.3 + 0.02 * i)
        for i in range(REPEATS + 1)
    ]
    res = first_and_repeated(
        lambda c: pde.solve_hj(c[0], sphere, c[1], np.array([0.0, 0.3]), grid), hj_calls
    )
    _row("solve_hj (sphere)", f"{grid[0].n}×{grid[1].n}, 2 saves", *res)

    # a fresh lambda per call: its node geometry compiles again, the stepper not
    res = first_and_repeated(
        lambda c: pde.solve_hj(
            c[0], lambda q: sphere(q), c[1], np.array([0.0, 0.3]), grid
        ),
        hj_calls,
    )
    _row("solve_hj (new lambda)", f"{grid[0].n}×{grid[1].n}, 2 saves", *res)

    for sizes in [(2, 4, 3, 1), (4, 8, 8, 2) if quick else (8, 16, 16, 4)]:
        chart = ReLUMLPChart(sizes)
        points = [
            0.5 * np.cos(1.3 * np.arange(chart.dim) + k) + 0.1
            for k in range(REPEATS + 1)
        ]
        res = first_and_repeated(chart.metric, points)
        _, _, peer, _ = first_and_repeated(jax.jit(chart.metric), points)
        _row("ReLUMLPChart.metric", f"{sizes}, dim {chart.dim}", *res, peer=peer)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
