"""Feynman–Kac local entropy against exact answers (issue 15, items 1–2).

Known answers:
- flat ``R^n`` and a constant metric ``G`` (``X_t ~ N(q, t G⁻¹)``): quadratic
  ``U = ½xᵀAx + bᵀx`` (``A`` indefinite), a Gaussian integral in closed form;
  Euler–Maruyama is exact in law here, so the tolerance is 4 standard errors;
- the round sphere ``S²`` (stereographic chart, conformal metric
  ``4/(1+|y|²)² I``, a non-zero drift) with ``U = −ν log(2 + P₂(cos θ))``:
  ``u = −ν log(2 + e^{−3ντ} P₂(cos θ))`` (``½Δ`` has eigenvalue ``−3`` on
  ``P₂``); tolerance 4 standard errors plus the measured weak-order bias
  ``|u(dt) − u(dt/2)|`` (same Brownian paths).

Compilations dominate the cost (a diffrax solve with a ``VirtualBrownianTree``
compiles in seconds): each geometry is one jitted function, shared by the
accuracy, spread, ``vmap`` and error tests.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import geomshock as gs
from geomshock.charts import SphereChart
from geomshock.charts._sphere_coords import from_stereographic
from geomshock.geometry import scaled_identity
from geomshock.sde import feynman_kac_value_and_grad

from .._errors import RUNTIME_ERRORS, raises_eager_and_jit

# A failed run-time check from an already compiled ``jax.jit`` function reaches
# Python as a ValueError wrapping the callback's error (jaxlib 0.10); the
# message matched is the check's own.
JIT_ERRORS = (ValueError, *RUNTIME_ERRORS)

fk = gs.feynman_kac_local_entropy

# --- closed forms -------------------------------------------------------------------

A = np.array([[1.5, 0.4, 0.0], [0.4, -0.3, 0.2], [0.0, 0.2, 0.8]])  # indefinite
B = np.array([0.3, -0.2, 0.1])
G = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 1.5]])  # constant metric


def quadratic(x):
    return 0.5 * x @ jnp.asarray(A) @ x + jnp.asarray(B) @ x


def gaussian_local_entropy(q, nu, tau, cov_unit):
    """``−ν log E exp(−U(X)/ν)``, ``X ~ N(q, ντ cov_unit)``, ``U`` quadratic."""
    q = np.asarray(q, dtype=float)
    s = nu * tau * cov_unit
    m, c = A / nu, B / nu
    h = m @ q + c
    n = len(q)
    log_mean = (
        -0.5 * np.linalg.slogdet(np.eye(n) + s @ m)[1]
        - 0.5 * q @ m @ q
        - c @ q
        + 0.5 * h @ np.linalg.solve(m + np.linalg.inv(s), h)
    )
    return -nu * log_mean


NU_S = 0.3  # the sphere's U depends on ν


def p2(c):
    return 0.5 * (3 * c**2 - 1)


def sphere_u0(y):
    return -NU_S * jnp.log(2 + p2(from_stereographic(y)[-1]))


def sphere_exact(y, tau):
    c = from_stereographic(jnp.asarray(y))[-1]
    return -NU_S * jnp.log(2 + jnp.exp(-3 * NU_S * tau) * p2(c))


def round_metric(y):
    return scaled_identity(4 / (1 + y @ y) ** 2, 2)


def dense_metric(y):
    return jnp.asarray(G) + 0.0 * y[0]


Q3 = jnp.array([0.3, -0.5, 0.7])
Q_S = jnp.array([0.4, 0.2])


@pytest.fixture(scope="module")
def dense_fk():
    @jax.jit
    def run(nu, tau, q, key):
        return fk(quadratic, dense_metric, nu, tau, q, key, num_paths=512, num_steps=2)

    return run


@pytest.fixture(scope="module")
def sphere_runs():
    """Eager (compiled inside) sphere runs at 8 and 16 steps, one key."""
    key = jax.random.key(3)
    return {
        n: fk(sphere_u0, round_metric, NU_S, 1.0, Q_S, key, num_paths=8192, num_steps=n)
        for n in (8, 16)
    }


# --- accuracy -----------------------------------------------------------------------


def test_flat_quadratic_matches_closed_form():
    nu, tau = 0.7, 0.8
    u, se = fk(quadratic, None, nu, tau, Q3, jax.random.key(0), num_paths=20000)
    exact = gaussian_local_entropy(Q3, nu, tau, np.eye(3))
    assert abs(float(u) - exact) < 4 * float(se)
    assert 1e-4 < float(se) < 3e-2


def test_flat_tau_zero_is_U():
    u, se = fk(quadratic, None, 0.5, 0.0, Q3, jax.random.key(0), num_paths=4)
    np.testing.assert_allclose(u, quadratic(Q3), rtol=1e-14)
    assert float(se) == 0.0


def test_constant_metric_matches_closed_form(dense_fk):
    nu, tau = 0.6, 0.9
    u, se = dense_fk(nu, tau, Q3, jax.random.key(1))
    exact = gaussian_local_entropy(Q3, nu, tau, np.linalg.inv(G))
    assert abs(float(u) - exact) < 4 * float(se)


def test_stderr_matches_spread_over_keys(dense_fk):
    keys = jax.random.split(jax.random.key(2), 24)
    out = [dense_fk(0.6, 0.9, Q3, k) for k in keys]
    us = np.array([float(u) for u, _ in out])
    ses = np.array([float(s) for _, s in out])
    ratio = np.std(us, ddof=1) / np.mean(ses)
    assert 0.6 <= ratio <= 1.6, ratio


def test_sphere_closed_form_within_stderr_plus_bias(sphere_runs):
    (u8, _), (u16, se16) = sphere_runs[8], sphere_runs[16]
    exact = float(sphere_exact(Q_S, 1.0))
    bias = abs(float(u16 - u8))  # weak order 1: the error of u8 is ~2 bias
    assert abs(float(u16) - exact) < 4 * float(se16) + bias
    # The bias is measurable and first order: u8 is further off than u16.
    assert abs(float(u8) - exact) > abs(float(u16) - exact)


def test_geodesic_random_walk_on_the_sphere():
    chart = SphereChart((3,))
    key = jax.random.key(4)
    u8, _ = fk(
        sphere_u0,
        chart,
        NU_S,
        1.0,
        Q_S,
        key,
        num_paths=8192,
        num_steps=8,
        sampler="geodesic",
    )
    u16, se16 = fk(
        sphere_u0,
        chart.metric,
        NU_S,
        1.0,
        Q_S,
        key,
        num_paths=8192,
        num_steps=16,
        sampler="geodesic",
    )
    exact = float(sphere_exact(Q_S, 1.0))
    assert abs(float(u16) - exact) < 4 * float(se16) + abs(float(u16 - u8))


# --- transformations ----------------------------------------------------------------


def test_vmap_over_q_equals_loop(sphere_runs):
    qs = jnp.array([[0.4, 0.2], [-0.3, 0.1], [0.0, 0.5]])
    key = jax.random.key(3)
    run = functools.partial(
        fk, sphere_u0, round_metric, NU_S, 1.0, key=key, num_paths=8192, num_steps=16
    )
    batched = jax.jit(jax.vmap(lambda q: run(q=q)))(qs)
    loop = [run(q=q) for q in qs]
    np.testing.assert_allclose(batched[0], [u for u, _ in loop], rtol=1e-12)
    np.testing.assert_allclose(batched[1], [s for _, s in loop], rtol=1e-10)
    np.testing.assert_allclose(batched[0][0], sphere_runs[16][0], rtol=1e-12)


def test_flat_gradient_matches_central_differences_of_exact():
    nu, tau = 0.7, 0.8
    key = jax.random.key(5)
    u, se, grad, grad_se = feynman_kac_value_and_grad(
        quadratic, None, nu, tau, Q3, key, num_paths=20000
    )
    h = 1e-5
    exact = [
        (
            gaussian_local_entropy(Q3 + h * e, nu, tau, np.eye(3))
            - gaussian_local_entropy(Q3 - h * e, nu, tau, np.eye(3))
        )
        / (2 * h)
        for e in np.eye(3)
    ]
    assert np.all(np.abs(np.asarray(grad) - exact) < 4 * np.asarray(grad_se))
    # jax.grad of the estimator is the same pathwise gradient (same paths).
    direct = jax.grad(
        lambda q: fk(quadratic, None, nu, tau, q, key, num_paths=20000)[0]
    )(Q3)
    np.testing.assert_allclose(direct, grad, rtol=1e-10)
    np.testing.assert_allclose(
        u, fk(quadratic, None, nu, tau, Q3, key, num_paths=20000)[0], rtol=1e-13
    )


def test_sphere_gradient_matches_central_differences_of_exact():
    key = jax.random.key(6)

    def run(n):
        return feynman_kac_value_and_grad(
            sphere_u0, round_metric, NU_S, 1.0, Q_S, key, num_paths=4096, num_steps=n
        )

    (_, _, g8, _), (_, _, g16, se16) = run(8), run(16)
    h = 1e-5
    exact = np.array(
        [
            (sphere_exact(Q_S + h * e, 1.0) - sphere_exact(Q_S - h * e, 1.0)) / (2 * h)
            for e in np.eye(2)
        ]
    )
    bias = np.abs(np.asarray(g16 - g8))
    assert np.all(np.abs(np.asarray(g16) - exact) < 4 * np.asarray(se16) + bias)


# --- bad input ----------------------------------------------------------------------


def test_nu_and_tau_checked_eagerly_and_under_jit(dense_fk):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="nu must be finite and > 0"):
        fk(quadratic, dense_metric, 0.0, 1.0, Q3, key, num_paths=512, num_steps=2)
    with pytest.raises(ValueError, match="tau must be finite and ≥ 0"):
        fk(quadratic, dense_metric, 1.0, -0.1, Q3, key, num_paths=512, num_steps=2)
    with pytest.raises(JIT_ERRORS, match="nu must be finite and > 0"):
        jax.block_until_ready(dense_fk(-1.0, 1.0, Q3, key))
    with pytest.raises(JIT_ERRORS, match="tau must be finite and ≥ 0"):
        jax.block_until_ready(dense_fk(1.0, -0.1, Q3, key))


@pytest.mark.parametrize("num_paths", [1, 0, 2.5])
def test_num_paths_checked(num_paths):
    call = functools.partial(fk, quadratic, None, 0.5, 1.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_paths must be an integer ≥ 2"):
        call(q=Q3, num_paths=num_paths)
    with pytest.raises(ValueError, match="num_paths must be an integer ≥ 2"):
        jax.jit(lambda q: call(q=q, num_paths=num_paths))(Q3)


def bad_metric(y):
    # SPD only where y_0 > −1: paths from y_0 = 0 over t = 4 cross it.
    return scaled_identity(1.0 + y[0], 2)


def test_non_spd_metric_at_q_and_along_a_path():
    def run(q):
        return fk(
            lambda y: y @ y,
            bad_metric,
            1.0,
            4.0,
            q,
            jax.random.key(0),
            num_paths=16,
            num_steps=8,
        )

    raises_eager_and_jit(
        run, jnp.array([-2.0, 0.0]), match="not symmetric positive definite"
    )
    with pytest.raises(JIT_ERRORS, match="not symmetric positive definite"):
        jax.block_until_ready(jax.jit(run)(jnp.zeros(2)))


def test_other_bad_options():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="unknown solver options"):
        fk(quadratic, None, 0.5, 1.0, Q3, key, num_paths=4, steps=3)
    with pytest.raises(ValueError, match="either num_steps or dt"):
        fk(quadratic, None, 0.5, 1.0, Q3, key, num_paths=4, num_steps=3, dt=0.1)
    with pytest.raises(ValueError, match="SphereChart"):
        fk(quadratic, None, 0.5, 1.0, Q3, key, num_paths=4, sampler="geodesic")
    with pytest.raises(ValueError, match="sampler must be"):
        fk(quadratic, dense_metric, 0.5, 1.0, Q3, key, num_paths=4, sampler="exact")
    with pytest.raises(ValueError, match="single PRNG key"):
        fk(quadratic, None, 0.5, 1.0, Q3, jax.random.split(key, 2), num_paths=4)
