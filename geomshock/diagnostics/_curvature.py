r"""Quotient and raw curvature of a loss: Laplacian and extreme eigenpairs.

Quotient curvature lives on the chart ``(M, g)`` of :mod:`geomshock.charts`:
``U = loss∘lift`` at ``q = project(params)``, covariant Hessian
``H_cov = ∂_ij U − Γ^k_ij ∂_k U`` and the generalized eigenproblem
``H_cov v = λ g v`` (eigenvalues of ``g^{-1} H_cov``, a g-self-adjoint
operator). Raw curvature is the same for the Euclidean Hessian of the
flattened parameters, the baseline of the paper's Sec. 6.

Two methods (lanczos in two forms):

- ``"dense"`` forms ``g``, ``Γ`` and the Hessian (``dim`` forward passes each)
  and solves the pencil through the Cholesky factor ``g = L Lᵀ``:
  ``eigh(L^{-1} H_cov L^{-T})``.
- ``"lanczos"`` for a chart with a horizontal gauge (``chart.horizontal_gauge``:
  the balanced gauge of rescalings, unit spheres, products and canonical
  orderings of those): the quotient is isometric to the section's image ``B``
  with the metric it inherits from the parameters (``T B = H``), so the
  covariant Hessian is the Riemannian Hessian of that submanifold,
  ``v ↦ P_H(∇²loss v + (D_v P_H)∇loss)`` on ``H`` with ``g = I``: matfree's
  Lanczos on Hessian-vector products of the loss at ``σ(q)`` and horizontal
  projections, no metric solve (the Weingarten term ``(D_v P_H)∇loss`` is zero
  for an invariant loss and exact for any other).
- ``"lanczos"`` for any other chart is Hessian-free: Hessian-vector products
  (jvp of grad), the Christoffel term ``Γ_kij v^j w^k`` from two jvps and a
  vjp of ``q ↦ g(q) v`` (never the ``dim³`` tensor), ``g^{-1}`` by a lineax CG
  solve with the chart's matrix-free ``metric_operator``. The Krylov space of the
  g-self-adjoint operator ``g^{-1} H_cov`` is built by matfree's Arnoldi
  iteration (``matfree.decomp.hessenberg``, full reorthogonalisation), and
  the pencil ``(H_cov, g)`` is projected onto it (Rayleigh–Ritz: a
  symmetric-definite ``k × k`` problem). That is the Krylov space and the
  Ritz values of Lanczos in the g inner product (which matfree does not
  offer), with real Ritz values by construction; at full depth
  ``num_lanczos = dim`` they are the exact eigenvalues.
"""

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import lineax as lx
import matfree.decomp
import matfree.stochtrace
from jax.flatten_util import ravel_pytree

from .._checks import callable_arg, finite_tree, per_dtype, positive_int
from ..charts._action import _flat_orbit, _gram_coefficients
from ..geometry import christoffel
from ..geometry._metric import cholesky

Method = Literal["dense", "lanczos"] | None

_METHODS = ("dense", "lanczos")
_DENSE_MAX_DIM = 200


# --- shared pieces -----------------------------------------------------------------


def _pick_method(method, dim: int, methods: tuple[str, str] = _METHODS) -> str:
    """``methods = (dense, matrix-free)``; None picks by ``dim``."""
    dense, free = methods
    if method is None:
        return dense if dim <= _DENSE_MAX_DIM else free
    if method not in methods:
        raise ValueError(
            f"method must be '{dense}', '{free}' or None ({dense} for dim ≤ "
            f"{_DENSE_MAX_DIM}, else {free}); got {method!r}"
        )
    return method


def _check_loss(loss, params, owner: str) -> Callable:
    loss = callable_arg(loss, f"{owner}: loss")
    shape = getattr(jax.eval_shape(loss, params), "shape", None)
    if shape != ():
        raise ValueError(
            f"{owner}: loss must map params to a scalar; it returned shape "
            f"{shape}; reduce it (e.g. take the mean over the batch)"
        )
    return loss


