r"""Sec. 6 ``plateau``: the symmetric plateau of a soft-committee machine.

Teacher–student online learning (Saad & Solla 1995). Inputs ``x ~ N(0, I_N)``,
fresh at every step. Teacher ``y(x) = Σ_n g(B_n·x)``, student
``φ(x) = Σ_i g(W_i·x)``, ``g(u) = erf(u/√2)``, ``K`` student and ``M = K``
teacher units, second layer fixed to 1. The weights are normalised so that the
fields are ``W x`` (``W = J/√N`` in the common ``J``-normalisation, so
``Q = W Wᵀ = J Jᵀ/N``, ``R = W Bᵀ``, ``T = B Bᵀ = I``). Online SGD on the
per-sample loss ``½(φ(x) − y(x))²`` with learning rate ``η/N``:
``W_i ← W_i + (η/N) δ_i x``, ``δ_i = g'(W_i·x)(y(x) − φ(x))``.

**Order-parameter ODE** (the exact ``N → ∞`` reference, in ``α = step/N``):
``dR/dα = η Σ ⟨g'(h_i) y_n (Σ_m g(y_m) − Σ_j g(h_j))⟩`` and
``dQ/dα = η (… + transpose) + η² ⟨δ_i δ_k⟩``, with the closed-form Gaussian
expectations of erf units (:func:`erf_i2`, :func:`erf_i3`, :func:`erf_i4`),
integrated by diffrax. The generalisation error ``ε_g(Q, R)`` (the population
loss) is the closed form :func:`generalization_error`.

**Quotient chart.** ``ε_g`` depends on ``W`` only through ``(Q, R)``: it is
invariant under the rotations ``O(N − M)`` of the complement of the teacher's
span (acting on the right of ``W``) and under the permutations ``S_K`` of the
student units. ``_OverlapChart`` is the chart of ``W`` modulo ``O(N − M)``:
``q = (R, L)``, ``L`` the Cholesky factor of ``W_⊥W_⊥ᵀ = Q − R Rᵀ``
(``W_⊥`` the part of ``W`` orthogonal to the teacher), lift
``W = R B + L E`` (``E`` ``K`` fixed orthonormal directions orthogonal to the
teacher). Its metric is the submersion metric, derived by autodiff of the lift
with the rotations of the ``E``-plane as orbit directions (the other vertical
directions ``L E Ω_{er}`` are orthogonal to every lift tangent, so they do not
change the horizontal projection). Regular stratum: ``W_⊥`` of full rank.

**The permutation quotient and its non-free stratum.** ``S_K`` is taken out
by :class:`geomshock.charts.CanonicalOrderChart` (units sorted by the key
``Σ_n (n + 1) R_in``). On the symmetric plateau all units have (nearly) the
same overlaps, so the point sits *near* the tie set, where the sorting is not
smooth and ``S_K`` does not act freely on ``(Q, R)`` (the symmetric point is
fixed by all of ``S_K``: an orbifold point of the quotient). The chart handles
it as follows: off the tie set (exact ties have probability zero along an SGD
trajectory; the chart raises an error on one) the curvature is computed on the
ordered representative. Because ``ε_g`` is ``S_K``-invariant and ``S_K`` acts
on the ``O(N − M)``-quotient by isometries, the covariant Hessian at ``q`` and
at ``σ·q`` have the same spectrum: the quotient curvature of the orbifold is
that of its smooth cover, well defined also at and near the tie set, and it
does not jump when the sorting order changes. The chart's ordering is only a
choice of representative.

**What the gauge can and cannot move.** All the symmetries of this problem are
orthogonal maps of ``W`` (permutations of rows, rotations of the complement),
so the raw Hessian spectrum of ``ε_g`` and ``‖W‖`` are invariant too:
``signals_gauged`` equals ``signals`` for the raw signals here as well (unlike
rescaling symmetries); raw and quotient curvature differ in value (the raw
Hessian includes the orbit directions), not in gauge behaviour.

**Event.** The plateau value ``ε_p`` is ``ε_g`` at the symmetric fixed point of
the ODE (integrated from the symmetrised initial overlaps, which the dynamics
keep symmetric); the event is the first SGD step where ``ε_g < ½ ε_p`` (the
escape). Steps are counted from 0; ``-1`` if it never happens.
"""

