"""Exact Laplace–Beltrami with a structured metric vs folx's forward Laplacian.

Question: for an MLP-shaped ``f`` (widths 128, 64, tanh) at d = 300 and 1000,
what does one exact ``gs.laplace_beltrami`` cost per point when the metric is
passed with its structure (lineax operators: flat, diagonal, conformal, low
rank plus diagonal), against folx's forward Laplacian of the same ``f`` in the
same process, plus the metric's closed form where there is one?

Peers (folx 0.2, ``folx.forward_laplacian``):

* flat: folx ``Δ₀f``.
* conformal ``g = e^{2φ}I``: folx ``Δ₀f`` and ``∇f``, then
  ``e^{−2φ}(Δ₀f + (d − 2)∇φ·∇f)``.
* diagonal ``g = diag(e^{2ψ})``, ``ψ_i = α sin q_i + β mean(cos q)``: folx with
  weights ``e^{−ψ}`` (so ``Σ_i ∂_ii f / g_ii``) and the closed form
  ``Σ_i g_ii^{-1} ∂_i f ∂_i(log √|g| − log g_ii)`` typed in by hand.
* low rank plus diagonal (rank 8): no closed form; the peer is folx's flat
  ``Δ₀f``, the speed to approach.

Columns: median ms per point after compilation (one jitted point), the ratio
to the peer (goal ≤ 5×), first-call (compile + run) seconds, XLA's peak memory
of the compiled call (arguments + outputs + temporaries), and the difference
between the two answers (for low rank, against geomshock's dense path on the
materialised metric). Also one row for a dense metric *function* ``e^{2φ} I`` (an array,
no structure): exact in O(n²) memory, but O(n³) work.
"""

import argparse

import jax

jax.config.update("jax_enable_x64", True)
import folx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import lineax as lx  # noqa: E402
from _timing import timed  # noqa: E402

import geomshock as gs  # noqa: E402
from geomshock.geometry import low_rank_plus_diagonal, scaled_identity  # noqa: E402

ALPHA, BETA, RANK = 0.3, 0.2, 8


def mlp(d, key=0):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(key), 3)
    w1 = jax.random.normal(k1, (128, d)) / jnp.sqrt(d)
    w2 = jax.random.normal(k2, (64, 128)) / jnp.sqrt(128.0)
    w3 = jax.random.normal(k3, (64,)) / 8.0

    def f(q):
        return w3 @ jnp.tanh(w2 @ jnp.tanh(w1 @ q))

    return f


def phi(q):
    return ALPHA * jnp.mean(jnp.sin(q)) * 3.0


def psi(q):
    return ALPHA * jnp.sin(q) + BETA * jnp.mean(jnp.cos(q))


def factor(q):
    d = q.shape[0]
    cols = jnp.arange(1, RANK + 1)
    return jnp.cos(jnp.outer(q, cols) / 3.0) / jnp.sqrt(d)


def metrics(d):
    """name -> (metric function, peer)."""

    def flat(q):
        return lx.IdentityLinearOperator(jax.ShapeDtypeStruct((d,), q.dtype))

    def conformal(q):
        return scaled_identity(jnp.exp(2 * phi(q)), d)

    def conformal_dense(q):
        return jnp.exp(2 * phi(q)) * jnp.eye(d, dtype=q.dtype)

    def diagonal(q):
        return lx.DiagonalLinearOperator(jnp.exp(2 * psi(q)))

    def low_rank(q):
        return low_rank_plus_diagonal(jnp.exp(2 * psi(q)), factor(q))

    return {
        "flat": (flat, "flat"),
        "conformal": (conformal, "conformal"),
        "diagonal": (diagonal, "diagonal"),
        "low rank + diag": (low_rank, "flat"),
        "conformal, dense array": (conformal_dense, "conformal"),
    }


def peers(f, d):
    lap0 = folx.forward_laplacian(f)

    def flat(q):
        return lap0(q).laplacian

    def conformal(q):
        out = lap0(q)
        grad_f = out.jacobian.dense_array
        return jnp.exp(-2 * phi(q)) * (
            out.laplacian + (d - 2) * jax.grad(phi)(q) @ grad_f
        )

    def diagonal(q):
        # g_ii = e^{2ψ_i}; ∂_i ψ_i = α cos q_i − β sin q_i / d (closed form).
        s = jnp.exp(-psi(q))
        out = lap0(q, weights=s)
        grad_f = out.jacobian.dense_array / s
        dlog_det = jax.grad(lambda p: jnp.sum(psi(p)))(q)  # ∂ log √|g|
        dlog_gii = 2 * (ALPHA * jnp.cos(q) - BETA * jnp.sin(q) / d)
        return out.laplacian + jnp.sum(s**2 * grad_f * (dlog_det - dlog_gii))

    return {"flat": flat, "conformal": conformal, "diagonal": diagonal}


def peak_mb(fn, *args) -> float:
    mem = jax.jit(fn).lower(*args).compile().memory_analysis()
    total = (
        mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
    )
    return total / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    print(f"Exact Laplace–Beltrami vs folx {folx.__version__}, {jax.devices()[0]}")
    header = (
        f"{'d':>5} {'metric':<23} | {'gs ms':>8} {'compile s':>9} {'peak MB':>8} | "
        f"{'peer':<9} {'folx ms':>8} {'compile s':>9} {'peak MB':>8} | "
        f"{'ratio':>6} {'|difference|':>12}"
    )
    print(header)
    print("-" * len(header))
    for d in args.dims:
        f = mlp(d)
        q = jax.random.normal(jax.random.PRNGKey(1), (d,))
        peer_fns = peers(f, d)
        peer_times = {
            name: timed(jax.jit(fn), q, repeats=args.repeats)
            for name, fn in peer_fns.items()
        }
        for name, (metric, peer_name) in metrics(d).items():
            ours = jax.jit(gs.laplace_beltrami(f, metric))
            t = timed(ours, q, repeats=args.repeats)
            p = peer_times[peer_name]
            if name == "low rank + diag":
                dense = gs.laplace_beltrami(f, lambda x, m=metric: m(x).as_matrix())
                reference = jax.jit(dense)(q)
            else:
                reference = p.out
            diff = f"{abs(float(t.out - reference)):.1e}"
            print(
                f"{d:>5} {name:<23} | {t.median * 1e3:8.2f} {t.first:9.2f} "
                f"{peak_mb(ours, q):8.1f} | {peer_name:<9} {p.median * 1e3:8.2f} "
                f"{p.first:9.2f} {peak_mb(peer_fns[peer_name], q):8.1f} | "
                f"{t.median / p.median:6.2f} {diff:>12}",
                flush=True,
            )


if __name__ == "__main__":
    main()