def _krylov_depth(num_lanczos, dim: int) -> int:
    if num_lanczos is None:
        return min(dim, 40)
    k = positive_int(num_lanczos, "num_lanczos")
    if k > dim:
        raise ValueError(f"num_lanczos must be ≤ dim = {dim}; got {k}")
    return k


def _fix_sign(v):
    """Sign rule: the entry of largest magnitude (the first such) is positive."""
    return v * jnp.where(v[jnp.argmax(jnp.abs(v))] < 0, -1.0, 1.0).astype(v.dtype)


def _hvp(f, x):
    grad = jax.grad(f)
    return lambda v: jax.jvp(grad, (x,), (v,))[1]


def _result(laplacian, vals, vecs) -> dict:
    """``vals`` ascending, ``vecs`` their eigenvectors as rows."""
    return {
        "laplacian": laplacian,
        "max_eig": vals[-1],
        "min_eig": vals[0],
        "min_eig_vector": _fix_sign(vecs[0]),
    }


def _generalized_eigh(a, g):
    """Eigenpairs of the pencil ``(a, g)``, ``g`` SPD: ascending values, rows
    ``v_i`` with ``v_iᵀ g v_j = δ_ij``."""
    chol = cholesky(g)
    half = jsl.solve_triangular(chol, 0.5 * (a + a.T), lower=True)
    c = jsl.solve_triangular(chol, half.T, lower=True)
    vals, y = jnp.linalg.eigh(0.5 * (c + c.T))
    return vals, jsl.solve_triangular(chol.T, y, lower=False).T


def _krylov_ritz(a, g):
    """Ritz pairs of the projected pencil ``(a, g)``, robust to a Krylov basis
    that lost rank (after a breakdown matfree continues with rounding noise).

    Directions with ``g``-eigenvalue below ``tol · max`` are dropped: their
    rows and columns of the reduced matrix are replaced by the mean of the
    kept diagonal (inside the Ritz spectrum, so the extreme pairs are those of
    the kept space) and their vectors by zero.
    """
    s, u = jnp.linalg.eigh(0.5 * (g + g.T))
    keep = s > per_dtype(s.dtype, float64=1e-10, float32=1e-5) * s[-1]
    w = jnp.where(keep, 1 / jnp.sqrt(jnp.where(keep, s, 1.0)), 0.0) * u
    c = w.T @ (0.5 * (a + a.T)) @ w
    fill = jnp.sum(jnp.where(keep, jnp.diag(c), 0.0)) / jnp.sum(keep)
    c = jnp.where(keep[:, None] & keep[None, :], c, 0.0) + jnp.diag(
        jnp.where(keep, 0.0, fill)
    )
    vals, z = jnp.linalg.eigh(0.5 * (c + c.T))
    return vals, (w @ z).T


def _trace(matvec, x0, num_probes, key):
    """``tr`` of the operator: exact (``n`` matvecs by ``lax.map``) or, with
    ``num_probes``, matfree's Rademacher estimator (``num_probes`` matvecs)."""
    if num_probes is None:
        n = x0.shape[0]
        return jnp.sum(
            jax.lax.map(
                lambda i: matvec(jnp.zeros_like(x0).at[i].set(1.0))[i], jnp.arange(n)
            )
        )
    num_probes = positive_int(num_probes, "num_probes")
    sampler = matfree.stochtrace.sampler_signs(x0, num=num_probes)
    estimate = matfree.stochtrace.estimator_monte_carlo(
        matfree.stochtrace.monte_carlo_trace(), sampler
    )
    return estimate(matvec, key)


def _start(key, x0):
    key = jax.random.PRNGKey(0) if key is None else key
    return key, jax.random.normal(jax.random.fold_in(key, 1), x0.shape, x0.dtype)


# --- quotient curvature --------------------------------------------------------------


