"""Exact Laplace–Beltrami in trace form and metrics passed as lineax operators.

References: the former dense implementation (the full ``∂g`` from
``jax.jacfwd``, contracted Christoffel symbols), written out here, and the
conformal closed form ``Δf = e^{−2φ}(Δ₀f + (n − 2)∇φ·∇f)`` at n = 1000.
"""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import geomshock as gs
from geomshock.geometry import low_rank_plus_diagonal, point_metric, scaled_identity

from .._errors import raises_eager_and_jit

N = 5
_KEYS = jax.random.split(jax.random.PRNGKey(0), 3)
_A = jax.random.normal(_KEYS[0], (N, N))
_U = jax.random.normal(_KEYS[1], (N, 2))


def f(q):
    k = jnp.arange(1, q.shape[0] + 1)
    return jnp.sum(jnp.sin(k * q) / k) + jnp.prod(jnp.cos(q[:3])) + q[0] * q[-1] ** 2


def _diag(q):
    return jnp.exp(0.3 * jnp.sin(_A @ q))


def _factor(q):
    return jnp.tanh(_U + 0.2 * q[:, None])


def _scale(q):
    return jnp.exp(0.4 * jnp.sum(jnp.sin(q)))


def _dense(q):
    m = jnp.cos(_A * q[None, :])
    return m @ m.T + jnp.eye(N)


def _identity(q):
    return lx.IdentityLinearOperator(jax.ShapeDtypeStruct((N,), q.dtype))


# name -> (metric returning a lineax operator or array, the same as an array)
METRICS = {
    "identity": (_identity, lambda q: jnp.eye(N, dtype=q.dtype)),
    "conformal": (
        lambda q: scaled_identity(_scale(q), N),
        lambda q: _scale(q) * jnp.eye(N),
    ),
    "conformal_div": (
        lambda q: _identity(q) / _scale(q),
        lambda q: jnp.eye(N) / _scale(q),
    ),
    "diagonal": (
        lambda q: lx.DiagonalLinearOperator(_diag(q)),
        lambda q: jnp.diag(_diag(q)),
    ),
    "low_rank": (
        lambda q: low_rank_plus_diagonal(_diag(q), _factor(q)),
        lambda q: jnp.diag(_diag(q)) + _factor(q) @ _factor(q).T,
    ),
    "matrix_operator": (lambda q: lx.MatrixLinearOperator(_dense(q)), _dense),
    "dense": (_dense, _dense),
}
STRUCTURE = {
    "identity": "ScaledIdentityMetric",
    "conformal": "ScaledIdentityMetric",
    "conformal_div": "ScaledIdentityMetric",
    "diagonal": "DiagonalMetric",
    "low_rank": "LowRankPlusDiagonalMetric",
    "matrix_operator": "DenseMetric",
    "dense": "DenseMetric",
}
POINTS = jax.random.normal(_KEYS[2], (3, N))


def dense_reference(f, metric):
    """The former implementation: ``g^{ij}∂_ij f − c_l (g^{-1}∇f)^l`` with the
    full ``∂g`` and ``c_l = g^{ij}∂_i g_lj − ½ g^{ij}∂_l g_ij``."""

    def lap(q):
        g, dg = metric(q), jax.jacfwd(metric)(q)
        g_inv = jnp.linalg.inv(g)
        c = jnp.einsum("ij,lji->l", g_inv, dg) - 0.5 * jnp.einsum(
            "ij,ijl->l", g_inv, dg
        )
        return jnp.sum(g_inv * jax.hessian(f)(q)) - c @ (g_inv @ jax.grad(f)(q))

    return lap


@pytest.mark.parametrize("name", sorted(METRICS))
def test_trace_form_matches_dense_reference(name):
    structured, dense = METRICS[name]
    assert type(point_metric(structured(POINTS[0]))).__name__ == STRUCTURE[name]
    variants = [{}]
    if name in ("low_rank", "dense"):  # chunked JVPs, Hessian-vector products
        variants.append({"batch_size": 2, "hessian": "reverse"})

    @jax.jit
    def both(points):
        expected = jax.vmap(dense_reference(f, dense))(points)
        return expected, [
            jax.vmap(gs.laplace_beltrami(f, structured, **options))(points)
            for options in variants
        ]

    expected, results = both(POINTS)
    scale = float(jnp.max(jnp.abs(expected)))
    for got in results:
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13 * scale)


@jax.jit
def _low_rank_operators(q):
    structured, dense = METRICS["low_rank"]
    g = dense(q)
    df = jax.grad(f)(q)
    got = (
        gs.gradient(f, structured)(q),
        gs.geometry.grad_norm_sq(f, structured)(q),
        gs.geometry.inverse_metric(structured)(q),
        gs.geometry.volume_density(structured)(q),
        gs.geometry.divergence(gs.gradient(f, structured), structured)(q),
        gs.christoffel(structured)(q),
    )
    g_inv = jnp.linalg.inv(g)
    expected = (
        g_inv @ df,
        df @ g_inv @ df,
        g_inv,
        jnp.sqrt(jnp.linalg.det(g)),
        dense_reference(f, dense)(q),
        gs.christoffel(dense)(q),
    )
    return got, expected


def test_other_operators_accept_structured_metrics():
    got, expected = _low_rank_operators(POINTS[1])
    for name, a, b in zip(
        ["gradient", "norm", "inverse", "density", "divergence", "Γ"],
        got,
        expected,
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=name)


