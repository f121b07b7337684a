"""Input checks shared by the exact solutions: grids, periods, ν, τ, points.

Static problems raise ``ValueError`` at trace time; values that are only known
under ``jit`` are checked with ``eqx.error_if``.
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _float_dtype():
    return jnp.zeros(()).dtype


def check_grid(nodes, period, name: str = "nodes"):
    """A 1-D uniform grid as an array; with ``period``, exactly one period.

    Returns ``(nodes, spacing)``; ``spacing`` is a Python float when the nodes
    are concrete and a traced scalar otherwise (then no value checks run).
    """
    if period is not None:
        if not isinstance(period, int | float) or not np.isfinite(period):
            raise ValueError(
                f"period must be a positive Python float or None; got {period!r}"
            )
        if period <= 0:
            raise ValueError(f"period must be positive; got {period}")
    if _is_traced(nodes):
        if nodes.ndim != 1 or nodes.shape[0] < 2:
            raise ValueError(
                f"{name} must be a 1-D grid of at least 2 points; got shape "
                f"{nodes.shape}"
            )
        return nodes, nodes[1] - nodes[0]
    arr = np.asarray(nodes)
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise ValueError(
            f"{name} must be a 1-D grid of at least 2 points; got shape {arr.shape}"
        )
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    n = arr.shape[0]
    spacing = (arr[-1] - arr[0]) / (n - 1)
    eps = np.finfo(np.asarray(nodes).dtype).eps if arr.dtype.kind == "f" else 0.0
    eps = max(eps, np.finfo(np.float64).eps)
    tol = 1e-6 * abs(spacing) + 64 * eps * np.max(np.abs(arr))
    gaps = np.diff(arr)
    if spacing <= 0 or np.max(np.abs(gaps - spacing)) > tol:
        raise ValueError(
            f"{name} must be a uniform increasing grid; got spacings between "
            f"{gaps.min():.6g} and {gaps.max():.6g}"
        )
    if period is not None and abs(n * spacing - period) > n * tol:
        hint = (
            " (it looks like the endpoint a + P was included: drop it)"
            if abs((n - 1) * spacing - period) <= n * tol
            else ""
        )
        raise ValueError(
            f"with period={period}, {name} must cover exactly one period "
            f"[a, a + P) with the endpoint excluded (spacing P/N); got {n} nodes "
            f"from {arr[0]:.6g} to {arr[-1]:.6g} with spacing {spacing:.6g}, "
            f"i.e. N·spacing = {n * spacing:.6g}{hint}"
        )
    return jnp.asarray(nodes, dtype=_float_dtype()), float(spacing)


def check_grids(nodes, period):
    """``nodes`` as a tuple of 1-D grids (one per dimension) and their periods."""
    if isinstance(nodes, Sequence) and not isinstance(nodes, str):
        grids = tuple(nodes)
        if not grids:
            raise ValueError("nodes must be a 1-D grid or a non-empty tuple of them")
    else:
        grids = (nodes,)
    dim = len(grids)
    if isinstance(period, Sequence):
        periods = tuple(period)
        if len(periods) != dim:
            raise ValueError(
                f"period must be one value or one per dimension ({dim}); got "
                f"{len(periods)} values"
            )
    else:
        periods = (period,) * dim
    checked = [
        check_grid(g, p, name=f"nodes[{i}]" if dim > 1 else "nodes")
        for i, (g, p) in enumerate(zip(grids, periods, strict=True))
    ]
    grids = tuple(g for g, _ in checked)
    spacings = tuple(h for _, h in checked)
    return grids, spacings, periods


def check_points(x, dim: int, multi: bool):
    """Points as an array of shape ``(k, dim)`` and a function restoring the shape.

    One-dimensional problems (``multi=False``) take ``x`` of shape ``()`` or
    ``(k,)``; ``multi=True`` takes ``(dim,)`` or ``(k, dim)``.
    """
    x = jnp.asarray(x, dtype=_float_dtype())
    if not multi:
        if x.ndim > 1:
            raise ValueError(
                f"with a 1-D grid of nodes, x must have shape () or (k,); got "
                f"shape {x.shape}"
            )
        return x.reshape(-1, 1), (lambda out: out.reshape(x.shape))
    if x.ndim not in (1, 2) or x.shape[-1] != dim:
        raise ValueError(
            f"with {dim} grids of nodes, x must have shape ({dim},) or (k, {dim}); "
            f"got shape {x.shape}"
        )
    return x.reshape(-1, dim), (lambda out: out.reshape(x.shape[:-1] + out.shape[1:]))


def check_positive(value, name: str, *, allow_zero: bool):
    """A scalar that must be ``> 0`` (or ``≥ 0``): ``ValueError`` or ``error_if``."""
    arr = jnp.asarray(value, dtype=_float_dtype())
    if arr.ndim != 0:
        raise ValueError(
            f"{name} must be a scalar (vmap over it for a sweep); got shape {arr.shape}"
        )
    relation = "≥ 0" if allow_zero else "> 0"
    if not _is_traced(value):
        v = float(np.asarray(value))
        bad = not np.isfinite(v) or (v < 0 if allow_zero else v <= 0)
        if bad:
            raise ValueError(f"{name} must be finite and {relation}; got {v}")
        return arr
    bad = ~jnp.isfinite(arr) | ((arr < 0) if allow_zero else (arr <= 0))
    return eqx.error_if(arr, bad, f"{name} must be finite and {relation}")


def check_potential(U, dim: int, dtype):
    """``U`` must map a point (a scalar in 1-D, ``(dim,)`` otherwise) to a scalar."""
    probe = jax.ShapeDtypeStruct(() if dim == 1 else (dim,), dtype)
    out = jax.eval_shape(U, probe)
    if getattr(out, "shape", None) != ():
        expected = "a scalar" if dim == 1 else f"a point of shape ({dim},)"
        raise ValueError(
            f"U must map {expected} to a scalar; it returned shape "
            f"{getattr(out, 'shape', None)}"
        )
