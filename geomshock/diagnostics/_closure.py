r"""One-dimensional closure of a quotient trajectory, and the shock-time forecast.

The paper's Sec. 6 (lesson 3): use quotient observables, *test* for an
approximate low-dimensional closure, and invoke scalar shock diagnostics only
when the data support them. This module does both steps on a window of a
training trajectory in quotient coordinates ``q_0, …, q_{T−1}`` (equally spaced
SGD steps at learning rate ``η``).

**Model.** Projected SGD is ``q_{n+1} = q_n − η b(q_n) + η Ξ_{n+1}`` with
``Cov Ξ = A`` (Thm. 2.2; ``b = DΦ∇L``, the sign of :mod:`geomshock.sde`), whose
weak limit is the quotient SDE ``dY = −b dt + sqrt(η) σ dB``, ``σσᵀ = A``,
at SDE time ``t = η n``. The 1-D closure (Assumption 4.1) says that a unit-speed
collective coordinate ``s = ψ(q)`` carries the dynamics:
``ds = −b̄(s) dt + sqrt(η ā(s)) dB`` with ``b̄ = Ū'`` for a reduced potential
``Ū`` (so ``−b̄`` is the velocity), and the other directions carry no drift.

**Collective coordinate (the rule).** Coordinates are first whitened by the
metric ``g = L Lᵀ`` when one is given (``x = Lᵀ q``, so Euclidean length in
``x`` is ``g``-length; default ``g = I``: the chart's coordinates are taken as
orthonormal). ``s = e·x`` with ``e`` the leading principal direction of the
window's centred positions ``x_n − x̄`` (the direction the run travelled along
most: drift accumulates coherently there while noise only diffuses), signed so
that ``s`` grows from the first to the last point. ``ψ`` is linear, so
``|grad ψ|_g = 1`` and ``Δψ = 0`` (``κ ≡ 0``: plain Burgers). A direction can
also be passed (e.g. the quotient curvature's ``min_eig_vector``).

**Fit.** With ``y_n = (s_{n+1} − s_n)/η``: the drift is the least-squares
polynomial ``b̄(s) = Σ_k c_k s^k`` (degree ``degree``, default 3) of
``−y_n`` on ``s_n``, fitted in the scaled variable ``z = (s − m)/h`` that maps
the window's range of ``s`` onto ``[−1, 1]`` (conditioning) and reported in
powers of ``s``; coefficient covariance by the heteroscedasticity-robust
sandwich (HC1). The noise variance ``ā(s)`` is the least-squares polynomial
(degree ``noise_degree``, default 0) of the squared residuals
``r_n² = (y_n + b̄(s_n))²``, scaled by ``N/(N − degree − 1)`` for the fitted
drift's degrees of freedom.

**Closure score.** The fraction of the increments' mean square that lies along
``s``: ``score = Σ_n (e·Δx_n)² / Σ_n |Δx_n|²`` (``|·|`` the ``g``-norm). The
1-D model explains the increment along ``s`` (drift and noise) and nothing
across it, so ``score ∈ [0, 1]`` is ``1`` for an exactly 1-D chain and about
``1/dim`` for an isotropic random walk. ``drift_r2`` separately says how much of
the along-``s`` increments the drift polynomial explains.

**Viscosity.** The 1-D SDE's generator is ``−b̄ ∂_s + (η ā/2) ∂_ss``; the
paper's heat semigroup ``P_{ντ} = exp((ντ/2)Δ)`` has ``(ν/2)Δ``, so
``ν = η ā`` in the paper's convention (``ā`` the window average of the
projected noise variance along ``s``, i.e. ``eᵀ A e``), and ``ν_c = ν/2`` in
the classic ``u_t + u u_x = ν_c u_xx`` one. ``ν`` is therefore the variance
that one unit of SDE time adds along ``s``.

**Forecast.** ``τ* = −1/inf Ū''`` (Thm. 4.3, :func:`geomshock.shock_time` on
``Ū``), the infimum over the range of ``s`` the window covered (the fitted
polynomial is not trusted outside it). ``τ*`` is a time of the drift flow
``ds/dt = −Ū'(s)``: a concave stretch ``Ū'' = −k`` separates characteristics
at rate ``k``, ``τ* = 1/k``. Identifying it with the SDE time ``t = η n``
(``time_scaling="sde"``, default; dimensionally consistent:
``[τ] = [s²]/[U] = [η]``) gives ``steps = τ*/η`` SGD steps from the end of the
window. ``time_scaling="heat"`` uses instead the paper's Sec. 2.3 scaling
identification ``η n ≈ ντ`` literally: ``steps = ν τ*/η``.
"""

