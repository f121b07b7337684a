"""The one grid abstraction of the PDE engine: one-dimensional uniform axes.

Every PDE entry point describes space by axes (a tensor-product grid is a tuple
of them). Each axis is an equinox Module validated once: a Python-number field
is checked in ``__check_init__`` (a ``ValueError`` at construction), and an
axis built from *traced* nodes (under ``jit``) carries its uniformity and
period checks in its ``start`` field through ``eqx.error_if``, so every use of
the axis keeps them.

- ``LineAxis``: the uniform grid ``start + j · spacing`` on the line (the
  quadrature nodes of the exact Hopf–Cole solutions).
- ``PeriodicAxis``: uniform periodic axis ``start + j · period / n``; Fourier
  collocation.
- ``NeumannAxis``: cosine (even-reflection) collocation on the cell-centred
  grid ``a + (j + ½) h`` of ``[a, b]``; it imposes the reflecting boundary
  condition ``∂_n u = 0`` at both ends and never evaluates the endpoints. This
  is also the pole condition of zonal (axisymmetric) fields in polar-type
  coordinates such as the colatitude of a sphere: a smooth zonal field is even
  about ``θ = 0`` and ``θ = π``, and the metric's ``1/sin²θ`` is never sampled
  at the poles themselves.

Users pass the API's keywords (``nodes=``, ``period=``, a grid ``x``);
:func:`axis_from_nodes` turns them into an axis at the boundary.

>>> import numpy as np
>>> axis = axis_from_nodes(np.linspace(0.0, 2 * np.pi, 8, endpoint=False), 2 * np.pi)
>>> type(axis).__name__, axis.n, round(float(axis.spacing), 6)
('PeriodicAxis', 8, 0.785398)
>>> axis_from_nodes(np.linspace(0.0, 2 * np.pi, 8), 2 * np.pi)
Traceback (most recent call last):
...
ValueError: with period=6.283185307179586, nodes must cover exactly one period ...
"""

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ... import _checks
from ..._custom_types import Array


class AbstractAxis(eqx.Module):
    """A uniform 1-D axis: ``n`` nodes ``nodes()``, their ``spacing``, a ``period``.

    ``period`` is ``None`` on a non-periodic axis. Subclass
    :class:`AbstractSpectralAxis` for axes that differentiate (the
    time-steppers' grids).
    """

    n: eqx.AbstractVar[int]

    @abc.abstractmethod
    def nodes(self) -> Array:
        raise NotImplementedError

    @property
    @abc.abstractmethod
    def spacing(self):
        raise NotImplementedError

    @property
    def period(self) -> float | None:
        return None


class AbstractSpectralAxis(AbstractAxis):
    """An axis that differentiates along one array axis (order 1 or 2)."""

    @abc.abstractmethod
    def derivative(self, u: Array, axis: int, order: int) -> Array:
        raise NotImplementedError


def _check_size(name: str, n, minimum: int):
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise ValueError(f"{name} needs an integer n >= {minimum}, got {n!r}")


class LineAxis(AbstractAxis):
    """Uniform grid ``start + j · spacing``, ``j = 0..n-1``, on the line."""

    start: float | Array
    step: float | Array
    n: int = eqx.field(static=True)

    def __check_init__(self):
        _check_size("LineAxis", self.n, 2)
        step = _checks.concrete(self.step)
        start = _checks.concrete(self.start)
        if step is not None and not (np.isfinite(step) and step > 0):
            raise ValueError(f"LineAxis needs a finite spacing > 0, got {step}")
        if start is not None and not np.isfinite(start):
            raise ValueError(f"LineAxis needs a finite start, got {start}")

    @property
    def spacing(self):
        return self.step

    def nodes(self):
        return self.start + self.step * np.arange(self.n)


