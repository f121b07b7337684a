"""Inviscid limit: Hopf–Lax, Lax–Oleinik entropy solution, shocks, characteristics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomshock._checks import NonFiniteInputError
from geomshock.pde import (
    LineAxis,
    characteristics,
    entropy_solution,
    hopf_lax,
    lax_oleinik,
    local_entropy,
    shock_positions,
    shock_time,
)

from .._errors import raises_eager_and_jit
from ._non_finite import refuses_non_finite

NODES = jnp.linspace(-8.0, 8.0, 801)


def gaussian(y):
    return jnp.exp(-(y**2) / 2)


def drifting(y):
    """Gaussian bump plus a Galilean drift 0.3: v0 = U' = −y e^{−y²/2} + 0.3."""
    return gaussian(y) + 0.3 * y


def test_hopf_lax_quadratic_closed_form():
    a, tau = 1.7, 0.8
    x = jnp.array([-1.3, 0.0, 0.4, 2.0])
    sol = lax_oleinik(lambda y: 0.5 * a * y**2, tau, x, nodes=NODES)
    np.testing.assert_allclose(sol.value, a * x**2 / (2 * (1 + a * tau)), atol=1e-14)
    np.testing.assert_allclose(sol.velocity, a * x / (1 + a * tau), atol=1e-13)
    np.testing.assert_allclose(sol.foot, x / (1 + a * tau), atol=1e-13)


def test_classical_solution_follows_characteristics():
    xi = jnp.linspace(-2.5, 2.5, 11)
    tau = 0.7  # before τ* = 1
    x = characteristics(gaussian, tau, xi)
    np.testing.assert_allclose(x, xi - tau * xi * gaussian(xi), atol=1e-15)
    v = entropy_solution(gaussian, tau, x, nodes=NODES)
    np.testing.assert_allclose(v, -xi * gaussian(xi), atol=1e-12)
    assert characteristics(gaussian, jnp.array([0.0, 1.0]), xi).shape == (2, 11)
    # τ = 0 gives the initial data exactly
    assert np.array_equal(
        np.asarray(entropy_solution(gaussian, 0.0, xi, nodes=NODES)),
        np.asarray(-xi * gaussian(xi)),
    )


def test_value_gradient_is_velocity_away_from_shocks():
    x = jnp.array([-1.5, -0.4, 0.7, 2.2])
    grad = jax.jit(
        jax.vmap(jax.grad(lambda s: hopf_lax(gaussian, 2.0, s, nodes=NODES)))
    )
    np.testing.assert_allclose(
        grad(x), entropy_solution(gaussian, 2.0, x, nodes=NODES), atol=1e-12
    )


@pytest.fixture(scope="module")
def drifting_shock():
    x = jnp.linspace(-3.0, 3.0, 61)

    def locate(tau):
        shocks = shock_positions(drifting, tau, x, nodes=NODES)
        i = jnp.argmax(shocks.mask)
        found = shocks.position[i], shocks.left[i], shocks.right[i], shocks.speed[i]
        return shocks.mask.sum(), *found

    return jax.jit(locate)


def test_shock_position_and_rankine_hugoniot(drifting_shock):
    assert float(shock_time(drifting, NODES)) == pytest.approx(1.0, rel=1e-13)
    assert int(drifting_shock(0.8)[0]) == 0  # no shock before τ* = 1
    for tau in (1.5, 2.5):
        count, position, left, right, reported = drifting_shock(tau)
        assert int(count) == 1
        # by Galilean invariance the shock sits at 0.3 τ, with speed 0.3
        assert float(position) == pytest.approx(0.3 * tau, abs=1e-12)
        assert float(left) > float(right)  # Lax entropy condition
        eps = 1e-4
        speed = (drifting_shock(tau + eps)[1] - drifting_shock(tau - eps)[1]) / (
            2 * eps
        )
        assert float(speed) == pytest.approx(0.5 * float(left + right), abs=1e-8)
        # Shocks.speed: Rankine–Hugoniot, the measured velocity, and Galilean 0.3
        assert float(reported) == pytest.approx(0.5 * float(left + right), abs=1e-14)
        assert float(reported) == pytest.approx(float(speed), abs=1e-8)
        assert float(reported) == pytest.approx(0.3, abs=1e-12)


def test_periodic_shock_is_symmetric():
    # v0 = sin 2s on a period π: shock from τ* = 0.5 at s = π/2, standing still
    period = np.pi
    nodes = jnp.linspace(0.0, period, 256, endpoint=False)
    x = jnp.linspace(0.05, period - 0.05, 40)
    shocks = shock_positions(
        lambda s: -0.5 * jnp.cos(2 * s), 1.0, x, nodes=nodes, period=period
    )
    assert int(shocks.mask.sum()) == 1
    i = int(jnp.argmax(shocks.mask))
    assert float(shocks.position[i]) == pytest.approx(np.pi / 2, abs=1e-12)
    assert float(shocks.left[i]) == pytest.approx(-float(shocks.right[i]), abs=1e-12)
    assert float(shocks.speed[i]) == pytest.approx(0.0, abs=1e-12)
    # value is continuous and velocity periodic across the period
    pair = lax_oleinik(
        lambda s: -0.5 * jnp.cos(2 * s),
        1.0,
        jnp.array([0.3, 0.3 + period]),
        nodes=nodes,
        period=period,
    )
    assert float(pair.value[0] - pair.value[1]) == pytest.approx(0.0, abs=1e-14)
    assert float(pair.velocity[0] - pair.velocity[1]) == pytest.approx(0.0, abs=1e-14)


