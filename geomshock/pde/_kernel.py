"""Log-domain Gaussian heat kernels on the line and on the circle.

Everything here works with the *log* of the kernel and with its *mean
displacement* ``m(d) = −σ² ∂_d log k(d)`` so that the Hopf–Cole weights can be
formed with ``logsumexp`` / ``softmax`` and the Burgers velocity as a weighted
mean of ``m / τ`` (never a ratio of two tiny numbers).

The wrapped (periodic) Gaussian of variance ``σ²`` and period ``P``,

    k_P(d) = Σ_m (2πσ²)^{-1/2} exp(−(d + mP)² / (2σ²))
           = (1/P) [1 + 2 Σ_{k≥1} exp(−2π²k²σ²/P²) cos(2πk d/P)],

is evaluated with a fixed cost for every width: the image sum (seven images,
``|m| ≤ 3``) for narrow kernels and the Poisson-summed Fourier series (modes
``|k| ≤ 3``) for wide ones, switched at ``σ²/P² = 0.14``. With ``d`` reduced
to ``[−P/2, P/2]`` the relative truncation error is at most
``exp(−12 P²/(2σ²)) ≤ e^{−42}`` on the image side and
``2 exp(−32π²σ²/P²) ≤ e^{−43}`` on the Fourier side, i.e. below float64
rounding on both sides of the switch.
"""

import jax.numpy as jnp
from jaxtyping import Array

# σ²/P² at which the image sum hands over to the Fourier series (see above).
_SWITCH = 0.14


def reduce_periodic(d, period):
    """``d`` shifted by a multiple of ``period`` into ``[−P/2, P/2]``."""
    return d - period * jnp.round(d / period)


def _line(d, var):
    return -0.5 * d**2 / var, None, d, -0.5 * jnp.log(2 * jnp.pi * var)


def _images(d, var, period):
    """Image sum over ``|m| ≤ 3`` relative to the nearest image ``m = 0``.

    ``t_m = exp(−m a − m² b)`` with ``a = dP/σ²``, ``b = P²/(2σ²)``, ``|a| ≤ b``:
    ``t_{±1} = q_± = exp(−b ∓ a) ∈ [0, 1]``, ``t_{±2} = q_±² e^{−2b}``,
    ``t_{±3} = q_±³ e^{−6b}``: two exponentials per pair, nothing overflows.
    The powers of ``q_±`` are taken in Horner form: XLA rewrites ``q**n`` and
    ``q·q`` of an exponential into ``exp(n·…)``, six exponentials per pair
    (measured 25× slower on CPU).
    """
    b = 0.5 * period**2 / var
    a = d * period / var
    qp = jnp.exp(-b - a)
    qm = jnp.exp(-b + a)
    c1 = jnp.exp(-2 * b)
    c3 = c1**3
    factor = 1 + qp * (1 + qp * (c1 + c3 * qp)) + qm * (1 + qm * (c1 + c3 * qm))
    first = qp * (1 + qp * (2 * c1 + 3 * c3 * qp)) - qm * (
        1 + qm * (2 * c1 + 3 * c3 * qm)
    )
    log_norm = -0.5 * jnp.log(2 * jnp.pi * var)
    return -0.5 * d**2 / var, factor, d * factor + period * first, log_norm


def _fourier(x, y, var, period):
    """Fourier series over ``|k| ≤ 3`` with Chebyshev recurrences for the modes.

    ``cos ω(x − y)`` and ``sin ω(x − y)`` come from the addition theorems, so
    trigonometric functions are evaluated once per point and per node, not per
    pair (they are far slower than ``exp`` on CPUs).
    """
    omega = 2 * jnp.pi / period
    e1, e2, e3 = (jnp.exp(-0.5 * var * (k * omega) ** 2) for k in (1, 2, 3))
    cx, sx = jnp.cos(omega * x), jnp.sin(omega * x)
    cy, sy = jnp.cos(omega * y), jnp.sin(omega * y)
    c = cx * cy + sx * sy
    s = sx * cy - cx * sy
    cos2, cos3 = 2 * c**2 - 1, c * (4 * c**2 - 3)
    sin2, sin3 = 2 * s * c, s * (4 * c**2 - 1)
    factor = 1 + 2 * (e1 * c + e2 * cos2 + e3 * cos3)
    slope = 2 * omega * (e1 * s + 2 * e2 * sin2 + 3 * e3 * sin3)
    log_norm = -jnp.log(jnp.asarray(period, dtype=c.dtype))
    return jnp.zeros_like(c), factor, var * slope, log_norm