import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .._checks import (
    check_float_dtype,
    concrete,
    finite_array,
    positive_int,
    positive_scalar,
    raise_if,
)
from ..geometry._metric import cholesky
from ..pde import shock_time

TimeScaling = Literal["sde", "heat"]

__all__ = ["ClosureFit", "describe_forecast", "fit_closure", "shock_forecast"]


def _powers(z, degree: int):
    # Static integer powers: autodiff of ``z ** 0`` with an array exponent is NaN at 0.
    return jnp.stack([jnp.ones_like(z)] + [z**k for k in range(1, degree + 1)], -1)


def _to_s_powers(center, half_width, degree: int):
    """``M`` with ``Σ_k c_k ((s − m)/h)^k = Σ_j (M c)_j s^j``."""
    rows = []
    for j in range(degree + 1):
        row = []
        for k in range(degree + 1):
            if k < j:
                row.append(jnp.zeros_like(center))
            else:
                row.append(math.comb(k, j) * (-center) ** (k - j) / half_width**k)
        rows.append(jnp.stack(row))
    return jnp.stack(rows)


def _lstsq(design, target, weights):
    # Normal equations: the basis is monomials of z ∈ [−1, 1] of low degree, so
    # the Gram matrix is well conditioned (and this is several times cheaper to
    # compile and run under vmap than an SVD-based lstsq).
    gram = (design * weights[:, None]).T @ design
    return jnp.linalg.solve(gram, (design * weights[:, None]).T @ target)


def _leading_direction(centred):
    """Top right singular vector of ``centred`` by the smaller Gram matrix."""
    rows, cols = centred.shape
    if cols <= rows:
        return jnp.linalg.eigh(centred.T @ centred)[1][:, -1]
    u = jnp.linalg.eigh(centred @ centred.T)[1][:, -1]
    v = centred.T @ u
    return v / jnp.linalg.norm(v)


def _curvature(basis, z, half_width):
    """``b̄'(s) = Ū''(s)`` of the drift polynomial in the scaled variable ``z``."""
    degree = basis.shape[0] - 1
    slopes = basis[1:] * jnp.arange(1, degree + 1, dtype=basis.dtype)
    return _powers(z, degree - 1) @ slopes / half_width


class ClosureFit(eqx.Module):
    """The 1-D closure fitted by :func:`fit_closure` (see the module docstring).

    Attributes:
        direction: the collective direction as a tangent vector in chart
            coordinates, ``g``-unit (``vᵀ g v = 1`` for the metric given).
        coordinate: the covector ``w`` with ``s = w·q`` (``w = g·direction``).
        lr: the learning rate ``η`` of the window.
        s: ``s_n`` at the start of each increment, shape ``(T − 1,)``.
        rate: ``y_n = (s_{n+1} − s_n)/η``, shape ``(T − 1,)``.
        weights: 1 for the increments inside the window (``length``), else 0.
        s_min, s_max: the range of ``s`` the window covered.
        drift_basis, noise_basis: the same polynomials in ``z = (s − m)/h``
            (``m``, ``h`` centre and half-width of the range), as fitted.
        drift_coefficients: ``c`` of ``b̄(s) = Σ_k c_k s^k`` (increasing powers;
            ``b̄ = Ū'``, the sign of :mod:`geomshock.sde`).
        drift_covariance: their covariance (robust sandwich, HC1).
        noise_coefficients: ``ā(s) = Σ_k a_k s^k``, the projected noise
            variance along ``s`` (``eᵀ A e``).
        nu: ``ν = η · mean ā`` (paper convention; ``nu_classic = ν/2``).
        closure_score: ``Σ (e·Δx)² / Σ |Δx|²`` over the window.
        drift_r2: ``1 − Σ r² / Σ (y − ȳ)²`` of the drift fit along ``s``.
        num_increments: increments used, ``length − 1``.
    """

    direction: Float[Array, " dim"]
    coordinate: Float[Array, " dim"]
    lr: Float[Array, ""]
    s: Float[Array, " n"]
    rate: Float[Array, " n"]
    weights: Float[Array, " n"]
    s_min: Float[Array, ""]
    s_max: Float[Array, ""]
    drift_basis: Float[Array, " k"]
    noise_basis: Float[Array, " j"]
    drift_coefficients: Float[Array, " k"]
    drift_covariance: Float[Array, "k k"]
    noise_coefficients: Float[Array, " j"]
    nu: Float[Array, ""]
    closure_score: Float[Array, ""]
    drift_r2: Float[Array, ""]
    num_increments: Int[Array, ""]
    degree: int = eqx.field(static=True)
    noise_degree: int = eqx.field(static=True)

    @property
    def nu_classic(self) -> Float[Array, ""]:
        """``ν_c = ν/2`` of the classic ``u_t + u u_x = ν_c u_xx``."""
        return self.nu / 2

    @property
    def drift_stderr(self) -> Float[Array, " k"]:
        """Standard errors of ``drift_coefficients``."""
        return jnp.sqrt(jnp.diagonal(self.drift_covariance))

    def _z(self, s):
        center = (self.s_max + self.s_min) / 2
        return (jnp.asarray(s) - center) / ((self.s_max - self.s_min) / 2)

    def drift(self, s) -> Array:
        """``b̄(s) = Ū'(s)``; the along-``s`` velocity of the run is ``−b̄``."""
        return _powers(self._z(s), self.degree) @ self.drift_basis

    def noise_variance(self, s) -> Array:
        """``ā(s)``, the projected noise variance along ``s``."""
        return _powers(self._z(s), self.noise_degree) @ self.noise_basis

    def potential(self, s) -> Array:
        """``Ū(s) = ∫ b̄``, zero at the centre of the window's range."""
        return _potential(self.drift_basis, self._z(s), self.s_max - self.s_min)


