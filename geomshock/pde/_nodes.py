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
import numpy as np

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


def check_resolution(nu, tau, axes, name: str, refine: int):
    """``tau``, refused where the kernel ``sqrt(ντ)`` is too narrow for the nodes.

    The trapezoid rule on spacing ``h`` integrates a Gaussian of width ``σ``
    with relative error ``≈ 2 exp(−2π²σ²/h²)`` (Poisson summation): ``6e-9`` at
    ``σ = h``, below float64 rounding from ``σ ≈ 1.4 h``; below ``σ = h`` it
    fails fast (one node carries the weight, and ``v`` jumps by ``h/τ``). The
    caller resolves kernels down to ``h / refine`` (on ``refine``× finer
    nodes); narrower ones are refused: a ``ValueError`` now for known values,
    a run-time check through the returned ``tau`` for traced ones.
    """
    for i, axis in enumerate(axes):
        h = axis.spacing
        where = f" along nodes[{i}]" if len(axes) > 1 else ""
        limit = "h" if refine == 1 else f"h/{refine}"
        head = (
            f"{name}: the heat kernel is narrower than the node spacing allows"
            f"{where}: sqrt(ν τ) < {limit}"
        )
        why = "so the trapezoid rule cannot resolve it and the result would be wrong"
        nu_c, tau_c, h_c = (_checks.concrete(a) for a in (nu, tau, h))
        if h_c is None:  # traced line nodes: their extent is not known now
            fix = f"use a node spacing ≤ {refine} sqrt(ν τ)"
        else:
            length = axis.period or float(h_c) * (axis.n - 1)
            count = f"ceil({length:.6g} / ({refine} sqrt(ν τ)))" + (
                "" if axis.period else " + 1"
            )
            fix = f"use at least {count} nodes over the same interval (now {axis.n})"
        if nu_c is None or tau_c is None or h_c is None:
            h_min = jnp.asarray(h, dtype=tau.dtype) / refine
            bad = (tau > 0) & (nu * tau < h_min**2)
            message = f"{head}, {why}; {fix}, or a larger ν τ"
            tau = _checks.run_time_check(tau, bad, message)
            continue
        var = float(nu_c) * float(tau_c)
        if float(tau_c) > 0 and var < (float(h_c) / refine) ** 2:
            sigma = var**0.5
            needed = -int(-length // (refine * sigma)) + (axis.period is None)
            raise ValueError(
                f"{head} (sqrt(ν τ) = {sigma:.3g}, h = {float(h_c):.3g}; ν = "
                f"{float(nu_c):.3g}, τ = {float(tau_c):.3g}), {why}; use at least "
                f"{needed} nodes over the same interval (now {axis.n}), or a "
                "larger ν τ"
            )
    return tau


def tail_tolerance(dtype) -> float:
    """Estimated truncated weight (relative) above which a line grid is too short."""
    return _checks.per_dtype(dtype, float64=1e-7, float32=1e-4)


def warn_truncated(out, tails, bad_U, axes, nu, tau, dtype, name: str):
    """``out``, with a :class:`TruncatedDomainWarning` if line weights reach an end.

    ``tails`` ``(k, lines, 2)`` are the estimated relative weights beyond the
    lower and upper end of each line axis; above :func:`tail_tolerance` the
    warning says which end to extend and by how much (now when known, else
    from a host callback when the computation runs).
    """
    tol = tail_tolerance(dtype)
    line = [a for a, axis in enumerate(axes) if axis.period is None]
    known = [_checks.concrete(v) for v in (tails, nu, tau)]
    ends = []
    if known[0] is not None:
        for j, a in enumerate(line):
            nodes = np.asarray(axes[a].nodes())
            for side, label in ((0, "lower"), (1, "upper")):
                worst = float(np.max(known[0][:, j, side]))
                if worst > tol:
                    mass = (
                        f"≈ {worst:.2g} of the total"
                        if worst < 0.5
                        else "most of it: the weights grow towards that end"
                    )
                    ends.append(
                        f"the {label} end {nodes[-side]:.6g} of nodes"
                        f"{f'[{a}]' if len(axes) > 1 else ''} (truncated weight "
                        f"{mass})"
                    )
        if not ends:
            return out
    reach = ""
    if known[1] is not None and known[2] is not None:
        width = 12 * float(np.sqrt(float(known[1]) * float(known[2])))
        reach = f" = {width:.3g}"
    where = "; ".join(ends) if ends else "an end of the line grid"
    message = (
        f"{name}: the quadrature domain is too small: the Hopf–Cole weights "
        f"put mass at {where}, so the result is truncated (wrong). Extend the "
        f"nodes past that end, keeping the spacing, by at least 12·sqrt(ν τ)"
        f"{reach} beyond the evaluation points x and the characteristic feet "
        "x − τ U'(x), until this warning stops (or pass period= for periodic data)"
    )
    bad = jnp.any(tails > tol) & ~bad_U  # non-finite U is an error already
    return _checks.warn_if(out, bad, message, _checks.TruncatedDomainWarning)
