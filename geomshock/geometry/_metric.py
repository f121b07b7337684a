"""Pointwise metric algebra: shape and symmetry checks, Cholesky factor, derivatives.

Everything here works on a single point ``q`` of shape ``(n,)``; users ``vmap``
over points. Shapes are checked at trace time (``ValueError``); a metric that
is not positive definite at a traced point fails through ``eqx.error_if``
instead of propagating NaNs.
"""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import lineax as lx
import numpy as np

from .._checks import concrete, per_dtype, run_time_check
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


def check_metric_shape(metric: MetricFn, q: Point) -> None:
    """Static check that ``metric(q)`` is ``(n, n)`` for ``q`` of shape (n,): an
    array of that shape, or a lineax operator from and to shape ``(n,)``."""
    n = q.shape[0]
    out = jax.eval_shape(metric, q)
    if isinstance(out, lx.AbstractLinearOperator):
        shapes = [
            getattr(s, "shape", None) for s in (out.in_structure(), out.out_structure())
        ]
        if shapes != [(n,), (n,)]:
            raise ValueError(
                f"metric must map a point of shape ({n},) to a lineax operator "
                f"from and to shape ({n},); it returned an operator with input "
                f"shape {shapes[0]} and output shape {shapes[1]}"
            )
        return
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


def symmetry_rtol(dtype) -> float:
    """Default relative symmetry tolerance of a metric: 1e-8 (float64), 1e-4 (float32).

    Metrics formed as ``Jᵀ P J`` are symmetric to a few ulps of their largest
    entry; a user metric that is not symmetric is typically off by O(1).
    """
    return per_dtype(dtype, float64=1e-8, float32=1e-4)


def check_metric(g: Matrix, name: str = "metric", *, rtol: float | None = None):
    """``g`` itself, after checking that it is symmetric to a relative tolerance.

    ``max |g − gᵀ| ≤ rtol · max |g|`` with ``rtol`` from :func:`symmetry_rtol`
    by default. A known (concrete) ``g`` raises ``ValueError``; a traced one
    fails at run time through ``eqx.error_if``, so use the returned value.
    Cholesky-based solvers read one triangle only and would otherwise accept a
    non-symmetric matrix silently.

    >>> import jax.numpy as jnp
    >>> check_metric(jnp.eye(2)).shape
    (2, 2)
    >>> check_metric(jnp.array([[1.0, 0.5], [0.0, 1.0]]))
    Traceback (most recent call last):
    ...
    ValueError: metric is not symmetric: max |g − gᵀ| = 0.5 ...
    """
    g = jnp.asarray(g)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"{name} must be a square matrix; got shape {g.shape}")
    rtol = symmetry_rtol(g.dtype) if rtol is None else rtol
    expected = (
        f"expected a symmetric matrix (relative tolerance {rtol:g}); "
        "symmetrize it, e.g. return 0.5 * (g + g.T)"
    )
    g_c = concrete(g)
    if g_c is not None:
        asym = float(np.max(np.abs(g_c - g_c.T), initial=0.0))
        scale = float(np.max(np.abs(g_c), initial=0.0))
        if asym > rtol * scale:
            raise ValueError(
                f"{name} is not symmetric: max |g − gᵀ| = {asym:.3g} with "
                f"max |g| = {scale:.3g}; {expected}"
            )
        return g
    bad = jnp.max(jnp.abs(g - g.T)) > rtol * jnp.max(jnp.abs(g))
    return run_time_check(g, bad, f"{name} is not symmetric: {expected}")


def cholesky(g: Matrix) -> Matrix:
    """Lower Cholesky factor of a symmetric positive definite matrix.

    Fails loudly (``ValueError`` now, ``eqx.error_if`` when traced) when ``g``
    is not symmetric, and when the factorisation breaks down (not SPD).
    """
    chol = jnp.linalg.cholesky(check_metric(g))
    return run_time_check(
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