NEAREST, IMAGES, FOURIER = 0, 1, 2


def kernel_terms(x, y, var, period=None, *, mode: int = IMAGES):
    """The Gaussian of variance ``var`` (wrapped if periodic) at ``d = x − y``.

    ``x`` and ``y`` broadcast against each other (points ``(k, 1)``, nodes
    ``(N,)``). Returns ``(quad, factor, moment, log_norm)`` with

        k(d) = exp(log_norm + quad(d)) · factor(d),
        moment(d) = factor(d) · m(d),  m(d) = −σ² ∂_d log k(d),

    ``m`` the (image-weighted) mean displacement; ``factor`` is ``None`` where
    it is 1 (then ``moment = d``). ``quad ≤ 0`` carries the Gaussian decay so
    that the caller can take its maximum for a stable logsumexp; ``factor``
    lies in ``(0, 3)``.

    On the circle the static ``mode`` picks the representation: ``NEAREST``
    (the nearest image only, valid when :func:`periodic_mode` says the others
    are negligible), ``IMAGES`` or ``FOURIER``. ``var`` is clipped into the
    image/Fourier ranges so that branches not selected stay finite (all are
    evaluated under ``vmap``).
    """
    if period is None:
        return _line(x - y, var)
    var = clipped_var(var, period, mode)
    if mode == FOURIER:
        return _fourier(x, y, var, period)
    d = reduce_periodic(x - y, period)
    if mode == NEAREST:
        return _line(d, var)
    return _images(d, var, period)


def clipped_var(var, period, mode: int):
    """``var`` as :func:`kernel_terms` uses it: clipped into the mode's range."""
    if period is None or mode == NEAREST:
        return var
    switch = _SWITCH * period**2
    return jnp.maximum(var, switch) if mode == FOURIER else jnp.minimum(var, switch)


def fourier_sums(x, y, weights, var, period):
    """``Σ_j w_j k(x − y_j)`` and ``Σ_j w_j moment(x − y_j)`` in the Fourier regime.

    Up to the constant ``exp(log_norm)``, as :func:`kernel_terms` with
    ``mode=FOURIER`` summed against the node weights ``w`` (shape ``(N,)``),
    for points ``x`` of shape ``(k,)``. The series is separable,
    ``Σ_j w_j cos ω(x − y_j) = cos ωx·C + sin ωx·S`` with
    ``C = Σ_j w_j cos ωy_j``, ``S = Σ_j w_j sin ωy_j`` (and likewise for the
    sines), so the cost is ``O(N + k)`` per mode instead of ``O(N k)``.
    """
    var = clipped_var(var, period, FOURIER)
    omega = 2 * jnp.pi / period
    k = jnp.arange(1, 4, dtype=x.dtype)
    decay = jnp.exp(-0.5 * var * (k * omega) ** 2)
    cy, sy = jnp.cos(omega * k * y[:, None]), jnp.sin(omega * k * y[:, None])
    C, S = weights @ cy, weights @ sy
    cx, sx = jnp.cos(omega * k * x[:, None]), jnp.sin(omega * k * x[:, None])
    factor = jnp.sum(weights) + 2 * (cx * C + sx * S) @ decay
    moment = 2 * omega * var * ((sx * C - cx * S) @ (k * decay))
    return factor, moment


def periodic_mode(var, period, spacing, spread, count) -> Array:
    """Which representation of the wrapped kernel to use (an int32 scalar).

    ``FOURIER`` for ``var ≥ 0.14 P²``. Otherwise ``NEAREST`` when dropping all
    but the nearest image changes the Hopf–Cole sum by a relative amount below
    ``e^{−40}``: each of the ``count`` nodes has at most six further images, all
    at distance ``≥ P/2``, against a kept term ``≥ exp(−h²/(8σ²))``, and the
    potential weights differ by at most ``exp(spread)`` with
    ``spread = (max U − min U)/ν``; so the bound is
    ``6·count·exp(−(P² − h²)/(8σ²) + spread)``. Else ``IMAGES``.
    """
    tail = (period**2 - spacing**2) / (8 * var) - spread - jnp.log(6.0 * count)
    return jnp.where(
        var >= _SWITCH * period**2, FOURIER, jnp.where(tail > 40, NEAREST, IMAGES)
    ).astype(jnp.int32)