def quotient_curvature(
    loss: Callable,
    chart,
    params,
    *,
    method: Method = None,
    num_lanczos: int | None = None,
    num_probes: int | None = None,
    key=None,
    solver: lx.AbstractLinearSolver | None = None,
) -> dict:
    r"""Curvature of ``U = loss∘chart.lift`` at ``q = chart.project(params)``.

    Returns a dict of arrays:

    - ``"laplacian"``: the Laplace–Beltrami ``Δ_g U(q) = tr(g^{-1} H_cov)``;
    - ``"max_eig"``, ``"min_eig"``: the largest and the smallest (most
      negative) eigenvalue of the pencil ``H_cov v = λ g v``, with
      ``H_cov = ∂_ij U − Γ^k_ij ∂_k U`` the covariant Hessian;
    - ``"min_eig_vector"``: the eigenvector of ``"min_eig"`` in chart
      coordinates, g-normalised (``vᵀ g v = 1``), signed so that its entry of
      largest magnitude is positive.

    All values are invariant under ``chart.gauge``.

    Args:
        loss: ``params -> scalar``.
        chart: an :class:`~geomshock.charts.AbstractQuotientChart`.
        params: a point on the regular stratum, with ``chart.params_shape``.
        method: ``"dense"`` (form ``g``, ``Γ``, the Hessian: cost ``O(dim)``
            autodiff passes and ``O(dim³)`` flops), ``"lanczos"``
            (Hessian-free, see the module docstring) or ``None``: dense for
            ``chart.dim ≤ 200``, else lanczos.
        num_lanczos: Krylov depth for lanczos (default ``min(dim, 40)``). Cost
            with a horizontal gauge: ``2k`` Hessian-vector products of the loss
            at ``σ(q)`` (``k`` for Lanczos, ``k`` for the Rayleigh–Ritz step),
            each with two horizontal projections and one jvp of the orbit
            field ``x ↦ T(x)α`` (the Weingarten term); otherwise ``2k``
            covariant Hessian-vector products (each a Hessian-vector product
            of ``U`` and a jvp/vjp of the metric operator) and ``k`` CG solves
            with the metric.
        num_probes: lanczos only; ``None`` (default) computes the Laplacian
            exactly with ``dim`` products and solves (``jax.lax.map``; with a
            horizontal gauge ``D`` products, no solve, ``D`` the number of
            parameters),
            an integer uses matfree's stochastic trace estimator with that many
            Rademacher probes instead.
        key: PRNG key for the Lanczos start vector and the probes (default
            ``PRNGKey(0)``).
        solver: lineax solver for ``g^{-1}``, used only when the gauge is not
            horizontal (default CG with ``rtol = atol =
            1e-12`` in float64, ``1e-6`` in float32, Jacobi-preconditioned by
            the metric's diagonal, estimated from 40 Rademacher probes when the
            chart has a ``metric_operator``).

    Works under ``jax.jit``/``eqx.filter_jit`` and ``jax.vmap`` over ``params``.
    Params of the wrong structure raise a ``ValueError``; a point off the
    regular stratum an equinox runtime error.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from geomshock.charts import TwoLayerReLUChart
        >>> chart = TwoLayerReLUChart(width=2, in_dim=1)
        >>> q0 = jnp.array([1.0, -2.0, 0.3, 1.2, 0.5])
        >>> loss = lambda p: 0.5 * jnp.sum((chart.project(p) - q0) ** 2)
        >>> curvature = jax.jit(lambda p: quotient_curvature(loss, chart, p))
        >>> out = curvature(chart.lift(q0))
        >>> # H_cov = I at the minimum, g = diag(1/(2|γ|), |γ|, 1): λ = 1/g_ii
        >>> round(float(out["max_eig"]), 6), round(float(out["min_eig"]), 6)
        (4.0, 0.5)
    """
    owner = "quotient_curvature"
    loss = _check_loss(loss, params, owner)
    method = _pick_method(method, chart.dim)
    q = chart.project(params)

    def potential(p):
        return loss(chart.lift(p))

    if method == "dense":
        return _quotient_dense(potential, chart, q)
    k = _krylov_depth(num_lanczos, chart.dim)
    if chart.horizontal_gauge:
        return _quotient_horizontal(loss, chart, q, k, num_probes, key)
    return _quotient_lanczos(potential, chart, q, k, num_probes, key, solver)


