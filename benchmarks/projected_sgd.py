"""Cost of projected SGD (geomshock.sde) vs plain optax SGD, and of the quotient SDE.

Question: on the paper's Sec. 3.1 model, what does ``projected_sgd`` cost per step
and seed compared with a hand-written optax SGD loop, and how does the quotient SDE
solver compare with regauged projected SGD?

Paper Sec. 3.1 model: two-layer ReLU, m = 2, BCE, N = 96 points, minibatch 8,
lr 0.035; 256 seeds x 500 steps, vmapped. Peer: a hand-written optax SGD loop
(lax.scan, vmap over seeds) with the same keys and batches; accuracy = max
|Φ(peer final) − projected final| (should be ~1e-16). Median of 5 runs after
warm-up, block_until_ready; first-call (compile + run) time in its own column.
"""

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from _timing import timed  # noqa: E402

from geomshock.charts import TwoLayerReLUChart  # noqa: E402
from geomshock.sde import (  # noqa: E402
    AllMinibatches,
    projected_sgd,
    quotient_coefficients,
    solve_quotient_sde,
)

SEEDS, STEPS, ETA = 256, 500, 0.035
NUM_POINTS, BATCH = 96, 8
CHART = TwoLayerReLUChart(2, 1)


def make_problem():
    """Jittered data, the fixed partition into minibatches, θ₀ and the seed keys."""
    x = jnp.linspace(-2.0, 2.0, NUM_POINTS) + 0.035 * jax.random.normal(
        jax.random.key(1), (NUM_POINTS,)
    )
    y = (x > 0).astype(float)
    idx = jax.random.permutation(jax.random.key(2), NUM_POINTS).reshape(
        NUM_POINTS // BATCH, BATCH
    )
    noise = AllMinibatches({"x": x[idx], "y": y[idx]})
    params0 = CHART.lift(jnp.array([1.0, -1.0, 0.3, 2.5, 0.0]))
    keys = jax.random.split(jax.random.key(0), SEEDS)
    return noise, params0, keys


def bce(params, batch):
    z = CHART.apply(params, batch["x"][:, None])
    return jnp.mean(jax.nn.softplus(z) - batch["y"] * z)


def make_peer(noise, params0):
    """Hand-written optax SGD loop: lax.scan over steps, vmap over seeds."""

    @jax.jit
    def peer(keys):
        opt = optax.sgd(ETA)

        def run(key):
            def step(carry, n):
                p, s = carry
                batch = noise.sample(jax.random.fold_in(key, n))
                u, s = opt.update(jax.grad(bce)(p, batch), s, p)
                return (optax.apply_updates(p, u), s), None

            (p, _), _ = jax.lax.scan(
                step, (params0, opt.init(params0)), jnp.arange(STEPS)
            )
            return p

        return jax.vmap(run)(keys)

    return peer


def make_ours(noise, params0, save_every, regauge=False):
    return lambda k: projected_sgd(
        bce,
        CHART,
        params0,
        noise,
        learning_rate=ETA,
        num_steps=STEPS,
        keys=k,
        save_every=save_every,
        regauge=regauge,
    )


def sgd_table(noise, params0, keys):
    rows = []
    ref, f0, t0 = timed(make_peer(noise, params0), keys)
    ref_q = jax.vmap(CHART.project)(ref)
    rows.append(("optax SGD loop (peer, no projection)", f0, t0, 0.0))
    for label, fn in [
        ("projected_sgd, save_every=500", make_ours(noise, params0, STEPS)),
        ("projected_sgd, save_every=1 (Φ each step)", make_ours(noise, params0, 1)),
        (
            "projected_sgd, regauge=True (lift∘Φ each step)",
            make_ours(noise, params0, 1, True),
        ),
    ]:
        out, f, t = timed(fn, keys)
        err = (
            float(jnp.max(jnp.abs(out.ys[:, -1] - ref_q)))
            if "regauge" not in label
            else float("nan")
        )
        rows.append((label, f, t, err))

    print(f"Sec. 3.1 ReLU model, {SEEDS} seeds x {STEPS} steps, float64, CPU")
    print(
        f"{'method':50s} {'first call s':>12s} {'median s':>10s} "
        f"{'us/step/seed':>13s} {'ratio':>7s} {'max|ΔY| vs peer':>16s}"
    )
    for label, f, t, err in rows:
        print(
            f"{label:50s} {f:12.3f} {t:10.4f} "
            f"{1e6 * t / (SEEDS * STEPS):13.3f} {t / t0:7.2f} {err:16.2e}"
        )


def quotient_table(noise, params0, keys):
    """Quotient SDE on the same chart (balanced section coefficients), dt = η."""
    drift, cov = quotient_coefficients(bce, CHART, noise)
    q0 = CHART.project(params0)

    def sde(k):
        return solve_quotient_sde(
            drift, cov, q0, learning_rate=ETA, t1=STEPS * ETA, keys=k
        ).ys

    out, f, t = timed(sde, keys, repeats=3)
    kept, f2, t2 = timed(make_ours(noise, params0, STEPS, True), keys, repeats=3)
    title = "quotient SDE vs regauged SGD, " + str(SEEDS) + " seeds, t = 17.5"
    mean_sde = str(jnp.round(out[:, -1, :2].mean(0), 4))
    mean_sgd = str(jnp.round(kept.ys[:, -1, :2].mean(0), 4))
    print()
    print(f"{title:50s} {'first call s':>12s} {'median s':>10s} {'mean Y_T[:2]':>26s}")
    print(
        f"{'solve_quotient_sde (Euler, dt=η, VBT)':50s} "
        f"{f:12.3f} {t:10.4f} {mean_sde:>26s}"
    )
    print(f"{'projected_sgd(regauge=True)':50s} {f2:12.3f} {t2:10.4f} {mean_sgd:>26s}")


def main():
    noise, params0, keys = make_problem()
    sgd_table(noise, params0, keys)
    quotient_table(noise, params0, keys)


if __name__ == "__main__":
    main()
