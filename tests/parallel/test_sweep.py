"""gs.sweep: equals nested loops for every strategy, per-cell fold_in keys,
bit-identical on 1, 2 and 4 forced host devices (sharded over them) and across
two jax.distributed processes (subprocesses), bad input."""

import os
import socket
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import geomshock as gs
from geomshock.parallel import ByCost, Map, SweepOptions, Vmap

NUS = jnp.array([0.3, 1.0, 0.05, 2.0])
TAUS = jnp.array([0.5, 1.5, 0.1])
X = jnp.linspace(-1.0, 1.0, 8, endpoint=False)
NODES = jnp.linspace(-1.0, 1.0, 64, endpoint=False)


def entropy(nu, tau):
    U = lambda s: jnp.cos(jnp.pi * s) / jnp.pi
    return gs.local_entropy(U, nu, tau, X, nodes=NODES, period=2.0)


def test_equals_nested_loops_for_every_strategy():
    single = jax.jit(entropy)
    loop = np.array([[single(n, t) for t in TAUS] for n in NUS])
    for strategy in ["auto", Map(5), Vmap(2), ByCost(inner=Map(3))]:
        out = gs.sweep(
            entropy, nu=NUS, tau=TAUS, options=SweepOptions(strategy=strategy)
        )
        assert out.shape == (4, 3, 8)
        np.testing.assert_allclose(out, loop, rtol=1e-13, atol=1e-15)


def test_multi_output_keys_and_jit():
    def fn(nu, key, tau):
        return nu * tau, jnp.stack([nu, tau]) + jax.random.normal(key)

    key = jax.random.key(3)
    a, b = jax.jit(lambda n: gs.sweep(fn, nu=n, key=key, tau=TAUS))(NUS)
    assert a.shape == (4, 3) and b.shape == (4, 3, 2)
    for i, n in enumerate(NUS):
        for j, t in enumerate(TAUS):
            cell = jax.random.fold_in(key, i * len(TAUS) + j)
            ra, rb = fn(n, cell, t)
            np.testing.assert_array_equal(a[i, j], ra)
            np.testing.assert_allclose(b[i, j], rb, rtol=1e-15)


@pytest.mark.parametrize(
    ("axes", "match"),
    [
        ({}, "at least one axis"),
        ({"nu": jnp.ones((2, 2))}, "1-D"),
        ({"nu": jnp.ones((0,))}, "empty"),
    ],
)
def test_bad_axes(axes, match):
    with pytest.raises(ValueError, match=match):
        gs.sweep(lambda **k: 0.0, **axes)


def test_bad_devices_and_point_dependent_shapes():
    with pytest.raises(ValueError, match="device"):
        gs.sweep(lambda nu: nu, nu=NUS, devices=[])
    with pytest.raises(ValueError, match="device"):
        gs.sweep(lambda nu: nu, nu=NUS, devices=["cpu:7"])
    with pytest.raises(ValueError, match="shape"):
        gs.sweep(lambda nu: jnp.zeros(int(1 + (nu > 1))), nu=NUS)


_SHARDED = """
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
import geomshock as gs
fn = lambda nu, key, tau: jnp.sin(nu * jnp.arange(6.0)) * tau + jax.random.normal(key)
axes = dict(nu=jnp.linspace(0.1, 1.0, 8), key=jax.random.key(2), tau=jnp.arange(3.0))
"""


def _run(code, env_extra, *args):
    env = {**os.environ, **env_extra}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_sharded_over_four_host_devices_is_bit_identical():
    code = (
        _SHARDED
        + """
o4 = gs.sweep(fn, **axes)
o2 = gs.sweep(fn, **axes, devices=jax.devices()[:2])
o1 = gs.sweep(fn, **axes, devices=jax.devices()[:1])
devices = {s.device for s in o4.addressable_shards}
print(len(jax.devices()), len(devices), o4.is_fully_replicated)
print(np.array_equal(o4, o1), np.array_equal(o2, o1))
"""
    )
    flags = "--xla_force_host_platform_device_count=4"
    out = _run(code, {"XLA_FLAGS": flags}).split()
    assert out == ["4", "4", "False", "True", "True"]


def test_two_processes_with_jax_distributed_equal_one():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    code = (
        """
import sys, jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"localhost:{sys.argv[2]}", num_processes=2,
                           process_id=int(sys.argv[1]))
"""
        + _SHARDED
        + """
o = np.asarray(gs.sweep(fn, **axes))
ref = np.asarray(gs.sweep(fn, **axes, devices=jax.local_devices()[:1]))
print(len(jax.devices()), np.array_equal(o, ref))
jax.distributed.shutdown()
"""
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), str(i), port],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        assert out.strip().splitlines()[-1].split() == ["4", "True"]