def _dense_pencil(potential, chart, q):
    """The dense pencil ``(H_cov, g)`` at ``q``."""
    dU = jax.grad(potential)(q)
    hess = jax.hessian(potential)(q)
    h_cov = hess - jnp.einsum("kij,k->ij", christoffel(chart.metric)(q), dU)
    return h_cov, chart.metric(q)


def _quotient_dense(potential, chart, q) -> dict:
    vals, vecs = _generalized_eigh(*_dense_pencil(potential, chart, q))
    # Δ_g U = g^{ij}(∂_ij U − Γ^k_ij ∂_k U) = tr(g^{-1} H_cov): the sum of the
    # pencil's eigenvalues (no second pass through the metric's derivative).
    return _result(jnp.sum(vals), vals, vecs)


def _metric_matvec(chart):
    """``(q, v) -> g(q) v``: the chart's matrix-free operator where it has one."""
    if hasattr(chart, "metric_operator"):
        return lambda p, v: chart.metric_operator(p).mv(v)
    return lambda p, v: chart.metric(p) @ v


def _metric_solver(chart, q, solver):
    if hasattr(chart, "metric_operator"):
        operator = chart.metric_operator(q)
    else:
        operator = lx.MatrixLinearOperator(
            chart.metric(q), lx.positive_semidefinite_tag
        )
    options = {}
    if solver is None:
        tol = per_dtype(q.dtype, float64=1e-12, float32=1e-6)
        solver = lx.CG(rtol=tol, atol=tol, max_steps=10 * q.shape[0] + 100)
        options = {"preconditioner": _jacobi_preconditioner(operator, q)}
    return (
        operator,
        lambda b: lx.linear_solve(operator, b, solver, options=options).value,
    )


_DIAGONAL_PROBES = 40


def _jacobi_preconditioner(operator, q):
    """``diag(g)^{-1}``, the diagonal exact for a matrix and else estimated by
    matfree's Monte-Carlo diagonal estimator (40 Rademacher probes, i.e. 40
    metric products), floored at ``1e-3 · max``. Measured on the ReLU MLP
    (32, 128, 64, 1), dim 12 353: CG to rtol 1e-12 in 146 iterations instead
    of 1831, same residual (2e-14)."""
    if isinstance(operator, lx.MatrixLinearOperator):
        diag = jnp.diag(operator.as_matrix())
    else:
        sampler = matfree.stochtrace.sampler_signs(q, num=_DIAGONAL_PROBES)
        estimate = matfree.stochtrace.estimator_monte_carlo(
            matfree.stochtrace.monte_carlo_diagonal(), sampler
        )
        diag = estimate(operator.mv, jax.random.PRNGKey(_DIAGONAL_PROBES))
    diag = jax.lax.stop_gradient(jnp.maximum(diag, 1e-3 * jnp.max(diag)))
    return lx.TaggedLinearOperator(
        lx.DiagonalLinearOperator(1 / diag), lx.positive_semidefinite_tag
    )


def _covariant_operators(potential, chart, q, solver):
    """Matrix-free ``(v -> H_cov v, metric operator, b -> g^{-1} b)`` at ``q``."""
    gv = _metric_matvec(chart)
    operator, solve = _metric_solver(chart, q, solver)
    hvp = _hvp(potential, q)
    w = solve(jax.grad(potential)(q))  # w^k = g^{kl} ∂_l U

    def h_cov(v):
        # Γ_kij v^j w^k = ½(∂_i(wᵀ g v) + (∂_v g) w − (∂_w g) v), all three from
        # one linearisation of p ↦ (g(p) v, g(p) w) and its transpose.
        _, d_g = jax.linearize(lambda p: (gv(p, v), gv(p, w)), q)
        d_wgv = jax.linear_transpose(d_g, q)((w, jnp.zeros_like(w)))[0]
        dv_g_w = d_g(v)[1]
        dw_g_v = d_g(w)[0]
        return hvp(v) - 0.5 * (d_wgv + dv_g_w - dw_g_v)

    return h_cov, operator, solve


