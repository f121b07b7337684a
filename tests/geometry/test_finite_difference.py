"""The finite-difference peer converges at second order to the autodiff operator."""

import jax.numpy as jnp
import numpy as np
import pytest

import geomshock as gs
from geomshock.geometry import laplace_beltrami_fd


def metric(q):
    return jnp.exp(0.6 * jnp.sin(q[0]) * jnp.cos(q[1])) * jnp.array(
        [[1.0 + q[1] ** 2, 0.3 * q[0]], [0.3 * q[0], 2.0]]
    )


def f(q):
    return jnp.sin(q[0]) * jnp.exp(0.5 * q[1])


def test_second_order_convergence():
    q = jnp.array([0.4, -0.3])
    exact = gs.laplace_beltrami(f, metric)(q)
    errors = [
        abs(float(laplace_beltrami_fd(f, metric, h)(q) - exact))
        for h in (0.04, 0.02, 0.01)
    ]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(orders, 2.0, atol=0.05)


def test_bad_step():
    with pytest.raises(ValueError, match="step h must be positive"):
        laplace_beltrami_fd(f, metric, 0.0)
