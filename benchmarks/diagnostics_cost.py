"""Overhead of gs.diagnostics.Monitor against the training step it monitors.

Question: what does one Monitor call (loss, quotient and raw curvature, norms)
cost, in Hessian-vector products (HVPs, each about two gradient evaluations)
and in seconds, relative to one optax training step on the same batch,
and what is the overhead at one call every 50 steps against the 10 % target?

Models (float64, CPU): ReLU MLPs of ~1e4 and ~1e5 parameters (lanczos; dense
forms dim×dim×dim Christoffel tensors and is out of reach there), a small MLP
where dense and lanczos can both run, and a Transformer block
(``gs.charts.TransformerBlockChart``). Training step: ``optax.adam`` on the
mean-squared error, jitted. Monitor defaults: ``num_lanczos=20``,
``num_probes=8``. HVP counts follow from the algorithms (see ``hvp_count``;
for the ReLU MLPs, whose balanced gauge is horizontal, each quotient HVP adds
two horizontal projections and no metric solve; the Transformer block's
attention gauge is not horizontal and adds a CG solve with the metric per HVP;
dense adds the metric's autodiff derivatives); the training step is one gradient.
Times are medians after a warm-up call (first-call column: compile + run).

Usage: ``python benchmarks/diagnostics_cost.py [--quick] [--cases=0,2]``
(``--quick``: the small MLP and the ~1e4 MLP only; ``--cases``: rows by index,
0 small dense, 1 small lanczos, 2 ~1e4 MLP, 3 ~1e5 MLP, 4 Transformer block).
"""

import sys

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from _timing import timed  # noqa: E402

from geomshock.charts import ReLUMLPChart, TransformerBlockChart  # noqa: E402
from geomshock.diagnostics import Monitor  # noqa: E402

EVERY, TARGET, BATCH = 50, 0.10, 64


def random_params(chart, seed=0):
    leaves, treedef = jax.tree_util.tree_flatten(chart.params_shape)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return treedef.unflatten(
        [
            jax.random.normal(k, s.shape) / jnp.sqrt(max(s.shape[-1], 1))
            for k, s in zip(keys, leaves, strict=True)
        ]
    )


def mlp_problem(sizes):
    chart = ReLUMLPChart(sizes)
    x = jax.random.normal(jax.random.PRNGKey(1), (BATCH, sizes[0]))
    y = jnp.sin(x[:, :1])
    return chart, random_params(chart), (x, y)


def block_problem():
    chart = TransformerBlockChart(d_model=16, heads=2, d_k=8, d_v=8, d_ff=32)
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 6, 16))
    return chart, random_params(chart), (x, jnp.roll(x, 1, axis=1))


def make_loss(chart):
    def loss(params, batch):
        x, y = batch
        return jnp.mean((chart.apply(params, x) - y) ** 2)

    return loss


def train_step_fn(loss):
    opt = optax.adam(1e-3)

    @jax.jit
    def step(params, state, batch):
        grads = jax.grad(loss)(params, batch)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step, opt


def hvp_count(method, dim, size, monitor):
    """Hessian-vector products per call (quotient + raw), from the algorithms:
    dense ``jax.hessian`` takes ``dim`` (quotient) and ``D`` (raw); lanczos
    takes ``2k + p`` each (``k`` Krylov steps, ``k`` for Rayleigh–Ritz, ``p``
    Laplacian probes), the quotient ones covariant."""
    if method == "dense":
        return dim + size
    k = monitor.num_lanczos
    return 2 * min(k, dim) + monitor.num_probes + 2 * min(k, size) + monitor.num_probes


def measure(label, chart, params, batch, method):
    loss = make_loss(chart)
    step, opt = train_step_fn(loss)
    state = opt.init(params)
    train = timed(step, params, state, batch)
    monitor = Monitor(loss, chart, method=method, observables=False)
    mon = timed(monitor, params, batch, 0, repeats=3)
    size = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))
    evals = hvp_count(method, chart.dim, size, monitor)
    ratio = mon.median / train.median
    overhead = mon.median / (EVERY * train.median)
    return (
        label,
        size,
        chart.dim,
        method,
        evals,
        train.median,
        mon.first,
        mon.median,
        ratio,
        overhead,
    )


def main(quick: bool, only: str | None):
    cases = [
        ("MLP (4, 16, 1)", mlp_problem((4, 16, 1)), "dense"),
        ("MLP (4, 16, 1)", mlp_problem((4, 16, 1)), "lanczos"),
        ("MLP (32, 128, 64, 1)", mlp_problem((32, 128, 64, 1)), "lanczos"),
    ]
    if not quick or only is not None:
        cases += [
            ("MLP (64, 256, 256, 1)", mlp_problem((64, 256, 256, 1)), "lanczos"),
            ("Transformer block d=16 h=2 ff=32", block_problem(), "lanczos"),
        ]
    if only is not None:
        cases = [cases[int(i)] for i in only.split(",")]
    print(
        f"Monitor cost per call vs one adam step (batch {BATCH}), float64, CPU "
        f"(2 cores shared with other jobs: times are inflated and noisy)"
    )
    header = (
        f"{'model':34s} {'params':>7s} {'dim':>6s} {'method':>8s} {'HVPs':>10s} "
        f"{'step s':>9s} {'mon 1st s':>9s} {'mon s':>9s} {'mon/step':>9s} "
        f"{'@1/' + str(EVERY):>8s} {'≤10%?':>6s}"
    )
    print(header)
    for label, (chart, params, batch), method in cases:
        row = measure(label, chart, params, batch, method)
        (label, size, dim, method, evals, step_s, first, mon_s, ratio, over) = row
        print(
            f"{label:34s} {size:7d} {dim:6d} {method:>8s} {evals:10d} {step_s:9.2e} "
            f"{first:9.2f} {mon_s:9.2e} {ratio:9.1f} {over:7.0%} "
            f"{'yes' if over <= TARGET else 'no':>6s}",
            flush=True,
        )
    print(
        f"'@1/{EVERY}': monitor time / ({EVERY} × step time), the overhead at one "
        f"call every {EVERY} steps; target ≤ {TARGET:.0%}. Calls every "
        "(mon/step)/0.1 steps meet the target."
    )


if __name__ == "__main__":
    picked = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--cases=")]
    main("--quick" in sys.argv, picked[0] if picked else None)
