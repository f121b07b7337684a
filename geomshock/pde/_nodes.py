"""Boundary checks shared by the exact solutions: grids as axes, points, potentials.

Grids come in as the API's ``nodes=`` / ``period=`` keywords (arrays, or axes
directly) and leave as :class:`~geomshock.pde.AbstractAxis` objects, validated
once by :func:`~geomshock.pde.axis_from_nodes` (a ``ValueError`` for concrete
nodes, a run-time check threaded through the axis for traced ones). Scalars and
arrays are checked by :mod:`geomshock._checks`.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from .. import _checks
from ._solver._axes import AbstractAxis, axis_from_nodes


def _axis(nodes, period, name: str) -> AbstractAxis:
    if isinstance(nodes, AbstractAxis) and period is None:
        return nodes  # an axis carries its own period
    return axis_from_nodes(nodes, period, name=name)


def check_axes(nodes, period) -> tuple[AbstractAxis, ...]:
    """``nodes`` (a grid, an axis, or a tuple of them) as a tuple of axes.

    ``period`` is one value (or ``None``) for every dimension, or one per
    dimension; an axis passed as a node set may omit it.
    """
    if isinstance(nodes, Sequence) and not isinstance(nodes, str):
        grids = tuple(nodes)
        if not grids:
            raise ValueError(
                "nodes must be a 1-D grid, an axis, or a non-empty tuple of them; "
                "got an empty sequence"
            )
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
    return tuple(
        _axis(g, p, f"nodes[{i}]" if dim > 1 else "nodes")
        for i, (g, p) in enumerate(zip(grids, periods, strict=True))
    )


def is_multi(nodes) -> bool:
    """Whether ``nodes`` is a tuple of grids (points then carry a last axis)."""
    return isinstance(nodes, Sequence) and not isinstance(nodes, str)


def axis_nodes(nodes, axes: tuple[AbstractAxis, ...], dtype) -> tuple:
    """The node arrays of ``axes`` in ``dtype``, as the user gave them.

    Concrete arrays are used as given (validated already); traced ones are tied
    to their axis' run-time check (:func:`geomshock._checks.tie`), and an axis
    passed as a node set gives its own nodes.
    """
    given = tuple(nodes) if is_multi(nodes) else (nodes,)
    out = []
    for g, axis in zip(given, axes, strict=True):
        if isinstance(g, AbstractAxis):
            out.append(jnp.asarray(axis.nodes(), dtype=dtype))
        else:
            out.append(_checks.tie(jnp.asarray(g, dtype=dtype), axis.start))
    return tuple(out)


def check_points(x, dim: int, multi: bool):
    """Finite points as an array ``(k, dim)`` and a function restoring the shape.

    One-dimensional problems (``multi=False``) take ``x`` of shape ``()`` or
    ``(k,)``; ``multi=True`` takes ``(dim,)`` or ``(k, dim)``.
    """
    x = jnp.asarray(_checks.finite_array(x, "x"), dtype=_checks.default_float())
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


def check_potential(U, dim: int, dtype):
    """``U`` must map a point (a scalar in 1-D, ``(dim,)`` otherwise) to a scalar."""
    _checks.callable_arg(U, "U")
    probe = jax.ShapeDtypeStruct(() if dim == 1 else (dim,), dtype)
    out = jax.eval_shape(U, probe)
    if getattr(out, "shape", None) != ():
        expected = "a scalar" if dim == 1 else f"a point of shape ({dim},)"
        raise ValueError(
            f"U must map {expected} to a scalar; it returned shape "
            f"{getattr(out, 'shape', None)}"
        )


def non_finite_values(name: str) -> str:
    """The message for NaN/inf values of ``name`` (a function of the data)."""
    return (
        f"non-finite input: {name} contains NaN or inf; the exact solutions need "
        "a finite potential on every node (check U and the data it closes over)"
    )
