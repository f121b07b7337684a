"""spectral_density: SLQ quadrature against the dense eigendecomposition (the
Gauss-quadrature moment identities probe by probe, exact nodes at full depth),
the broadened density against numpy, gauge invariance, jit/vmap, errors."""

import jax
import jax.numpy as jnp
import matfree.stochtrace
import numpy as np
import pytest
import scipy.linalg
from jax.flatten_util import ravel_pytree

from geomshock._checks import NonFiniteInputError
from geomshock.charts import SphereChart, orbit_tangents as tangents_of
from geomshock.charts._action import horizontal_project_matrix
from geomshock.diagnostics import spectral_density
from geomshock.geometry import christoffel

from .._errors import raises_eager_and_jit
from .test_curvature import random_params

CHART = SphereChart((4,))  # dim 3: a scale-invariant weight vector
_A = jnp.array([[2.0, 0.5, 0.0, 0.1], [0.5, -1.0, 0.3, 0.0], [0.0, 0.3, 0.5, -0.4]])


def LOSS(w):  # noqa: N802 (a constant of the module)
    s = w / jnp.linalg.norm(w)
    return jnp.sum((_A @ s) ** 2) + (s[0] - 0.3 * s[3]) ** 3


GRID = jnp.linspace(-4.0, 8.0, 600)
SIGMA = 0.15
KEY = jax.random.PRNGKey(3)
PROBES = 3


def _all_methods(loss, chart, depths):
    def run(params):
        kw = dict(grid=GRID, chart=chart, sigma=SIGMA, key=KEY)
        dense = spectral_density(loss, params, method="dense", **kw)
        slq = {
            k: spectral_density(
                loss, params, method="slq", num_probes=PROBES, num_lanczos=k, **kw
            )
            for k in depths
        }
        return dense, slq

    return run


def _raw_loss(p):
    a = jnp.array([[2.0, 0.5, 0.0], [0.5, -1.0, 0.3], [0.0, 0.3, 0.5]])
    return 0.5 * p["x"] @ a @ p["x"] + 0.2 * jnp.sum(p["x"] ** 4) + p["y"] ** 3


@pytest.fixture(scope="module")
def quotient():
    params = CHART.lift(CHART.project(random_params(CHART, 1)))
    moved = CHART.gauge(params, jax.random.PRNGKey(9), 0.8)
    # depth 2 < dim = 3 (full depth is checked on the raw Hessian)
    run = jax.jit(_all_methods(LOSS, CHART, (2,)))
    return params, run(params), run(moved)


@pytest.fixture(scope="module")
def raw():
    params = [{"x": jnp.array([0.3, -0.2, 0.5]), "y": jnp.array(0.4)}]
    params.append({"x": jnp.array([1.0, 0.1, -0.4]), "y": jnp.array(-0.2)})
    both = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *params)
    return params, jax.jit(jax.vmap(_all_methods(_raw_loss, None, (3, 4))))(both)


def _quotient_reference(params):
    """Dense pencil by jax.hessian and geometry.christoffel, scipy's eigh, and
    the probes z = Jᵀε rebuilt from the dense horizontal Jacobian."""
    flat = lambda p: ravel_pytree(CHART.lift(p))[0]

    @jax.jit
    def pencil_and_jacobian(q):
        U = lambda p: LOSS(CHART.lift(p))
        h = jax.hessian(U)(q) - jnp.einsum(
            "kij,k->ij", christoffel(CHART.metric)(q), jax.grad(U)(q)
        )
        jac = horizontal_project_matrix(
            tangents_of(CHART.action, CHART.lift(q)), jax.jacfwd(flat)(q)
        )
        return h, CHART.metric(q), jac

    q = CHART.project(params)
    h, g, jac = pencil_and_jacobian(q)
    vals, vecs = scipy.linalg.eigh(np.asarray(0.5 * (h + h.T)), np.asarray(g))
    eps = matfree.stochtrace.sampler_signs(flat(q), num=PROBES)(KEY)
    return vals, vecs, eps @ jac