import math
import time

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import expm
from jax.scipy.special import erf
from jaxtyping import Array

from .._checks import positive_int, raise_if
from ..charts import (
    AbstractGroupAction,
    AbstractPermutableChart,
    CanonicalOrderChart,
    orbit_tangents,
)
from ._sec6_signals import curvature_signals, make_trace

_PI = math.pi


# --- closed-form Gaussian expectations of erf units ----------------------------------


def erf_i2(c11, c12, c22):
    """``⟨g(u) g(v)⟩`` for ``g(u) = erf(u/√2)``, ``(u, v)`` centred Gaussian with
    covariance ``[[c11, c12], [c12, c22]]``.

    Example:
        >>> round(float(erf_i2(1.0, 0.0, 1.0)), 12)
        0.0
    """
    return (2 / _PI) * jnp.arcsin(c12 / jnp.sqrt((1 + c11) * (1 + c22)))


def erf_i3(c):
    """``⟨g'(u) v g(w)⟩`` for ``(u, v, w)`` with covariance ``c`` (3×3).

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(erf_i3(jnp.eye(3))), 12)  # v independent of u, w
        0.0
    """
    lam3 = (1 + c[0, 0]) * (1 + c[2, 2]) - c[0, 2] ** 2
    num = c[1, 2] * (1 + c[0, 0]) - c[0, 1] * c[0, 2]
    return (2 / _PI) / jnp.sqrt(lam3) * num / (1 + c[0, 0])


def erf_i4(c):
    """``⟨g'(u) g'(v) g(w) g(z)⟩`` for ``(u, v, w, z)`` with covariance ``c`` (4×4).

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(erf_i4(jnp.eye(4))), 12)
        0.0
    """
    c11, c12, c13, c14 = c[0, 0], c[0, 1], c[0, 2], c[0, 3]
    c22, c23, c24 = c[1, 1], c[1, 2], c[1, 3]
    c33, c34, c44 = c[2, 2], c[2, 3], c[3, 3]
    lam4 = (1 + c11) * (1 + c22) - c12**2
    lam0 = (
        lam4 * c34
        - c23 * c24 * (1 + c11)
        - c13 * c14 * (1 + c22)
        + c12 * c13 * c24
        + c12 * c14 * c23
    )
    lam1 = lam4 * (1 + c33) - c23**2 * (1 + c11) - c13**2 * (1 + c22)
    lam1 = lam1 + 2 * c12 * c13 * c23
    lam2 = lam4 * (1 + c44) - c24**2 * (1 + c11) - c14**2 * (1 + c22)
    lam2 = lam2 + 2 * c12 * c14 * c24
    return (4 / _PI**2) / jnp.sqrt(lam4) * jnp.arcsin(lam0 / jnp.sqrt(lam1 * lam2))


def _joint_covariance(q, r, t):
    return jnp.block([[q, r], [r.T, t]])


def generalization_error(q, r, t):
    """``ε_g = ½⟨(Σ_i g(h_i) − Σ_n g(y_n))²⟩`` from the overlaps ``Q``, ``R``, ``T``.

    Example:
        >>> import jax.numpy as jnp
        >>> t = jnp.eye(2)
        >>> round(float(generalization_error(t, t, t)), 12)  # student = teacher
        0.0
    """
    c = _joint_covariance(q, r, t)
    k = q.shape[0]
    sign = jnp.concatenate([jnp.ones(k), -jnp.ones(t.shape[0])])
    d = jnp.diag(c)
    pair = erf_i2(d[:, None], c, d[None, :])
    return 0.5 * sign @ pair @ sign