def test_vmap_over_tau_equals_loop():
    # Off x = 0: after the shock time the symmetric data has its shock there,
    # where the two minimisers tie and either one-sided state is the answer
    # (which one is picked then depends on rounding, e.g. XLA's settings).
    x = jnp.linspace(-2.0, 2.0, 9) + 0.05
    taus = jnp.array([0.0, 0.5, 1.3, 3.0])
    batched = jax.jit(jax.vmap(lambda t: entropy_solution(gaussian, t, x, nodes=NODES)))
    out = batched(taus)
    for i, t in enumerate(taus):
        np.testing.assert_allclose(
            out[i], entropy_solution(gaussian, float(t), x, nodes=NODES), atol=1e-14
        )


def test_bad_input():
    with pytest.raises(ValueError, match="tau must be finite and ≥ 0; got -0.5"):
        hopf_lax(gaussian, -0.5, 0.0, nodes=NODES)
    with pytest.raises(ValueError, match="x must hold at least 2 points"):
        shock_positions(gaussian, 1.0, jnp.array([0.0]), nodes=NODES)
    with pytest.raises(ValueError, match="x must have shape"):
        hopf_lax(gaussian, 1.0, jnp.zeros((2, 2)), nodes=NODES)


# --- hardening: traced grids, τ → 0, non-finite data, tiny τ ----------------------


def test_traced_grids_are_checked_at_run_time():
    period = 2 * np.pi

    def periodic(nodes):
        return hopf_lax(jnp.cos, 0.5, 0.3, nodes=nodes, period=period)

    def line(nodes):
        return entropy_solution(gaussian, 0.5, 0.3, nodes=nodes)

    open_grid = jnp.linspace(0.0, period, 64, endpoint=False)
    raises_eager_and_jit(periodic, jnp.linspace(0.0, period, 64), match="one period")
    # a fresh function each time: a cached jit re-raises as a plain ValueError
    raises_eager_and_jit(lambda n: line(n), NODES[::-1], match="uniform")
    raises_eager_and_jit(lambda n: line(n), NODES.at[5].add(0.003), match="uniform")
    assert float(jax.jit(periodic)(open_grid)) == pytest.approx(
        float(periodic(open_grid)), abs=1e-15
    )
    # an axis is accepted as the node set
    axis = LineAxis(-8.0, 0.02, 801)
    assert float(line(axis)) == pytest.approx(float(line(NODES)), abs=1e-14)


def test_tau_derivative_at_zero_is_the_right_derivative():
    x = jnp.array([-1.0, 0.25, 2.0])
    xn = np.asarray(x)
    e = np.exp(-(xn**2) / 2)
    d1, d2 = -xn * e, (xn**2 - 1) * e

    def sol(t):
        s = lax_oleinik(gaussian, t, x, nodes=NODES)
        return s.value, s.velocity, s.foot

    for diff in (jax.jacfwd, jax.jacrev):
        value, velocity, foot = jax.jit(diff(sol))(0.0)
        np.testing.assert_allclose(value, -0.5 * d1**2, rtol=0, atol=1e-15)
        np.testing.assert_allclose(velocity, -d1 * d2, rtol=0, atol=1e-15)
        np.testing.assert_allclose(foot, -d1, rtol=0, atol=1e-15)


def test_non_finite_potential_is_refused():
    def velocity(a):
        return entropy_solution(lambda s: jnp.log(a + s**2), 0.5, 0.3, nodes=NODES)

    refuses_non_finite(velocity, 1.0, -1.0, match="non-finite input: U\\(nodes\\)")
    with pytest.raises(NonFiniteInputError, match="non-finite input"):
        shock_positions(
            lambda s: jnp.log(-1.0 + s**2), 1.0, jnp.linspace(-1, 1, 5), nodes=NODES
        )


def test_tiny_tau_on_a_fine_periodic_grid():
    # Hopf–Lax needs no kernel resolution: at τ = 1e-5 on 2048 nodes of [−1, 1)
    # it follows the characteristic x = y − τ sin(πy), v = −sin(πy)
    nodes = jnp.linspace(-1.0, 1.0, 2048, endpoint=False)
    tau, x = 1e-5, 0.3
    y = x
    for _ in range(20):
        y = y - (y - tau * np.sin(np.pi * y) - x) / (
            1 - tau * np.pi * np.cos(np.pi * y)
        )
    v = entropy_solution(
        lambda s: jnp.cos(jnp.pi * s) / jnp.pi, tau, x, nodes=nodes, period=2.0
    )
    # v = (x − y*)/τ: rounding of y* (~1e-17) is amplified by 1/τ
    assert float(v) == pytest.approx(-np.sin(np.pi * y), abs=1e-10)


def test_float32_line_solutions():
    # (and local entropy of y²/2, no truncation warning at float32's threshold)
    # U = a y²/2: Hopf–Lax x²a/(2(1+aτ)), v = a x/(1+aτ), τ* = inf; Gaussian τ* = 1
    with jax.enable_x64(False):
        nodes = jnp.linspace(-8.0, 8.0, 801, dtype=jnp.float32)
        x = jnp.array([-1.0, 0.5], jnp.float32)
        sol = lax_oleinik(lambda y: 0.85 * y**2, 0.8, x, nodes=nodes)
        tau_star = shock_time(gaussian, nodes)
        u = local_entropy(lambda y: 0.5 * y**2, 0.1, 1.0, x, nodes=nodes)
    assert u.dtype == jnp.float32
    np.testing.assert_allclose(u, x**2 / 4 + 0.05 * np.log(2.0), rtol=2e-6)
    assert sol.value.dtype == jnp.float32 and tau_star.dtype == jnp.float32
    np.testing.assert_allclose(sol.velocity, 1.7 * x / 2.36, rtol=1e-6)
    np.testing.assert_allclose(sol.value, 1.7 * x**2 / 4.72, rtol=1e-6)
    assert float(tau_star) == pytest.approx(1.0, rel=1e-6)