def _check_quadrature(out, vals, vecs, probes, n):
    """Probe by probe: Σ_j τ_j θ_j^m = Σ_i λ_i^m (v_iᵀ z)² for m < 2k."""
    coeff = (probes @ vecs) ** 2  # (P, n)
    for k, res in out.items():
        tau = np.asarray(res["weights"]) * PROBES * n
        nodes = np.asarray(res["nodes"])
        for m in range(2 * k):
            exact = coeff @ vals**m
            got = np.sum(tau * nodes**m, axis=1)
            np.testing.assert_allclose(got, exact, rtol=1e-7, atol=1e-9 * (1 + m))
    if n not in out:
        return
    full = out[n]
    np.testing.assert_allclose(full["nodes"], np.tile(vals, (PROBES, 1)), atol=1e-8)
    np.testing.assert_allclose(
        np.asarray(full["weights"]) * PROBES * n, coeff, rtol=1e-6, atol=1e-10
    )


def _broadened(vals):
    z = (np.asarray(GRID)[:, None] - vals[None]) / SIGMA
    return np.mean(np.exp(-0.5 * z**2), axis=1) / (SIGMA * np.sqrt(2 * np.pi))


def test_quotient_slq_is_gauss_quadrature_of_the_dense_pencil(quotient):
    params, (dense, first), _ = quotient
    vals, vecs, probes = _quotient_reference(params)
    np.testing.assert_allclose(dense["nodes"][0], vals, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(dense["density"], _broadened(vals), rtol=1e-9)
    _check_quadrature(first, vals, vecs, np.asarray(probes), CHART.dim)
    # integral and first moment of the density: Σ w and Σ w θ (wide grid)
    density, w, nodes = first[2]["density"], first[2]["weights"], first[2]["nodes"]
    np.testing.assert_allclose(jnp.trapezoid(density, GRID), jnp.sum(w), rtol=1e-8)
    np.testing.assert_allclose(
        jnp.trapezoid(density * GRID, GRID), jnp.sum(w * nodes), rtol=1e-8
    )


def test_quotient_density_is_gauge_invariant(quotient):
    _, (dense, slq), (dense_moved, slq_moved) = quotient
    for res, moved in ((dense, dense_moved), (slq[2], slq_moved[2])):
        scale = float(jnp.max(res["density"]))
        np.testing.assert_allclose(
            moved["density"], res["density"], rtol=1e-8, atol=1e-8 * scale
        )


def test_raw_slq_against_dense_hessian_and_vmap(raw):
    params, (dense, slq) = raw
    flat = [ravel_pytree(p)[0] for p in params]
    for i, p in enumerate(params):
        unravel = ravel_pytree(p)[1]
        hess = np.asarray(
            jax.jit(jax.hessian(lambda x, u=unravel: _raw_loss(u(x))))(flat[i])
        )
        vals, vecs = np.linalg.eigh(hess)
        np.testing.assert_allclose(dense["nodes"][i, 0], vals, rtol=1e-12)
        np.testing.assert_allclose(dense["density"][i], _broadened(vals), rtol=1e-9)
        eps = np.asarray(matfree.stochtrace.sampler_signs(flat[i], num=PROBES)(KEY))
        one = jax.tree_util.tree_map(lambda x, i=i: x[i], slq)
        _check_quadrature(one, vals, vecs, eps, 4)
        # Rademacher probes: the weights sum to exactly 1
        np.testing.assert_allclose(jnp.sum(one[3]["weights"]), 1.0, rtol=1e-12)


def test_spectral_density_bad_input():
    params = random_params(CHART, 1)
    with pytest.raises(ValueError, match="grid must be a 1-D array"):
        spectral_density(LOSS, params, grid=jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        spectral_density(LOSS, params, grid=GRID, sigma=-1.0)
    with pytest.raises(ValueError, match="method must be 'dense', 'slq'"):
        spectral_density(LOSS, params, grid=GRID, method="lanczos")
    with pytest.raises(ValueError, match="num_lanczos must be ≤ dim"):
        spectral_density(LOSS, params, grid=GRID, method="slq", num_lanczos=5)
    with pytest.raises(ValueError, match="expects params with shapes"):
        spectral_density(LOSS, params[:2], grid=GRID, chart=CHART)
    quad = lambda p: jnp.sum(p**2)
    bad_grid = GRID.at[3].set(jnp.nan)
    raises_eager_and_jit(
        lambda g: spectral_density(quad, jnp.ones(2), grid=g)["density"],
        bad_grid,
        match="non-finite input",
        eager=NonFiniteInputError,
    )
    raises_eager_and_jit(
        lambda p: spectral_density(quad, p, grid=GRID)["density"],
        jnp.array([1.0, jnp.nan]),
        match="non-finite input",
        eager=NonFiniteInputError,
    )