def order_parameter_rhs(q, r, t, eta):
    """``(dQ/dα, dR/dα)`` of the Saad–Solla ODE for erf units, ``α = step/N``.

    Example:
        >>> import jax.numpy as jnp
        >>> t = jnp.eye(2)
        >>> dq, dr = order_parameter_rhs(t, t, t, 1.0)  # the teacher is a fixed point
        >>> float(jnp.max(jnp.abs(dq))) < 1e-12, float(jnp.max(jnp.abs(dr))) < 1e-12
        (True, True)
    """
    c = _joint_covariance(q, r, t)
    k = q.shape[0]
    n = c.shape[0]
    sign = jnp.concatenate([-jnp.ones(k), jnp.ones(t.shape[0])])
    idx = jnp.arange(n)

    def i3(a, b, e):
        ii = jnp.stack([a, b, e])
        return erf_i3(c[ii][:, ii])

    def i4(a, b, e, f):
        ii = jnp.stack([a, b, e, f])
        return erf_i4(c[ii][:, ii])

    over = jax.vmap
    # drift[a, b] = ⟨g'(u_a) u_b (y − φ)⟩, a a student unit, b any unit
    t3 = over(over(over(i3, (None, None, 0)), (None, 0, None)), (0, None, None))
    drift = t3(jnp.arange(k), idx, idx) @ sign
    t4 = over(
        over(
            over(over(i4, (None,) * 3 + (0,)), (None,) * 2 + (0, None)),
            (None, 0, None, None),
        ),
        (0, None, None, None),
    )
    noise = jnp.einsum(
        "abef,e,f->ab", t4(jnp.arange(k), jnp.arange(k), idx, idx), sign, sign
    )
    dq = eta * (drift[:, :k] + drift[:, :k].T) + eta**2 * noise
    return 0.5 * (dq + dq.T), eta * drift[:, k:]


def solve_overlap_ode(q0, r0, t, eta, alphas, *, rtol=1e-9, atol=1e-11):
    """Integrate the order-parameter ODE from ``(Q, R) = (q0, r0)`` with diffrax
    (Tsit5, adaptive steps); returns ``(Q, R)`` at ``alphas`` (``α = step/N``,
    increasing, ``alphas[0] >= 0``), shapes ``(len(alphas), K, K)``, ``(…, K, M)``.

    Example:
        >>> import jax.numpy as jnp
        >>> t = jnp.eye(2)
        >>> alphas = jnp.array([0.0, 5.0])
        >>> qs, rs = solve_overlap_ode(0.1 * t, 0.05 * t, t, 1.0, alphas)
        >>> e0, e1 = (generalization_error(qs[i], rs[i], t) for i in (0, 1))
        >>> bool(e1 < e0)
        True
    """

    def field(alpha, y, args):
        return order_parameter_rhs(y[0], y[1], t, eta)

    alphas = jnp.asarray(alphas)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5(),
        0.0,
        alphas[-1],
        0.01,
        (q0, r0),
        saveat=diffrax.SaveAt(ts=alphas),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=1_000_000,
    )
    return sol.ys


def first_crossing(times, values, level):
    """First time where ``values`` falls below ``level`` (linear interpolation
    between samples); ``inf`` if it never does.

    Example:
        >>> import jax.numpy as jnp
        >>> float(first_crossing(jnp.arange(4.0), jnp.array([4.0, 3.0, 1.0, 0.0]), 2.0))
        1.5
    """
    below = values < level
    i = jnp.argmax(below)
    j = jnp.maximum(i - 1, 0)
    frac = (values[j] - level) / jnp.where(i > 0, values[j] - values[i], 1.0)
    t = jnp.where(i > 0, times[j] + frac * (times[i] - times[j]), times[0])
    return jnp.where(jnp.any(below), t, jnp.inf)


def _symmetrised(q0, r0):
    """Diagonal and off-diagonal means of ``q0``; ``r0`` replaced by its mean."""
    k = q0.shape[0]
    eye = jnp.eye(k)
    diag = jnp.trace(q0) / k
    off = (jnp.sum(q0) - jnp.trace(q0)) / max(k * (k - 1), 1)
    return diag * eye + off * (1 - eye), jnp.full_like(r0, jnp.mean(r0))