def _potential(basis, z, width):
    k = jnp.arange(basis.shape[0], dtype=z.dtype)
    return (
        (width / 2)
        * (_powers(z, basis.shape[0] - 1) * z[..., None])
        @ (basis / (k + 1))
    )


def _check_window(qs, degree, noise_degree, length):
    qs = check_float_dtype(qs, "qs")
    if qs.ndim != 2:
        raise ValueError(
            f"qs must be a trajectory window of shape (T, dim); got shape {qs.shape}"
        )
    degree = positive_int(degree, "degree")
    noise_degree = positive_int(noise_degree, "noise_degree", minimum=0)
    needed = 2 * (max(degree, noise_degree) + 1) + 1
    num_points, _ = qs.shape
    message = (
        f"window too short to fit a closure: need at least {needed} points "
        f"(2·(max(degree, noise_degree) + 1) increments) for degree={degree}, "
        f"noise_degree={noise_degree}"
    )
    if num_points < needed:
        raise ValueError(f"{message}; got {num_points} points")
    if length is None:
        length = jnp.asarray(num_points)
    else:
        length_c = concrete(length)
        if length_c is not None and length_c.ndim == 0:
            if not (needed <= int(length_c) <= num_points):
                raise ValueError(
                    f"{message}, and length ≤ len(qs) = {num_points}; got length="
                    f"{int(length_c)}"
                )
        length = jnp.asarray(length)
        if length.shape != () or not jnp.issubdtype(length.dtype, jnp.integer):
            raise ValueError(
                f"length must be an integer scalar; got {length.dtype}{length.shape}"
            )
        length = raise_if(
            length, (length < needed) | (length > num_points), f"{message}"
        )
    return finite_array(qs, "qs"), degree, noise_degree, length


