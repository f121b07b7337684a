"""Differential operators of a Riemannian metric given as a JAX function.

All operators take functions and return functions of a single point ``q`` of
shape ``(n,)``. Metric derivatives come from forward-mode autodiff of
``metric``; linear solves use its Cholesky factor. Every returned function
works under ``jax.jit``, ``jax.vmap`` (over points) and ``jax.grad`` (with
respect to anything ``f`` or ``metric`` closes over).
"""

import jax
import jax.numpy as jnp

from .._custom_types import MetricFn, Point, ScalarField, VectorField
from ._metric import (
    check_metric_shape,
    check_point,
    check_scalar_field,
    cho_solve,
    cholesky,
    metric_and_derivative,
    value_and_jacobian,
)


def _prepare(metric: MetricFn, q, f: ScalarField | None = None) -> Point:
    q = check_point(q)
    check_metric_shape(metric, q)
    if f is not None:
        check_scalar_field(f, q)
    return q


def _contracted_christoffel_lowered(g_inv, dg):
    """``c_l = g^{ij} ∂_i g_lj − ½ g^{ij} ∂_l g_ij``; ``g^{ij}Γ^k_ij = g^{kl} c_l``."""
    return jnp.einsum("ij,lji->l", g_inv, dg) - 0.5 * jnp.einsum("ij,ijl->l", g_inv, dg)


def christoffel(metric: MetricFn):
    r"""Christoffel symbols of the second kind of the Levi-Civita connection.

    ``Γ^k_ij = ½ g^{kl} (∂_i g_lj + ∂_j g_li − ∂_l g_ij)``.

    Args:
        metric: ``q -> g(q)``, a symmetric positive definite ``(n, n)`` matrix.

    Returns:
        ``q -> Γ`` with ``Γ[k, i, j] = Γ^k_ij`` (symmetric in ``i, j``).
    """

    def gamma(q):
        q = _prepare(metric, q)
        g, dg = metric_and_derivative(metric, q)
        # dg[a, b, c] = ∂_c g_ab; lowered[l, i, j] = Γ_{l i j}.
        lowered = 0.5 * (
            jnp.transpose(dg, (0, 2, 1)) + dg - jnp.transpose(dg, (2, 0, 1))
        )
        chol = cholesky(g)
        n = q.shape[0]
        return cho_solve(chol, lowered.reshape(n, n * n)).reshape(n, n, n)

    return gamma


def gradient(f: ScalarField, metric: MetricFn) -> VectorField:
    r"""Riemannian gradient ``(grad f)^i = g^{ij} ∂_j f``.

    Returns:
        ``q -> grad f(q)``, an array of shape ``(n,)``.

    Example:
        >>> import jax.numpy as jnp
        >>> polar = lambda q: jnp.diag(jnp.array([1.0, q[0] ** 2]))
        >>> gradient(lambda q: q[0] * q[1], polar)(jnp.array([2.0, 3.0])).tolist()
        [3.0, 0.5]
    """

    def grad_g(q):
        q = _prepare(metric, q, f)
        return cho_solve(cholesky(metric(q)), jax.grad(f)(q))

    return grad_g


def grad_norm_sq(f: ScalarField, metric: MetricFn) -> ScalarField:
    r"""Squared Riemannian gradient norm ``|grad f|²_g = g^{ij} ∂_i f ∂_j f``."""

    def norm_sq(q):
        q = _prepare(metric, q, f)
        df = jax.grad(f)(q)
        return df @ cho_solve(cholesky(metric(q)), df)

    return norm_sq


def divergence(vector_field: VectorField, metric: MetricFn) -> ScalarField:
    r"""Riemannian divergence ``div X = |g|^{-1/2} ∂_i(|g|^{1/2} X^i)``.

    Evaluated as ``∂_i X^i + X^i ∂_i log sqrt|g|`` with
    ``∂_i log sqrt|g| = ½ tr(g^{-1} ∂_i g)``.
    """

    def div(q):
        q = _prepare(metric, q)
        out = jax.eval_shape(vector_field, q)
        if getattr(out, "shape", None) != q.shape:
            raise ValueError(
                f"vector_field must map a point of shape {q.shape} to shape "
                f"{q.shape}; it returned shape {getattr(out, 'shape', None)}"
            )
        x, jac = value_and_jacobian(vector_field, q)
        g, dg = metric_and_derivative(metric, q)
        chol = cholesky(g)
        g_inv = cho_solve(chol, jnp.eye(q.shape[0], dtype=chol.dtype))
        dlog_density = 0.5 * jnp.einsum("ab,abi->i", g_inv, dg)
        return jnp.trace(jac) + x @ dlog_density

    return div


def laplace_beltrami(f: ScalarField, metric: MetricFn) -> ScalarField:
    r"""Laplace–Beltrami operator of ``metric`` applied to ``f``.

    ``Δf = |g|^{-1/2} ∂_i(|g|^{1/2} g^{ij} ∂_j f) = g^{ij}(∂_ij f − Γ^k_ij ∂_k f)``,
    with the sign convention that makes ``Δ`` negative semidefinite (on the unit
    sphere, spherical harmonics of degree ``l`` have eigenvalue ``−l(l+1)``).
    The heat semigroup used throughout geomshock is ``exp((t/2)Δ)``.

    ``∂g`` comes from ``jax.jacfwd(metric)``, ``∂f`` and ``∂²f`` from autodiff of
    ``f``; no finite differences. Cost per point: one Hessian of ``f`` and one
    Jacobian of ``metric`` (``n`` forward passes each).

    Args:
        f: ``(n,) -> scalar``.
        metric: ``(n,) -> (n, n)``, symmetric positive definite.

    Returns:
        ``q -> Δf(q)``. Supports ``jit``, ``vmap`` over ``q`` and ``grad`` with
        respect to parameters that ``f`` or ``metric`` close over.

    Example:
        >>> import jax.numpy as jnp
        >>> sphere = lambda q: jnp.diag(jnp.array([1.0, jnp.sin(q[0]) ** 2]))
        >>> lap = laplace_beltrami(lambda q: jnp.cos(q[0]), sphere)
        >>> round(float(lap(jnp.array([0.7, 0.1])) / jnp.cos(0.7)), 6)
        -2.0
    """

    def lap(q):
        q = _prepare(metric, q, f)
        df, hess = _grad_and_hessian(f, q)
        g, dg = metric_and_derivative(metric, q)
        chol = cholesky(g)
        g_inv = cho_solve(chol, jnp.eye(q.shape[0], dtype=chol.dtype))
        c = _contracted_christoffel_lowered(g_inv, dg)
        return jnp.sum(g_inv * hess) - c @ (g_inv @ df)

    return lap


def _grad_and_hessian(f: ScalarField, q: Point):
    """Gradient and Hessian of ``f`` at ``q`` (forward-over-reverse)."""
    return value_and_jacobian(jax.grad(f), q)
