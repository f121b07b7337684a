r"""Stochastic (Hutchinson-type) Laplace–Beltrami for large dimension.

The exact operator (:func:`~geomshock.geometry.laplace_beltrami`) sums ``n``
directional derivatives of ``f`` and ``n`` JVPs of the metric; here the same
trace is estimated from ``num_probes`` random probes, each costing one
Hessian-vector product of ``f``, two JVPs of ``p ↦ g(p) x`` and one solve with
``g``: linear in ``n`` for a diagonal or low-rank-plus-diagonal metric.
"""

from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import matfree.stochtrace

from .._checks import finite_array, positive_int
from .._custom_types import Array, MetricFn, Point, Scalar, ScalarField
from ._metric import check_metric_shape, check_point, check_scalar_field
from ._point_metric import apply_metric, point_metric

Estimator = Literal["hutchinson", "xtrace"]


def _check_key(key) -> Array:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(
                f"key must be a single PRNG key; got a key array of shape {key.shape} "
                "(use jax.vmap over keys)"
            )
        return key
    if key.dtype != jnp.uint32 or key.shape != (2,):
        raise ValueError(
            "key must be a PRNG key (jax.random.key(0) or jax.random.PRNGKey(0)); "
            f"got dtype {key.dtype} and shape {key.shape}"
        )
    return key


def _prepare(metric, q, f) -> Point:
    """Static shape checks of ``q``, ``metric(q)`` and ``f(q)``. ``metric(q)``
    may be a ``lx.FunctionLinearOperator`` (a chart's ``metric_operator``),
    which only ``eqx.filter_eval_shape`` can trace."""
    q = check_point(q)
    out = eqx.filter_eval_shape(metric, q)
    if isinstance(out, lx.AbstractLinearOperator):
        shapes = lx.IdentityLinearOperator(out.in_structure(), out.out_structure())
        check_metric_shape(lambda p: shapes, q)
    else:
        check_metric_shape(metric, q)
    check_scalar_field(f, q)
    return q


def _trace_operator(f, metric, q, solver):
    r"""``z ↦ A z`` with ``Δf = tr A``, ``A = g^{-1}(∂²f − J + ½ D_X g)``."""
    value = metric(q)
    if solver is None:

        def solve(b):
            return at_q.solve(b)

        at_q = point_metric(value)
    else:
        if not isinstance(value, lx.AbstractLinearOperator):
            value = lx.MatrixLinearOperator(value)
        # g is symmetric positive definite by contract (CG needs the tag).
        value = lx.TaggedLinearOperator(
            value, (lx.symmetric_tag, lx.positive_semidefinite_tag)
        )

        def solve(b):
            return lx.linear_solve(value, b, solver).value

    df, hvp = jax.linearize(jax.grad(f), q)
    x = solve(df)  # X = g^{-1} ∇f

    def metric_times(p, v):
        return apply_metric(metric(p), v)

    def matvec(z):
        j_z = jax.jvp(lambda p: metric_times(p, x), (q,), (z,))[1]  # J z
        dx_g_z = jax.jvp(lambda p: metric_times(p, z), (q,), (x,))[1]  # (D_X g) z
        return solve(hvp(z) - j_z + 0.5 * dx_g_z)

    return matvec


