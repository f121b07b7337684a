"""Differential operators of a Riemannian metric given as a JAX function.

All operators take functions and return functions of a single point ``q`` of
shape ``(n,)``. ``metric(q)`` is an ``(n, n)`` array or a lineax operator whose
structure (flat, conformal, diagonal, low rank plus diagonal; see
``_point_metric``) the operators exploit. Metric derivatives are JVPs of
``metric``, one direction at a time (never the ``n × n × n`` array ``∂g``,
except in :func:`christoffel`, which returns it contracted into ``Γ``); linear
solves use the structure (a Cholesky factor for a dense metric). Every returned
function works under ``jax.jit``, ``jax.vmap`` (over points) and ``jax.grad``
(with respect to anything ``f`` or ``metric`` closes over).
"""

from typing import Literal

import jax
import jax.numpy as jnp

from .._checks import positive_int
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
from ._point_metric import map_directions, metric_matrix, point_metric

HessianMode = Literal["forward", "reverse"]

# Metric tangent entries per chunk of the JVPs of ``metric`` (512 KB in
# float64): a dense metric's JVP in one direction is n × n. Cache-sized chunks
# were also faster than one vmap over all directions: 25 ms instead of 280 ms
# for the n = 1000 JVPs of a rank-8-plus-diagonal metric (2-core CPU).
_METRIC_TANGENT_BUDGET = 2**16


def _prepare(metric: MetricFn, q, f: ScalarField | None = None) -> Point:
    q = check_point(q)
    check_metric_shape(metric, q)
    if f is not None:
        check_scalar_field(f, q)
    return q


def christoffel(metric: MetricFn):
    r"""Christoffel symbols of the second kind of the Levi-Civita connection.

    ``Γ^k_ij = ½ g^{kl} (∂_i g_lj + ∂_j g_li − ∂_l g_ij)``.

    Forms the ``n × n × n`` array ``∂g`` (``jax.jacfwd(metric)``) and returns
    ``n³`` numbers: meant for small ``n``. :func:`laplace_beltrami` needs only
    the contraction ``g^{ij}Γ^k_ij`` and never calls this.

    Args:
        metric: ``q -> g(q)``, a symmetric positive definite ``(n, n)`` matrix
            (or a lineax operator, materialised).

    Returns:
        ``q -> Γ`` with ``Γ[k, i, j] = Γ^k_ij`` (symmetric in ``i, j``).
    """

    def dense_metric(p):
        return metric_matrix(metric(p))

    def gamma(q):
        q = _prepare(metric, q)
        g, dg = metric_and_derivative(dense_metric, q)
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
        return point_metric(metric(q)).solve(jax.grad(f)(q))

    return grad_g


def grad_norm_sq(f: ScalarField, metric: MetricFn) -> ScalarField:
    r"""Squared Riemannian gradient norm ``|grad f|²_g = g^{ij} ∂_i f ∂_j f``."""

    def norm_sq(q):
        q = _prepare(metric, q, f)
        df = jax.grad(f)(q)
        return df @ point_metric(metric(q)).solve(df)

    return norm_sq


def inverse_metric(metric: MetricFn) -> MetricFn:
    """``q -> g^{-1}(q)`` as an ``(n, n)`` array, from the metric's structure
    (the Cholesky factor of a dense ``g``).

    Supports ``jit``, ``vmap`` over points and ``grad``.
    """

    def g_inv(q):
        q = _prepare(metric, q)
        return point_metric(metric(q)).inverse()

    return g_inv


def volume_density(metric: MetricFn, *, log: bool = False) -> ScalarField:
    """``q -> sqrt|det g(q)|`` (or its logarithm with ``log=True``).

    From the metric's structure: ``log sqrt|g| = Σ_i log L_ii`` with the
    Cholesky factor ``L`` of a dense ``g``.
    """

    def density(q):
        q = _prepare(metric, q)
        log_density = 0.5 * point_metric(metric(q)).logdet()
        return log_density if log else jnp.exp(log_density)

    return density


