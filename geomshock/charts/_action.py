"""Group actions on parameter pytrees, orbit tangents and the horizontal projector.

A symmetry group ``G`` acts on parameters with ``L(g·θ) = L(θ)``. Group elements
are represented in coordinates chosen by each action (log-scales for rescaling
groups, matrices for ``GL(d)``); ``exp`` maps Lie-algebra coordinates
``ξ ∈ R^k`` (the coefficients of the generators ``ξ_a``) to group elements.
Orbit tangents ``ξ_a·θ = d/dt exp(t ξ_a)·θ |_{t=0}`` come from forward-mode
autodiff (``jvp``) of the action, never from hand-written formulas.
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._custom_types import Matrix, Point

Params = PyTree[Array]

# Orbit tangents whose *correlation* matrix (the Gram matrix with unit
# diagonal) has an eigenvalue below this are treated as linearly dependent (a
# nontrivial stabilizer: the action is not free). Normalising each generator's
# tangent first makes the test blind to the tangents' scales: a unit with a
# tiny γ_j = 1e-13 has a tiny but independent tangent and is on the stratum.
_STABILIZER_RTOL = 1e-12


class AbstractGroupAction(eqx.Module):
    """A Lie group acting on parameter pytrees by exact symmetries.

    Subclasses define ``act``, ``exp``, ``algebra_dim`` and ``random_element``.
    The generators ``ξ_a`` are the standard basis vectors of ``R^{algebra_dim}``
    in the algebra coordinates that ``exp`` takes.
    """

    @property
    @abc.abstractmethod
    def algebra_dim(self) -> int:
        """Dimension ``k`` of the Lie algebra (the orbit dimension where free)."""

    @abc.abstractmethod
    def act(self, params: Params, g: PyTree[Array]) -> Params:
        """``g·θ``: the group element ``g`` applied to ``params``."""

    @abc.abstractmethod
    def exp(self, xi: Float[Array, " k"]) -> PyTree[Array]:
        """Exponential map from algebra coordinates ``ξ ∈ R^k`` to a group element."""

    def tangent_map(self, xi: Float[Array, " k"]) -> PyTree[Array]:
        """Any smooth map with ``tangent_map(0) = e`` and the same differential
        at 0 as ``exp``; used only for orbit tangents. Defaults to ``exp``;
        override with something cheaper (e.g. ``I + ξ`` for ``GL(d)``)."""
        return self.exp(xi)

    def random_element(self, key: PRNGKeyArray, scale: float = 0.5) -> PyTree[Array]:
        """A random group element ``exp(scale · ξ)``, ``ξ ~ N(0, I_k)``."""
        xi = scale * jax.random.normal(key, (self.algebra_dim,))
        return self.exp(xi)


class AbstractRescalingAction(AbstractGroupAction):
    """Positive rescalings, group elements the log-scales ``t ∈ R^k``.

    ``t ↦ ‖exp(t)·θ‖²`` is a sum of exponentials of linear functions of ``t``;
    :func:`geomshock.charts.balance` minimises it by Newton's method and needs
    its Hessian, which every rescaling action states in closed form
    (``norm_sq_hessian``; one pass over the parameters instead of ``k`` of
    ``jax.hessian``).
    """

    @abc.abstractmethod
    def norm_sq_hessian(self, params: Params, g: Float[Array, " k"]) -> Matrix:
        """Hessian of ``t ↦ ‖exp(t)·θ‖²`` at ``t = g``, shape ``(k, k)``."""


def orbit_tangents(action: AbstractGroupAction, params: Params) -> Float[Array, "D k"]:
    """Orbit tangents ``ξ_a·θ`` at ``θ = params`` as the columns of a ``(D, k)`` matrix.

    Column ``a`` is ``d/dt ravel(exp(t e_a)·θ)|_{t=0}``, computed by ``jax.jacfwd``
    of the action composed with ``action.tangent_map`` (same differential as
    ``exp`` at 0)
    (one ``jvp`` per generator). ``D`` is the number of parameters, in the order
    of ``jax.flatten_util.ravel_pytree(params)``. Supports ``jit``, ``vmap`` and
    ``grad``.
    """
    flat_orbit, xi0 = _flat_orbit(action, params)
    return jax.jacfwd(flat_orbit)(xi0)


def _flat_orbit(action: AbstractGroupAction, params: Params):
    """``ξ ↦ ravel(tangent_map(ξ)·θ)`` and the algebra origin ``ξ = 0``."""
    xi0 = jnp.zeros((action.algebra_dim,), ravel_pytree(params)[0].dtype)

    def flat_orbit(xi):
        return ravel_pytree(action.act(params, action.tangent_map(xi)))[0]

    return flat_orbit, xi0


def _checked_correlation(tangents: Float[Array, "D k"]) -> tuple[Matrix, Array]:
    """``(C, d)``: the correlation matrix ``C = D⁻¹ TᵀT D⁻¹`` of the orbit
    tangents, ``D = diag(d)``, ``d_a = ‖ξ_a·θ‖``; refuses a degenerate orbit.

    Degenerate means a zero tangent (``d_a = 0``: that generator fixes ``θ``)
    or tangents that are linearly dependent *as directions* (an eigenvalue of
    ``C`` below ``1e-12``), whatever their lengths.
    """
    norms = jnp.linalg.norm(tangents, axis=0)
    tiny = jnp.finfo(tangents.dtype).tiny
    unit = tangents / jnp.where(norms > tiny, norms, 1.0)
    return _check_correlation(unit.T @ unit, norms)


def _check_correlation(corr: Matrix, norms: Array) -> tuple[Matrix, Array]:
    """The check of :func:`_checked_correlation` on a formed correlation matrix
    and the tangent norms (zero norms are replaced by 1 in the result)."""
    tiny = jnp.finfo(corr.dtype).tiny
    eig = jnp.linalg.eigvalsh(jax.lax.stop_gradient(corr))
    bad = ~jnp.all(norms > tiny) | ~(eig[0] > _STABILIZER_RTOL)
    corr = eqx.error_if(
        corr,
        bad | ~jnp.all(jnp.isfinite(eig)),
        "orbit tangents are linearly dependent at this point (nontrivial "
        "stabilizer: a dead unit, a zero norm or a rank-deficient factor); the "
        "point is off the regular stratum. Expected a point where every "
        "generator moves the parameters in its own direction",
    )
    return corr, jnp.where(norms > tiny, norms, 1.0)


def _vertical_coefficients(tangents, vectors):
    """Least-squares coefficients ``C`` with ``T C`` the orbit part of ``vectors``.

    Solves the normal equations ``(TᵀT) C = Tᵀ V`` in the scaled form
    ``(D⁻¹TᵀTD⁻¹)(D C) = D⁻¹TᵀV`` (``D`` the tangent norms) with a lineax
    Cholesky solve, one right-hand side per column of ``vectors``: the scaling
    keeps tangents of very different lengths accurate.
    """
    corr, norms = _checked_correlation(tangents)
    operator = lx.MatrixLinearOperator(corr, lx.positive_semidefinite_tag)
    rhs = (tangents / norms).T @ vectors

    def solve(b):
        # The Gram matrix is checked above; no runtime check inside the solve.
        return lx.linear_solve(operator, b, lx.Cholesky(), throw=False).value

    return jax.vmap(solve, in_axes=1, out_axes=1)(rhs) / norms[:, None]


def horizontal_project_matrix(
    tangents: Float[Array, "D k"], vectors: Float[Array, "D m"]
) -> Float[Array, "D m"]:
    """``P_H V`` for flat vectors: remove the orbit components of each column."""
    return vectors - tangents @ _vertical_coefficients(tangents, vectors)


# The projector never materialises the (D, k) orbit tangents: it applies T and
# Tᵀ by jvp/vjp and forms the (k, k) Gram matrix from k such pairs, as many
# generators at a time as keep a batch at this many entries (D × batch).
_GRAM_BATCH_ENTRIES = 2**22


def orbit_tangent_operator(
    action: AbstractGroupAction, params: Params
) -> lx.FunctionLinearOperator:
    """The orbit-tangent map ``T: ξ ↦ Σ_a ξ_a (ξ_a·θ)``, ``R^k → R^D``, matrix-free.

    A lineax operator built from ``jax.linearize`` of the action at ``ξ = 0``
    (one ``jvp`` per product, no ``(D, k)`` matrix); its ``transpose`` is a
    ``vjp``. Columns of ``lx.materialise(T).as_matrix()`` are
    :func:`orbit_tangents`. Supports ``jit``, ``vmap`` and ``grad``.
    """
    flat_orbit, xi0 = _flat_orbit(action, params)
    _, tangent = jax.linearize(flat_orbit, xi0)
    return lx.FunctionLinearOperator(
        tangent, jax.ShapeDtypeStruct(xi0.shape, xi0.dtype)
    )


def default_projection_solver(algebra_dim: int) -> lx.AbstractLinearSolver:
    """The solver :func:`horizontal_projection` uses when none is given:
    ``lx.Cholesky()`` on the checked ``(k, k)`` Gram matrix of the orbit
    tangents, for every ``k`` (``algebra_dim``).

    The Gram matrix is formed and factored once per point; each projection then
    costs one product with ``T`` and one with ``Tᵀ`` and two triangular solves.
    The tangents are applied by jvp/vjp of the action (``O(D)`` per product
    for rescalings, never a ``(D, k)`` matrix) and the Gram matrix is built
    from ``k`` such pairs, ``⌊2²²/D⌋`` generators at a time: memory
    ``O(k² + 2²²)``. Pass
    ``lx.LSMR(...)`` for a fully matrix-free least-squares solve instead (no
    ``k × k`` matrix, many more products per projection).
    """
    del algebra_dim  # one default for every size (kept for the signature)
    return lx.Cholesky()


def _gram_projector(action: AbstractGroupAction, params: Params):
    """``w ↦ P_H w`` with the checked correlation matrix factored once."""
    coefficients, t_mv = _gram_coefficients(action, params)

    def project(w):
        return w - t_mv(coefficients(w))

    return project


def _gram_coefficients(action: AbstractGroupAction, params: Params):
    """``(w ↦ α, α ↦ T α)``: the least-squares orbit coefficients of ``w``
    (``w − Tα = P_H w``) and the orbit-tangent map, the checked correlation
    matrix factored once."""
    flat_orbit, xi0 = _flat_orbit(action, params)
    size = jax.eval_shape(flat_orbit, xi0).shape[0]
    k = xi0.shape[0]
    # Products with T and Tᵀ replay the action's tangent (jvp) and its
    # transpose, and the Gram matrix is built from k such pairs, a batch of
    # generators at a time: O(D) per product and O(D k) for the Gram matrix
    # for rescalings, whose T is sparse (a materialised T costs O(D k) per
    # product and O(D k²) for TᵀT: 17 ms and ~0.5 s at D = 12 545, k = 192).
    _, t_mv = jax.linearize(flat_orbit, xi0)
    transpose = jax.linear_transpose(t_mv, xi0)

    def t_rmv(w):
        return transpose(w)[0]

    gram = jax.lax.map(
        lambda e: t_rmv(t_mv(e)),
        jnp.eye(k, dtype=xi0.dtype),
        batch_size=max(1, min(k, _GRAM_BATCH_ENTRIES // max(size, 1))),
    )
    norms = jnp.sqrt(jnp.maximum(jnp.diag(gram), 0.0))
    tiny = jnp.finfo(gram.dtype).tiny
    safe = jnp.where(norms > tiny, norms, 1.0)
    corr, norms = _check_correlation(
        0.5 * (gram + gram.T) / jnp.outer(safe, safe), norms
    )
    factor = jax.scipy.linalg.cho_factor(corr, lower=True)

    def coefficients(w):
        return jax.scipy.linalg.cho_solve(factor, t_rmv(w) / norms) / norms

    return coefficients, t_mv


def _horizontal_projector(
    action: AbstractGroupAction,
    params: Params,
    solver: lx.AbstractLinearSolver | None,
) -> Callable[[Float[Array, " D"]], Float[Array, " D"]]:
    """``w ↦ P_H w = w − T α``, ``α = argmin ‖T α − w‖``, for flat vectors ``w``.

    ``lx.Cholesky()`` (the default) forms, checks and factors the Gram matrix
    ``TᵀT`` once (exact, refuses a degenerate orbit; see
    :func:`default_projection_solver`); any other lineax solver solves the
    least-squares problem with the matrix-free operator ``T`` (``lx.LSMR``,
    ``lx.Normal(lx.CG(...))``, or ``lx.QR``/``lx.SVD``, which materialise it).
    """
    if solver is None:
        solver = default_projection_solver(action.algebra_dim)
    if not isinstance(solver, lx.AbstractLinearSolver):
        raise TypeError(f"solver must be a lineax solver, got {solver!r}")
    if isinstance(solver, lx.Cholesky):
        return _gram_projector(action, params)
    operator = orbit_tangent_operator(action, params)

    def project(w):
        alpha = lx.linear_solve(operator, w, solver).value
        return w - operator.mv(alpha)

    return project


def horizontal_projection(
    action: AbstractGroupAction,
    params: Params,
    vector: Params,
    *,
    solver: lx.AbstractLinearSolver | None = None,
) -> Params:
    """Orthogonal projection of a tangent ``vector`` at ``params`` onto the
    horizontal space (the Euclidean orthogonal complement of the orbit tangents).

    ``vector`` has the structure of ``params``; so has the result. ``solver``
    (a lineax solver) picks how the orbit part is removed; the default is
    :func:`default_projection_solver`. With ``lx.Cholesky()`` (the default) a
    point whose orbit tangents are linearly dependent raises an equinox runtime
    error; the matrix-free solvers return the projection onto
    the complement of their span (charts refuse such points in ``lift``).
    Supports ``jit``, ``vmap`` and ``grad``.
    """
    flat, unravel = ravel_pytree(vector)
    return unravel(_horizontal_projector(action, params, solver)(flat))


def _lift_and_jacobian(lift: Callable[[Point], Params], q: Point):
    """``σ(q)`` and the Jacobian of its flattening, ``(D, m)``, in one pass."""

    def flat_lift(p):
        params = lift(p)
        return ravel_pytree(params)[0], params

    jac, params = jax.jacfwd(flat_lift, has_aux=True)(q)
    return params, jac


def quotient_metric(
    lift: Callable[[Point], Params], action: AbstractGroupAction, q: Point
) -> Matrix:
    r"""Quotient (horizontal) metric of a gauge-fixed section, by autodiff.

    ``g_ij(q) = <P_H ∂_iσ(q), P_H ∂_jσ(q)>`` with ``σ = lift``, ``<·,·>`` the
    Euclidean inner product on the flattened parameters and ``P_H`` the
    orthogonal projector onto the complement of the orbit tangents at ``σ(q)``.
    ``∂σ`` comes from ``jax.jacfwd(lift)``; the projection from a lineax
    Cholesky solve with the Gram matrix of the orbit tangents.

    The Euclidean metric is not invariant under rescaling groups, so this is the
    metric associated with the gauge (the section), as in the paper: changing
    the section along orbits away from ``σ(q)`` does not change it, changing the
    representative ``σ(q)`` itself does.

    Args:
        lift: ``q -> params``, a section of the quotient map.
        action: the symmetry group acting on ``params``.
        q: a point of shape ``(m,)``.

    Returns:
        The symmetric positive semidefinite ``(m, m)`` metric. Supports ``jit``,
        ``vmap`` over ``q`` and ``grad``.

    Compiled and cached (``eqx.filter_jit``), so an eager call costs one
    dispatch after the first (a chart's ``metric`` calls this): the array
    leaves of ``q``, ``action`` and ``lift`` (a chart's bound ``lift`` is a
    Module whose arrays are leaves) are traced, everything else is static.
    A new point, or a chart with new array fields, reuses the compilation;
    a new shape or dtype of ``q``, a chart or action with other static fields
    (sizes, flags), or a new Python function object as ``lift`` (a fresh
    ``lambda`` per call) compiles again. Under ``jit``/``vmap``/``grad`` it
    is inlined into the caller's computation.
    """
    q = jnp.asarray(q)
    if q.ndim != 1:
        raise ValueError(f"expected a point q of shape (m,), got shape {q.shape}")
    return _quotient_metric(lift, action, q)


@eqx.filter_jit
def _quotient_metric(lift, action, q):
    params, jac = _lift_and_jacobian(lift, q)
    tangents = orbit_tangents(action, params)
    horizontal = horizontal_project_matrix(tangents, jac)
    g = horizontal.T @ horizontal
    return 0.5 * (g + g.T)


def quotient_metric_operator(
    lift: Callable[[Point], Params],
    action: AbstractGroupAction,
    q: Point,
    *,
    solver: lx.AbstractLinearSolver | None = None,
) -> lx.FunctionLinearOperator:
    """Matrix-free quotient metric ``v -> (P_H Dσ)ᵀ (P_H Dσ) v`` as a lineax operator.

    Per product: one ``jvp`` and one ``vjp`` of ``lift`` and one horizontal
    projection (:func:`horizontal_projection`; ``solver`` as there), after the
    ``(k, k)`` Gram matrix of the orbit tangents is formed and factored once
    when the operator is built (without materialising the
    ``(D, k)`` tangents; nothing of size ``m × m`` is formed). Tagged symmetric
    positive semidefinite. Use for large charts (``m ~ 1e5``); with
    ``solver=lx.LSMR(...)`` not even the Gram matrix is formed.
    """
    q = jnp.asarray(q)
    if q.ndim != 1:
        raise ValueError(f"expected a point q of shape (m,), got shape {q.shape}")

    def flat_lift(p):
        params = lift(p)
        return ravel_pytree(params)[0], params

    # Linearised once: a product replays the tangent of the lift (never the
    # lift itself, e.g. the balancing Newton loop) and its transpose.
    _, jvp_fn, params = jax.linearize(flat_lift, q, has_aux=True)
    vjp_fn = jax.linear_transpose(jvp_fn, q)
    project = _horizontal_projector(action, params, solver)

    def matvec(v):
        return vjp_fn(project(jvp_fn(v)))[0]

    return lx.FunctionLinearOperator(
        matvec,
        jax.ShapeDtypeStruct(q.shape, q.dtype),
        (lx.symmetric_tag, lx.positive_semidefinite_tag),
    )