def plateau_value(q0, r0, t, eta, alpha_end):
    """``ε_g`` at the symmetric fixed point: the ODE from the symmetrised
    ``(q0, r0)`` (diagonal and off-diagonal means; ``R`` all equal), which the
    dynamics keep symmetric, at ``α = alpha_end``.

    Example:
        >>> import jax.numpy as jnp
        >>> t = jnp.eye(3)
        >>> eps_p = plateau_value(0.2 * t, 0.01 * t, t, 1.0, 300.0)
        >>> round(float(eps_p), 4)
        0.0661
    """
    qs, rs = _symmetrised(q0, r0)
    q, r = solve_overlap_ode(qs, rs, t, eta, jnp.array([0.0, alpha_end]))
    return generalization_error(q[-1], r[-1], t)


# --- finite-N simulations -----------------------------------------------------------


def _g(u):
    return erf(u / math.sqrt(2.0))


def _g_prime(u):
    return math.sqrt(2.0 / _PI) * jnp.exp(-0.5 * u**2)


def _student_error(w, b):
    return generalization_error(w @ w.T, w @ b.T, b @ b.T)


def _checkpointed_scan(step, carry, noise, epsilon_of, threshold):
    """Run ``carry = step(carry, noise_i)`` for ``noise.intervals * noise.every``
    steps (``noise(c)``: the per-step noise of interval ``c``, stacked); returns
    the carries after every ``noise.every`` steps and the first step (counted
    from 1) with ``epsilon_of(carry) < threshold`` (``-1`` if none)."""
    every = noise.every

    def inner(state, xs):
        carry, event = state
        i, xi = xs
        carry = step(carry, xi)
        eps = epsilon_of(carry)
        event = jnp.where((event < 0) & (eps < threshold), i, event)
        return (carry, event), None

    def outer(state, c):
        steps = c * every + 1 + jnp.arange(every)
        state, _ = jax.lax.scan(inner, state, (steps, noise(c)))
        return state, state[0]

    (_, event), saved = jax.lax.scan(
        outer, (carry, jnp.array(-1)), jnp.arange(noise.intervals)
    )
    return saved, event


class _Noise:
    """The noise of checkpoint interval ``c``: drawn then (``draw(key_c, every)``)
    or sliced from arrays drawn up front."""

    def __init__(self, intervals, every, draw=None, keys=None, arrays=None):
        self.intervals, self.every = intervals, every
        self.draw, self.keys, self.arrays = draw, keys, arrays

    def __call__(self, c):
        if self.draw is not None:
            return self.draw(self.keys[c], self.every)
        return jax.tree_util.tree_map(
            lambda a: jax.lax.dynamic_slice_in_dim(a, c * self.every, self.every),
            self.arrays,
        )


def simulate_sgd(key, w0, b, eta, checkpoints, every, threshold=0.0):
    """Online SGD of the soft-committee student, ``W ← W + (η/N) δ xᵀ``.

    ``checkpoints * every`` steps from ``w0`` (``(K, N)``) against the teacher
    ``b`` (``(M, N)``), a fresh ``x ~ N(0, I_N)`` per step. Returns the weights
    after steps ``every, 2·every, …`` (``(checkpoints, K, N)``) and the first
    step whose ``ε_g`` is below ``threshold`` (``-1`` if none).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> b = jnp.eye(2, 20)
        >>> key = jax.random.PRNGKey(0)
        >>> ws, event = simulate_sgd(key, 0.1 * b[::-1], b, 1.0, 2, 50)
        >>> ws.shape, int(event)
        ((2, 2, 20), -1)
    """
    n = w0.shape[1]
    lr = eta / n

    def draw(k, size):
        return jax.random.normal(k, (size, n), w0.dtype)

    def step(w, x):
        h = w @ x
        delta = _g_prime(h) * (jnp.sum(_g(b @ x)) - jnp.sum(_g(h)))
        return w + lr * jnp.outer(delta, x)

    noise = _Noise(checkpoints, every, draw, jax.random.split(key, checkpoints))
    return _checkpointed_scan(
        step, w0, noise, lambda w: _student_error(w, b), threshold
    )


