"""Blocked, banded and separable Hopf–Cole sums against the dense quadrature.

The fast paths of :func:`geomshock.pde._hopf_cole._quadrature` (point blocks,
node tiles skipped below e^{−40} of the row maximum, the separable Fourier
form) must reproduce the dense sum over every (point, node) pair to 1e-12, on
the line and on the circle, in every kernel regime, under ``grad`` and
``vmap``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomshock.pde import _hopf_cole as hc, local_entropy
from geomshock.pde._kernel import FOURIER, IMAGES, NEAREST, periodic_mode

PERIOD = 2 * np.pi


def _well(y):
    return 0.5 * y**2 - jnp.cos(2 * y)


def _circle(y):
    return jnp.sin(y) + 0.3 * jnp.cos(2 * y)


def _case(period):
    """Nodes (not a multiple of the tile), points (not of the block) and U."""
    if period is None:
        nodes, U = jnp.linspace(-8.0, 8.0, 700), _well
        x = jnp.linspace(-3.0, 3.0, 150)
    else:
        nodes, U = jnp.linspace(0.0, period, 600, endpoint=False), _circle
        x = jnp.linspace(-1.0, 7.5, 150)
    h = float(nodes[1] - nodes[0])
    return nodes, h, U, x


def _sums(nu, var, x, nodes, h, U_nodes, period, mode, dense):
    return hc._quadrature(
        nu,
        var,
        x2=x[:, None],
        dense=dense,
        modes=(mode,),
        U_nodes=U_nodes,
        grids=(nodes,),
        spacings=(h,),
        periods=(period,),
    )


def _compare(fast, dense):
    for a, b in zip(fast, dense, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# (period, mode, ν, var): the line, and each regime of the circle
CASES = [
    (None, NEAREST, 0.5, 0.01),  # narrow: most tiles skipped
    (None, NEAREST, 5.0, 20.0),  # wide: weights reach the grid's ends
    (PERIOD, NEAREST, 0.2, 0.02),
    (PERIOD, IMAGES, 0.5, 1.0),
    (PERIOD, FOURIER, 0.5, 8.0),
]


@pytest.mark.parametrize(("period", "mode", "nu", "var"), CASES)
def test_fast_sums_equal_dense_sums(period, mode, nu, var):
    nodes, h, U, x = _case(period)
    U_nodes = U(nodes)
    if period is not None:
        spread = float(jnp.ptp(U_nodes)) / nu
        assert int(periodic_mode(var, period, h, spread, nodes.size)) == mode
    assert x.size * nodes.size > hc.BLOCK_PAIRS  # the fast path runs

    def run(dense):
        return jax.jit(
            lambda n, v, s: _sums(n, v, s, nodes, h, U_nodes, period, mode, dense)
        )

    fast, dense = run(False)(nu, var, x), run(True)(nu, var, x)
    _compare(fast, dense)
    if var == 20.0:  # the end-weight estimates matter here, and agree
        assert float(jnp.max(dense[2])) > 1e-7

    if var not in (0.01, 1.0):  # gradients: the line and the image sum
        return

    # reverse mode through the blocks (checkpointed) and the skipped tiles
    def loss(dense):
        def f(n, v, s):
            u, m, _ = _sums(n, v, s, nodes, h, U_nodes, period, mode, dense)
            return jnp.sum(u * jnp.cos(s)) + jnp.sum(m[:, 0] * s)

        return jax.jit(jax.grad(f, argnums=(0, 1, 2)))

    _compare(loss(False)(nu, var, x), loss(True)(nu, var, x))


def test_skipped_tiles_are_never_evaluated():
    # NaN potentials on a tile far from every point: the banded sum never
    # touches them and equals the dense sum over the other nodes
    nodes, h, _, x = _case(None)
    U_nodes = _well(nodes)
    far = nodes > 6.0
    poisoned = jnp.where(far, jnp.nan, U_nodes)
    nu, var = 0.5, 0.01
    fast = jax.jit(
        lambda s: _sums(nu, var, s, nodes, h, poisoned, None, NEAREST, False)
    )(x)
    kept = nodes[~far]
    dense = _sums(nu, var, x, kept, h, U_nodes[~far], None, NEAREST, True)
    _compare(fast[:2], dense[:2])
    # and the skip is live: a threshold far below e^{−40} changes the result
    old = hc.SKIP
    try:
        hc.SKIP = -60.0
        coarse = jax.jit(
            lambda s: _sums(nu, var, s, nodes, h, U_nodes, None, NEAREST, False)
        )(x)
    finally:
        hc.SKIP = old
    assert float(jnp.max(jnp.abs(coarse[0] - dense[0]))) > 1e-6


def _image_sum_field(U, nu, var, x, nodes, period, images=6):
    """``u`` by the dense wrapped-kernel sum in numpy (``|m| ≤ images``)."""
    x, nodes = np.asarray(x), np.asarray(nodes)
    d = x[:, None, None] - nodes[None, :, None]
    d = d + period * np.arange(-images, images + 1)[None, None, :]
    U_nodes = np.asarray(U(jnp.asarray(nodes)))
    log_w = -(d**2) / (2 * var) - U_nodes[None, :, None] / nu
    top = log_w.max(axis=(1, 2), keepdims=True)
    total = np.exp(log_w - top).sum(axis=(1, 2))
    h = period / nodes.size
    return -nu * (np.log(total) + top[:, 0, 0] + np.log(h / np.sqrt(2 * np.pi * var)))


def test_mixed_regime_sweep_against_dense_image_sums():
    # a vmapped ν sweep through all three regimes on the fast path (600 nodes,
    # 150 points): the tile skip is shared by the members, and members that
    # would take the nearest image take the image sum
    nodes, _, U, x = _case(PERIOD)
    nus = jnp.array([0.2, 0.5, 0.5])
    taus = jnp.array([0.1, 2.0, 16.0])
    h = PERIOD / nodes.size
    modes = [
        int(periodic_mode(n * t, PERIOD, h, float(jnp.ptp(U(nodes))) / n, 600))
        for n, t in zip(nus, taus, strict=True)
    ]
    assert modes == [NEAREST, IMAGES, FOURIER]

    def field(nu, tau):
        return local_entropy(U, nu, tau, x, nodes=nodes, period=PERIOD)

    out = jax.jit(jax.vmap(field))(nus, taus)
    for i in range(3):
        nu, tau = float(nus[i]), float(taus[i])
        ref = _image_sum_field(U, nu, nu * tau, x, nodes, PERIOD)
        np.testing.assert_allclose(out[i], ref, rtol=0, atol=1e-11)


@pytest.mark.parametrize("mode", [NEAREST, IMAGES, FOURIER])
def test_two_dimensional_point_blocks_equal_dense(mode):
    # line × circle, 40 × 33 nodes, 61 points: blocks of 24 points, padded
    line = jnp.linspace(-6.0, 6.0, 40)
    circle = jnp.linspace(0.0, PERIOD, 33, endpoint=False)
    mesh = jnp.stack(jnp.meshgrid(line, circle, indexing="ij"), axis=-1)
    U_nodes = 0.5 * mesh[..., 0] ** 2 + jnp.sin(mesh[..., 1])
    key = jax.random.PRNGKey(0)
    x2 = jax.random.uniform(key, (61, 2), minval=-2.0, maxval=4.0)
    var = {NEAREST: 0.3, IMAGES: 1.0, FOURIER: 8.0}[mode]
    grid = dict(
        modes=(NEAREST, mode),
        U_nodes=U_nodes,
        grids=(line, circle),
        spacings=(float(line[1] - line[0]), PERIOD / 33),
        periods=(None, PERIOD),
    )
    assert x2.shape[0] * U_nodes.size > hc.BLOCK_PAIRS
    fast = jax.jit(lambda v, s: hc._quadrature(0.5, v, x2=s, **grid))(var, x2)
    dense = hc._quadrature(0.5, var, x2=x2, dense=True, **grid)
    _compare(fast, dense)