def _conformal_1000(alpha):
    def phi(q):
        return alpha * jnp.sum(jnp.sin(q))

    def cheap_f(q):
        k = jnp.arange(1, q.shape[0] + 1)
        return jnp.sum(jnp.cos(k * q) / k) + q[0] * q[-1]

    def closed_form(q):
        # Δ₀f and ∇f of the separable f in closed form (no n × n Hessian).
        k = jnp.arange(1, q.shape[0] + 1)
        flat = -jnp.sum(k * jnp.cos(k * q)) + 0.0
        grad_f = (-jnp.sin(k * q)).at[0].add(q[-1]).at[-1].add(q[0])
        n = q.shape[0]
        return jnp.exp(-2 * phi(q)) * (flat + (n - 2) * jax.grad(phi)(q) @ grad_f)

    return phi, cheap_f, closed_form


def test_dimension_1000_conformal_closed_form_in_bounded_memory():
    n = 1000
    alpha = 0.02
    phi, cheap_f, closed_form = _conformal_1000(alpha)
    q = jax.random.normal(jax.random.PRNGKey(9), (n,))

    def structured(p):
        return scaled_identity(jnp.exp(2 * phi(p)), n)

    lap = jax.jit(gs.laplace_beltrami(cheap_f, structured))
    expected = closed_form(q)
    np.testing.assert_allclose(lap(q), expected, rtol=1e-10)
    # The dense array form never holds the n × n × n derivative (8 GB here):
    # compiled, its peak is a few n × n arrays and cache-sized JVP chunks.
    dense = jax.jit(
        gs.laplace_beltrami(
            cheap_f, lambda p: jnp.exp(2 * phi(p)) * jnp.eye(n, dtype=p.dtype)
        )
    )
    memory = dense.lower(q).compile().memory_analysis()
    assert memory.temp_size_in_bytes < 40 * n * n * 8  # O(n²), not 8e9 bytes
    assert abs(float(expected)) > 1.0


def test_grad_with_respect_to_a_structured_metric_parameter():
    q = POINTS[0]

    def scale(alpha):
        return lambda p: jnp.exp(2 * alpha * jnp.sum(jnp.sin(p)))

    @jax.jit
    def derivatives(alpha):
        def structured(a):
            return gs.laplace_beltrami(f, lambda p: scaled_identity(scale(a)(p), N))(q)

        def reference(a):
            return dense_reference(f, lambda p: scale(a)(p) * jnp.eye(N))(q)

        return jax.grad(structured)(alpha), jax.grad(reference)(alpha)

    d_structured, d_reference = derivatives(0.3)
    np.testing.assert_allclose(d_structured, d_reference, rtol=1e-12)
    assert abs(float(d_reference)) > 0.1


def test_reverse_hessian_for_custom_vjp_f():
    @jax.custom_vjp
    def softplus(x):
        return jnp.logaddexp(x, 0.0)

    softplus.defvjp(lambda x: (softplus(x), x), lambda x, ct: (ct * jax.nn.sigmoid(x),))

    def g(q):
        return jnp.sum(softplus(q) * jnp.arange(1.0, N + 1))

    def plain(q):
        return jnp.sum(jnp.logaddexp(q, 0.0) * jnp.arange(1.0, N + 1))

    metric = METRICS["diagonal"][0]

    @jax.jit
    def both(q):
        got = gs.laplace_beltrami(g, metric, hessian="reverse")(q)
        return got, gs.laplace_beltrami(plain, metric)(q)

    got, expected = both(POINTS[2])
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def _bad_diagonal(q):
    return lx.DiagonalLinearOperator(jnp.stack([1.0 + q[0] ** 2, -1.0 - q[1] ** 2]))


def _bad_scale(q):
    return scaled_identity(-jnp.exp(q[0]), 2)


def _non_symmetric_low_rank(q):
    u = jnp.stack([q, 2 * q], axis=1)
    low = lx.MatrixLinearOperator(u) @ lx.MatrixLinearOperator(u.T + 1.0)
    return lx.DiagonalLinearOperator(jnp.ones(2)) + low


@pytest.mark.parametrize(
    "metric, match",
    [
        (_bad_diagonal, "diagonal entry must be finite and > 0"),
        (_bad_scale, "scale c of g = c I must be finite and > 0"),
        (_non_symmetric_low_rank, "needs B = Aᵀ"),
    ],
)
def test_bad_structured_metric_eager_and_jit(metric, match):
    raises_eager_and_jit(
        gs.laplace_beltrami(lambda q: q[0] * q[1], metric),
        jnp.array([0.5, 0.3]),
        match=match,
    )


def test_bad_options_and_shapes():
    with pytest.raises(ValueError, match="batch_size must be an integer ≥ 1"):
        gs.laplace_beltrami(f, _dense, batch_size=0)
    with pytest.raises(ValueError, match="hessian must be 'forward' or 'reverse'"):
        gs.laplace_beltrami(f, _dense, hessian="dense")
    with pytest.raises(ValueError, match=r"lineax operator from and to shape \(5,\)"):
        gs.laplace_beltrami(f, lambda q: lx.DiagonalLinearOperator(jnp.ones(4)))(
            POINTS[0]
        )
    with pytest.raises(ValueError, match=r"factor of shape \(n, r\)"):
        low_rank_plus_diagonal(jnp.ones(3), jnp.ones((4, 2)))