def simulate_overlaps(key, q0, r0, t, eta, n, checkpoints, every, threshold=0.0):
    """The same SGD as :func:`simulate_sgd`, exactly in law, on the overlaps alone.

    ``x`` is isotropic, so ``(Q, R)`` is a Markov chain: the fields
    ``z = (h, y) ~ N(0, C)``, ``C = [[Q, R], [Rᵀ, T]]``, and
    ``‖x‖² = zᵀC⁻¹z + χ²_{N−K−M}`` (the part of ``x`` outside the span of the
    ``K + M`` weight vectors). ``R ← R + (η/N) δ yᵀ``,
    ``Q ← Q + (η/N)(δhᵀ + hδᵀ) + (η/N)² ‖x‖² δδᵀ``. Cost per step independent
    of ``N``, so large ``N`` is cheap. Returns ``(Q, R)`` at the checkpoints and
    the first step with ``ε_g < threshold``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> t = jnp.eye(2)
        >>> (qs, rs), event = simulate_overlaps(
        ...     jax.random.PRNGKey(0), 0.1 * t, 0.0 * t, t, 1.0, 1000, 2, 50)
        >>> qs.shape, rs.shape
        ((2, 2, 2), (2, 2, 2))
    """
    k, m = r0.shape
    lr = eta / n
    dof = n - k - m

    k1, k2 = jax.random.split(key)
    size = checkpoints * every
    xi = jax.random.normal(k1, (size, k + m), q0.dtype)
    chi2 = 2.0 * jax.random.gamma(k2, 0.5 * dof, (size,), q0.dtype)
    noise = _Noise(checkpoints, every, arrays=(xi, chi2))

    def step(state, xs):
        q, r = state
        xi, chi2 = xs
        chol = jnp.linalg.cholesky(_joint_covariance(q, r, t))
        z = chol @ xi
        h, y = z[:k], z[k:]
        x2 = xi @ xi + chi2  # ‖x‖² = zᵀC⁻¹z + χ², zᵀC⁻¹z = ‖ξ‖²
        delta = _g_prime(h) * (jnp.sum(_g(y)) - jnp.sum(_g(h)))
        dq = lr * (jnp.outer(delta, h) + jnp.outer(h, delta))
        return q + dq + lr**2 * x2 * jnp.outer(delta, delta), r + lr * jnp.outer(
            delta, y
        )

    return _checkpointed_scan(
        step,
        (q0, r0),
        noise,
        lambda s: generalization_error(s[0], s[1], t),
        threshold,
    )


# --- the quotient chart ---------------------------------------------------------------


def _antisymmetric(xi, n):
    rows, cols = jnp.triu_indices(n, 1)
    a = jnp.zeros((n, n), xi.dtype).at[rows, cols].set(xi)
    return a - a.T


class _PlaneRotation(AbstractGroupAction):
    """``SO(K)`` rotating the ``K`` orthonormal directions ``e`` (rows):
    ``W ↦ W + (W eᵀ)(O − I) e``; the orbit directions of ``O(N − M)`` that the
    lift's tangents see (see the module docstring)."""

    e: Array

    @property
    def algebra_dim(self) -> int:
        k = self.e.shape[0]
        return k * (k - 1) // 2

    def exp(self, xi):
        return expm(_antisymmetric(xi, self.e.shape[0]))

    def tangent_map(self, xi):
        """``I + Ξ``: same differential at 0 as ``exp``, cheaper to differentiate."""
        k = self.e.shape[0]
        return jnp.eye(k, dtype=xi.dtype) + _antisymmetric(xi, k)

    def act(self, params, g):
        w = params["w"]
        c = w @ self.e.T
        return {"w": w + (c @ g - c) @ self.e}


