"""The quotient SDE ``dY = −b(Y) dt + sqrt(η) σ(Y) dB``, ``σσᵀ = A``, with diffrax."""

import abc
import math
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import (
    concrete,
    finite_array,
    is_concrete,
    positive_scalar,
    run_time_check,
)
from ._checks import check_seed_keys, check_vector_output


class AbstractMatrixSqrt(eqx.Module):
    """Maps a covariance ``A`` to a factor ``σ`` with ``σσᵀ = A``."""

    @abc.abstractmethod
    def __call__(self, a: Float[Array, "m m"]) -> Float[Array, "m m"]: ...


def _check_symmetric(a, rtol):
    scale = jnp.max(jnp.abs(a))
    return eqx.error_if(
        a,
        jnp.max(jnp.abs(a - a.T)) > rtol * scale,
        "covariance A is not symmetric",
    )


@jax.custom_jvp
def _psd_sqrt(a):
    lam, vec = jnp.linalg.eigh(a)
    return (vec * jnp.sqrt(jnp.maximum(lam, 0.0))) @ vec.T


@_psd_sqrt.defjvp
def _psd_sqrt_jvp(primals, tangents):
    # S dS + dS S = dA, solved in A's eigenbasis; well defined for repeated
    # eigenvalues, where differentiating eigh itself gives NaN.
    (a,), (da,) = primals, tangents
    lam, vec = jnp.linalg.eigh(a)
    root = jnp.sqrt(jnp.maximum(lam, 0.0))
    out = (vec * root) @ vec.T
    da = vec.T @ (0.5 * (da + da.T)) @ vec
    denom = root[:, None] + root[None, :]
    safe = jnp.where(denom > 0, denom, 1.0)
    return out, vec @ jnp.where(denom > 0, da / safe, 0.0) @ vec.T


class EighSqrt(AbstractMatrixSqrt):
    """Symmetric square root ``σ = A^{1/2}`` by ``eigh``; ``A`` may be singular.

    Fails (``eqx.error_if``) when ``A`` is not symmetric or has an eigenvalue
    below ``−rtol · max|λ|``; eigenvalues in ``[−rtol·max|λ|, 0)`` are rounding
    and are set to 0. Differentiable, also at repeated eigenvalues.
    """

    rtol: float = eqx.field(static=True, default=1e-10)

    def __call__(self, a):
        a = _check_symmetric(a, self.rtol)
        lam = jnp.linalg.eigvalsh(a)
        a = eqx.error_if(
            a,
            lam[0] < -self.rtol * jnp.max(jnp.abs(lam)),
            "covariance A is not positive semidefinite (negative eigenvalue)",
        )
        return _psd_sqrt(a)


class CholeskySqrt(AbstractMatrixSqrt):
    """Lower Cholesky factor ``σ = L``, ``LLᵀ = A``; ``A`` must be positive definite.

    Fails (``eqx.error_if``) when ``A`` is not symmetric or the factorisation
    breaks down (not positive definite; use ``EighSqrt`` for singular ``A``).
    """

    rtol: float = eqx.field(static=True, default=1e-10)

    def __call__(self, a):
        a = _check_symmetric(a, self.rtol)
        chol = jnp.linalg.cholesky(a)
        return eqx.error_if(
            chol,
            ~jnp.all(jnp.isfinite(chol)),
            "covariance A is not positive definite (Cholesky failed); "
            "use EighSqrt() for a semidefinite covariance",
        )


class QuotientSDEPath(eqx.Module):
    """Quotient SDE sample paths: ``ys[s, i]`` is seed ``s`` at time ``ts[i]``."""

    ts: Float[Array, " t"]
    ys: Float[Array, "s t m"]


