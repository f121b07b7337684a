"""Exact log-domain Hopf–Cole: local entropy, viscous Burgers, first-order baseline."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

from geomshock._checks import NonFiniteInputError
from geomshock.pde import (
    LineAxis,
    PeriodicAxis,
    TruncatedDomainWarning,
    burgers_hopf_cole,
    first_order_semigroup,
    hopf_lax,
    local_entropy,
)
from geomshock.pde._kernel import FOURIER, IMAGES, NEAREST, periodic_mode

from .._errors import RUNTIME_ERRORS, raises_eager_and_jit
from ._non_finite import refuses_non_finite

BASDEVANT_SLOPE = 152.005161576


def gaussian(y):
    return jnp.exp(-(y**2) / 2)


def basdevant_potential(y):
    return jnp.cos(jnp.pi * y) / jnp.pi


# --- published benchmark -------------------------------------------------------


@pytest.fixture(scope="module")
def basdevant_slope():
    nodes = jnp.linspace(-1.0, 1.0, 2048, endpoint=False)

    def slope(s):
        return jax.grad(
            lambda z: burgers_hopf_cole(
                basdevant_potential,
                0.02 / jnp.pi,  # u_t + u u_x = (0.01/π) u_xx: ν = 2 ν_c
                1.6037 / jnp.pi,
                z,
                nodes=nodes,
                period=2.0,
            )
        )(s)

    return jax.jit(slope)


def test_basdevant_max_slope(basdevant_slope):
    slope = basdevant_slope(0.0)
    assert abs(-float(slope) - BASDEVANT_SLOPE) / BASDEVANT_SLOPE < 1e-8
    # x = 0 is the steepest point: the slope is smaller in magnitude nearby
    assert abs(float(basdevant_slope(0.002))) < abs(float(slope))


def test_basdevant_float32():
    with jax.enable_x64(False):
        nodes = jnp.linspace(-1.0, 1.0, 2048, endpoint=False, dtype=jnp.float32)

        def v(s):
            return burgers_hopf_cole(
                basdevant_potential,
                0.02 / np.pi,
                1.6037 / np.pi,
                s,
                nodes=nodes,
                period=2.0,
            )

        slope = jax.grad(v)(jnp.float32(0.0))
        field = v(nodes)
    assert slope.dtype == jnp.float32 and field.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(field)))
    assert abs(-float(slope) - BASDEVANT_SLOPE) / BASDEVANT_SLOPE < 1e-5


# --- independent references -----------------------------------------------------


def _mpmath_reference(nu, tau, x):
    mpmath.mp.dps = 30

    def weight(y):
        return mpmath.exp(
            -((x - y) ** 2) / (2 * nu * tau) - mpmath.exp(-(y**2) / 2) / nu
        )

    width = mpmath.sqrt(nu * tau)
    points = sorted({x - 12 * width, x, x + 12 * width, -3, 0, 3})
    mass = mpmath.quad(weight, points)
    moment = mpmath.quad(lambda y: (x - y) * weight(y), points)
    u = -nu * mpmath.log(mass / mpmath.sqrt(2 * mpmath.pi * nu * tau))
    return float(u), float(moment / mass / tau)


@pytest.mark.parametrize("nu", [0.05, 0.4])
@pytest.mark.parametrize("tau", [0.5, 1.5])
def test_gaussian_against_mpmath(nu, tau):
    x = np.array([-0.7, 0.3, 1.2])
    nodes = jnp.linspace(-12.0, 12.0, 801)
    u = local_entropy(gaussian, nu, tau, x, nodes=nodes)
    v = burgers_hopf_cole(gaussian, nu, tau, x, nodes=nodes)
    ref = np.array([_mpmath_reference(nu, tau, xi) for xi in x])
    np.testing.assert_allclose(u, ref[:, 0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(v, ref[:, 1], rtol=0, atol=1e-9)


def test_quadratic_and_linear_closed_forms():
    nodes = jnp.linspace(-15.0, 15.0, 1201)
    x = jnp.array([-1.3, 0.0, 0.4, 2.0])
    nu, tau, a, b = 0.3, 0.8, 1.7, 0.6
    u = local_entropy(lambda y: 0.5 * a * y**2, nu, tau, x, nodes=nodes)
    exact = a * x**2 / (2 * (1 + a * tau)) + 0.5 * nu * jnp.log1p(a * tau)
    np.testing.assert_allclose(u, exact, rtol=0, atol=1e-12)
    v = burgers_hopf_cole(lambda y: 0.5 * a * y**2, nu, tau, x, nodes=nodes)
    np.testing.assert_allclose(v, a * x / (1 + a * tau), rtol=0, atol=1e-12)
    # linear U: u = b x − b² τ / 2 (a travelling constant state v = b)
    u_lin = local_entropy(lambda y: b * y, nu, tau, x, nodes=nodes)
    np.testing.assert_allclose(u_lin, b * x - 0.5 * b**2 * tau, rtol=0, atol=1e-12)


# --- the circle: every image, any kernel width --------------------------------


def _spectral_heat(U, nu, tau, x, period, modes=1024):
    """``−ν log`` of the heat flow of ``e^{−U/ν}`` evolved exactly mode by mode."""
    y = np.arange(modes) * period / modes
    coeffs = np.fft.fft(np.exp(-np.asarray(U(y)) / nu))
    k = 2 * np.pi * np.fft.fftfreq(modes, period / modes)
    coeffs = coeffs * np.exp(-0.5 * nu * tau * k**2)
    w = np.real(np.exp(1j * np.outer(np.asarray(x), k)) @ coeffs) / modes
    return -nu * np.log(w)


def _circle_potential(y):
    return jnp.sin(y) + 0.3 * jnp.cos(2 * y)


def _circle_field(num_nodes, num_x):
    """``(ν, τ) -> u`` of ``_circle_potential`` on the 2π-circle, at ``num_x``
    points of [−1, 7]; also returns those points, the nodes and the period."""
    period = 2 * np.pi
    nodes = jnp.linspace(0.0, period, num_nodes, endpoint=False)
    x = jnp.linspace(-1.0, 7.0, num_x)

    def field(nu, tau):
        return local_entropy(_circle_potential, nu, tau, x, nodes=nodes, period=period)

    return field, x, nodes, period


@pytest.fixture(scope="module")
def circle_sweep():
    field, x, nodes, period = _circle_field(256, 9)
    return jax.jit(jax.vmap(field)), x, nodes, period


def test_circle_all_kernel_widths_against_spectral(circle_sweep):
    sweep, x, nodes, period = circle_sweep
    nu = jnp.array([0.5, 0.5, 0.5, 0.5, 0.5])
    # ντ/P² from 2.5e-4 to 0.25; 0.14·P² is the image/Fourier switch
    switch = 0.14 * period**2 / 0.5
    tau = jnp.array([0.02, 2.0, switch * (1 - 1e-9), switch * (1 + 1e-9), 20.0])
    spread = float(jnp.ptp(_circle_potential(nodes))) / 0.5
    modes = [
        int(periodic_mode(0.5 * t, period, period / 256, spread, 256)) for t in tau
    ]
    assert modes == [NEAREST, IMAGES, IMAGES, FOURIER, FOURIER]
    u = sweep(nu, tau)
    for i in range(len(tau)):
        ref = _spectral_heat(_circle_potential, 0.5, float(tau[i]), x, period)
        np.testing.assert_allclose(u[i], ref, rtol=0, atol=1e-11)


def test_circle_issue_case_and_periodicity(circle_sweep):
    sweep, x, _, period = circle_sweep
    u = sweep(jnp.array([0.5]), jnp.array([2.0]))[0]
    ref = _spectral_heat(_circle_potential, 0.5, 2.0, x, period)
    assert np.max(np.abs(u - ref)) < 1e-9
    # x and x + P agree (x = −1 and x = 7 ≈ −1 + 2π + ...): evaluate both directly
    nodes = jnp.linspace(0.0, period, 256, endpoint=False)
    pair = local_entropy(
        _circle_potential,
        0.5,
        2.0,
        jnp.array([0.3, 0.3 + period]),
        nodes=nodes,
        period=period,
    )
    assert abs(float(pair[0] - pair[1])) < 1e-12


# --- small viscosity, τ = 0 -------------------------------------------------------


def test_small_viscosity_matches_hopf_lax():
    nodes = jnp.linspace(-6.0, 6.0, 2401)
    x = jnp.linspace(-2.5, 2.5, 21)
    tau = 2.0  # after the shock time τ* = 1
    u = local_entropy(gaussian, 1e-4, tau, x, nodes=nodes)
    v = burgers_hopf_cole(gaussian, 1e-4, tau, x, nodes=nodes)
    assert bool(jnp.all(jnp.isfinite(u))) and bool(jnp.all(jnp.isfinite(v)))
    assert float(jnp.max(jnp.abs(u - hopf_lax(gaussian, tau, x, nodes=nodes)))) < 2e-3
    slope = jax.vmap(
        jax.grad(lambda s: burgers_hopf_cole(gaussian, 1e-4, tau, s, nodes=nodes))
    )(x)
    assert bool(jnp.all(jnp.isfinite(slope)))


def test_tau_zero_returns_initial_data_and_has_finite_gradients():
    nodes = jnp.linspace(-8.0, 8.0, 161)
    x = jnp.array([-1.0, 0.25, 2.0])
    u = jax.jit(lambda t: local_entropy(gaussian, 0.1, t, x, nodes=nodes))(0.0)
    v = burgers_hopf_cole(gaussian, 0.1, 0.0, x, nodes=nodes)
    assert np.array_equal(np.asarray(u), np.asarray(gaussian(x)))
    assert np.array_equal(np.asarray(v), np.asarray(-x * gaussian(x)))
    grads = jax.grad(
        lambda nu, t: local_entropy(gaussian, nu, t, x, nodes=nodes).sum(),
        argnums=(0, 1),
    )(0.1, 0.0)
    assert all(bool(jnp.isfinite(g)) for g in grads)


# --- transformations --------------------------------------------------------------


def test_vmap_over_nu_tau_grid_equals_loop(circle_sweep):
    sweep, x, nodes, period = circle_sweep
    nus, taus = jnp.array([0.05, 0.5, 3.0]), jnp.array([0.0, 0.3, 4.0])
    grid_nu, grid_tau = (a.ravel() for a in jnp.meshgrid(nus, taus, indexing="ij"))
    batched = sweep(grid_nu, grid_tau)
    for i in range(grid_nu.shape[0]):
        single = local_entropy(
            _circle_potential,
            float(grid_nu[i]),
            float(grid_tau[i]),
            x,
            nodes=nodes,
            period=period,
        )
        np.testing.assert_allclose(batched[i], single, rtol=1e-13, atol=1e-13)


def test_mixed_regime_sweeps_equal_loop_and_differentiate():
    # one vmapped sweep whose members need different kernel representations:
    # each runs under its own lax.cond on "some member needs it", members pick
    field, x, nodes, period = _circle_field(128, 5)

    nus, taus = jnp.array([0.3, 0.5]), jnp.array([0.02, 2.0, 20.0])
    spread = float(jnp.ptp(_circle_potential(nodes)))
    modes = {
        int(periodic_mode(n * t, period, period / 128, spread / n, 128))
        for n in nus
        for t in taus
    }
    assert modes == {NEAREST, IMAGES, FOURIER}
    nested = jax.jit(jax.vmap(jax.vmap(field, (None, 0)), (0, None)))(nus, taus)
    flat_nu, flat_tau = (a.ravel() for a in jnp.meshgrid(nus, taus, indexing="ij"))
    flat = jax.jit(jax.vmap(field))(flat_nu, flat_tau)
    for i in range(flat_nu.shape[0]):
        single = field(float(flat_nu[i]), float(flat_tau[i]))
        np.testing.assert_allclose(flat[i], single, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(nested.reshape(flat.shape)[i], single, rtol=1e-12)

    # reverse mode through a vmapped sweep in ν, mixed and single-regime batches
    weights = jnp.linspace(0.5, 1.5, x.shape[0])

    def loss(nu_batch, tau_batch):
        return jnp.sum(jax.vmap(field)(nu_batch, tau_batch) * weights)

    eps = 1e-6
    for tau_batch in (jnp.array([0.02, 2.0, 20.0]), jnp.array([2.0, 2.5, 3.0])):
        nu_batch = jnp.array([0.5, 0.45, 0.4])
        grad = jax.jit(jax.grad(loss))(nu_batch, tau_batch)
        for i in range(3):
            up, down = nu_batch.at[i].add(eps), nu_batch.at[i].add(-eps)
            fd = (loss(up, tau_batch) - loss(down, tau_batch)) / (2 * eps)
            np.testing.assert_allclose(grad[i], fd, rtol=1e-6, atol=1e-8)
        per_member = jax.vmap(jax.grad(lambda n, t: jnp.sum(field(n, t) * weights)))
        np.testing.assert_allclose(
            per_member(nu_batch, tau_batch), grad, rtol=1e-12, atol=1e-12
        )


def test_gradients_match_central_differences():
    period = 2 * np.pi
    nodes = jnp.linspace(0.0, period, 128, endpoint=False)

    def both(nu, tau, s):
        u = local_entropy(_circle_potential, nu, tau, s, nodes=nodes, period=period)
        v = burgers_hopf_cole(_circle_potential, nu, tau, s, nodes=nodes, period=period)
        return jnp.stack([u, v])

    point = (0.4, 1.1, 0.7)
    eps = 1e-5
    value = jax.jit(both)
    jac = jax.jit(jax.jacfwd(both, argnums=(0, 1, 2)))(*point)
    for i in range(3):
        up, down = list(point), list(point)
        up[i] += eps
        down[i] -= eps
        fd = (value(*up) - value(*down)) / (2 * eps)
        np.testing.assert_allclose(jac[i], fd, rtol=1e-7, atol=1e-9)
    # v is the x-derivative of u
    np.testing.assert_allclose(jac[2][0], value(*point)[1], rtol=1e-12)


# --- several dimensions -----------------------------------------------------------


def test_two_dimensional_quadratic_closed_form():
    a = jnp.array([[1.2, 0.4], [0.4, 0.7]])
    nu, tau = 0.3, 0.9
    grid = jnp.linspace(-9.0, 9.0, 121)
    x = jnp.array([[0.0, 0.0], [0.5, -1.0], [-1.2, 0.8]])

    def U(y):
        return 0.5 * y @ a @ y

    u = local_entropy(U, nu, tau, x, nodes=(grid, grid))
    m = jnp.eye(2) + tau * a
    exact = 0.5 * jnp.einsum("ki,ij,kj->k", x, a @ jnp.linalg.inv(m), x)
    exact = exact + 0.5 * nu * jnp.log(jnp.linalg.det(m))
    np.testing.assert_allclose(u, exact, rtol=0, atol=1e-11)
    v = burgers_hopf_cole(U, nu, tau, x, nodes=(grid, grid))
    assert v.shape == (3, 2)
    np.testing.assert_allclose(v, x @ jnp.linalg.inv(m).T @ a.T, rtol=0, atol=1e-11)


def test_two_dimensional_cylinder_is_separable():
    period = 2 * np.pi
    circle = jnp.linspace(0.0, period, 96, endpoint=False)
    line = jnp.linspace(-8.0, 8.0, 161)
    x = jnp.array([[0.3, -0.5], [4.0, 1.0]])
    nu, tau = 0.4, 0.7

    def U(y):
        return _circle_potential(y[0]) + gaussian(y[1])

    u = local_entropy(U, nu, tau, x, nodes=(circle, line), period=(period, None))
    u0 = local_entropy(_circle_potential, nu, tau, x[:, 0], nodes=circle, period=period)
    u1 = local_entropy(gaussian, nu, tau, x[:, 1], nodes=line)
    np.testing.assert_allclose(u, u0 + u1, rtol=0, atol=1e-12)
    v = burgers_hopf_cole(U, nu, tau, x, nodes=(circle, line), period=(period, None))
    v0 = burgers_hopf_cole(
        _circle_potential, nu, tau, x[:, 0], nodes=circle, period=period
    )
    np.testing.assert_allclose(v[:, 0], v0, rtol=0, atol=1e-12)


# --- the paper's first-order baseline ----------------------------------------------


def test_first_order_semigroup_is_first_order():
    nodes = jnp.linspace(-10.0, 10.0, 1601)
    x = jnp.array([-0.8, 0.1, 1.1])
    nu = 0.5
    errors = []
    for tau in (0.02, 0.01):
        approx = first_order_semigroup(gaussian, nu, tau, x)
        errors.append(
            jnp.max(jnp.abs(approx - local_entropy(gaussian, nu, tau, x, nodes=nodes)))
        )
    assert 3.6 < float(errors[0] / errors[1]) < 4.4  # O(τ²) local error
    # "as_printed" is exp(ντΔ) as printed in Sec. 3.1: the same as τ doubled
    np.testing.assert_allclose(
        first_order_semigroup(gaussian, nu, 0.1, x, convention="as_printed"),
        first_order_semigroup(gaussian, nu, 0.2, x),
        rtol=1e-14,
    )
    # identity metric on R² with U depending on the first coordinate only
    x2 = jnp.stack([x, jnp.ones_like(x)], axis=-1)
    np.testing.assert_allclose(
        first_order_semigroup(lambda q: gaussian(q[0]), nu, 0.02, x2),
        first_order_semigroup(gaussian, nu, 0.02, x),
        rtol=1e-13,
    )
    # where the first-order w is not positive the scheme has broken down
    broken = first_order_semigroup(lambda y: 5 * y**2, 0.1, 0.5, jnp.array([0.0]))
    assert bool(jnp.isposinf(broken[0]))


# --- bad input --------------------------------------------------------------------


def test_bad_input_messages():
    nodes = jnp.linspace(-5.0, 5.0, 51)
    with pytest.raises(ValueError, match="nu must be finite and > 0; got 0.0"):
        local_entropy(gaussian, 0.0, 1.0, 0.0, nodes=nodes)
    with pytest.raises(ValueError, match="tau must be finite and ≥ 0; got -1.0"):
        burgers_hopf_cole(gaussian, 0.1, -1.0, 0.0, nodes=nodes)
    with pytest.raises(ValueError, match="nu must be a scalar"):
        local_entropy(gaussian, jnp.ones(2), 1.0, 0.0, nodes=nodes)
    uneven = nodes.at[3].add(0.01)
    with pytest.raises(ValueError, match="uniform increasing grid"):
        local_entropy(gaussian, 0.1, 1.0, 0.0, nodes=uneven)
    closed = jnp.linspace(0.0, 2 * np.pi, 33)
    with pytest.raises(ValueError, match="endpoint a \\+ P was included"):
        local_entropy(jnp.sin, 0.1, 1.0, 0.0, nodes=closed, period=2 * np.pi)
    with pytest.raises(ValueError, match="exactly one period"):
        local_entropy(jnp.sin, 0.1, 1.0, 0.0, nodes=nodes, period=2 * np.pi)
    with pytest.raises(ValueError, match="x must have shape \\(\\) or \\(k,\\)"):
        local_entropy(gaussian, 0.1, 1.0, jnp.zeros((2, 2)), nodes=nodes)
    with pytest.raises(ValueError, match="x must have shape \\(2,\\) or \\(k, 2\\)"):
        local_entropy(
            lambda y: y @ y, 0.1, 1.0, jnp.zeros((4, 3)), nodes=(nodes, nodes)
        )
    with pytest.raises(ValueError, match="U must map a scalar to a scalar"):
        local_entropy(lambda y: jnp.stack([y, y]), 0.1, 1.0, 0.0, nodes=nodes)
    with pytest.raises(ValueError, match="period must be one value or one per"):
        local_entropy(
            lambda y: y @ y,
            0.1,
            1.0,
            jnp.zeros(2),
            nodes=(nodes, nodes),
            period=(1.0, 2.0, 3.0),
        )


def test_traced_bad_viscosity_fails_loudly():
    nodes = jnp.linspace(-5.0, 5.0, 51)
    fn = eqx.filter_jit(
        lambda nu, tau: local_entropy(gaussian, nu, tau, 0.0, nodes=nodes)
    )
    with pytest.raises(eqx.EquinoxRuntimeError, match="nu must be finite and > 0"):
        fn(jnp.asarray(-0.1), jnp.asarray(1.0)).block_until_ready()
    with pytest.raises(eqx.EquinoxRuntimeError, match="tau must be finite and ≥ 0"):
        fn(jnp.asarray(0.1), jnp.asarray(-1.0)).block_until_ready()


# --- hardening: grids, resolution, truncation, τ → 0, non-finite data ----------


def _periodic_field(nodes):
    return local_entropy(jnp.sin, 0.1, 1.0, 0.3, nodes=nodes, period=2 * np.pi)


def _line_field(nodes):
    return burgers_hopf_cole(gaussian, 0.1, 1.0, 0.3, nodes=nodes)


def test_traced_grids_are_checked_at_run_time():
    open_grid = jnp.linspace(0.0, 2 * np.pi, 33, endpoint=False)
    line = jnp.linspace(-8.0, 8.0, 161)
    closed = jnp.linspace(0.0, 2 * np.pi, 33)  # endpoint included: one node too many
    raises_eager_and_jit(_periodic_field, closed, match="exactly one period")
    # a fresh function each time: a cached jit re-raises as a plain ValueError
    raises_eager_and_jit(lambda n: _line_field(n), line[::-1], match="uniform")
    raises_eager_and_jit(
        lambda n: _line_field(n), line.at[7].add(0.01), match="uniform"
    )
    grids = jnp.stack([open_grid, jnp.linspace(0.0, 2 * np.pi, 33)])
    with pytest.raises(RUNTIME_ERRORS, match="exactly one period"):
        jax.block_until_ready(jax.jit(jax.vmap(_periodic_field))(grids))
    # valid grids give the same value traced as concrete
    assert float(jax.jit(_periodic_field)(open_grid)) == pytest.approx(
        float(_periodic_field(open_grid)), abs=1e-14
    )
    assert float(jax.jit(_line_field)(line)) == pytest.approx(
        float(_line_field(line)), abs=1e-14
    )


def test_axes_are_accepted_as_nodes():
    line = jnp.linspace(-8.0, 8.0, 161)
    open_grid = jnp.linspace(0.0, 2 * np.pi, 33, endpoint=False)
    axis = PeriodicAxis(0.0, 2 * np.pi, 33)
    np.testing.assert_allclose(
        local_entropy(jnp.sin, 0.1, 1.0, 0.3, nodes=axis),
        _periodic_field(open_grid),
        rtol=0,
        atol=1e-14,
    )
    np.testing.assert_allclose(
        burgers_hopf_cole(gaussian, 0.1, 1.0, 0.3, nodes=LineAxis(-8.0, 0.1, 161)),
        _line_field(line),
        rtol=0,
        atol=1e-14,
    )
    with pytest.raises(ValueError, match="period 6.28"):
        local_entropy(jnp.sin, 0.1, 1.0, 0.3, nodes=axis, period=1.0)


def _narrow_reference(nu, tau, x):
    """Hopf–Cole ``(u, v)`` of the Basdevant potential by mpmath (nearest image)."""
    mpmath.mp.dps = 30

    def weight(y):
        return mpmath.exp(
            -((x - y) ** 2) / (2 * nu * tau)
            - mpmath.cos(mpmath.pi * y) / mpmath.pi / nu
        )

    points = [x - 30 * mpmath.sqrt(nu * tau), x, x + 30 * mpmath.sqrt(nu * tau)]
    mass = mpmath.quad(weight, points)
    moment = mpmath.quad(lambda y: (x - y) * weight(y), points)
    u = -nu * mpmath.log(mass / mpmath.sqrt(2 * mpmath.pi * nu * tau))
    return float(u), float(moment / mass / tau)


def test_kernel_narrower_than_the_spacing_is_refined_or_refused():
    # the issue's case: sqrt(ντ) = 3.2e-4 < h = 9.8e-4 (it returned 13.95)
    nodes = jnp.linspace(-1.0, 1.0, 2048, endpoint=False)

    def both(tau):
        kw = dict(nodes=nodes, period=2.0)
        return (
            local_entropy(basdevant_potential, 0.01, tau, 0.3, **kw),
            burgers_hopf_cole(basdevant_potential, 0.01, tau, 0.3, **kw),
        )

    # below h/4 it is refused, with the node count that would resolve it
    raises_eager_and_jit(both, 1e-6, match="narrower than the node spacing")
    with pytest.raises(ValueError, match="use at least 5000 nodes"):
        both(1e-6)
    with pytest.raises(RUNTIME_ERRORS, match="narrower than the node spacing"):
        jax.block_until_ready(jax.jit(jax.vmap(both))(jnp.array([0.1, 1e-6])))
    u_ref, v_ref = _narrow_reference(0.01, 1e-5, 0.3)
    for u, v in (both(1e-5), jax.jit(both)(1e-5)):
        assert float(u) == pytest.approx(u_ref, abs=1e-13)
        assert float(v) == pytest.approx(v_ref, abs=1e-10)  # v ≈ −0.809
    # tensor-product grids refine nothing: σ < h is refused
    grid = jnp.linspace(-4.0, 4.0, 41)
    with pytest.raises(
        ValueError, match="allows along nodes\\[0\\]: sqrt\\(ν τ\\) < h "
    ):
        local_entropy(lambda y: y @ y, 0.01, 0.5, jnp.zeros(2), nodes=(grid, grid))


def test_truncated_line_grid_warns_with_the_fix():
    nodes = jnp.linspace(-8.0, 8.0, 801)

    def quadratic(nu, x):
        return local_entropy(lambda y: 0.5 * y**2, nu, 1.0, x, nodes=nodes)

    # x = 20: the weights sit at y = 10, past the upper end (it returned 104.31)
    with pytest.warns(TruncatedDomainWarning, match="upper end 8 of nodes"):
        quadratic(0.1, 20.0)
    with pytest.warns(TruncatedDomainWarning, match="by at least 12·sqrt"):
        jax.block_until_ready(jax.jit(quadratic)(0.1, 20.0))
        jax.effects_barrier()
    # a kernel far wider than the grid (ν = 1e8 returned 7.4e8)
    with pytest.warns(TruncatedDomainWarning, match="lower end -8 of nodes"):
        quadratic(1e8, 0.5)
    with pytest.warns(TruncatedDomainWarning, match="quadrature domain is too small"):
        jax.block_until_ready(
            jax.jit(jax.vmap(quadratic, (0, None)))(jnp.array([0.1, 1e8]), 0.5)
        )
        jax.effects_barrier()
    # well inside the grid: exact, and no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncatedDomainWarning)
        u = quadratic(0.1, 1.0)
        jax.block_until_ready(jax.jit(quadratic)(0.1, 1.0))
        jax.effects_barrier()
    assert float(u) == pytest.approx(0.25 + 0.05 * np.log(2.0), abs=1e-12)


def _gaussian_derivatives(x):
    e = np.exp(-(x**2) / 2)
    return -x * e, (x**2 - 1) * e, (3 * x - x**3) * e


def test_tau_derivative_at_zero_is_the_pde_right_hand_side():
    nodes = jnp.linspace(-8.0, 8.0, 801)
    x = jnp.array([-1.0, 0.25, 2.0])
    nu = 0.1
    d1, d2, d3 = _gaussian_derivatives(np.asarray(x))

    def u(t):
        return local_entropy(gaussian, nu, t, x, nodes=nodes)

    def v(t):
        return burgers_hopf_cole(gaussian, nu, t, x, nodes=nodes)

    rate_u = -0.5 * d1**2 + 0.5 * nu * d2  # −½|∇U|² + (ν/2)ΔU
    rate_v = -d1 * d2 + 0.5 * nu * d3  # its x-derivative
    for diff in (jax.jacfwd, jax.jacrev):
        np.testing.assert_allclose(jax.jit(diff(u))(0.0), rate_u, rtol=0, atol=1e-14)
        np.testing.assert_allclose(jax.jit(diff(v))(0.0), rate_v, rtol=0, atol=1e-14)
    # the right difference quotient agrees (to O(τ))
    eps = 1e-3
    np.testing.assert_allclose((u(eps) - u(0.0)) / eps, rate_u, atol=3e-3)
    np.testing.assert_allclose((v(eps) - v(0.0)) / eps, rate_v, atol=3e-3)


def test_non_finite_potential_is_refused():
    nodes = jnp.linspace(-4.0, 4.0, 81)

    def field(a):
        # log(a + s²) is NaN on the nodes |s| < sqrt(−a) when a < 0
        return local_entropy(lambda s: jnp.log(a + s**2), 0.1, 1.0, 0.0, nodes=nodes)

    refuses_non_finite(field, 1.0, -1.0, match="non-finite input: U\\(nodes\\)")
    raises_eager_and_jit(
        lambda s: burgers_hopf_cole(gaussian, 0.5, 1.0, s, nodes=nodes),
        jnp.array([0.0, jnp.nan]),
        match="non-finite input: x",
        eager=NonFiniteInputError,
    )


# --- the regime switches of the periodic kernel, on both sides --------------------


def _image_sum_reference(U_nodes, nodes, nu, var, x, period, images):
    """−ν log of the node sum of the wrapped kernel, ``|m| ≤ images`` (numpy)."""
    d = x - nodes[:, None]
    d = d - period * np.round(d / period)
    d = d + period * np.arange(-images, images + 1)[None, :]
    log_w = -(d**2) / (2 * var) - 0.5 * np.log(2 * np.pi * var) - U_nodes[:, None] / nu
    top = log_w.max()
    h = period / nodes.shape[0]
    return -nu * (np.log(np.sum(np.exp(log_w - top))) + top + np.log(h))


def test_nearest_image_switch_on_both_sides():
    # U = A cos y peaks at x = 0 and is least at the antipode, where the far
    # images matter most: the tail bound of periodic_mode is nearly attained
    period, count, nu, amplitude = 2 * np.pi, 64, 0.5, 5.0
    h = period / count
    nodes = np.arange(count) * h
    U_nodes = amplitude * np.cos(nodes)
    spread = float(np.ptp(U_nodes)) / nu
    for tail, expected in ((40.5, NEAREST), (39.5, IMAGES), (12.0, IMAGES)):
        var = (period**2 - h**2) / (8 * (tail + spread + np.log(6 * count)))
        assert int(periodic_mode(var, period, h, spread, count)) == expected
        u = local_entropy(
            lambda y: amplitude * jnp.cos(y),
            nu,
            var / nu,
            0.0,
            nodes=jnp.asarray(nodes),
            period=period,
        )
        full = _image_sum_reference(U_nodes, nodes, nu, var, 0.0, period, 20)
        assert float(u) == pytest.approx(full, abs=2e-14)
        nearest = _image_sum_reference(U_nodes, nodes, nu, var, 0.0, period, 0)
        if tail < 20:  # here the nearest image alone would be visibly wrong
            assert abs(nearest - full) > 1e-11