class _OverlapChart(AbstractPermutableChart):
    """Student weights ``W`` (``{"w": (K, N)}``) modulo the rotations of the
    complement of the teacher: ``q = (R, tril L)``, ``L Lᵀ = W_⊥ W_⊥ᵀ``.

    ``b`` the teacher (orthonormal rows), ``e`` ``K`` orthonormal directions
    orthogonal to it (the lift ``W = R b + L e``), ``comp`` an orthonormal
    basis of the complement of ``b`` (for ``gauge``). ``gauge`` applies
    ``exp(scale·Ω)``, ``Ω`` a Gaussian antisymmetric matrix, to the complement
    coordinates: it keeps ``(Q, R)`` and so ``ε_g``, not the network function
    (that only the unit permutations keep).
    """

    b: Array
    e: Array
    comp: Array

    @property
    def action(self) -> _PlaneRotation:
        return _PlaneRotation(self.e)

    @property
    def params_shape(self):
        return {"w": jax.ShapeDtypeStruct(self.e.shape, jnp.result_type(float))}

    @property
    def dim(self) -> int:
        k, m = self.e.shape[0], self.b.shape[0]
        return k * m + k * (k + 1) // 2

    def project(self, params):
        w = self.check_params(params)["w"]
        r = w @ self.b.T
        perp = w - r @ self.b
        chol = jnp.linalg.cholesky(perp @ perp.T)
        diag = jnp.diag(chol)
        chol = raise_if(
            chol,
            ~jnp.all(jnp.isfinite(chol)) | ~jnp.all(diag > 1e-10 * jnp.linalg.norm(w)),
            "the student's weights orthogonal to the teacher are rank-deficient "
            "(W_⊥ W_⊥ᵀ singular): off the regular stratum of the rotation "
            "quotient",
        )
        rows, cols = jnp.tril_indices(w.shape[0])
        return jnp.concatenate([r.reshape(-1), chol[rows, cols]])

    def _split(self, q):
        k, m = self.e.shape[0], self.b.shape[0]
        r = q[: k * m].reshape(k, m)
        rows, cols = jnp.tril_indices(k)
        chol = jnp.zeros((k, k), q.dtype).at[rows, cols].set(q[k * m :])
        return r, chol

    def lift(self, q):
        r, chol = self._split(self.check_point(q))
        chol = raise_if(
            chol,
            ~jnp.all(jnp.diag(chol) > 0),
            "the Cholesky factor in q needs a positive diagonal",
        )
        return {"w": r @ self.b + chol @ self.e}

    def metric(self, q):
        """``g = (P_H ∂σ)ᵀ(P_H ∂σ)``: ``∂σ`` by ``jax.jacfwd`` of the lift, the
        orbit tangents by :func:`~geomshock.charts.orbit_tangents`, ``P_H`` by
        the normal equations of the ``K(K−1)/2`` tangents (their Gram matrix is
        invertible wherever ``lift`` is defined: ``L`` invertible). The same
        metric as the base class's checked lineax projection, cheaper to
        differentiate twice (Christoffel symbols, Laplacian)."""
        q = self.check_point(q)
        jac = jax.jacfwd(lambda p: self.lift(p)["w"].reshape(-1))(q)
        tangents = orbit_tangents(self.action, self.lift(q))
        gram = tangents.T @ tangents
        horizontal = jac - tangents @ jnp.linalg.solve(gram, tangents.T @ jac)
        return horizontal.T @ horizontal

    def apply(self, params, x):
        w = self.check_params(params)["w"]
        return jnp.sum(_g(jnp.asarray(x) @ w.T), axis=-1)

    def gauge(self, params, key, scale: float = 0.5):
        w = self.check_params(params)["w"]
        n = self.comp.shape[0]
        omega = scale * jax.random.normal(key, (n * (n - 1) // 2,), w.dtype)
        coords = w @ self.comp.T
        rotated = coords @ expm(_antisymmetric(omega, n))
        return {"w": w + (rotated - coords) @ self.comp}

    def permutation_keys(self, q):
        r, _ = self._split(q)
        return (r @ jnp.arange(1.0, r.shape[1] + 1.0),)

    def permute(self, params, perms):
        (perm,) = perms
        return {"w": params["w"][perm]}


def overlap_chart(n: int, m: int, k: int, seed: int = 0):
    """The chart of student weights modulo ``O(N − M) × S_K`` used by
    :func:`run`, with a teacher of ``m`` orthonormal rows (``T = I``); returns
    ``(chart, teacher)``. The permutations are quotiented by
    :class:`~geomshock.charts.CanonicalOrderChart` (see the module docstring on
    the tie set).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> chart, b = overlap_chart(8, 2, 2)
        >>> w = jax.random.normal(jax.random.PRNGKey(0), (2, 8))
        >>> q = chart.project({"w": w})
        >>> q.shape, bool(jnp.allclose(chart.project(chart.lift(q)), q))
        ((7,), True)
    """
    n = positive_int(n, "n")
    if k > n - m:
        raise ValueError(
            f"need K <= N - M for the rotation quotient; got {k}, {n}, {m}"
        )
    basis = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))[0].T
    b, e, comp = (jnp.asarray(x) for x in (basis[:m], basis[m : m + k], basis[m:]))
    return CanonicalOrderChart(_OverlapChart(b, e, comp)), b


