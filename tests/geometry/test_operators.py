"""Laplace–Beltrami, Christoffel symbols, gradient and divergence by autodiff,
against closed forms and sympy."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import geomshock as gs

from .._errors import RUNTIME_ERRORS, raises_eager_and_jit


def sphere(q):
    return jnp.diag(jnp.stack([jnp.ones_like(q[0]), jnp.sin(q[0]) ** 2]))


def half_plane(q):
    return jnp.eye(2, dtype=q.dtype) / q[1] ** 2


def polar(q):
    return jnp.diag(jnp.stack([jnp.ones_like(q[0]), q[0] ** 2]))


def sphere_points(num, seed=0):
    key = jax.random.PRNGKey(seed)
    lo = jnp.array([0.15, 0.0])
    hi = jnp.array([jnp.pi - 0.15, 2 * jnp.pi])
    return jax.random.uniform(key, (num, 2), minval=lo, maxval=hi)


_theta, _phi = sp.symbols("theta phi")
HARMONICS = [(1, 0), (1, 1), (2, 1), (2, 2), (3, 0), (3, 2), (4, 3), (5, 5)]


@pytest.mark.parametrize("degree,m", HARMONICS)
def test_spherical_harmonics_are_eigenfunctions(degree, m):
    expr = sp.assoc_legendre(degree, m, sp.cos(_theta)) * sp.cos(m * _phi + 0.3)
    f_xy = sp.lambdify((_theta, _phi), expr, modules="jax")

    def f(q):
        return f_xy(q[0], q[1])

    points = sphere_points(2_000, seed=degree * 10 + m)
    lap = jax.jit(jax.vmap(gs.laplace_beltrami(f, sphere)))(points)
    values = jax.vmap(f)(points)
    scale = float(jnp.max(jnp.abs(values)))
    np.testing.assert_allclose(
        lap, -degree * (degree + 1) * values, rtol=0, atol=1e-9 * scale
    )


@pytest.mark.parametrize("s", [0.5, 2.0, 3.7, -1.3])
def test_half_plane_power_eigenfunction(s):
    key = jax.random.PRNGKey(1)
    points = jax.random.uniform(key, (500, 2), minval=jnp.array([-3.0, 0.2]), maxval=3)
    f = lambda q: q[1] ** s
    lap = jax.vmap(gs.laplace_beltrami(f, half_plane))(points)
    expected = s * (s - 1) * points[:, 1] ** s
    np.testing.assert_allclose(lap, expected, rtol=1e-12, atol=1e-12)


def _sympy_laplace_beltrami(g, f, coords):
    """Divergence form |g|^{-1/2} ∂_i(|g|^{1/2} g^{ij} ∂_j f), symbolically."""
    det = g.det()
    ginv = g.inv()
    n = len(coords)
    total = 0
    for i in range(n):
        flux = sum(ginv[i, j] * sp.diff(f, coords[j]) for j in range(n))
        total += sp.diff(sp.sqrt(det) * flux, coords[i])
    return total / sp.sqrt(det)


_x, _y = sp.symbols("x y")
_NONDIAGONAL = {
    # graph of z = h(x, y): g = I + ∇h ∇hᵀ
    "graph": (
        lambda h: (
            sp.eye(2)
            + sp.Matrix([sp.diff(h, _x), sp.diff(h, _y)])
            * sp.Matrix([[sp.diff(h, _x), sp.diff(h, _y)]])
        ),
        sp.sin(_x) * sp.cos(2 * _y) + _x**2 / 3,
    ),
    # a general smooth SPD metric A Aᵀ + I with position-dependent entries
    "spd": (
        lambda a: (
            sp.Matrix([[1 + a, sp.sin(_y)], [sp.cos(_x), 2 + _x * _y]])
            * sp.Matrix([[1 + a, sp.sin(_y)], [sp.cos(_x), 2 + _x * _y]]).T
            + sp.eye(2)
        ),
        sp.exp(_x / 3) * sp.cos(_y),
    ),
}


@pytest.mark.parametrize("name", sorted(_NONDIAGONAL))
def test_non_diagonal_metric_against_sympy(name):
    make_metric, aux = _NONDIAGONAL[name]
    g_sym = make_metric(aux)
    f_sym = sp.sin(_x * _y) + _x**3 - sp.cos(_y)
    lap_sym = _sympy_laplace_beltrami(g_sym, f_sym, (_x, _y))
    g_fn = sp.lambdify((_x, _y), g_sym, modules="jax")
    f_fn = sp.lambdify((_x, _y), f_sym, modules="jax")

    def metric(q):
        return jnp.asarray(g_fn(q[0], q[1]), dtype=q.dtype).reshape(2, 2)

    lap = jax.jit(gs.laplace_beltrami(lambda q: f_fn(q[0], q[1]), metric))
    for point in [(0.3, -0.7), (1.1, 0.4), (-0.8, 1.9), (0.05, 0.02)]:
        expected = float(lap_sym.subs({_x: point[0], _y: point[1]}).evalf(30))
        got = float(lap(jnp.array(point)))
        assert abs(got - expected) <= 1e-10 * max(1.0, abs(expected)), (point, got)


def test_polar_laplacian_equals_cartesian():
    def cartesian(p):
        return jnp.exp(-0.3 * p[0]) * jnp.sin(2 * p[1]) + p[0] ** 2 * p[1]

    def in_polar(q):
        return cartesian(jnp.stack([q[0] * jnp.cos(q[1]), q[0] * jnp.sin(q[1])]))

    key = jax.random.PRNGKey(3)
    q = jax.random.uniform(key, (300, 2), minval=jnp.array([0.2, -jnp.pi]), maxval=3)
    p = jnp.stack([q[:, 0] * jnp.cos(q[:, 1]), q[:, 0] * jnp.sin(q[:, 1])], axis=1)
    flat = jax.vmap(lambda x: jnp.trace(jax.hessian(cartesian)(x)))(p)
    curved = jax.vmap(gs.laplace_beltrami(in_polar, polar))(q)
    np.testing.assert_allclose(curved, flat, rtol=1e-11, atol=1e-11)


def test_spherical_coordinates_3d_equal_cartesian():
    def spherical3(q):
        r, t = q[0], q[1]
        return jnp.diag(jnp.stack([jnp.ones_like(r), r**2, (r * jnp.sin(t)) ** 2]))

    def cartesian(p):
        return jnp.cos(p[0]) * p[1] ** 2 + jnp.exp(0.2 * p[2]) * p[0]

    def to_cartesian(q):
        r, t, ph = q
        return jnp.stack(
            [r * jnp.sin(t) * jnp.cos(ph), r * jnp.sin(t) * jnp.sin(ph), r * jnp.cos(t)]
        )

    key = jax.random.PRNGKey(4)
    q = jax.random.uniform(
        key, (200, 3), minval=jnp.array([0.3, 0.2, 0.0]), maxval=jnp.array([2, 2.9, 6])
    )
    flat = jax.vmap(lambda q: jnp.trace(jax.hessian(cartesian)(to_cartesian(q))))(q)
    curved = jax.vmap(
        gs.laplace_beltrami(lambda q: cartesian(to_cartesian(q)), spherical3)
    )(q)
    np.testing.assert_allclose(curved, flat, rtol=1e-11, atol=1e-11)


def test_christoffel_sphere_closed_form():
    points = sphere_points(100)
    gamma = jax.vmap(gs.christoffel(sphere))(points)
    t = points[:, 0]
    expected = np.zeros((len(t), 2, 2, 2))
    expected[:, 0, 1, 1] = -np.sin(t) * np.cos(t)
    expected[:, 1, 0, 1] = expected[:, 1, 1, 0] = np.cos(t) / np.sin(t)
    np.testing.assert_allclose(gamma, expected, rtol=0, atol=1e-13)


def test_christoffel_polar_closed_form():
    q = jnp.array([[0.5, 0.1], [2.0, -1.0], [3.3, 2.2]])
    gamma = jax.vmap(gs.christoffel(polar))(q)
    expected = np.zeros((3, 2, 2, 2))
    expected[:, 0, 1, 1] = -q[:, 0]
    expected[:, 1, 0, 1] = expected[:, 1, 1, 0] = 1 / q[:, 0]
    np.testing.assert_allclose(gamma, expected, rtol=0, atol=1e-14)


def general_metric(q):
    a = jnp.array(
        [
            [1 + q[0] ** 2, jnp.sin(q[1]), 0.3 * q[2]],
            [jnp.cos(q[0] * q[2]), 2.0, q[1]],
            [0.1, q[0] * q[1], 1.5 + jnp.cos(q[2])],
        ]
    )
    return a @ a.T + jnp.eye(3)


def test_christoffel_symmetric_and_consistent_with_laplacian():
    q = jnp.array([0.4, -1.2, 0.9])
    gamma = gs.christoffel(general_metric)(q)
    np.testing.assert_allclose(gamma, jnp.swapaxes(gamma, 1, 2), atol=1e-14)

    # Δf = g^{ij}(∂_ij f − Γ^k_ij ∂_k f) must equal the divergence-form operator.
    def f(p):
        return jnp.sin(p[0]) * p[1] + jnp.exp(0.3 * p[2]) * p[0] ** 2

    g_inv = gs.inverse_metric(general_metric)(q)
    hess = jax.hessian(f)(q)
    df = jax.grad(f)(q)
    expected = jnp.sum(g_inv * (hess - jnp.einsum("kij,k->ij", gamma, df)))
    np.testing.assert_allclose(
        gs.laplace_beltrami(f, general_metric)(q), expected, rtol=1e-13
    )


def test_gradient_norm_divergence_density_on_sphere():
    def f(q):
        return jnp.cos(q[0]) ** 2 * jnp.sin(3 * q[1])

    points = sphere_points(200)
    t, ph = points[:, 0], points[:, 1]
    df_t = -2 * jnp.cos(t) * jnp.sin(t) * jnp.sin(3 * ph)
    df_p = 3 * jnp.cos(t) ** 2 * jnp.cos(3 * ph)
    grad = jax.vmap(gs.gradient(f, sphere))(points)
    np.testing.assert_allclose(grad[:, 0], df_t, atol=1e-13)
    np.testing.assert_allclose(grad[:, 1], df_p / jnp.sin(t) ** 2, rtol=1e-12)
    norm_sq = jax.vmap(gs.grad_norm_sq(f, sphere))(points)
    np.testing.assert_allclose(norm_sq, df_t**2 + df_p**2 / jnp.sin(t) ** 2, rtol=1e-12)
    div = jax.vmap(gs.divergence(gs.gradient(f, sphere), sphere))(points)
    lap = jax.vmap(gs.laplace_beltrami(f, sphere))(points)
    np.testing.assert_allclose(div, lap, rtol=1e-11, atol=1e-11)
    density = jax.vmap(gs.volume_density(sphere))(points)
    np.testing.assert_allclose(density, jnp.sin(t), rtol=1e-14)
    g_inv = jax.vmap(gs.inverse_metric(sphere))(points)
    np.testing.assert_allclose(g_inv[:, 1, 1], 1 / jnp.sin(t) ** 2, rtol=1e-13)


def conformal(alpha):
    """Conformally flat metric e^{2φ} I with φ(q) = α Σ sin(q_i)."""

    def phi(q):
        return alpha * jnp.sum(jnp.sin(q))

    def metric(q):
        return jnp.exp(2 * phi(q)) * jnp.eye(q.shape[0], dtype=q.dtype)

    return phi, metric


def f_test(q):
    return jnp.sum(jnp.cos(jnp.arange(1, q.shape[0] + 1) * q)) + q[0] * q[-1]


def conformal_exact(alpha, q):
    """Δf = e^{−2φ}(Δ₀f + (n − 2)∇φ·∇f) for g = e^{2φ} I in dimension n."""
    phi, _ = conformal(alpha)
    n = q.shape[0]
    flat = jnp.trace(jax.hessian(f_test)(q))
    return jnp.exp(-2 * phi(q)) * (
        flat + (n - 2) * jax.grad(phi)(q) @ jax.grad(f_test)(q)
    )


def test_dimension_10_conformally_flat():
    key = jax.random.PRNGKey(5)
    points = jax.random.normal(key, (64, 10))
    _, metric = conformal(0.4)
    got = jax.jit(jax.vmap(gs.laplace_beltrami(f_test, metric)))(points)
    expected = jax.vmap(lambda q: conformal_exact(0.4, q))(points)
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-10)


def test_grad_through_laplace_beltrami_wrt_metric_parameter():
    q = jnp.array([0.3, -0.5, 1.1, 0.7])

    def lap_of_alpha(alpha):
        return gs.laplace_beltrami(f_test, conformal(alpha)[1])(q)

    d_auto = jax.grad(lap_of_alpha)(0.25)
    d_exact = jax.grad(lambda a: conformal_exact(a, q))(0.25)
    h = 1e-5
    d_fd = (lap_of_alpha(0.25 + h) - lap_of_alpha(0.25 - h)) / (2 * h)
    np.testing.assert_allclose(d_auto, d_exact, rtol=1e-12)
    np.testing.assert_allclose(d_auto, d_fd, rtol=1e-8)


def test_grad_through_laplace_beltrami_wrt_f_parameter():
    q = jnp.array([0.9, 0.4])

    def lap_of_k(k):
        return gs.laplace_beltrami(lambda p: jnp.cos(k * p[0]), sphere)(q)

    # Δ cos(kθ) = −k² cos(kθ) − k cot θ sin(kθ)
    def exact(k):
        return -(k**2) * jnp.cos(k * q[0]) - k * jnp.sin(k * q[0]) / jnp.tan(q[0])

    np.testing.assert_allclose(
        jax.grad(lap_of_k)(1.7), jax.grad(exact)(1.7), rtol=1e-12
    )


def test_vmap_over_1e5_points_under_jit():
    points = sphere_points(100_000, seed=7)

    def f(q):
        return jnp.sin(q[0]) ** 2 * jnp.cos(2 * q[1])  # ∝ Y_2^2, eigenvalue −6

    lap = jax.jit(jax.vmap(gs.laplace_beltrami(f, sphere)))(points)
    assert lap.shape == (100_000,)
    np.testing.assert_allclose(lap, -6 * jax.vmap(f)(points), rtol=0, atol=1e-9)


def test_bad_metric_shape():
    with pytest.raises(ValueError, match=r"metric must map a point of shape \(2,\)"):
        gs.laplace_beltrami(lambda q: q[0], lambda q: jnp.eye(3))(jnp.ones(2))
    with pytest.raises(ValueError, match=r"shape \(2, 2\); it returned shape \(2,\)"):
        gs.christoffel(lambda q: q)(jnp.ones(2))


def test_f_not_scalar():
    with pytest.raises(ValueError, match="f must be scalar-valued"):
        gs.laplace_beltrami(lambda q: q, sphere)(jnp.ones(2))
    with pytest.raises(ValueError, match="f must be scalar-valued"):
        gs.gradient(lambda q: q[:1], sphere)(jnp.ones(2))


def test_point_not_1d():
    with pytest.raises(ValueError, match=r"expected a point of shape \(n,\)"):
        gs.laplace_beltrami(lambda q: q[0], sphere)(jnp.ones((3, 2)))


def test_vector_field_shape_mismatch():
    with pytest.raises(ValueError, match="vector_field must map"):
        gs.divergence(lambda q: jnp.ones(3), sphere)(jnp.ones(2))


def test_non_spd_metric_fails_loudly():
    def indefinite(q):
        return jnp.diag(jnp.stack([jnp.ones_like(q[0]), -(q[1] ** 2)]))

    lap = gs.laplace_beltrami(lambda q: q[0] * q[1], indefinite)
    with pytest.raises(eqx.EquinoxRuntimeError, match="positive definite"):
        jax.block_until_ready(eqx.filter_jit(lap)(jnp.array([0.5, 0.5])))
    # under plain jax.jit the same message surfaces through XLA's runtime error
    with pytest.raises(Exception, match="positive definite"):
        jax.block_until_ready(jax.jit(lap)(jnp.array([0.5, 0.5])))


def _skewed(q):
    """A non-symmetric "metric": SPD lower triangle, so Cholesky alone accepts it."""
    return jnp.array([[1.0, 0.3], [0.0, 1.0]], dtype=q.dtype) * (1 + q[0] ** 2)


_METRIC_FUNCTIONS = {
    "laplace_beltrami": lambda m: gs.laplace_beltrami(lambda q: q[0] * q[1], m),
    "christoffel": gs.christoffel,
    "gradient": lambda m: gs.gradient(lambda q: q[0] * q[1], m),
    "grad_norm_sq": lambda m: gs.geometry.grad_norm_sq(lambda q: q[0] * q[1], m),
    "divergence": lambda m: gs.geometry.divergence(lambda q: q, m),
    "inverse_metric": gs.geometry.inverse_metric,
    "volume_density": gs.geometry.volume_density,
}


@pytest.mark.parametrize("name", sorted(_METRIC_FUNCTIONS))
def test_non_symmetric_metric_refused_eager_jit_vmap(name):
    op = _METRIC_FUNCTIONS[name](_skewed)
    q = jnp.array([0.5, 0.5])
    raises_eager_and_jit(op, q, match="metric is not symmetric")

    # one bad member in a vmapped batch: the metric is symmetric except at q[1] > 1
    def mostly_symmetric(q):
        return jnp.where(q[1] > 1.0, _skewed(q), sphere(q))

    batch = jnp.array([[0.5, 0.5], [0.7, 0.2], [0.6, 1.5]])
    op = jax.jit(jax.vmap(_METRIC_FUNCTIONS[name](mostly_symmetric)))
    with pytest.raises(RUNTIME_ERRORS, match="metric is not symmetric"):
        jax.block_until_ready(op(batch))
    jax.block_until_ready(op(batch[:2]))  # the good members alone pass


def test_check_metric_relative_tolerance_follows_dtype():
    from geomshock.geometry import check_metric, symmetry_rtol

    assert symmetry_rtol(jnp.float64) == 1e-8
    assert symmetry_rtol(jnp.float32) == 1e-4
    # round-off-sized asymmetry of a large metric is accepted (relative, not absolute)
    big = jnp.array([[1e6, 2.0], [2.0 + 1e-6, 3.0]])
    np.testing.assert_array_equal(check_metric(big), big)
    np.testing.assert_array_equal(jax.jit(check_metric)(big), big)
    # float32 rounding of a symmetric product passes at the float32 default
    j = jax.random.normal(jax.random.PRNGKey(0), (40, 3), dtype=jnp.float32)
    gram = j.T @ j
    check_metric(gram)
    with pytest.raises(ValueError, match=r"max \|g − gᵀ\| = 0.3 with max \|g\| = 1"):
        check_metric(jnp.array([[1.0, 0.3], [0.0, 1.0]]))