def fit_closure(
    qs: Float[ArrayLike, "T dim"],
    *,
    lr,
    degree: int = 3,
    noise_degree: int = 0,
    direction: Float[ArrayLike, " dim"] | None = None,
    metric: Float[ArrayLike, "dim dim"] | None = None,
    length=None,
) -> ClosureFit:
    r"""Fit the 1-D closure ``ds = −b̄(s) dt + sqrt(η ā(s)) dB`` to a quotient window.

    The rule for the collective coordinate, the fit, the closure score and
    ``ν = η ā`` are stated in the module docstring
    (:mod:`geomshock.diagnostics._closure`).

    Args:
        qs: quotient coordinates ``Φ(θ_n)`` at equally spaced SGD steps,
            shape ``(T, dim)``.
        lr: the learning rate ``η`` (per step of ``qs``; pass ``k·η`` for a
            window recorded every ``k`` steps and convert the forecast back).
        degree: degree of the drift polynomial ``b̄`` (``Ū`` has degree + 1).
        noise_degree: degree of the noise-variance polynomial ``ā``.
        direction: a tangent vector (chart coordinates) to use as the
            collective direction instead of the principal-direction rule.
        metric: a constant ``(dim, dim)`` quotient metric ``g`` for the
            window (e.g. ``chart.metric(q̄)``); default the identity.
        length: use only the first ``length`` rows of ``qs`` (an integer,
            may be traced: a partly filled buffer inside a jitted loop).

    Returns:
        A :class:`ClosureFit`.

    Raises ``ValueError`` for a window shorter than
    ``2·(max(degree, noise_degree) + 1) + 1`` points (a traced ``length``:
    an equinox runtime error), for non-finite ``qs`` and for a window that
    does not move along ``s`` (under ``jit``: a runtime error). Works under
    ``jax.jit`` and ``jax.vmap`` (over seeds: a batch of windows).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> s = jnp.linspace(0.0, 1.0, 40) ** 2  # ds/dt = 2 sqrt(s) … any path
        >>> qs = jnp.stack([s, 0.0 * s], axis=1)
        >>> fit = jax.jit(lambda q: fit_closure(q, lr=0.1))(qs)
        >>> round(float(fit.closure_score), 6), fit.direction.tolist()
        (1.0, [1.0, 0.0])
    """
    qs, degree, noise_degree, length = _check_window(qs, degree, noise_degree, length)
    num_points, dim = qs.shape
    lr = positive_scalar(lr, "lr", dtype=qs.dtype)
    if metric is None:
        chol = jnp.eye(dim, dtype=qs.dtype)
    else:
        metric = check_float_dtype(metric, "metric")
        if metric.shape != (dim, dim):
            raise ValueError(
                f"metric must have shape ({dim}, {dim}); got {metric.shape}"
            )
        chol = cholesky(metric)
    if direction is not None:
        direction = check_float_dtype(direction, "direction")
        if direction.shape != (dim,):
            raise ValueError(
                f"direction must have shape ({dim},); got {direction.shape}"
            )
        direction = finite_array(direction, "direction")
    fit, zero_direction, still, flat = _fit(
        qs, lr, chol, direction, length, degree, noise_degree
    )
    fit = raise_if(fit, zero_direction, "direction must be non-zero")
    fit = raise_if(fit, still, "the window does not move (qs constant)")
    return raise_if(
        fit,
        flat,
        "the window does not move along the collective coordinate s (no spread "
        "of s to fit a drift on)",
    )


@eqx.filter_jit
def _fit(qs, lr, chol, direction, length, degree, noise_degree):
    # One compiled kernel (eager calls compile once per shape); the degenerate
    # cases come back as flags that ``fit_closure`` turns into errors.
    num_points, _ = qs.shape
    x = qs @ chol  # whitened: x_n = Lᵀ q_n
    inside = (jnp.arange(num_points) < length).astype(qs.dtype)
    steps = inside[1:]
    count = jnp.sum(steps)
    x_first, x_last = x[0], x[length - 1]
    if direction is None:
        mean = inside @ x / jnp.sum(inside)
        e = _leading_direction((x - mean) * inside[:, None])
        zero_direction = jnp.array(False)
    else:
        e = chol.T @ direction
        zero_direction = ~(jnp.linalg.norm(e) > 0)
        e = e / jnp.where(zero_direction, 1.0, jnp.linalg.norm(e))
    e = jnp.where(e @ (x_last - x_first) < 0, -e, e)
    s_all = x @ e
    dx = (x[1:] - x[:-1]) * steps[:, None]
    total = jnp.sum(dx**2)
    still = ~(total > 0)
    s = s_all[:-1]
    rate = (s_all[1:] - s_all[:-1]) / lr
    s_in = jnp.where(steps > 0, s, jnp.nan)
    s_min, s_max = jnp.nanmin(s_in), jnp.nanmax(s_in)
    flat = ~(s_max > s_min)
    center = (s_max + s_min) / 2
    half = jnp.where(flat, 1.0, (s_max - s_min) / 2)
    z = jnp.where(steps > 0, (s - center) / half, 0.0)
    design = _powers(z, degree)
    basis = _lstsq(design, -rate, steps)
    resid = (rate + design @ basis) * steps
    dof = count - (degree + 1)
    inflate = count / dof
    bread = jnp.linalg.inv((design * steps[:, None]).T @ design)
    meat = (design * (resid**2)[:, None]).T @ design
    cov_z = inflate * bread @ meat @ bread
    noise_basis = inflate * _lstsq(_powers(z, noise_degree), resid**2, steps)
    to_s = _to_s_powers(center, half, degree)
    centred_rate = (rate - steps @ rate / count) * steps
    fit = ClosureFit(
        direction=_tangent_of(chol, e),
        coordinate=chol @ e,
        lr=lr,
        s=s,
        rate=rate,
        weights=steps,
        s_min=s_min,
        s_max=s_max,
        drift_basis=basis,
        noise_basis=noise_basis,
        drift_coefficients=to_s @ basis,
        drift_covariance=to_s @ cov_z @ to_s.T,
        noise_coefficients=_to_s_powers(center, half, noise_degree) @ noise_basis,
        nu=lr * jnp.sum(resid**2) / dof,
        closure_score=jnp.sum((dx @ e) ** 2) / jnp.where(still, 1.0, total),
        drift_r2=1 - jnp.sum(resid**2) / jnp.sum(centred_rate**2),
        num_increments=length - 1,
        degree=degree,
        noise_degree=noise_degree,
    )
    return fit, zero_direction, still, flat


