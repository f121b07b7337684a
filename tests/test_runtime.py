"""Importing geomshock widens XLA's CPU pool against the jaxlib LAPACK deadlock."""

import os
import subprocess
import sys

import jaxlib
import pytest

PROBE = """
import os
import geomshock
import jax.numpy as jnp
a = jnp.eye(3) + jnp.ones((4, 3, 3))
jnp.linalg.solve(a, jnp.ones((4, 3, 1))).block_until_ready()
pool = sum(
    open(f"/proc/self/task/{t}/comm").read().strip() == "tf_XLAEigen"
    for t in os.listdir("/proc/self/task")
)
print(os.environ["NPROC"], pool)
"""

OLD_JAXLIB = tuple(int(p) for p in jaxlib.__version__.split(".")[:3]) < (0, 11, 2)


def _run(env_nproc):
    env = {k: v for k, v in os.environ.items() if k != "NPROC"}
    if env_nproc is not None:
        env["NPROC"] = env_nproc
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    nproc, pool = out.stdout.split()
    return int(nproc), int(pool)


@pytest.mark.skipif(
    not (OLD_JAXLIB and os.path.isdir("/proc/self/task")),
    reason="only jaxlib < 0.11.2 on Linux needs (and can show) the wider pool",
)
def test_import_widens_the_cpu_pool_unless_nproc_is_set():
    nproc, pool = _run(None)
    assert nproc >= 8 and pool == nproc
    assert _run("3") == (3, 3)  # the user's setting wins


DEADLOCK_CASE = """
import geomshock
import jax
jax.config.update("jax_enable_x64", True)
from geomshock.charts import MultiHeadAttentionChart
chart = MultiHeadAttentionChart(16, 4, 4, 4)
keys = jax.random.split(jax.random.PRNGKey(0), 4)
params = {
    name: 0.3 * jax.random.normal(key, spec.shape)
    for key, (name, spec) in zip(keys, chart.params_shape.items())
}
q = jax.jit(chart.project)(params)
print(jax.jit(chart.metric)(q).shape)
"""


def test_attention_metric_finishes_on_a_small_machine():
    # With a 2-worker pool (NPROC=2) this jitted metric deadlocked in jaxlib
    # 0.10.2's batched LAPACK kernels, every time, on the 2-core CI machine.
    env = {k: v for k, v in os.environ.items() if k != "NPROC"}
    out = subprocess.run(
        [sys.executable, "-c", DEADLOCK_CASE],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(896, 896)"
