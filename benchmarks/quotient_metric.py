"""Cost of the autodiff quotient metric vs parameter count; projected vs plain SGD.

Questions:

1. How does ``chart.metric(q)`` (dense, ``g = (P_H Dσ)ᵀ(P_H Dσ)``) and the
   matrix-free ``chart.metric_operator(q).mv(v)`` scale with the parameter
   count D for the deep ReLU MLP and multi-head attention charts, up to
   D ~ 1e5? Peer: the unreduced pullback ``DσᵀDσ`` / ``Dσᵀ(Dσ v)`` (same
   autodiff, no horizontal projection), i.e. what one computes without the
   quotient. Accuracy: the matrix-free product against the dense metric
   (where the dense one fits in memory) and the symmetry of the dense metric.
2. One projected-SGD step ``lift(project(θ − η∇L))`` against one plain SGD
   step ``θ − η∇L`` on an MSE loss, same process. Accuracy: how far the
   projected step's network function is from the plain step's (both are the
   same point of the quotient, so this is round-off) and the balance error.

Median of several runs after a compiling first call (its time in its own column).

The matrix-free product removes the orbit part with the checked ``(k, k)``
Gram matrix of the orbit tangents, formed and Cholesky-factored once per point
(the default; for ``D·k > 2²²`` the Gram matrix is built from jvp/vjp pairs
without the ``(D, k)`` tangents); the "LSMR g·v" column is the same product
with a fully matrix-free LSMR least-squares solve against the orbit-tangent
operator (``solver=lx.LSMR(...)``, no ``k × k`` matrix), timed where it fits.

Importing geomshock first widens XLA's CPU pool (``NPROC``, see
``geomshock/_runtime.py``): jaxlib 0.10's batched LAPACK kernels deadlock a
2-worker pool, which hung earlier runs of the larger rows.
"""

import sys

import jax

import geomshock  # noqa: F401  (before jax starts its CPU backend)

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import lineax as lx  # noqa: E402
from _timing import timed  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from geomshock.charts import MultiHeadAttentionChart, ReLUMLPChart  # noqa: E402

DENSE_LIMIT = 3_000
GRAM_LIMIT = 6_000
LSMR = lx.LSMR(rtol=1e-14, atol=0.0, max_steps=20_000)


def random_params(chart, seed=0):
    leaves, treedef = jax.tree_util.tree_flatten(chart.params_shape)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    scale = [1 / max(1, s.shape[-1]) ** 0.5 for s in leaves]
    return treedef.unflatten(
        [
            c * jax.random.normal(k, s.shape)
            for k, s, c in zip(keys, leaves, scale, strict=True)
        ]
    )


def pullback_mv(chart, q, v):
    flat = lambda p: ravel_pytree(chart.lift(p))[0]
    _, jv = jax.jvp(flat, (q,), (v,))
    return jax.vjp(flat, q)[1](jv)[0]


def pullback_dense(chart, q):
    jac = jax.jacfwd(lambda p: ravel_pytree(chart.lift(p))[0])(q)
    return jac.T @ jac