# --- the experiment -----------------------------------------------------------------

_QUICK = {"n": 40, "alpha_max": 150.0, "checkpoints": 12}
_FULL = {"n": 100, "alpha_max": 300.0, "checkpoints": 50}
_UNITS = 3
_ETA = 1.0
_INIT_VAR = 0.25  # W_ij ~ N(0, _INIT_VAR / N): Q_ii ≈ 0.25, R = O(N^{-1/2})
_EVENT_FRACTION = 0.5
_DEFAULT_SEEDS = 32
_ODE_GRID = 1201
_RAW_KRYLOV = 40  # Krylov depth of the raw Hessian's extreme eigenvalues
_LLC_N = 1000  # nominal sample count of the LLC baseline (β = 1/log n)


class _Clock:
    """Wall-clock seconds per stage (for the Trace's meta)."""

    def __init__(self):
        self.laps, self._t = {}, time.perf_counter()

    def lap(self, name):
        now = time.perf_counter()
        self.laps[name] = round(now - self._t, 2)
        self._t = now


def run(*, quick: bool, seeds: int | None = None, key=None) -> dict:
    """The plateau experiment: ``seeds`` students (vmapped) escaping the
    symmetric plateau, as a Sec. 6 Trace (see the module docstring).

    ``K = M = 3`` erf units, ``η = 1``, ``W_ij ~ N(0, 1/(4N))``, ``N = 40``
    (quick, ``α ≤ 150``) or ``100`` (full, ``α ≤ 300``). ``"loss"`` is the
    population loss ``ε_g`` (exact, from the overlaps) at the checkpoints,
    ``"event_step"`` the first step with ``ε_g < ½ ε_p``. ``"meta"`` holds the
    ODE reference: per seed the escape ``α`` of the ODE from that seed's
    initial overlaps, and the measured ones, and the seconds per stage.
    ``seeds`` defaults to 32, ``key`` to ``PRNGKey(0)``.

    Example:
        >>> import jax
        >>> key = jax.random.PRNGKey(0)
        >>> trace = run(quick=True, seeds=32, key=key)  # doctest: +SKIP
    """
    seeds = positive_int(_DEFAULT_SEEDS if seeds is None else seeds, "seeds")
    key = jax.random.PRNGKey(0) if key is None else key
    cfg = _QUICK if quick else _FULL
    n, k = cfg["n"], _UNITS
    every = int(round(cfg["alpha_max"] * n / cfg["checkpoints"]))
    chart, b = overlap_chart(n, k, k)
    t = b @ b.T
    k_init, k_sgd, k_gauge = jax.random.split(key, 3)
    w0 = jnp.sqrt(_INIT_VAR / n) * jax.random.normal(k_init, (seeds, k, n))
    q0 = jnp.einsum("sin,sjn->sij", w0, w0)
    r0 = jnp.einsum("sin,mn->sim", w0, b)
    clock = _Clock()
    # The ODE reference, one vmapped solve: every seed's initial overlaps and
    # (last) the symmetrised mean, whose solution is the plateau value.
    sym_q, sym_r = _symmetrised(q0.mean(0), r0.mean(0))
    alphas = jnp.linspace(0.0, 2 * cfg["alpha_max"], _ODE_GRID)

    def ode_curve(q, r):
        qs, rs = solve_overlap_ode(q, r, t, _ETA, alphas, rtol=1e-8, atol=1e-10)
        return jax.vmap(lambda a, c: generalization_error(a, c, t))(qs, rs)

    curves = jax.jit(jax.vmap(ode_curve))(
        jnp.concatenate([q0, sym_q[None]]), jnp.concatenate([r0, sym_r[None]])
    )
    eps_p = curves[-1, -1]
    threshold = _EVENT_FRACTION * eps_p
    ode_alpha = jax.vmap(lambda c: first_crossing(alphas, c, threshold))(curves[:-1])
    clock.lap("ode")

    sgd = jax.jit(
        jax.vmap(
            lambda kk, w: simulate_sgd(
                kk, w, b, _ETA, cfg["checkpoints"], every, threshold
            )
        )
    )
    ws, event = sgd(jax.random.split(k_sgd, seeds), w0)
    steps = every * (1 + jnp.arange(cfg["checkpoints"]))
    loss = jax.vmap(jax.vmap(lambda w: _student_error(w, b)))(ws)
    clock.lap("sgd")

    flat = ws.reshape(-1, k, n)

    def point_loss(p):
        return _student_error(p["w"], b)

    def point_signals(w, kk):
        return curvature_signals(
            point_loss,
            chart,
            {"w": w},
            kk,
            llc_n=_LLC_N,
            raw_method="lanczos",
            raw_krylov=_RAW_KRYLOV,
        )

    sig = jax.jit(jax.vmap(point_signals))
    k_move, k_llc = jax.random.split(k_gauge)
    gauge_keys = jax.random.split(k_move, flat.shape[0])
    llc_keys = jax.random.split(k_llc, flat.shape[0])  # the same at a gauged point
    gauged = jax.jit(jax.vmap(lambda w, kk: chart.gauge({"w": w}, kk)["w"]))(
        flat, gauge_keys
    )
    shape = (seeds, cfg["checkpoints"])
    signals = {name: v.reshape(shape) for name, v in sig(flat, llc_keys).items()}
    signals_gauged = {
        name: v.reshape(shape) for name, v in sig(gauged, llc_keys).items()
    }
    clock.lap("signals")

    measured = jnp.where(event >= 0, event / n, jnp.inf)
    meta = {
        "experiment": "plateau",
        "model": "soft-committee machine, erf units, second layer fixed to 1",
        "K": k,
        "M": k,
        "N": n,
        "eta": _ETA,
        "lr_per_sample": _ETA / n,
        "init": f"W_ij ~ N(0, {_INIT_VAR}/N)",
        "steps": int(steps[-1]),
        "checkpoint_every": every,
        "seeds": seeds,
        "loss": "population loss eps_g(Q, R), closed form",
        "plateau_value": float(eps_p),
        "event_rule": (
            f"first SGD step with eps_g < {_EVENT_FRACTION} x plateau value "
            "(eps_g at the symmetric fixed point of the order-parameter ODE)"
        ),
        "gauge": "random permutation of the student units composed with a "
        "random rotation of the complement of the teacher's span",
        "chart": "CanonicalOrderChart over the (R, chol(Q - R R^T)) chart of "
        "W modulo O(N - M); curvature on the ordered representative",
        "ode_escape_alpha": [float(x) for x in ode_alpha],
        "sgd_escape_alpha": [float(x) for x in measured],
        "ode_escape_alpha_median": float(jnp.median(ode_alpha)),
        "sgd_escape_alpha_median": float(jnp.median(measured)),
        "event_rate": float(jnp.mean(event >= 0)),
        "seconds": clock.laps,
    }
    return make_trace(steps, loss, event, signals, signals_gauged, meta)
