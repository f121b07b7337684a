"""Balanced gauge for rescaling groups: the minimum-norm point of an orbit.

For a group of positive rescalings acting by ``t ∈ R^k`` (log-scales),
``t ↦ ‖exp(t)·θ‖²`` is a sum of exponentials of linear functions of ``t``,
hence convex; on the regular stratum (no dead unit, no unit without outgoing
weights) it is strictly convex and coercive, and its minimizer is the
*balanced* representative: for every unit, incoming norm = outgoing norm.
"""

import jax
import jax.numpy as jnp
import lineax as lx
from jax import lax

from ._action import AbstractRescalingAction, Params

_MAX_ITERS = 100
# Candidate Newton step lengths 1, 1/2, ..., 2^-11 (built per call, in the
# parameters' dtype: nothing is computed at import time).
_NUM_STEPS = 12


def _sum_of_squares(tree) -> jax.Array:
    return sum(jnp.sum(x**2) for x in jax.tree_util.tree_leaves(tree))


def _cholesky_solve(matrix, vector):
    operator = lx.MatrixLinearOperator(matrix, lx.positive_semidefinite_tag)
    return lx.linear_solve(operator, vector, lx.Cholesky()).value


def balance(action: AbstractRescalingAction, params: Params) -> Params:
    """The balanced representative ``exp(t*)·θ``, ``t* = argmin ‖exp(t)·θ‖²``.

    The minimizer is found by damped Newton (a few candidate step lengths per
    iteration) with no derivatives flowing through the loop; two final Newton
    steps (the first with the live Hessian, the second with it frozen) carry
    them: their first and second derivatives with respect to ``θ`` are those
    of the exact minimiser (the first is the implicit
    ``dt* = −H⁻¹ ∂_θ∇_t f dθ``), so Hessians of ``loss∘lift`` and first
    derivatives of the metric are exact. Supports ``jit``, ``vmap``, ``jvp``
    and ``grad``.

    ``action`` is an :class:`AbstractRescalingAction` (it states the Hessian
    of ``t ↦ ‖exp(t)·θ‖²``).

    Example:
        >>> import jax.numpy as jnp
        >>> from geomshock.charts import TwoLayerRescaling
        >>> p = {"a": jnp.array([4.0]), "u": jnp.array([[1.0, 0.0]]), "c": 0.0}
        >>> b = balance(TwoLayerRescaling(1), p)
        >>> round(float(b["a"][0]), 6), round(float(b["u"][0, 0]), 6)  # |a| = ‖u‖
        (2.0, 2.0)
    """
    if not isinstance(action, AbstractRescalingAction):
        raise ValueError(
            "balance needs a rescaling action (an AbstractRescalingAction with "
            f"norm_sq_hessian); got {type(action).__name__}"
        )
    frozen = lax.stop_gradient(params)
    norm_sq = lambda t, p: _sum_of_squares(action.act(p, t))
    grad_t = jax.grad(norm_sq)
    hess_t = lambda t, p: action.norm_sq_hessian(p, t)
    dtype = jax.tree_util.tree_leaves(frozen)[0].dtype
    steps = 2.0 ** -jnp.arange(_NUM_STEPS, dtype=dtype)
    # Newton converges quadratically: once a step is below sqrt(eps)/10 the
    # iterate is accurate to round-off.
    tol = 0.1 * jnp.sqrt(jnp.finfo(dtype).eps)

    def direction(t):
        return -_cholesky_solve(hess_t(t, frozen), grad_t(t, frozen))

    def not_converged(state):
        t, step, it = state
        return (it < _MAX_ITERS) & (
            jnp.max(jnp.abs(step)) > tol * (1 + jnp.max(jnp.abs(t)))
        )

    def body(state):
        t, _, it = state
        d = direction(t)
        trial = jax.vmap(lambda s: norm_sq(t + s * d, frozen))(steps)
        step = steps[jnp.argmin(trial)] * d
        return t + step, step, it + 1

    t0 = jnp.zeros((action.algebra_dim,), dtype)
    big = jnp.full_like(t0, jnp.inf)
    t, _, _ = lax.while_loop(not_converged, body, (t0, big, 0))
    # From the converged (derivative-free) t, one Newton step with the live
    # Hessian and one with it frozen: no change in value, t₁ − t*(θ) = O(|dθ|²)
    # and t₂ − t*(θ) = O(|dθ|³), so first and second derivatives are those of
    # the exact minimiser (a single frozen step gets only the first right: the
    # Hessian of a loss∘lift that is not gauge invariant was wrong).
    t = lax.stop_gradient(t)
    t = t - _cholesky_solve(hess_t(t, params), grad_t(t, params))
    hess = lax.stop_gradient(hess_t(t, frozen))
    t = t - _cholesky_solve(hess, grad_t(t, params))
    return action.act(params, t)
