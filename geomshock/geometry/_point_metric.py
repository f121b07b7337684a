r"""A metric at one point together with its structure.

``metric(q)`` may return an ``(n, n)`` array or a `lineax` operator. The
operator's type says what the exact operators may exploit:

==========================================================  ======================
``metric(q)`` returns                                       structure
==========================================================  ======================
``lx.IdentityLinearOperator``                               flat, ``g = I``
``c * lx.IdentityLinearOperator`` (``MulLinearOperator``)   conformal, ``g = c I``
``lx.DiagonalLinearOperator(d)``                            diagonal
:func:`low_rank_plus_diagonal` (``diag(d) + U Uᵀ``)         low rank plus diagonal
an array, or any other operator (``as_matrix()``)           dense
==========================================================  ======================

Every structure writes the inverse metric as ``g^{-1} = V Vᵀ − W Wᵀ`` (``W``
absent except for low rank plus diagonal, where it has the rank's columns):
the Hessian trace ``tr(g^{-1} ∂²f)`` is then a sum of second directional
derivatives of ``f`` along the columns of ``V`` and ``W``, and every other
trace ``tr(g^{-1} M)`` likewise a sum of ``v·Mv`` — nothing of size ``n³``
is ever formed.

* scaled identity ``c I``: ``V = c^{-1/2} I``.
* diagonal ``diag(d)``: ``V = diag(d^{-1/2})``.
* ``D + U Uᵀ`` (``U`` of shape ``(n, r)``), Woodbury: ``K = I_r + Uᵀ D^{-1} U
  = L_K L_Kᵀ``, ``V = D^{-1/2}``, ``W = D^{-1} U L_K^{-ᵀ}``; ``log det g =
  Σ log d_i + log det K``.
* dense ``g = L Lᵀ`` (Cholesky): ``V = L^{-ᵀ}``; ``W`` absent.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import lineax as lx

from .._checks import raise_if
from .._custom_types import Array, Matrix
from ._metric import cho_solve, cholesky, symmetry_rtol


def low_rank_plus_diagonal(diagonal, factor) -> lx.AbstractLinearOperator:
    r"""The metric ``g = diag(diagonal) + factor factorᵀ`` as a lineax operator.

    ``diagonal`` of shape ``(n,)`` (every entry > 0), ``factor`` of shape
    ``(n, r)``. Return it from a metric function, ``q -> low_rank_plus_diagonal(
    d(q), U(q))``, and the geometry operators use its structure (Woodbury,
    ``O(n r²)`` per solve) instead of a dense ``n × n`` Cholesky factor. It is
    an ordinary lineax operator (``mv``, ``as_matrix``, ``lx.linear_solve``).

    >>> import jax.numpy as jnp
    >>> g = low_rank_plus_diagonal(jnp.array([1.0, 2.0]), jnp.array([[1.0], [0.0]]))
    >>> g.as_matrix().tolist()
    [[2.0, 0.0], [0.0, 2.0]]
    """
    diagonal = jnp.asarray(diagonal)
    factor = jnp.asarray(factor)
    if diagonal.ndim != 1 or factor.ndim != 2 or factor.shape[0] != diagonal.shape[0]:
        raise ValueError(
            "low_rank_plus_diagonal expects a diagonal of shape (n,) and a factor "
            f"of shape (n, r); got {diagonal.shape} and {factor.shape}"
        )
    low_rank = lx.MatrixLinearOperator(factor) @ lx.MatrixLinearOperator(factor.T)
    return lx.TaggedLinearOperator(
        lx.DiagonalLinearOperator(diagonal) + low_rank,
        (lx.symmetric_tag, lx.positive_semidefinite_tag),
    )


def scaled_identity(scale, dim: int) -> lx.AbstractLinearOperator:
    r"""The conformally flat metric ``g = scale · I`` (``n = dim``), a lineax operator.

    >>> import jax.numpy as jnp
    >>> scaled_identity(jnp.array(2.0), 2).as_matrix().tolist()
    [[2.0, 0.0], [0.0, 2.0]]
    """
    scale = jnp.asarray(scale)
    if scale.shape != ():
        raise ValueError(f"scale must be a scalar; got shape {scale.shape}")
    if not jnp.issubdtype(scale.dtype, jnp.floating):
        scale = scale.astype(jnp.result_type(float))
    structure = jax.ShapeDtypeStruct((dim,), scale.dtype)
    return scale * lx.IdentityLinearOperator(structure)


def apply_metric(value, x: Array) -> Array:
    """``g x`` for ``g`` an array or a lineax operator (its own, structured ``mv``)."""
    if isinstance(value, lx.AbstractLinearOperator):
        return value.mv(x)
    return jnp.asarray(value) @ x


def metric_matrix(value) -> Matrix:
    """``g`` as an ``(n, n)`` array (an operator materialised with ``as_matrix``)."""
    if isinstance(value, lx.AbstractLinearOperator):
        return value.as_matrix()
    return jnp.asarray(value)


def map_directions(fn, directions: Array, batch_size: int | None):
    """``fn`` over the rows of ``directions``: one ``vmap``, or ``lax.map`` in
    chunks of ``batch_size`` rows (memory ``batch_size`` times one row's)."""
    if batch_size is None or batch_size >= directions.shape[0]:
        return jax.vmap(fn)(directions)
    return jax.lax.map(fn, directions, batch_size=batch_size)


class AbstractPointMetric(eqx.Module):
    """``g(q)`` at one point, with the linear algebra its structure allows."""

    @abc.abstractmethod
    def inverse_factors(self) -> tuple[Matrix, Array | None]:
        """``(V, W)`` with ``g^{-1} = V Vᵀ − W Wᵀ``; ``W`` is None when absent."""

    @abc.abstractmethod
    def solve(self, b: Array) -> Array:
        """``g^{-1} b``."""

    @abc.abstractmethod
    def logdet(self) -> Array:
        """``log det g``."""

    def inverse(self) -> Matrix:
        """``g^{-1}`` as an ``(n, n)`` array."""
        v, w = self.inverse_factors()
        return v @ v.T if w is None else v @ v.T - w @ w.T

    def christoffel_trace(
        self, metric, q: Array, x: Array, factors, batch_size
    ) -> Array:
        r"""``tr(g^{-1} J)`` with ``J = ∂(g(p) x)/∂p`` at ``p = q`` and ``x`` fixed,
        i.e. ``g^{ij} ∂_i g_{jl} x^l``: ``Σ_k v_k·J v_k − Σ_j w_j·J w_j``, one
        JVP of ``p ↦ g(p) x`` per column of ``V`` and ``W``; ``factors`` is
        :meth:`inverse_factors`, computed once by the caller."""

        def along(direction):
            tangent = jax.jvp(lambda p: apply_metric(metric(p), x), (q,), (direction,))
            return direction @ tangent[1]

        v, w = factors
        total = jnp.sum(map_directions(along, v.T, batch_size))
        if w is not None:
            total = total - jnp.sum(map_directions(along, w.T, batch_size))
        return total

    def logdet_derivative(self, metric, q: Array, x: Array, factors) -> Array:
        r"""``D_x log det g = tr(g^{-1} D_x g)``: one JVP of ``log det g(p)``."""
        return jax.jvp(
            lambda p: point_metric(metric(p), check=False).logdet(), (q,), (x,)
        )[1]


class DenseMetric(AbstractPointMetric):
    """A dense symmetric positive definite ``g``, held as its Cholesky factor."""

    chol: Matrix

    def inverse_factors(self):
        eye = jnp.eye(self.chol.shape[0], dtype=self.chol.dtype)
        return jsl.solve_triangular(self.chol, eye, lower=True).T, None

    def inverse(self):
        return cho_solve(self.chol, jnp.eye(self.chol.shape[0], dtype=self.chol.dtype))

    def solve(self, b):
        return cho_solve(self.chol, b)

    def logdet(self):
        return 2.0 * jnp.sum(jnp.log(jnp.diagonal(self.chol)))

    def logdet_derivative(self, metric, q, x, factors):
        # tr(g^{-1} Ġ) = Σ_k v_k·Ġ v_k reuses the factor instead of
        # differentiating a second Cholesky factorisation.
        g_dot = jax.jvp(lambda p: metric_matrix(metric(p)), (q,), (x,))[1]
        v, _ = factors
        return jnp.sum(v * (g_dot @ v))


class ScaledIdentityMetric(AbstractPointMetric):
    """``g = c I`` (``c = 1``: flat)."""

    scale: Array
    dim: int = eqx.field(static=True)

    def inverse_factors(self):
        eye = jnp.eye(self.dim, dtype=self.scale.dtype)
        return eye / jnp.sqrt(self.scale), None

    def solve(self, b):
        return b / self.scale

    def logdet(self):
        return self.dim * jnp.log(self.scale)

    def christoffel_trace(self, metric, q, x, factors, batch_size):
        # J = x ∇cᵀ, so tr(g^{-1} J) = D_x c / c: one JVP instead of n.
        d_scale = jax.jvp(
            lambda p: point_metric(metric(p), check=False).scale, (q,), (x,)
        )[1]
        return d_scale / self.scale


class DiagonalMetric(AbstractPointMetric):
    """``g = diag(d)``."""

    diagonal: Array

    def inverse_factors(self):
        return jnp.diag(1.0 / jnp.sqrt(self.diagonal)), None

    def inverse(self):
        return jnp.diag(1.0 / self.diagonal)

    def solve(self, b):
        return b / self.diagonal

    def logdet(self):
        return jnp.sum(jnp.log(self.diagonal))


class LowRankPlusDiagonalMetric(AbstractPointMetric):
    """``g = diag(d) + U Uᵀ``, solved by Woodbury with ``K = I + Uᵀ D^{-1} U``."""

    diagonal: Array
    factor: Array
    chol_k: Matrix  # lower Cholesky factor of K

    def inverse_factors(self):
        # L_K^{-1} first (r right-hand sides), then a matmul: jaxlib 0.10's
        # LAPACK triangular solve with n right-hand sides ran ~300x slower here.
        eye = jnp.eye(self.chol_k.shape[0], dtype=self.chol_k.dtype)
        chol_k_inv = jsl.solve_triangular(self.chol_k, eye, lower=True)
        w = (self.factor / self.diagonal[:, None]) @ chol_k_inv.T
        return jnp.diag(1.0 / jnp.sqrt(self.diagonal)), w

    def solve(self, b):
        _, w = self.inverse_factors()
        return b / self.diagonal - w @ (w.T @ b)

    def logdet(self):
        return jnp.sum(jnp.log(self.diagonal)) + 2.0 * jnp.sum(
            jnp.log(jnp.diagonal(self.chol_k))
        )


def _untag(op):
    while isinstance(op, lx.TaggedLinearOperator):
        op = op.operator
    return op


def _scale_of_identity(op):
    """``c`` when ``op`` is ``c I`` (identity, times or divided by scalars)."""
    op = _untag(op)
    if isinstance(op, lx.IdentityLinearOperator):
        return jnp.ones((), op.in_structure().dtype)
    if isinstance(op, lx.MulLinearOperator | lx.DivLinearOperator):
        inner = _scale_of_identity(op.operator)
        if inner is not None:
            scalar = jnp.asarray(op.scalar)
            return (
                inner * scalar
                if isinstance(op, lx.MulLinearOperator)
                else (inner / scalar)
            )
    return None


def _low_rank_parts(op):
    """``(d, U, Uᵀ as given)`` when ``op`` is ``diag(d) + Matrix(U) @ Matrix(Uᵀ)``."""
    op = _untag(op)
    if not isinstance(op, lx.AddLinearOperator):
        return None
    for diag, rest in ((op.operator1, op.operator2), (op.operator2, op.operator1)):
        diag, rest = _untag(diag), _untag(rest)
        if not (
            isinstance(diag, lx.DiagonalLinearOperator)
            and isinstance(rest, lx.ComposedLinearOperator)
        ):
            continue
        left, right = _untag(rest.operator1), _untag(rest.operator2)
        if isinstance(left, lx.MatrixLinearOperator) and isinstance(
            right, lx.MatrixLinearOperator
        ):
            if right.matrix.shape == left.matrix.shape[::-1]:
                return diag.diagonal, left.matrix, right.matrix
    return None


def _positive(x: Array, what: str) -> Array:
    bad = ~jnp.all(jnp.isfinite(x) & (x > 0))
    return raise_if(
        x,
        bad,
        f"metric is not symmetric positive definite: {what} must be finite and "
        "> 0 at this point",
    )


def point_metric(value, *, check: bool = True) -> AbstractPointMetric:
    """The structure of ``value = metric(q)`` (see the module docstring).

    With ``check`` (the default) the value is validated once: symmetric and
    positive definite (``ValueError`` for a known value, ``eqx.error_if`` when
    traced). Derivatives at nearby points use ``check=False``.
    """
    if isinstance(value, lx.AbstractLinearOperator):
        scale = _scale_of_identity(value)
        if scale is not None:
            if check:
                scale = _positive(scale, "the scale c of g = c I")
            return ScaledIdentityMetric(scale, value.in_structure().shape[0])
        op = _untag(value)
        if isinstance(op, lx.DiagonalLinearOperator):
            diagonal = op.diagonal
            if check:
                diagonal = _positive(diagonal, "every diagonal entry")
            return DiagonalMetric(diagonal)
        parts = _low_rank_parts(value)
        if parts is not None:
            diagonal, factor, factor_t = parts
            if check:
                diagonal = _positive(diagonal, "every diagonal entry of diag(d) + UUᵀ")
                rtol = symmetry_rtol(factor.dtype)
                asym = jnp.max(jnp.abs(factor_t - factor.T), initial=0.0)
                factor = raise_if(
                    factor,
                    asym > rtol * jnp.max(jnp.abs(factor), initial=0.0),
                    "metric is not symmetric: diag(d) + A B needs B = Aᵀ; build "
                    "it with geomshock.geometry.low_rank_plus_diagonal(d, U)",
                )
            rank = factor.shape[1]
            k = jnp.eye(rank, dtype=factor.dtype) + factor.T @ (
                factor / diagonal[:, None]
            )
            return LowRankPlusDiagonalMetric(diagonal, factor, jnp.linalg.cholesky(k))
    g = metric_matrix(value)
    return DenseMetric(cholesky(g) if check else jnp.linalg.cholesky(g))