def stochastic_laplace_beltrami(
    f: ScalarField,
    metric: MetricFn,
    *,
    num_probes: int,
    estimator: Estimator = "hutchinson",
    solver: lx.AbstractLinearSolver | None = None,
) -> Callable[[Point, Array], tuple[Scalar, Scalar]]:
    r"""Unbiased Monte-Carlo estimate of the Laplace–Beltrami ``Δ_g f``, with its
    standard error.

    ``Δ_g f = div(g^{-1}∇f) + ⟨g^{-1}∇f, ∇ log√|g|⟩ = tr(g^{-1}∂²f) −
    g^{ij}Γ^k_ij ∂_k f`` (negative semidefinite; the heat semigroup of geomshock
    is ``exp((t/2)Δ)``). With ``X = g^{-1}∇f`` and ``J = ∂(g(p) X)/∂p`` (``X``
    held fixed), the contracted Christoffel term is itself a trace,

    ``g^{ij}Γ^k_ij ∂_k f = ½ g^{ij} X^l (2∂_i g_jl − ∂_l g_ij)
    = tr(g^{-1} J) − ½ tr(g^{-1} D_X g)``

    (``½ tr(g^{-1} D_X g) = ⟨X, ∇ log√|g|⟩``), so that

    ``Δ_g f = tr A``,  ``A = g^{-1}(∂²f − J + ½ D_X g)``.

    For probes ``z`` with ``E[z zᵀ] = I``, ``zᵀ A z`` is an unbiased estimate
    of ``Δ_g f``; all three terms use the same probes. ``A z`` is one
    Hessian-vector product of ``f`` (forward over reverse), ``J z`` a JVP of
    ``p ↦ g(p) X`` along ``z``, ``(D_X g) z`` a JVP of ``p ↦ g(p) z`` along
    ``X``, and one solve with ``g(q)``: no ``n × n`` Hessian and no ``∂g`` is
    ever formed. Solves use the metric's structure (see
    ``geomshock.geometry.point_metric``): ``O(n)`` per probe for
    ``diag(d)`` and ``c · I``, ``O(n r)`` for :func:`low_rank_plus_diagonal`
    of rank ``r`` (after one ``O(n r²)`` Woodbury factor), a Cholesky factor
    for a dense metric; or a lineax ``solver`` (e.g. ``lx.CG``) for a
    matrix-free operator such as a chart's ``metric_operator``.

    Estimators (both matfree's, :mod:`matfree.stochtrace`):

    * ``"hutchinson"`` (default): the mean of ``zᵀ A z`` over ``num_probes``
      Rademacher probes; the standard error is the probes' sample standard
      deviation (``ddof = 1``) over ``√num_probes`` (``inf`` for one probe).
      Exact (zero variance) when ``A`` is diagonal, e.g. a diagonal metric
      ``g_ii(q_i)`` and a separable ``f``; the ``(D_X g)`` part of a conformal metric
      ``c(q) I`` is exact too.
    * ``"xtrace"``: XTrace (Epperly, Tropp & Webber 2024), a low-rank
      approximation of ``A`` from the probes plus Hutchinson on the remainder,
      with leave-one-out estimates giving the error estimate; ``2 num_probes``
      products with ``A``, ``num_probes ≤ n``, Gaussian probes, exact when
      ``2 num_probes ≥ n``. Lower variance when ``A`` has decaying spectrum;
      its error estimate is from correlated leave-one-out estimates (a rough
      guide, not a calibrated standard error).

    Args:
        f: ``(n,) -> scalar``.
        metric: ``(n,) -> (n, n)`` symmetric positive definite, or a lineax
            operator (``lx.DiagonalLinearOperator``, ``c * lx.IdentityLinearOperator``,
            :func:`low_rank_plus_diagonal`, any other operator: materialised
            unless ``solver`` is given).
        num_probes: number of probes, an integer ``≥ 1`` (``ValueError``).
        estimator: ``"hutchinson"`` or ``"xtrace"``.
        solver: lineax solver for ``g(q)^{-1}``; default: the metric's structure.

    Returns:
        ``(q, key) -> (estimate, stderr)``, ``q`` of shape ``(n,)`` (finite)
        and ``key`` a PRNG key. Supports ``jit`` and ``vmap`` over ``q`` and
        over keys; ``E[estimate] = Δ_g f(q)``.

    Example:
        >>> import jax, jax.numpy as jnp, lineax as lx
        >>> metric = lambda q: lx.DiagonalLinearOperator(jnp.exp(q))
        >>> lap = stochastic_laplace_beltrami(
        ...     lambda q: jnp.sum(q**2), metric, num_probes=4)
        >>> est, err = lap(jnp.zeros(3), jax.random.key(0))
        >>> round(float(est), 6), float(err)  # exact: Σ e^{-q_i}(2 − q_i)
        (6.0, 0.0)
    """
    num_probes = positive_int(num_probes, "num_probes")
    if estimator not in ("hutchinson", "xtrace"):
        raise ValueError(
            f"estimator must be 'hutchinson' or 'xtrace'; got {estimator!r}"
        )
    if solver is not None and not isinstance(solver, lx.AbstractLinearSolver):
        raise ValueError(
            f"solver must be a lineax solver or None; got {type(solver).__name__}"
        )

    def lap(q, key):
        q = _prepare(metric, q, f)
        q = finite_array(q, "q")
        key = _check_key(key)
        matvec = _trace_operator(f, metric, q, solver)
        if estimator == "hutchinson":
            sampler = matfree.stochtrace.sampler_signs(q, num=num_probes)
            estimate = matfree.stochtrace.estimator_monte_carlo_mean_and_sem(
                matfree.stochtrace.monte_carlo_trace(), sampler
            )
        else:
            if num_probes > q.shape[0]:
                raise ValueError(
                    f"estimator='xtrace' needs num_probes ≤ n = {q.shape[0]}; "
                    f"got {num_probes}"
                )
            sampler = matfree.stochtrace.sampler_normal(q, num=num_probes)
            estimate = matfree.stochtrace.estimator_leave_one_out_mean_and_sem(
                matfree.stochtrace.leave_one_out_xtrace(), sampler
            )
        mean, sem = estimate(matvec, key)
        if estimator == "hutchinson":
            # matfree's sem uses the ddof = 0 deviation; the sample standard
            # deviation (ddof = 1) makes it unbiased for the variance.
            if num_probes > 1:
                sem = sem * (num_probes / (num_probes - 1)) ** 0.5
            else:
                sem = jnp.full_like(sem, jnp.inf)
        return mean, sem

    return lap