def solve_quotient_sde(
    drift: Callable[[Float[Array, " m"]], Float[Array, " m"]],
    covariance: Callable[[Float[Array, " m"]], Float[Array, "m m"]],
    y0: Float[ArrayLike, " m"],
    *,
    learning_rate,
    t1,
    keys: PRNGKeyArray,
    t0=0.0,
    ts: Float[ArrayLike, " t"] | None = None,
    dt0=None,
    solver: diffrax.AbstractSolver | None = None,
    matrix_sqrt: AbstractMatrixSqrt | None = None,
    max_steps: int | None = None,
) -> QuotientSDEPath:
    r"""Integrate the quotient SDE of SGD, one Brownian path per key.

    ``dY = −b(Y) dt + sqrt(η) σ(Y) dB``, ``σσᵀ = A(Y)`` (Itô), the weak
    continuous-time limit of projected SGD with learning rate ``η`` at time
    ``t = η n`` (Thm. 2.2 and the remark after it).

    Args:
        drift: ``Y -> b(Y)`` (note the sign: the SDE drift is ``−b``).
        covariance: ``Y -> A(Y)``, symmetric positive semidefinite.
        y0: initial point, shape ``(m,)``.
        learning_rate: ``η > 0``; scales the noise by ``sqrt(η)``.
        t1: final time (``t0 < t1``).
        keys: a batch of PRNG keys, one sample path each.
        t0: initial time.
        ts: save times in ``[t0, t1]``; default ``[t0, t1]``.
        dt0: constant step size; default ``η`` (one SDE step per SGD step).
        solver: a diffrax SDE solver; default ``diffrax.Euler()`` (Euler–
            Maruyama, Itô). Stratonovich solvers (Heun, Midpoint) agree only
            when ``σ`` is constant.
        matrix_sqrt: how ``σ`` is obtained from ``A``: ``EighSqrt()`` (the
            symmetric root, allows singular ``A``; the default) or ``CholeskySqrt()``.
        max_steps: diffrax's step limit; default ``ceil((t1 − t0)/dt0) + 1``
            when those are known at trace time, else 65536.

    Returns:
        ``QuotientSDEPath(ts, ys)`` with ``ys`` of shape ``(seeds, len(ts), m)``.

    Brownian motion is a ``diffrax.VirtualBrownianTree`` (tolerance ``dt0/2``)
    per key, so results do not depend on how the keys are batched. Works under
    ``jax.jit``, ``jax.vmap`` (over ``y0``, ``η``, anything the coefficient
    functions close over; seeds are the ``keys`` axis) and ``jax.grad``
    (pathwise, for fixed keys). Computes in ``y0``'s float dtype. Non-finite
    input (``y0``, ``η``, or coefficients ``b(y0)``, ``A(y0)`` with NaN/inf) is
    refused up front ("non-finite input"), a non-symmetric or indefinite ``A``
    and a path that turns non-finite fail with an error instead of producing
    NaN.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> path = solve_quotient_sde(
        ...     lambda y: y, lambda y: jnp.eye(1), jnp.ones(1), learning_rate=0.01,
        ...     t1=0.1, keys=jax.random.split(jax.random.key(0), 4),
        ... )
        >>> path.ys.shape  # (seeds, len(ts), m)
        (4, 2, 1)
    """
    y0 = jnp.asarray(y0)
    if y0.ndim != 1:
        raise ValueError(f"y0 must have shape (m,), got shape {y0.shape}")
    y0 = finite_array(y0, "y0")
    (m,) = y0.shape
    check_vector_output(drift, y0, "drift", (m,))
    check_vector_output(covariance, y0, "covariance", (m, m))
    y0 = _finite_coefficients_at(y0, drift, covariance)
    matrix_sqrt = EighSqrt() if matrix_sqrt is None else matrix_sqrt
    if not isinstance(matrix_sqrt, AbstractMatrixSqrt):
        raise ValueError(
            "matrix_sqrt must be EighSqrt() or CholeskySqrt(), got "
            f"{type(matrix_sqrt).__name__}"
        )
    learning_rate = positive_scalar(learning_rate, "learning_rate", dtype=y0.dtype)
    keys, _ = check_seed_keys(keys)
    if is_concrete(t0) and is_concrete(t1) and not float(t1) > float(t0):
        raise ValueError(f"need t0 < t1, got t0={t0}, t1={t1}")
    dt0 = learning_rate if dt0 is None else positive_scalar(dt0, "dt0", dtype=y0.dtype)
    if max_steps is None:
        if all(is_concrete(x) for x in (t0, t1, dt0)):
            max_steps = math.ceil((float(t1) - float(t0)) / float(dt0) * (1 + 1e-9)) + 1
        else:
            max_steps = 16**4
    ts = jnp.stack([jnp.asarray(t0), jnp.asarray(t1)]) if ts is None else ts
    ts = jnp.asarray(ts, dtype=y0.dtype)
    if ts.ndim != 1:
        raise ValueError(f"ts must be a 1-D array of save times, got shape {ts.shape}")
    solver = diffrax.Euler() if solver is None else solver
    coefficients = _Coefficients(drift, covariance, matrix_sqrt)
    times = [jnp.asarray(x, dtype=y0.dtype) for x in (t0, t1, dt0)]
    ys = _sample_paths(
        coefficients, solver, y0, jnp.sqrt(learning_rate), keys, *times, ts, max_steps
    )
    ys = run_time_check(
        ys,
        ~jnp.all(jnp.isfinite(ys)),
        "the quotient SDE path became non-finite (the drift or covariance "
        "returned NaN/inf along the path, or the path diverged); check the "
        "coefficients away from y0, or lower dt0",
    )
    return QuotientSDEPath(ts=ts, ys=ys)


def _finite_coefficients_at(y0, drift, covariance):
    """``y0``, after checking that ``b(y0)`` and ``A(y0)`` are finite (a
    ``NonFiniteInputError`` now when known, else a run-time check on ``y0``)."""
    for name, value in (
        ("drift b(y0)", drift(y0)),
        ("covariance A(y0)", covariance(y0)),
    ):
        value_c = concrete(value)
        if value_c is not None:
            finite_array(value_c, name)
            continue
        y0 = run_time_check(
            y0,
            ~jnp.all(jnp.isfinite(value)),
            f"non-finite input: {name} contains NaN or inf; pass coefficient "
            "functions that are finite at y0",
        )
    return y0


class _Coefficients(eqx.Module):
    # A Module (not closures) so that repeated calls with the same user
    # functions hit the compilation cache of ``_sample_paths``.
    drift: Callable
    covariance: Callable
    matrix_sqrt: AbstractMatrixSqrt

    def negative_drift(self, t, y, args):
        return -self.drift(y)

    def diffusion(self, t, y, scale):
        return scale * self.matrix_sqrt(self.covariance(y))


@eqx.filter_jit
def _sample_paths(coefficients, solver, y0, scale, keys, t0, t1, dt0, ts, max_steps):
    shape = jax.ShapeDtypeStruct(y0.shape, y0.dtype)

    def solve(key):
        brownian = diffrax.VirtualBrownianTree(t0, t1, dt0 / 2, shape, key)
        terms = diffrax.MultiTerm(
            diffrax.ODETerm(coefficients.negative_drift),
            diffrax.ControlTerm(coefficients.diffusion, brownian),
        )
        solution = diffrax.diffeqsolve(
            terms,
            solver,
            t0,
            t1,
            dt0,
            y0,
            args=scale,
            saveat=diffrax.SaveAt(ts=ts),
            max_steps=max_steps,
        )
        return solution.ys

    return jax.vmap(solve)(keys)