def _fourier_derivative(u, axis, order, n, period):
    m = jnp.arange(n // 2 + 1)
    k = 2.0 * jnp.pi / period * m
    if order == 1:
        factor = jnp.where((n % 2 == 0) & (m == n // 2), 0.0, 1j * k)
    else:
        factor = -(k**2)
    shape = [1] * u.ndim
    shape[axis] = n // 2 + 1
    u_hat = jnp.fft.rfft(u, axis=axis)
    factor = factor.reshape(shape).astype(u_hat.dtype)  # keep float32 float32
    return jnp.fft.irfft(factor * u_hat, n=n, axis=axis)


class PeriodicAxis(AbstractSpectralAxis):
    """Uniform periodic axis ``start + j · period / n``, ``j = 0..n-1`` (Fourier)."""

    start: float | Array
    length: float = eqx.field(static=True)
    n: int = eqx.field(static=True)

    def __init__(self, start, period, n):
        self.start = start
        self.length = period
        self.n = n

    def __check_init__(self):
        _check_size("PeriodicAxis", self.n, 1)
        if not (
            isinstance(self.length, int | float)
            and np.isfinite(self.length)
            and self.length > 0
        ):
            raise ValueError(
                f"PeriodicAxis needs period > 0 (a Python float) and n >= 1, got "
                f"{self.length}, {self.n}"
            )

    @property
    def period(self) -> float:
        return self.length

    @property
    def spacing(self) -> float:
        return self.length / self.n

    def nodes(self):
        return self.start + self.length * np.arange(self.n) / self.n

    def derivative(self, u, axis, order):
        return _fourier_derivative(u, axis, order, self.n, self.length)


class NeumannAxis(AbstractSpectralAxis):
    """Cell-centred axis on ``[start, stop]`` with reflecting (Neumann) ends.

    Nodes ``start + (j + ½)(stop − start)/n``; derivatives are those of the
    even extension, a ``2n``-point periodic grid of period ``2(stop − start)``
    (a discrete cosine expansion, spectrally accurate for data with vanishing
    odd derivatives at the ends).
    """

    start: float = eqx.field(static=True)
    stop: float = eqx.field(static=True)
    n: int = eqx.field(static=True)

    def __check_init__(self):
        if not (self.stop > self.start and isinstance(self.n, int) and self.n >= 2):
            raise ValueError(
                "NeumannAxis needs stop > start and n >= 2, got "
                f"[{self.start}, {self.stop}], n={self.n}"
            )

    @property
    def spacing(self) -> float:
        return (self.stop - self.start) / self.n

    def nodes(self):
        return self.start + self.spacing * (np.arange(self.n) + 0.5)

    def derivative(self, u, axis, order):
        extended = jnp.concatenate([u, jnp.flip(u, axis=axis)], axis=axis)
        du = _fourier_derivative(
            extended, axis, order, 2 * self.n, 2.0 * (self.stop - self.start)
        )
        return jnp.take(du, jnp.arange(self.n), axis=axis)


# --- built at the boundary from the API's keywords ----------------------------------


def _check_period(period):
    if period is None:
        return None
    if isinstance(period, bool) or not isinstance(period, int | float):
        raise ValueError(
            f"period must be a positive Python float or None; got {period!r} "
            "(the period fixes the kernel's images, so it must be known at "
            "trace time)"
        )
    if not np.isfinite(period) or period <= 0:
        raise ValueError(f"period must be finite and positive; got {period}")
    return float(period)


def _tolerance(spacing, scale, dtype):
    """Uniformity tolerance: 1e-6 of the spacing plus 64 ulps of the largest node."""
    eps = float(jnp.finfo(dtype).eps)
    return 1e-6 * abs(spacing) + 64 * eps * scale


def _concrete_axis(arr: np.ndarray, dtype, period, name: str) -> AbstractAxis:
    arr64 = arr.astype(np.float64)
    if not np.all(np.isfinite(arr64)):
        raise ValueError(f"{name} must be finite; got NaN or inf among the nodes")
    n = arr.shape[0]
    spacing = (arr64[-1] - arr64[0]) / (n - 1)
    tol = _tolerance(spacing, np.max(np.abs(arr64)), dtype)
    gaps = np.diff(arr64)
    if spacing <= 0 or np.max(np.abs(gaps - spacing)) > tol:
        raise ValueError(
            f"{name} must be a uniform increasing grid; got spacings between "
            f"{gaps.min():.6g} and {gaps.max():.6g}"
        )
    if period is None:
        return LineAxis(float(arr64[0]), float(spacing), n)
    if abs(n * spacing - period) > n * tol:
        hint = (
            " (it looks like the endpoint a + P was included: drop it)"
            if abs((n - 1) * spacing - period) <= n * tol
            else ""
        )
        raise ValueError(
            f"with period={period}, {name} must cover exactly one period "
            f"[a, a + P) with the endpoint excluded (spacing P/N); got {n} nodes "
            f"from {arr64[0]:.6g} to {arr64[-1]:.6g} with spacing {spacing:.6g}, "
            f"i.e. N·spacing = {n * spacing:.6g}{hint}"
        )
    return PeriodicAxis(float(arr64[0]), period, n)


def _traced_axis(nodes, period, name: str) -> AbstractAxis:
    n = nodes.shape[0]
    spacing = (nodes[-1] - nodes[0]) / (n - 1)
    tol = _tolerance(spacing, jnp.max(jnp.abs(nodes)), nodes.dtype)
    gaps = jnp.diff(nodes)
    bad = (
        ~jnp.all(jnp.isfinite(nodes))
        | ~(spacing > 0)
        | (jnp.max(jnp.abs(gaps - spacing)) > tol)
    )
    rule = f"{name} must be a finite, uniform, increasing grid"
    if period is None:
        start = _checks.run_time_check(nodes[0], bad, rule)
        return LineAxis(start, spacing, n)
    bad = bad | (jnp.abs(n * spacing - period) > n * tol)
    start = _checks.run_time_check(
        nodes[0],
        bad,
        f"{rule} covering exactly one period [a, a + {period}) with the endpoint "
        "excluded (spacing P/N; drop the endpoint a + P if it was included)",
    )
    return PeriodicAxis(start, period, n)


def axis_from_nodes(nodes, period: float | None = None, *, name: str = "nodes"):
    """The axis of a uniform grid given by its nodes: ``LineAxis`` or ``PeriodicAxis``.

    With ``period=P`` the nodes must be exactly one period ``[a, a + P)``,
    endpoint excluded. Concrete nodes are checked now (``ValueError`` naming
    what is wrong); traced nodes (under ``jit``) are checked when the
    computation runs, through the returned axis' ``start``. Tolerance: the gaps
    may differ from the mean spacing by ``1e-6`` of it plus 64 ulps (of the
    nodes' dtype) of the largest node.
    """
    if isinstance(nodes, AbstractAxis):
        if nodes.period != _check_period(period):
            raise ValueError(
                f"{name} is a {type(nodes).__name__} with period {nodes.period}, "
                f"but period={period} was given"
            )
        return nodes
    period = _check_period(period)
    nodes = _checks.check_float_dtype(nodes, name)
    if nodes.ndim != 1 or nodes.shape[0] < 2:
        raise ValueError(
            f"{name} must be a 1-D grid of at least 2 points; got shape {nodes.shape}"
        )
    arr = _checks.concrete(nodes)
    if arr is not None:
        return _concrete_axis(arr, nodes.dtype, period, name)
    return _traced_axis(nodes, period, name)
