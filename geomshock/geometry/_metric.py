"""Pointwise metric algebra: Cholesky factor, inverse, volume density, derivatives.

Everything here works on a single point ``q`` of shape ``(n,)``; users ``vmap``
over points. Shapes are checked at trace time (``ValueError``); a metric that
is not positive definite at a traced point fails through ``eqx.error_if``
instead of propagating NaNs.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from .._custom_types import Array, Matrix, MetricFn, Point, ScalarField


def check_point(q) -> Array:
    """Return ``q`` as an array, requiring a 1-D point of shape ``(n,)``."""
    q = jnp.asarray(q)
    if q.ndim != 1:
        raise ValueError(
            f"expected a point of shape (n,), got shape {q.shape}; "
            "use jax.vmap to evaluate at many points"
        )
    if not jnp.issubdtype(q.dtype, jnp.floating):
        q = q.astype(jnp.result_type(float))
    return q


def check_metric(metric: MetricFn, q: Point) -> None:
    """Static check that ``metric(q)`` has shape ``(n, n)`` for ``q`` of shape (n,)."""
    n = q.shape[0]
    out = jax.eval_shape(metric, q)
    shape = getattr(out, "shape", None)
    if shape != (n, n):
        raise ValueError(
            f"metric must map a point of shape ({n},) to a matrix of shape "
            f"({n}, {n}); it returned shape {shape}"
        )


def check_scalar_field(f: ScalarField, q: Point) -> None:
    """Static check that ``f(q)`` is a scalar."""
    out = jax.eval_shape(f, q)
    shape = getattr(out, "shape", None)
    if shape != ():
        raise ValueError(
            f"f must be scalar-valued, f(q) returned shape {shape} "
            f"for a point of shape {q.shape}"
        )


def cholesky(g: Matrix) -> Matrix:
    """Lower Cholesky factor of an SPD matrix, failing loudly if it is not SPD."""
    chol = jnp.linalg.cholesky(g)
    return eqx.error_if(
        chol,
        ~jnp.all(jnp.isfinite(chol)),
        "metric is not symmetric positive definite (Cholesky failed) at this point",
    )


def cho_solve(chol: Matrix, b: Array) -> Array:
    """Solve ``g x = b`` given the lower Cholesky factor of ``g``."""
    return jsl.cho_solve((chol, True), b)


def metric_and_derivative(metric: MetricFn, q: Point) -> tuple[Matrix, Array]:
    """Return ``g(q)`` and ``dg[a, b, c] = ∂_c g_ab(q)`` by forward-mode autodiff."""
    return value_and_jacobian(metric, q)


def value_and_jacobian(fn, q: Point):
    """``fn(q)`` and its Jacobian (trailing axis = derivative) in one forward pass."""

    def value_and_value(p):
        y = fn(p)
        return y, y

    jac, y = jax.jacfwd(value_and_value, has_aux=True)(q)
    return y, jac


def inverse_metric(metric: MetricFn) -> MetricFn:
    """``q -> g^{-1}(q)``, computed from the Cholesky factor of ``g(q)``.

    Supports ``jit``, ``vmap`` over points and ``grad``.
    """

    def g_inv(q):
        q = check_point(q)
        check_metric(metric, q)
        chol = cholesky(metric(q))
        return cho_solve(chol, jnp.eye(q.shape[0], dtype=chol.dtype))

    return g_inv


def volume_density(metric: MetricFn, *, log: bool = False) -> ScalarField:
    """``q -> sqrt|det g(q)|`` (or its logarithm with ``log=True``).

    Computed from the Cholesky factor: ``log sqrt|g| = Σ_i log L_ii``.
    """

    def density(q):
        q = check_point(q)
        check_metric(metric, q)
        chol = cholesky(metric(q))
        log_density = jnp.sum(jnp.log(jnp.diagonal(chol)))
        return log_density if log else jnp.exp(log_density)

    return density