def _tangent_of(chol, e):
    """``L^{-T} e``: the tangent vector whose whitened image is ``e``."""
    return jax.scipy.linalg.solve_triangular(chol, e, trans="T", lower=True)


def shock_forecast(
    fit: ClosureFit,
    *,
    key=None,
    num_bootstrap: int = 200,
    level: float = 0.9,
    min_score: float = 0.8,
    num_nodes: int = 257,
    time_scaling: TimeScaling = "sde",
) -> dict[str, Array]:
    r"""Shock time ``τ* = −1/inf Ū''`` of a fitted closure in SGD steps, with interval.

    ``Ū`` integrates the fitted drift (``Ū' = b̄``); the infimum of
    ``Ū'' = b̄'`` is taken over the window's range of ``s`` by
    :func:`geomshock.shock_time` on ``num_nodes`` nodes. Steps from the end of
    the window: ``τ*/η`` (``time_scaling="sde"``: ``τ`` is SDE time
    ``t = η n``) or ``ν τ*/η`` (``"heat"``: the paper's ``η n ≈ ντ``); see the
    module docstring.

    The interval is a (Bayesian) bootstrap over the window's increments
    (``num_bootstrap`` refits of the drift on reweighted ``(s_n, y_n)``, same
    range of ``s``, ``inf b̄'`` of each refit as the minimum on the nodes of
    the closed-form derivative of the polynomial): the order statistics at
    ``(1 ∓ level)/2`` of ``τ*`` (``inf`` included: "no shock" is a possible
    draw).

    Sec. 6 lesson 3: ``"trusted"`` is ``closure_score ≥ min_score``; below it the
    window is not 1-D and the scalar forecast should not be used
    (:func:`describe_forecast` writes the reason).

    Returns a dict of arrays: ``"tau_star"``, ``"tau_low"``, ``"tau_high"``,
    ``"steps"``, ``"steps_low"``, ``"steps_high"``, ``"inf_curvature"``
    (``inf Ū''`` on the range), ``"nu"``, ``"nu_classic"``,
    ``"closure_score"``, ``"drift_r2"``, ``"trusted"`` (bool) and
    ``"min_score"``. Works under ``jax.jit`` and ``jax.vmap`` (over fits and
    keys).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> s = 0.1 * 1.1 ** jnp.arange(30)  # s_{n+1} = s_n + η s_n: Ū = −s²/2
        >>> qs = jnp.stack([s, 0.0 * s], axis=1)
        >>> fit = jax.jit(lambda q: fit_closure(q, lr=0.1))(qs)
        >>> out = jax.jit(shock_forecast)(fit)
        >>> bool(out["trusted"]), round(float(out["tau_star"]), 6)  # −1/Ū'' = 1
        (True, 1.0)
        >>> round(float(out["steps"]), 4)  # τ*/η
        10.0
    """
    if not isinstance(fit, ClosureFit):
        raise ValueError(f"fit must be a ClosureFit; got {type(fit).__name__}")
    num_bootstrap = positive_int(num_bootstrap, "num_bootstrap")
    num_nodes = positive_int(num_nodes, "num_nodes", minimum=3)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    if time_scaling not in ("sde", "heat"):
        raise ValueError(
            "time_scaling must be 'sde' (τ = η n) or 'heat' (ντ = η n, the paper's "
            f"Sec. 2.3); got {time_scaling!r}"
        )
    key = jax.random.PRNGKey(0) if key is None else key
    tau, tau_low, tau_high, inf_curvature = _forecast(
        fit, key, num_bootstrap, level, num_nodes
    )
    per_tau = 1 / fit.lr if time_scaling == "sde" else fit.nu / fit.lr
    return {
        "tau_star": tau,
        "tau_low": tau_low,
        "tau_high": tau_high,
        "steps": tau * per_tau,
        "steps_low": tau_low * per_tau,
        "steps_high": tau_high * per_tau,
        "inf_curvature": inf_curvature,
        "nu": fit.nu,
        "nu_classic": fit.nu_classic,
        "closure_score": fit.closure_score,
        "drift_r2": fit.drift_r2,
        "trusted": fit.closure_score >= min_score,
        "min_score": jnp.asarray(min_score, dtype=fit.nu.dtype),
    }