def metric_rows():
    cases = [
        ("mlp", ReLUMLPChart((4, 8, 8, 2))),
        ("mlp", ReLUMLPChart((8, 24, 24, 4))),
        ("mlp", ReLUMLPChart((16, 64, 64, 8))),
        ("mlp", ReLUMLPChart((32, 128, 128, 32))),
        ("mlp", ReLUMLPChart((64, 192, 192, 192, 64))),
        ("attention", MultiHeadAttentionChart(8, 2, 4, 4)),
        ("attention", MultiHeadAttentionChart(16, 4, 4, 4)),
        ("attention", MultiHeadAttentionChart(32, 8, 4, 4)),
        ("attention", MultiHeadAttentionChart(64, 8, 8, 8)),
        ("attention", MultiHeadAttentionChart(128, 16, 8, 8)),
        ("attention", MultiHeadAttentionChart(192, 16, 8, 8)),
    ]
    header = (
        f"{'chart':>9} {'D':>7} {'m':>7} {'k':>5} | {'dense g [ms]':>12} "
        f"{'compile [s]':>11} {'pullback [ms]':>13} {'ratio':>6} {'asym':>8} | "
        f"{'g·v [ms]':>9} {'compile [s]':>11} {'pullback·v [ms]':>15} {'ratio':>6} "
        f"{'LSMR g·v [ms]':>13} {'LSMR/def':>8} {'rel. err':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, chart in cases:
        params = random_params(chart)
        q = jax.jit(chart.project)(params)
        size = ravel_pytree(params)[0].size
        v = jax.random.normal(jax.random.PRNGKey(1), q.shape)
        mv = jax.jit(lambda q, v, c=chart: c.metric_operator(q).mv(v))
        gv, c_mv, t_mv = timed(mv, q, v, repeats=3)
        _, _, t_pmv = timed(
            jax.jit(lambda q, v, c=chart: pullback_mv(c, q, v)), q, v, repeats=3
        )
        dense_cols = f"{'—':>12} {'—':>11} {'—':>13} {'—':>6} {'—':>8}"
        gram_cols, err = f"{'—':>13} {'—':>8}", "—"
        if size <= GRAM_LIMIT:
            gram_mv = jax.jit(
                lambda q, v, c=chart: c.metric_operator(q, solver=LSMR).mv(v)
            )
            gv_gram, _, t_gram = timed(gram_mv, q, v, repeats=3)
            gram_cols = f"{1e3 * t_gram:13.2f} {t_gram / t_mv:8.2f}"
            err = relative_error(gv, gv_gram)
        if size <= DENSE_LIMIT:
            g, c_g, t_g = timed(jax.jit(chart.metric), q, repeats=3)
            _, _, t_p = timed(
                jax.jit(lambda q, c=chart: pullback_dense(c, q)), q, repeats=3
            )
            asym = float(jnp.max(jnp.abs(g - g.T)) / jnp.max(jnp.abs(g)))
            dense_cols = (
                f"{1e3 * t_g:12.2f} {c_g:11.2f} {1e3 * t_p:13.2f} {t_g / t_p:6.2f} "
                f"{asym:8.1e}"
            )
            err = relative_error(gv, g @ v)
        print(
            f"{name:>9} {size:7d} {chart.dim:7d} {chart.action.algebra_dim:5d} | "
            f"{dense_cols} | {1e3 * t_mv:9.2f} {c_mv:11.2f} {1e3 * t_pmv:15.2f} "
            f"{t_mv / t_pmv:6.2f} {gram_cols} {err:>9}",
            flush=True,
        )
    print(
        "rel. err: |g·v − G v| / |G v| against the dense metric G where it fits, "
        "else against the LSMR product"
    )


def relative_error(a, b):
    return f"{float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b)):.1e}"


def sgd_rows():
    header = (
        f"{'chart':>9} {'D':>7} | {'plain SGD [ms]':>14} {'compile [s]':>11} | "
        f"{'projected [ms]':>14} {'compile [s]':>11} | {'ratio':>6} "
        f"{'max |Δf|':>9} {'balance err':>11}"
    )
    print(header)
    print("-" * len(header))
    eta = 1e-2
    for sizes in [(4, 8, 8, 2), (16, 64, 64, 8), (32, 128, 128, 32)]:
        chart = ReLUMLPChart(sizes)
        params = random_params(chart)
        x = jax.random.normal(jax.random.PRNGKey(2), (256, sizes[0]))
        y = jax.random.normal(jax.random.PRNGKey(3), (256, sizes[-1]))

        def loss(p, c=chart, x=x, y=y):
            return jnp.mean((c.apply(p, x) - y) ** 2)

        def plain(p, loss=loss):
            return jax.tree_util.tree_map(
                lambda a, g: a - eta * g, p, jax.grad(loss)(p)
            )

        def projected(p, c=chart, plain=plain):
            return c.lift(c.project(plain(p)))

        out_plain, c_plain, t_plain = timed(jax.jit(plain), params, repeats=3)
        out_proj, c_proj, t_proj = timed(jax.jit(projected), params, repeats=3)
        balance_err = float(chart.balance_error(out_proj))
        df = float(
            jnp.max(jnp.abs(chart.apply(out_plain, x) - chart.apply(out_proj, x)))
        )
        print(
            f"{'mlp':>9} {ravel_pytree(params)[0].size:7d} | {1e3 * t_plain:14.3f} "
            f"{c_plain:11.2f} | {1e3 * t_proj:14.3f} {c_proj:11.2f} | "
            f"{t_proj / t_plain:6.1f} {df:9.1e} {balance_err:11.1e}"
        )


def main(parts=("metric", "sgd")):
    print(f"backend: {jax.default_backend()}, float64")
    if "metric" in parts:
        metric_rows()
        print()
    if "sgd" in parts:
        sgd_rows()


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or ("metric", "sgd"))