def _pencil_ritz(h_cov, operator, solve, v0, k):
    """Ritz pairs of ``(H_cov, g)`` on the Krylov space of ``g^{-1} H_cov`` from
    ``v0`` (matfree's Arnoldi, then Rayleigh–Ritz): ascending values and
    g-normalised vectors as rows (zero rows for directions lost to a breakdown)."""

    def b(v):  # g^{-1} H_cov, self-adjoint in the g inner product
        return solve(h_cov(v))

    arnoldi = matfree.decomp.hessenberg(k, reortho="full", custom_vjp=False)
    basis = arnoldi(b, v0)[0]
    a_small = basis @ jax.vmap(h_cov)(basis).T
    g_small = basis @ jax.vmap(operator.mv)(basis).T
    vals, y = _krylov_ritz(a_small, g_small)
    return vals, y @ basis


def _quotient_lanczos(potential, chart, q, k, num_probes, key, solver) -> dict:
    h_cov, operator, solve = _covariant_operators(potential, chart, q, solver)
    key, v0 = _start(key, q)
    vals, vecs = _pencil_ritz(h_cov, operator, solve, v0, k)
    laplacian = _trace(lambda v: solve(h_cov(v)), q, num_probes, key)
    return _result(laplacian, vals, vecs)


def _horizontal_operators(loss, chart, q):
    """For a horizontal gauge (``chart.horizontal_gauge``): the covariant
    Hessian on ``H`` as a symmetric operator on flat parameter vectors, the
    projector ``P_H``, and the lifted point ``σ(q)`` flattened with its unravel.

    On the section's image ``B``, whose tangent space is ``H``, the quotient
    metric is the induced Euclidean one and the covariant Hessian is the
    Riemannian Hessian of the submanifold, ``v ↦ P_H(∇²loss v + (D_v P_H)∇loss)``
    for ``v ∈ H`` (zero on orbit directions): no metric, no solve. With
    ``P_H = I − T G⁻¹ Tᵀ`` (``T`` the orbit tangents, ``G = TᵀT``) and
    ``P_H T = 0`` the second term (the Weingarten map) is
    ``−P_H (D_v T) α``, ``α = G⁻¹ Tᵀ ∇loss`` the orbit coefficients of the
    gradient: zero for an invariant loss (its gradient is horizontal), one jvp
    of ``x ↦ T(x) α`` for any other (e.g. with weight decay)."""
    point = chart.lift(q)
    flat, unravel = ravel_pytree(point)
    action = chart.action

    def f(x):
        return loss(unravel(x))

    hvp = _hvp(f, flat)
    if action.algebra_dim == 0:  # no symmetry: every direction is horizontal
        return hvp, lambda w: w, flat, unravel
    coefficients, t_mv = _gram_coefficients(action, point)
    alpha = coefficients(jax.grad(f)(flat))

    def orbit_field(x):  # x ↦ T(x) α
        flat_orbit, xi0 = _flat_orbit(action, unravel(x))
        return jax.jvp(flat_orbit, (xi0,), (alpha,))[1]

    _, d_orbit_field = jax.linearize(orbit_field, flat)

    def project(w):
        return w - t_mv(coefficients(w))

    def hessian(v):
        v = project(v)
        return project(hvp(v) - d_orbit_field(v))

    return hessian, project, flat, unravel