def divergence(vector_field: VectorField, metric: MetricFn) -> ScalarField:
    r"""Riemannian divergence ``div X = |g|^{-1/2} ∂_i(|g|^{1/2} X^i)``.

    Evaluated as ``∂_i X^i + ½ D_X log det g``, the second term one JVP of the
    metric in the direction ``X`` (``O(n²)`` memory).
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
        at_q = point_metric(metric(q))
        factors = at_q.inverse_factors()
        return jnp.trace(jac) + 0.5 * at_q.logdet_derivative(metric, q, x, factors)

    return div


def laplace_beltrami(
    f: ScalarField,
    metric: MetricFn,
    *,
    batch_size: int | None = None,
    hessian: HessianMode = "forward",
) -> ScalarField:
    r"""Laplace–Beltrami operator of ``metric`` applied to ``f``, exactly.

    ``Δf = |g|^{-1/2} ∂_i(|g|^{1/2} g^{ij} ∂_j f) = g^{ij}(∂_ij f − Γ^k_ij ∂_k f)``,
    with the sign convention that makes ``Δ`` negative semidefinite (on the unit
    sphere, spherical harmonics of degree ``l`` have eigenvalue ``−l(l+1)``).
    The heat semigroup used throughout geomshock is ``exp((t/2)Δ)``.

    Evaluated in trace form, without the ``n × n × n`` array ``∂g``: with
    ``X = g^{-1}∇f`` and ``g^{ij}Γ^k_ij ∂_k f = g^{ij}∂_i g_{jl} X^l − ½ D_X
    log det g``,

    ``Δf = tr(g^{-1} ∂²f) − tr(g^{-1} J) + ½ D_X log det g``,
    ``J = ∂(g(p) X)/∂p`` at fixed ``X``.

    Write ``g^{-1} = V Vᵀ − W Wᵀ`` from the structure of ``metric(q)`` (``V =
    L^{-ᵀ}`` for a dense ``g = L Lᵀ``). Then ``tr(g^{-1}∂²f) = Σ_k ∂²f[v_k, v_k]
    − Σ_j ∂²f[w_j, w_j]``: second directional derivatives of ``f`` along the
    columns, forward over forward (a forward Laplacian, as folx computes it;
    their first-order parts give ``Vᵀ∇f`` and ``Wᵀ∇f``, hence ``X``), and
    ``tr(g^{-1} J) = Σ_k v_k·J v_k − Σ_j w_j·J w_j``, one JVP of ``p ↦ g(p)X``
    per column. ``D_X log det g`` is one more JVP. No finite differences.

    Cost per point, ``n`` the dimension (``metric(q)`` may return a lineax
    operator, see ``geomshock.geometry.point_metric``):

    ========================  =====================================  ==============
    ``metric(q)``             work                                   memory
    ========================  =====================================  ==============
    identity, ``c · I``       ``n`` directions of ``f``, 1 JVP of    ``O(n²)``
                              the metric
    ``diag(d)``               ``n`` directions of ``f``, ``n + 1``   ``O(n²)``
                              JVPs of the metric
    ``diag(d) + U Uᵀ``        ``n + r`` directions of ``f``,         ``O(n² + nr)``
    (rank ``r``)              ``n + r + 1`` JVPs, Woodbury
    dense array / operator    Cholesky ``O(n³)``, ``n`` directions,  ``O(n²)``
                              ``n + 1`` JVPs of the metric
    ========================  =====================================  ==============

    The directions of ``f`` are evaluated in one ``vmap`` (memory ``n`` times
    ``f``'s activations, as for ``jax.hessian``) unless ``batch_size`` is given;
    the JVPs of a metric are chunked (``lax.map``) so that at most ``2**16``
    metric tangent entries (512 KB in float64) are held at once, or
    ``batch_size`` directions.

    Args:
        f: ``(n,) -> scalar``.
        metric: ``(n,) -> (n, n)`` symmetric positive definite, or a lineax
            operator (``lx.IdentityLinearOperator``, ``c * lx.IdentityLinearOperator``,
            ``lx.DiagonalLinearOperator``, :func:`low_rank_plus_diagonal`;
            any other operator is materialised with ``as_matrix``).
        batch_size: directions per chunk (``lax.map``) in both passes, to bound
            memory; default: all directions of ``f`` at once, metric JVPs
            chunked as above.
        hessian: ``"forward"`` (forward over forward, the fastest) or
            ``"reverse"`` (Hessian-vector products, forward over reverse: for an
            ``f`` with a ``jax.custom_vjp`` and no forward rule).

    Returns:
        ``q -> Δf(q)``. Supports ``jit``, ``vmap`` over ``q`` and ``grad`` with
        respect to parameters that ``f`` or ``metric`` close over.

    Example:
        >>> import jax.numpy as jnp
        >>> sphere = lambda q: jnp.diag(jnp.array([1.0, jnp.sin(q[0]) ** 2]))
        >>> lap = laplace_beltrami(lambda q: jnp.cos(q[0]), sphere)
        >>> round(float(lap(jnp.array([0.7, 0.1])) / jnp.cos(0.7)), 6)
        -2.0

        A conformally flat metric passed with its structure:

        >>> from geomshock.geometry import scaled_identity
        >>> conformal = lambda q: scaled_identity(jnp.exp(2 * q[0]), 3)
        >>> lap = laplace_beltrami(lambda q: q[0] ** 2, conformal)
        >>> round(float(lap(jnp.array([0.5, 0.0, 0.0]))), 6)  # e^{-2q₀}(2 + 2q₀)
        1.103638
    """
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
    if hessian not in ("forward", "reverse"):
        raise ValueError(f"hessian must be 'forward' or 'reverse'; got {hessian!r}")

    def lap(q):
        q = _prepare(metric, q, f)
        at_q = point_metric(metric(q))
        v, w = factors = at_q.inverse_factors()
        slope, trace = _directional_derivatives(f, q, v, batch_size, hessian)
        x = v @ slope
        if w is not None:
            slope_w, trace_w = _directional_derivatives(f, q, w, batch_size, hessian)
            x = x - w @ slope_w
            trace = trace - trace_w
        metric_batch = batch_size or _metric_batch_size(metric, q)
        return (
            trace
            - at_q.christoffel_trace(metric, q, x, factors, metric_batch)
            + 0.5 * at_q.logdet_derivative(metric, q, x, factors)
        )

    return lap


def _metric_batch_size(metric: MetricFn, q: Point) -> int:
    """Directions per chunk so that the chunk's metric tangents fit the budget."""
    leaves = jax.tree_util.tree_leaves(jax.eval_shape(metric, q))
    size = max(1, sum(leaf.size for leaf in leaves))
    return max(1, _METRIC_TANGENT_BUDGET // size)


def _directional_derivatives(f, q, directions, batch_size, hessian):
    """``(Dᵀ∇f, Σ_k ∂²f[d_k, d_k])`` for the columns ``d_k`` of ``directions``."""
    if hessian == "reverse":
        df, hvp = jax.linearize(jax.grad(f), q)
        second = map_directions(lambda d: d @ hvp(d), directions.T, batch_size)
        return directions.T @ df, jnp.sum(second)

    def along(d):
        return jax.jvp(lambda p: jax.jvp(f, (p,), (d,))[1], (q,), (d,))

    first, second = map_directions(along, directions.T, batch_size)
    return first, jnp.sum(second)
