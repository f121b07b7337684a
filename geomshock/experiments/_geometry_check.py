"""A geometry sanity check: autodiff Laplace–Beltrami against closed forms.

Spherical harmonics on the unit sphere (eigenvalue ``−l(l+1)``) and ``y^s`` on
the hyperbolic half-plane (eigenvalue ``s(s−1)``), at random points.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..geometry import laplace_beltrami
from ._registry import Experiment

POINTS = {"quick": 1_000, "full": 100_000}


def _sphere(q):
    return jnp.diag(jnp.stack([jnp.ones_like(q[0]), jnp.sin(q[0]) ** 2]))


def _half_plane(q):
    return jnp.eye(2, dtype=q.dtype) / q[1] ** 2


_CASES = {
    "sphere Y_2^1 ∝ sinθ cosθ cosφ": (
        _sphere,
        lambda q: jnp.sin(q[0]) * jnp.cos(q[0]) * jnp.cos(q[1]),
        -6.0,
    ),
    "sphere Y_3^0 ∝ 5cos³θ − 3cosθ": (
        _sphere,
        lambda q: 5 * jnp.cos(q[0]) ** 3 - 3 * jnp.cos(q[0]),
        -12.0,
    ),
    "half-plane y^2.5": (_half_plane, lambda q: q[1] ** 2.5, 2.5 * 1.5),
}


def compute(
    *, quick: bool = False, seeds: int | None = None, seed: int | None = None
) -> dict[str, Any]:
    """Autodiff Laplace–Beltrami against eigenvalues at random points (plain data).

    The points are drawn from ``PRNGKey(seeds)`` (0 by default); ``seed`` is
    unused.
    """
    del seed
    key_seed = 0 if seeds is None else seeds
    key = jax.random.PRNGKey(key_seed)
    num = POINTS["quick" if quick else "full"]
    lo = jnp.array([0.2, 0.0])
    hi = jnp.array([jnp.pi - 0.2, 2 * jnp.pi])
    points = jax.random.uniform(key, (num, 2), minval=lo, maxval=hi)
    rows = []
    for name, (metric, f, eigenvalue) in _CASES.items():
        lap = jax.jit(jax.vmap(laplace_beltrami(f, metric)))
        computed = lap(points)
        exact = eigenvalue * jax.vmap(f)(points)
        err = float(jnp.max(jnp.abs(computed - exact)))
        rows.append(
            {
                "case": name,
                "eigenvalue": eigenvalue,
                "points": num,
                "computed_at_first_point": float(computed[0]),
                "exact_at_first_point": float(exact[0]),
                "max_abs_error": err,
            }
        )
    return {
        "dtype": str(points.dtype),
        "options": {"quick": quick, "seeds": [key_seed]},
        "rows": rows,
    }


def plot(data: dict[str, Any]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    names = [r["case"] for r in data["rows"]]
    errs = [max(r["max_abs_error"], np.finfo(float).tiny) for r in data["rows"]]
    ax.barh(names, errs)
    ax.set_xscale("log")
    ax.set_xlabel("max |Δf − λ f| over points")
    ax.set_title(f"Laplace–Beltrami by autodiff ({data['dtype']})")
    return {"geometry_check": fig}


def report(data: dict[str, Any]) -> str:
    lines = [
        "## Geometry check: Laplace–Beltrami by autodiff vs closed forms\n",
        "| case | eigenvalue | points | computed (1st pt) | exact (1st pt) "
        "| max abs error |",
        "|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['case']} | {r['eigenvalue']:g} | {r['points']} "
            f"| {r['computed_at_first_point']:.12g} | {r['exact_at_first_point']:.12g} "
            f"| {r['max_abs_error']:.2e} |"
        )
    return "\n".join(lines) + "\n"


EXPERIMENT = Experiment(
    name="geometry",
    title="Laplace–Beltrami by autodiff vs closed forms",
    compute=compute,
    plot=plot,
    report=report,
)