def _quotient_horizontal(loss, chart, q, k, num_probes, key) -> dict:
    """Plain Lanczos on :func:`_horizontal_operators` (``g = I`` on ``H``)."""
    hessian, project, flat, unravel = _horizontal_operators(loss, chart, q)
    key, v0 = _start(key, flat)
    vals, vecs = _lanczos_ritz(hessian, project(v0), k, project)

    def to_chart(u):  # unit u ∈ H ↦ ξ = Dπ u: Dσ ξ = u, so ξᵀ g ξ = |u|² = 1
        return jax.jvp(lambda x: chart.project(unravel(x)), (flat,), (u,))[1]

    laplacian = _trace(hessian, flat, num_probes, key)
    return _result(laplacian, vals, to_chart(vecs[0])[None])


# --- raw curvature -------------------------------------------------------------------


def raw_curvature(
    loss: Callable,
    params,
    *,
    method: Method = None,
    num_lanczos: int | None = None,
    num_probes: int | None = None,
    key=None,
) -> dict:
    r"""Curvature of ``loss`` in raw parameter space (Euclidean metric).

    The same keys as :func:`quotient_curvature` for the Hessian of ``loss`` in
    the flattened parameters (``jax.flatten_util.ravel_pytree`` order):
    ``"laplacian"`` its trace, ``"max_eig"``/``"min_eig"`` its extreme
    eigenvalues, ``"min_eig_vector"`` the unit eigenvector of ``"min_eig"``
    (largest-magnitude entry positive). Not invariant under the symmetry group:
    the baseline that quotient curvature should beat (paper, Sec. 6).

    ``method="dense"`` forms the Hessian; ``"lanczos"`` runs matfree's Lanczos
    (``matfree.decomp.tridiag_sym``, full reorthogonalisation) on
    Hessian-vector products, ``num_lanczos`` of them (default ``min(D, 40)``)
    and ``num_lanczos`` more for the Rayleigh–Ritz step on its basis,
    and the Laplacian exactly with ``D`` products, or with ``num_probes``
    Rademacher probes; ``None`` picks dense for ``D ≤ 200`` parameters.

    Example:
        >>> import jax.numpy as jnp
        >>> loss = lambda p: p["x"] ** 2 - 3 * p["y"] ** 2
        >>> out = raw_curvature(loss, {"x": 1.0, "y": 2.0})
        >>> float(out["max_eig"]), float(out["min_eig"]), float(out["laplacian"])
        (2.0, -6.0, -4.0)
    """
    owner = "raw_curvature"
    loss = _check_loss(loss, params, owner)
    params = finite_tree(params, f"the params given to {owner}")
    flat, unravel = ravel_pytree(params)
    flat = jnp.asarray(flat, dtype=jnp.result_type(flat.dtype, float))
    method = _pick_method(method, flat.shape[0])

    def f(x):
        return loss(unravel(x))

    if method == "dense":
        hess = jax.hessian(f)(flat)
        vals, vecs = jnp.linalg.eigh(0.5 * (hess + hess.T))
        return _result(jnp.trace(hess), vals, vecs.T)
    k = _krylov_depth(num_lanczos, flat.shape[0])
    hvp = _hvp(f, flat)
    key, v0 = _start(key, flat)
    vals, vecs = _lanczos_ritz(hvp, v0, k)
    return _result(_trace(hvp, flat, num_probes, key), vals, vecs)


def _lanczos_ritz(hvp, v0, k, subspace=None):
    """Ritz pairs of a symmetric operator on its Krylov space from ``v0``:
    matfree's Lanczos, then Rayleigh–Ritz on the basis (not matfree's
    tridiagonal matrix, which is wrong once the basis loses orthogonality
    after a breakdown). Ascending values, unit vectors as rows. ``subspace``
    (a projector) confines the basis to an invariant subspace first: after a
    breakdown matfree continues with rounding noise, which need not lie in it
    (its directions then drop out as lost, not as Ritz values 0)."""
    tridiag = matfree.decomp.tridiag_sym(k, custom_vjp=False)
    basis = tridiag(hvp, v0)[0]
    if subspace is not None:
        basis = jax.vmap(subspace)(basis)
    vals, vecs = _krylov_ritz(basis @ jax.vmap(hvp)(basis).T, basis @ basis.T)
    return vals, vecs @ basis
