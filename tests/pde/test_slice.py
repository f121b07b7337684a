"""Sec. 3.1 slice numerics: the exact semigroup on the circle and the paper's scheme."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ive

from geomshock._checks import heat_factor
from geomshock.pde import (
    AbstractSliceScheme,
    ExactCircle,
    FirstOrderFD,
    SliceProfile,
    first_order_semigroup,
    paper_theta_grid,
    slice_local_entropy,
)
from tests._errors import RUNTIME_ERRORS, raises_eager_and_jit

A, B = 0.3, 0.1  # smooth periodic test potential U = A cos θ + B sin 2θ


def _U(theta):
    return A * jnp.cos(theta) + B * jnp.sin(2 * theta)


def _spectral(nu, tau, g, convention, theta, modes=96, grid=1024):
    """Independent reference: heat flow of e^{−U/ν} on the circle mode by mode.

    Fourier coefficients of e^{−(U − min U)/ν} by FFT on a fine grid (spectrally
    exact for this entire function), then ``exp(−c ν τ k²/g)`` per mode and the
    trigonometric series with its first two derivatives at ``theta``.
    """
    y = 2 * np.pi * np.arange(grid) / grid
    U = A * np.cos(y) + B * np.sin(2 * y)
    shift = U.min()
    coef = np.fft.rfft(np.exp(-(U - shift) / nu))[: modes + 1] / grid
    k = np.arange(modes + 1)
    coef = coef * np.exp(-heat_factor(convention) * nu * tau * k**2 / g)
    weight = np.where(k == 0, 1.0, 2.0)
    phase = np.exp(1j * np.outer(np.asarray(theta), k))
    w = np.real(phase @ (weight * coef))
    dw = np.real(phase @ (weight * coef * 1j * k))
    d2w = np.real(phase @ (weight * coef * -(k**2)))
    u = -nu * np.log(w) + shift
    du = -nu * dw / w
    d2u = -nu * (d2w / w - (dw / w) ** 2)
    return u, du, d2u


@pytest.mark.parametrize("convention", ["as_printed", "theorem"])
@pytest.mark.parametrize("nu, tau", [(0.1, 0.05), (0.5, 0.1), (1.0, 2.0)])
def test_exact_slice_semigroup_matches_spectral_heat_flow(convention, nu, tau):
    g = 1.7
    theta = paper_theta_grid()
    prof = slice_local_entropy(
        _U, g, nu, tau, theta, scheme=ExactCircle(512), convention=convention
    )
    u, du, d2u = _spectral(nu, tau, g, convention, theta)
    np.testing.assert_allclose(prof.u, u, rtol=0, atol=1e-10)
    np.testing.assert_allclose(prof.du, du, rtol=0, atol=1e-9)
    np.testing.assert_allclose(prof.d2u, d2u, rtol=0, atol=1e-9)


def test_exact_closed_form_bessel():
    # U = A cos θ: e^{−U/ν} = Σ_k (−1)^k I_k(A/ν) e^{ikθ}, each mode × e^{−ντk²/g}.
    nu, tau, g = 0.2, 0.08, 0.6
    theta = np.linspace(-1.35, 1.35, 7)
    k = np.arange(80)
    z = A / nu
    coef = (
        np.where(k == 0, 1, 2) * (-1.0) ** k * ive(k, z) * np.exp(-nu * tau * k**2 / g)
    )
    w = np.cos(np.outer(theta, k)) @ coef
    ref = -nu * (np.log(w) + z)
    prof = slice_local_entropy(
        lambda t: A * jnp.cos(t),
        g,
        nu,
        tau,
        jnp.asarray(theta),
        scheme=ExactCircle(512),
        convention="as_printed",
    )
    np.testing.assert_allclose(prof.u, ref, rtol=0, atol=1e-12)


def test_first_order_error_is_second_order_in_tau():
    # Fine grid so that the FD error is far below the O(τ²) Taylor truncation.
    nu, g = 0.5, 1.3
    theta = jnp.linspace(-1.35, 1.35, 2701)
    inner = slice(200, -200)
    errs = []
    for tau in (0.04, 0.02, 0.01):
        fo = slice_local_entropy(_U, g, nu, tau, theta, scheme=FirstOrderFD())
        ex = slice_local_entropy(_U, g, nu, tau, theta, scheme=ExactCircle(512))
        errs.append(float(jnp.max(jnp.abs(fo.u - ex.u)[inner])))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    np.testing.assert_allclose(ratios, 4.0, rtol=0.1)


@pytest.mark.parametrize("stencil", ["gradient", "compact"])
def test_first_order_is_eq3_with_numpy_differences(stencil):
    nu, tau, g = 0.1, 0.05, 0.8
    theta = paper_theta_grid()
    prof = slice_local_entropy(
        _U, g, nu, tau, theta, scheme=FirstOrderFD(stencil), convention="as_printed"
    )
    th = np.asarray(theta)
    h = th[1] - th[0]
    phi = np.exp(-(A * np.cos(th) + B * np.sin(2 * th)) / nu)
    if stencil == "gradient":
        d2phi = np.gradient(np.gradient(phi, h), h)
    else:
        d2phi = np.empty_like(phi)
        d2phi[1:-1] = (phi[2:] - 2 * phi[1:-1] + phi[:-2]) / h**2
        d2phi[0], d2phi[-1] = d2phi[1], d2phi[-2]
    u = -nu * np.log(phi + nu * tau / g * d2phi)  # eq. (3), no ½
    np.testing.assert_allclose(prof.u, u, rtol=1e-13)
    np.testing.assert_allclose(prof.d2u, np.gradient(np.gradient(u, h), h), rtol=1e-9)


def test_first_order_theorem_convention_has_the_half():
    # convention="theorem" is w ≈ φ + ½ ν τ g⁻¹ φ'' (first_order_semigroup's
    # c = ½): u = U − ν log(1 + ½ τ/g (U'²/ν − U'')) up to the O(h²) FD error.
    nu, tau, g = 0.4, 0.05, 1.3
    theta = jnp.linspace(-1.0, 1.0, 4001)
    prof = slice_local_entropy(
        _U, g, nu, tau, theta, scheme=FirstOrderFD("compact"), convention="theorem"
    )
    th = np.asarray(theta)
    U = A * np.cos(th) + B * np.sin(2 * th)
    dU = -A * np.sin(th) + 2 * B * np.cos(2 * th)
    d2U = -A * np.cos(th) - 4 * B * np.sin(2 * th)
    u = U - nu * np.log1p(0.5 * tau / g * (dU**2 / nu - d2U))
    np.testing.assert_allclose(prof.u[1:-1], u[1:-1], rtol=0, atol=1e-8)


def test_first_order_breakdown_is_inf_with_valid_mask():
    # A sharp well: ντΔφ < −φ at its bottom, so w ≤ 0 there; the scheme says so
    # with the breakdown value +inf (never NaN), as first_order_semigroup does.
    theta = paper_theta_grid()
    prof = slice_local_entropy(
        lambda t: 2.0 * t**2,
        1.0,
        0.5,
        1.0,
        theta,
        scheme=FirstOrderFD(),
        convention="as_printed",
    )
    valid = np.asarray(prof.valid)
    assert not valid[45] and valid[0]
    u, du, d2u = (np.asarray(a) for a in (prof.u, prof.du, prof.d2u))
    assert np.all(u[~valid] == np.inf)
    assert np.all(np.isfinite(u[valid]))
    for a in (u, du, d2u):
        assert not np.any(np.isnan(a))
        assert np.all(a[~np.isfinite(a)] == np.inf)
    # the derivatives break down exactly where their stencil reaches w ≤ 0
    reach = np.convolve(~valid, np.ones(3), mode="same") > 0
    assert np.all(np.isfinite(du[~reach]))


def test_vmap_and_grad_in_nu_tau():
    theta = jnp.linspace(-1.0, 1.0, 5)
    scheme = ExactCircle(256)

    def peak_u(nu, tau):
        return slice_local_entropy(_U, 1.3, nu, tau, theta, scheme=scheme).u

    run = jax.jit(jax.vmap(jax.vmap(peak_u, (None, 0)), (0, None)))
    nus, taus = jnp.array([0.2, 0.7]), jnp.array([0.0, 0.05, 0.3])
    grid = run(nus, taus)
    for i, nu in enumerate(nus):
        for j, tau in enumerate(taus):
            np.testing.assert_allclose(grid[i, j], peak_u(nu, tau), rtol=1e-13)
    f = jax.jit(lambda nu, tau: peak_u(nu, tau)[2])
    eps = 1e-5
    gnu, gtau = jax.grad(f, argnums=(0, 1))(0.4, 0.2)
    np.testing.assert_allclose(
        gnu, (f(0.4 + eps, 0.2) - f(0.4 - eps, 0.2)) / (2 * eps), rtol=1e-6
    )
    np.testing.assert_allclose(
        gtau, (f(0.4, 0.2 + eps) - f(0.4, 0.2 - eps)) / (2 * eps), rtol=1e-6
    )


def test_float32_follows_the_grid_dtype():
    theta = jnp.linspace(-1.0, 1.0, 9, dtype=jnp.float32)
    prof = slice_local_entropy(_U, 1.3, 0.5, 0.1, theta, scheme=FirstOrderFD())
    assert prof.u.dtype == prof.d2u.dtype == jnp.float32
    ref = slice_local_entropy(
        _U, 1.3, 0.5, 0.1, theta.astype(jnp.float64), scheme=FirstOrderFD()
    )
    np.testing.assert_allclose(prof.u, ref.u, rtol=0, atol=1e-6)
    np.testing.assert_allclose(prof.d2u, ref.d2u, rtol=0, atol=1e-3)


def test_new_scheme_by_subclassing():
    class Frozen(AbstractSliceScheme):
        def profile(self, U, nu, time_scale, theta):
            u = jax.vmap(U)(theta)
            zero = jnp.zeros_like(u)
            return SliceProfile(u=u, du=zero, d2u=zero, valid=jnp.ones_like(u, bool))

    prof = slice_local_entropy(_U, 1.0, 0.1, 0.3, jnp.zeros(2), scheme=Frozen())
    np.testing.assert_allclose(prof.u, [A, A])


def test_slice_static_errors():
    theta = paper_theta_grid()
    with pytest.raises(ValueError, match="convention must be 'theorem'"):
        slice_local_entropy(_U, 1.0, 0.1, 0.1, theta, convention="classic")
    assert (
        slice_local_entropy.__kwdefaults__["convention"]
        == (first_order_semigroup.__kwdefaults__["convention"])
    )
    with pytest.raises(ValueError, match="stencil must be"):
        FirstOrderFD("five-point")
    with pytest.raises(ValueError, match="num_nodes must be an int"):
        ExactCircle(4)
    with pytest.raises(ValueError, match="scheme must be ExactCircle"):
        slice_local_entropy(_U, 1.0, 0.1, 0.1, theta, scheme="exact")
    with pytest.raises(ValueError, match="at least 3 points"):
        slice_local_entropy(_U, 1.0, 0.1, 0.1, theta[:2], scheme=FirstOrderFD())


def _fd_u(g, nu, tau, theta):
    return slice_local_entropy(_U, g, nu, tau, theta, scheme=FirstOrderFD()).u


@pytest.mark.parametrize(
    "g, nu, tau, match",
    [
        (-1.0, 0.1, 0.1, "slice metric g"),
        (0.0, 0.1, 0.1, "dead unit"),
        (1.0, 0.0, 0.1, "nu must be finite and > 0"),
        (1.0, 0.1, float("nan"), "tau must be finite and ≥ 0"),
    ],
)
def test_slice_value_errors_eager_and_jit(g, nu, tau, match):
    raises_eager_and_jit(_fd_u, g, nu, tau, paper_theta_grid(), match=match)


def test_slice_grid_errors_eager_and_jit():
    theta = paper_theta_grid()
    bad = theta.at[3].set(theta[3] + 1e-3)  # not uniform
    raises_eager_and_jit(_fd_u, 1.0, 0.1, 0.1, bad, match="uniform θ grid")
    raises_eager_and_jit(_fd_u, 1.0, 0.1, 0.1, theta[::-1], match="increasing")
    nan = theta.at[0].set(jnp.nan)
    raises_eager_and_jit(_fd_u, 1.0, 0.1, 0.1, nan, match="non-finite input: theta")


def test_slice_metric_error_under_vmap_one_bad_member():
    theta = paper_theta_grid()
    run = jax.jit(jax.vmap(lambda g: _fd_u(g, 0.1, 0.1, theta)))
    assert np.all(np.isfinite(run(jnp.array([1.0, 2.0]))))
    # XLA may report the failed check through its callback as a ValueError
    with pytest.raises((*RUNTIME_ERRORS, ValueError), match="slice metric g"):
        jax.block_until_ready(run(jnp.array([1.0, -2.0])))


@pytest.mark.parametrize("convention", ["theorem", "as_printed"])
def test_first_order_fd_is_first_order_semigroup_with_the_same_keyword(convention):
    # g = 1: the slice scheme is gs.first_order_semigroup up to the O(h²) of
    # its finite differences, for either convention; both break down to +inf
    # at the bottom of a sharp well (w ≤ 0 there).
    theta = jnp.linspace(-1.0, 1.0, 2001)
    nu, tau = 0.4, 0.05
    fd = slice_local_entropy(
        _U, 1.0, nu, tau, theta, scheme=FirstOrderFD("compact"), convention=convention
    )
    ad = first_order_semigroup(_U, nu, tau, theta, convention=convention)
    np.testing.assert_allclose(fd.u[1:-1], ad[1:-1], rtol=0, atol=1e-7)

    def well(t):
        return 2.0 * t**2

    fd = slice_local_entropy(
        well,
        1.0,
        0.5,
        1.0,
        theta,
        scheme=FirstOrderFD("compact"),
        convention=convention,
    )
    ad = first_order_semigroup(well, 0.5, 1.0, theta, convention=convention)
    broken = ~np.asarray(fd.valid)
    assert broken.any() and np.all(np.asarray(ad)[broken] == np.inf)
    assert np.all(np.asarray(fd.u)[broken] == np.inf)
