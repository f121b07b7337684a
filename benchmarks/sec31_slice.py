"""Sec. 3.1: cost and accuracy of the slice schemes and of vmapped multi-seed training.

Question: on the Table 1 grid (16 seeds × 3 ν × 5 τ × 91 θ), how fast is each
slice scheme and how far is its peak |∂²u| at τ = 0.1 from the exact-circle
reference with 16384 nodes? And how much faster is training 16 seeds vmapped in
one jit than a Python loop calling the same jit once per seed?
"""

import functools

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _timing import timed  # noqa: E402

from geomshock.experiments import _sec31  # noqa: E402
from geomshock.experiments._sec31_train import TrainConfig, train  # noqa: E402
from geomshock.pde import ExactCircle, FirstOrderFD, paper_theta_grid  # noqa: E402

NUM_SEEDS = 16
REFERENCE_NODES = 16384
TRAIN_EPOCHS = 2000


def slice_profiles(cfg, params, nus, taus, theta, scheme):
    return _sec31._slice_profiles(cfg, params, nus, taus, theta, scheme, "as_printed")


def slice_table():
    cfg = TrainConfig()
    seeds = tuple(range(NUM_SEEDS))
    tr = _sec31.train_seeds(cfg, seeds)
    nus = jnp.asarray(_sec31.GRIDS["table1"]["nu"])
    taus = jnp.asarray(_sec31.GRIDS["table1"]["tau"])
    theta = paper_theta_grid()
    ref, _, _ = slice_profiles(
        cfg, tr["params"], nus, taus, theta, ExactCircle(REFERENCE_NODES)
    )
    ref_peak = _sec31._peaks(ref)[:, :, -1]
    print(
        "| Table 1 grid, 16 seeds × 3 ν × 5 τ × 91 θ "
        "| first call (compile+run) s | median run s "
        "| max rel. err of peak |∂²u| at τ=0.1 vs exact(16384) |"
    )
    print("|---|---|---|---|")
    for name, sch in [
        ("first-order FD (paper's scheme)", FirstOrderFD()),
        ("exact, 2048 nodes (quick)", ExactCircle(2048)),
        ("exact, 8192 nodes (full)", ExactCircle(8192)),
    ]:
        fn = functools.partial(slice_profiles, cfg, tr["params"], nus, taus, theta, sch)
        _, first, med = timed(fn, repeats=3)
        peak = _sec31._peaks(fn()[0])[:, :, -1]
        err = np.max(np.abs(peak / ref_peak - 1), where=np.isfinite(peak), initial=0)
        print(f"| {name} | {first:.2f} | {med:.3f} | {err:.2e} |")


def training_table():
    print(
        "| training, 16 seeds × 2000 epochs × 4 steps "
        "| first call s | median run s | ratio loop/vmap |"
    )
    print("|---|---|---|---|")
    c2 = TrainConfig(epochs=TRAIN_EPOCHS)

    def vmapped():
        return train(c2, jnp.arange(NUM_SEEDS))

    def loop():
        return [train(c2, jnp.array([s])) for s in range(NUM_SEEDS)]

    _, fv, mv = timed(vmapped, repeats=3)
    _, fl, ml = timed(loop, repeats=1)
    print(f"| vmap over seeds in one jit | {fv:.2f} | {mv:.3f} | 1 |")
    print(
        f"| Python loop, one seed per call (same jit) | {fl:.2f} | {ml:.3f} "
        f"| {ml / mv:.1f} |"
    )


def main():
    slice_table()
    print()
    training_table()


if __name__ == "__main__":
    main()
