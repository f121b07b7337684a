"""Shock times τ* = −1/inf U'' (Theorem 4.3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomshock.pde import PeriodicAxis, shock_time

from .._errors import raises_eager_and_jit
from ._non_finite import refuses_non_finite


def test_gaussian_shock_time_is_one():
    nodes = jnp.linspace(-5.0, 5.0, 101)
    assert float(shock_time(lambda s: jnp.exp(-(s**2) / 2), nodes)) == pytest.approx(
        1.0, abs=1e-14
    )


def test_minimum_between_nodes_is_refined():
    # inf U'' = −a at s = 0.0123, far from every node of this coarse grid
    nodes = jnp.linspace(-4.0, 4.0, 21)
    for a in (0.5, 2.0):
        tau = shock_time(lambda s, a=a: a * jnp.exp(-((s - 0.0123) ** 2) / 2), nodes)
        assert float(tau) == pytest.approx(1 / a, rel=1e-13)


def test_quartic_double_well():
    # U'' = 12 s² − 2: inf −2 at s = 0
    nodes = jnp.linspace(-2.0, 2.0, 33) + 0.01
    assert float(shock_time(lambda s: s**4 - s**2, nodes)) == pytest.approx(
        0.5, rel=1e-13
    )


def test_circle():
    # U = −½ cos 2s on a period π: U'' = 2 cos 2s, inf −2 at π/2 (between nodes)
    nodes = jnp.linspace(0.0, np.pi, 40, endpoint=False)
    tau = shock_time(lambda s: -0.5 * jnp.cos(2 * s), nodes, period=np.pi)
    assert float(tau) == pytest.approx(0.5, rel=1e-13)


def test_convex_never_shocks():
    nodes = jnp.linspace(-3.0, 3.0, 31)
    assert jnp.isposinf(shock_time(lambda s: s**2 + jnp.exp(s), nodes))
    assert jnp.isposinf(shock_time(lambda s: 0.3 * s, nodes))  # inf U'' = 0


def test_vmap_and_grad_in_amplitude():
    nodes = jnp.linspace(-5.0, 5.0, 51)

    def tau_star(a):
        return shock_time(lambda s: a * jnp.exp(-((s - 0.2) ** 2) / 2), nodes)

    amps = jnp.array([0.5, 1.0, 4.0])
    np.testing.assert_allclose(jax.vmap(tau_star)(amps), 1 / amps, rtol=1e-13)
    np.testing.assert_allclose(jax.jit(jax.grad(tau_star))(2.0), -0.25, rtol=1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match="uniform increasing grid"):
        shock_time(jnp.sin, jnp.array([0.0, 0.1, 0.3]))
    with pytest.raises(ValueError, match="exactly one period"):
        shock_time(jnp.sin, jnp.linspace(0.0, 1.0, 11), period=2 * np.pi)
    with pytest.raises(ValueError, match="U must map a scalar to a scalar"):
        shock_time(lambda s: jnp.stack([s, s]), jnp.linspace(0.0, 1.0, 11))


def test_non_finite_curvature_is_refused():
    # U'' is NaN on the nodes |s| ≤ 1 (it returned inf, "never shocks")
    nodes = jnp.linspace(-3.0, 3.0, 61)

    def tau_star(a):
        return shock_time(lambda s: jnp.sqrt(s**2 + a) ** 3, nodes)

    refuses_non_finite(tau_star, 1.0, -1.0, match="non-finite input: U''\\(nodes\\)")


def test_traced_grids_are_checked_and_axes_accepted():
    def tau_star(nodes):
        return shock_time(lambda s: -0.5 * jnp.cos(2 * s), nodes, period=np.pi)

    open_grid = jnp.linspace(0.0, np.pi, 40, endpoint=False)
    raises_eager_and_jit(tau_star, jnp.linspace(0.0, np.pi, 40), match="one period")
    raises_eager_and_jit(
        lambda n: shock_time(jnp.sin, n), jnp.linspace(1.0, 0.0, 11), match="uniform"
    )
    assert float(jax.jit(tau_star)(open_grid)) == pytest.approx(0.5, rel=1e-13)
    axis = PeriodicAxis(0.0, np.pi, 40)
    assert float(shock_time(lambda s: -0.5 * jnp.cos(2 * s), axis)) == pytest.approx(
        0.5, rel=1e-13
    )