@eqx.filter_jit
def _forecast(fit, key, num_bootstrap, level, num_nodes):
    nodes = jnp.linspace(fit.s_min, fit.s_max, num_nodes)
    z_nodes = fit._z(nodes)
    width = fit.s_max - fit.s_min

    tau = shock_time(lambda s: _potential(fit.drift_basis, fit._z(s), width), nodes)
    num_rows = fit.s.shape[0]
    design = _powers(fit._z(fit.s), fit.degree)

    def resampled(k):
        # Bayesian bootstrap (Rubin 1981): Dirichlet weights on the increments,
        # i.e. normalised Exp(1) draws; first-order equivalent to resampling
        # pairs, and cheaper to compile than a scatter of random indices.
        counts = jax.random.exponential(k, (num_rows,), design.dtype) * fit.weights
        basis = _lstsq(design, -fit.rate, counts)
        return jnp.min(_curvature(basis, z_nodes, width / 2))

    curvatures = jax.vmap(resampled)(jax.random.split(key, num_bootstrap))
    taus = jnp.where(curvatures < 0, -1 / jnp.minimum(curvatures, -1e-300), jnp.inf)
    tau_low = jnp.quantile(taus, (1 - level) / 2, method="lower")
    tau_high = jnp.quantile(taus, (1 + level) / 2, method="higher")
    inf_curvature = jnp.where(
        jnp.isfinite(tau),
        -1 / tau,
        jnp.min(_curvature(fit.drift_basis, z_nodes, width / 2)),
    )
    return tau, tau_low, tau_high, inf_curvature


def describe_forecast(forecast: dict) -> str:
    """A sentence stating a :func:`shock_forecast` result and whether to trust it.

    Example:
        >>> import jax.numpy as jnp
        >>> print(describe_forecast({"trusted": False, "closure_score": 0.3,
        ...     "min_score": 0.8, "steps": 120.0, "steps_low": 80.0,
        ...     "steps_high": 200.0}))  # doctest: +NORMALIZE_WHITESPACE
        not trusted: closure score 0.3 < 0.8, the window is not one-dimensional,
        so the scalar shock forecast (120 steps) should not be used (paper Sec. 6,
        lesson 3)
    """
    score = float(np.asarray(forecast["closure_score"]))
    threshold = float(np.asarray(forecast["min_score"]))
    steps = [
        float(np.asarray(forecast[k])) for k in ("steps", "steps_low", "steps_high")
    ]
    if not bool(np.asarray(forecast["trusted"])):
        return (
            f"not trusted: closure score {score:.3g} < {threshold:.3g}, the window "
            f"is not one-dimensional, so the scalar shock forecast ({steps[0]:.3g} "
            "steps) should not be used (paper Sec. 6, lesson 3)"
        )
    if math.isinf(steps[0]):
        return (
            f"closure holds (score {score:.3g} ≥ {threshold:.3g}); inf Ū'' ≥ 0 on "
            f"the window: no shock forecast (interval {steps[1]:.3g}–{steps[2]:.3g} "
            "steps)"
        )
    return (
        f"closure holds (score {score:.3g} ≥ {threshold:.3g}); shock in "
        f"{steps[0]:.3g} steps (interval {steps[1]:.3g}–{steps[2]:.3g})"
    )
