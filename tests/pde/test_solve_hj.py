"""solve_hj / solve_heat against closed forms on the round sphere and flat charts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import eval_legendre

from geomshock import _checks
from geomshock.pde import (
    LineAxis,
    NeumannAxis,
    PDESolution,
    PeriodicAxis,
    grid_points,
    solve_heat,
    solve_hj,
)
from geomshock.pde._hj_solve import _symmetric_metric

from .._errors import RUNTIME_ERRORS, raises_eager_and_jit

TAUS = jnp.array([0.0, 0.3, 1.0])
SPHERE_GRID = (NeumannAxis(0.0, np.pi, 24), PeriodicAxis(0.0, 2 * np.pi, 4))


def sphere(q):
    """Round unit sphere in (colatitude θ, longitude φ): ds² = dθ² + sin²θ dφ²."""
    return jnp.diag(jnp.array([1.0, jnp.sin(q[0]) ** 2]))


def flat(q):
    return jnp.eye(q.shape[0])


def test_sphere_zonal_legendre_decay():
    """Zonal P_l(cos θ) is a Δ-eigenfunction with eigenvalue −l(l+1):
    exp((ντ/2)Δ) multiplies it by e^{−ν l(l+1) τ/2}."""
    nu = 0.4
    theta = np.asarray(grid_points(SPHERE_GRID))[..., 0]
    w0 = eval_legendre(2, np.cos(theta)) + 0.5 * eval_legendre(3, np.cos(theta))
    w = solve_heat(w0, sphere, nu, TAUS, SPHERE_GRID, rtol=1e-11, atol=1e-11)
    for i, tau in enumerate(np.asarray(TAUS)):
        ref = np.exp(-nu * 3 * tau) * eval_legendre(2, np.cos(theta)) + 0.5 * np.exp(
            -nu * 6 * tau
        ) * eval_legendre(3, np.cos(theta))
        np.testing.assert_allclose(w[i], ref, rtol=0, atol=1e-9)


def test_sphere_hj_is_log_of_heat_flow():
    """u = −ν log w with w0 = 2 + P_2(cos θ): u(τ) = −ν log(2 + e^{−3ντ} P_2)."""
    nu = 0.3
    theta = np.asarray(grid_points(SPHERE_GRID))[..., 0]

    def U(q):
        c = jnp.cos(q[0])
        return -nu * jnp.log(2.0 + 0.5 * (3 * c**2 - 1))

    u = solve_hj(U, sphere, nu, TAUS, SPHERE_GRID, rtol=1e-11, atol=1e-11)
    ref = -nu * np.log(
        2.0
        + np.exp(-3 * nu * np.asarray(TAUS))[:, None, None]
        * eval_legendre(2, np.cos(theta))[None]
    )
    np.testing.assert_allclose(u, ref, rtol=0, atol=1e-9)


FLAT_GRID = (PeriodicAxis(0.0, 2 * np.pi, 32),)
X_FLAT = np.asarray(grid_points(FLAT_GRID))[:, 0]


def flat_local_entropy(nu, tau, a=0.8):
    """e^{−U/ν} = 1 + a cos x is a Fourier mode: u = −ν log(1 + a e^{−ντ/2} cos x)."""
    return -nu * np.log(1.0 + a * np.exp(-nu * tau / 2) * np.cos(X_FLAT))


@pytest.fixture(scope="module")
def flat_hj():
    def solve(nu):
        u0 = -nu * jnp.log(1.0 + 0.8 * jnp.cos(jnp.asarray(X_FLAT)))
        return solve_hj(u0, flat, nu, TAUS, FLAT_GRID, rtol=1e-11, atol=1e-11)

    return jax.jit(solve)


def test_flat_chart_matches_exact_local_entropy(flat_hj):
    nu = 0.5
    u = flat_hj(nu)
    for i, tau in enumerate(np.asarray(TAUS)):
        np.testing.assert_allclose(u[i], flat_local_entropy(nu, tau), atol=1e-9)


def test_neumann_axis_cosine_decay():
    grid = (NeumannAxis(0.0, np.pi, 16),)
    x = np.asarray(grid_points(grid))[:, 0]
    nu = 0.5
    w = solve_heat(
        lambda q: jnp.cos(2 * q[0]), flat, nu, TAUS, grid, rtol=1e-11, atol=1e-11
    )
    ref = np.exp(-2 * nu * np.asarray(TAUS))[:, None] * np.cos(2 * x)[None]
    np.testing.assert_allclose(w, ref, atol=1e-9)


def test_vmap_over_nu_equals_loop(flat_hj):
    nus = jnp.array([0.3, 0.7])
    batched = jax.vmap(flat_hj)(nus)
    np.testing.assert_allclose(
        batched, jnp.stack([flat_hj(n) for n in nus]), atol=1e-12
    )


def test_grad_in_nu_matches_central_differences(flat_hj):
    f = lambda nu: jnp.sum(flat_hj(nu)[-1] * jnp.cos(jnp.asarray(X_FLAT)))
    nu, eps = 0.5, 1e-5
    np.testing.assert_allclose(
        jax.grad(f)(nu), (f(nu + eps) - f(nu - eps)) / (2 * eps), rtol=1e-6
    )


def test_bad_input_messages():
    with pytest.raises(ValueError, match="sequence of axes"):
        solve_hj(lambda q: q[0], flat, 0.5, TAUS, [np.linspace(0, 1, 8)])
    with pytest.raises(ValueError, match="one coordinate per grid axis"):
        solve_hj(lambda q: q[0], lambda q: jnp.eye(2), 0.5, TAUS, FLAT_GRID)
    with pytest.raises(ValueError, match="nu must be finite and > 0"):
        solve_hj(lambda q: q[0], flat, -1.0, TAUS, FLAT_GRID)
    with pytest.raises(ValueError, match="sorted"):
        solve_hj(lambda q: q[0], flat, 0.5, jnp.array([1.0, 0.5]), FLAT_GRID)
    with pytest.raises(ValueError, match="grid shape"):
        solve_hj(jnp.zeros(31), flat, 0.5, TAUS, FLAT_GRID)
    with pytest.raises(ValueError, match="to a scalar"):
        solve_hj(lambda q: q, flat, 0.5, TAUS, FLAT_GRID)
    with pytest.raises(ValueError, match="NeumannAxis needs"):
        NeumannAxis(1.0, 0.0, 8)


def u0_flat(nu, dtype=np.float64):
    return (-nu * np.log(1.0 + 0.8 * np.cos(X_FLAT))).astype(dtype)


@pytest.mark.parametrize("solve", [solve_hj, solve_heat])
def test_nonfinite_values_are_refused_up_front(solve):
    """NaN grid values used to burn every step before a "max steps" error."""
    bad = u0_flat(0.5)
    bad[3] = np.nan
    name = "U" if solve is solve_hj else "W"

    def run(values):
        return solve(values, flat, 0.5, TAUS, FLAT_GRID)

    raises_eager_and_jit(
        run, bad, match=f"non-finite input: {name}", eager=_checks.NonFiniteInputError
    )
    batch = jnp.stack([jnp.asarray(u0_flat(0.5)), jnp.asarray(bad)])
    with pytest.raises(RUNTIME_ERRORS, match="non-finite input"):
        jax.block_until_ready(jax.jit(jax.vmap(run))(batch))
    with pytest.raises(_checks.NonFiniteInputError, match="non-finite input"):
        solve(lambda q: jnp.log(jnp.cos(q[0])), flat, 0.5, TAUS, FLAT_GRID)


def test_non_symmetric_metric_is_refused():
    grid = (PeriodicAxis(0.0, 2 * np.pi, 8), PeriodicAxis(0.0, 2 * np.pi, 4))

    def run(a):
        def metric(q):
            return jnp.array([[1.0, a], [0.0, 1.0]]) + 0.0 * q[0]

        return solve_hj(lambda q: jnp.cos(q[0]), metric, 0.5, TAUS, grid)

    raises_eager_and_jit(run, 0.1, match="metric is not symmetric")
    with pytest.raises(RUNTIME_ERRORS, match="metric is not symmetric"):
        jax.block_until_ready(jax.jit(jax.vmap(run))(jnp.array([0.0, 0.1])))

    # symmetric up to round-off (relative 1e-12 < 1e-8): accepted as it is
    m = np.random.default_rng(1).standard_normal((5, 3, 3))
    gram = jnp.asarray(m @ np.swapaxes(m, 1, 2) + 1e-12 * m)
    assert _symmetric_metric(gram, jnp.zeros((5, 3))) is gram


def test_bad_times_options_and_grid_name_the_cause():
    def run(nu, taus):
        return solve_hj(u0_flat(0.5), flat, nu, taus, FLAT_GRID)

    raises_eager_and_jit(
        run, 0.5, jnp.array([0.0, np.nan]), match="taus must be finite"
    )
    raises_eager_and_jit(run, -0.5, TAUS, match="nu must be finite and > 0")
    with pytest.raises(ValueError, match="max_steps must be an integer ≥ 1"):
        solve_hj(u0_flat(0.5), flat, 0.5, TAUS, FLAT_GRID, max_steps=0)
    with pytest.raises(ValueError, match="rtol must be finite and > 0"):
        solve_heat(u0_flat(0.5), flat, 0.5, TAUS, FLAT_GRID, rtol=0.0)
    with pytest.raises(ValueError, match="spectral ones"):
        solve_hj(u0_flat(0.5), flat, 0.5, TAUS, (LineAxis(0.0, 0.1, 32),))


def test_return_solution_module(flat_hj):
    grid = FLAT_GRID + (NeumannAxis(0.0, 1.0, 4),)
    values = np.broadcast_to(u0_flat(0.5)[:, None], (32, 4))
    sol = solve_hj(values, flat, 0.5, TAUS, grid, return_solution=True)
    assert isinstance(sol, PDESolution) and sol.grid == grid
    assert int(sol.num_steps) > 0
    np.testing.assert_allclose(sol.values[..., 0], flat_hj(0.5), atol=1e-8)
    np.testing.assert_allclose(sol.values[..., 0], sol.values[..., 3], atol=1e-12)


def test_float32_hj_and_heat_match_float64_answers():
    """float32 values: the solve runs in float32 with the float32 default
    tolerance (float64's 1e-9 used to hit max_steps) and keeps its accuracy."""
    nu = 0.5
    sol = solve_hj(
        u0_flat(nu, np.float32),
        flat,
        np.float32(nu),
        TAUS.astype(jnp.float32),
        FLAT_GRID,
        return_solution=True,
    )
    assert sol.values.dtype == jnp.float32
    assert int(sol.num_steps) < 40  # measured: 26 (float64: 24)
    for i, tau in enumerate(np.asarray(TAUS)):
        np.testing.assert_allclose(
            sol.values[i], flat_local_entropy(nu, tau), atol=2e-5
        )
    w0 = (1.0 + 0.8 * np.cos(X_FLAT)).astype(np.float32)
    heat = solve_heat(w0, flat, np.float32(nu), TAUS, FLAT_GRID, return_solution=True)
    assert heat.values.dtype == jnp.float32
    assert int(heat.num_steps) < 40
    decay = np.exp(-nu * np.asarray(TAUS) / 2)[:, None]  # e^{(ντ/2)Δ} on cos x
    exact = 1.0 + 0.8 * decay * np.cos(X_FLAT)
    np.testing.assert_allclose(heat.values, exact, atol=5e-6)
