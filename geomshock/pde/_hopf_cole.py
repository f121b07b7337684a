"""Exact viscous Hamilton–Jacobi and Burgers solutions by the Hopf–Cole transform.

Paper convention: the heat semigroup is ``exp((ντ/2) Δ)``, a Gaussian kernel of
variance ``ντ``. The classic Burgers equation ``v_t + v v_x = ν_c v_xx`` is the
case ``ν = 2 ν_c``.
"""

import functools
import itertools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .. import _checks
from ..geometry import grad_norm_sq, laplace_beltrami
from ._kernel import (
    FOURIER,
    IMAGES,
    NEAREST,
    clipped_var,
    fourier_sums,
    kernel_terms,
    periodic_mode,
)
from ._nodes import (
    axis_nodes,
    check_axes,
    check_points,
    check_potential,
    check_resolution,
    is_multi,
    non_finite_values,
    warn_truncated,
)
from ._solver._axes import AbstractAxis

Grid = Float[ArrayLike, " N"] | AbstractAxis
Nodes = Grid | tuple[Grid, ...]
Period = float | None | tuple[float | None, ...]
Real = Float[ArrayLike, ""]  # a real scalar (Python float or 0-d array)
Points = Float[ArrayLike, "*k"] | Float[ArrayLike, "*k n"]


def _potential_on_grid(U, grids):
    if len(grids) == 1:
        return jax.vmap(U)(grids[0])
    mesh = jnp.stack(jnp.meshgrid(*grids, indexing="ij"), axis=-1)
    flat = mesh.reshape(-1, len(grids))
    return jax.vmap(U)(flat).reshape(mesh.shape[:-1])


def _expand(a, axis: int, dim: int):
    """``(k, N_axis)`` -> broadcastable against ``(k, N_1, ..., N_dim)``."""
    shape = [a.shape[0]] + [1] * dim
    shape[axis + 1] = a.shape[1]
    return a.reshape(shape)


def _end_tails(weights, total, dim: int, line_axes):
    """Estimated weight beyond each end of each line axis, relative to the total.

    The last two node masses ``p_end``, ``p_next`` along the axis extrapolate
    the tail geometrically, ``p_end / (1 − p_end/p_next)`` (the end node
    included; Gaussian tails decay faster, so this over-estimates), and ``inf``
    when the weights grow towards the end. Shape ``(k, len(line_axes), 2)``.
    """
    if not line_axes:
        return jnp.zeros((total.shape[0], 0, 2), total.dtype)
    weights = jax.lax.stop_gradient(weights)
    total = jax.lax.stop_gradient(total)
    other = tuple(range(1, dim + 1))
    tails = []
    for axis in line_axes:
        keep = tuple(a for a in other if a != axis + 1)
        mass = jnp.sum(weights, axis=keep) if keep else weights
        ends = []
        for end, nxt in ((0, 1), (-1, -2)):
            p_end, p_next = mass[:, end] / total, mass[:, nxt] / total
            ratio = p_end / jnp.where(p_next > 0, p_next, 1.0)
            decaying = (p_end == 0) | ((p_next > 0) & (ratio < 1))
            safe = jnp.where(decaying, 1 - ratio, 1.0)
            ends.append(jnp.where(decaying, p_end / safe, jnp.inf))
        tails.append(jnp.stack(ends, axis=-1))
    return jnp.stack(tails, axis=1)


def _dense(nu, var, *, modes, U_nodes, x2, grids, spacings, periods):
    """Trapezoid-rule Hopf–Cole: ``(u, τ v, tails)`` at the points ``x2`` (k, dim).

    Every (point, node) pair at once. Weights ``p_j ∝ exp(quad_j − U_j/ν)·factor_j``
    are normalised by hand: ``factor`` is bounded in ``(0, 3)``, so
    subtracting ``max(quad − U/ν)`` keeps every exponent ≤ 0 and the sum ≥ its
    largest term (a logsumexp in factored form, one exponential per node pair
    on the line). ``tails`` is :func:`_end_tails` on the line axes.
    """
    dim = len(grids)
    base = -U_nodes[None] / nu
    factors, moments = [], []
    log_norm = jnp.zeros((), x2.dtype)
    for axis in range(dim):
        quad, fac, moment, log_k0 = kernel_terms(
            x2[:, axis, None], grids[axis], var, periods[axis], mode=modes[axis]
        )
        base = base + _expand(quad, axis, dim)
        h = jnp.asarray(spacings[axis], dtype=x2.dtype)
        log_norm = log_norm + log_k0 + jnp.log(h)
        factors.append(None if fac is None else _expand(fac, axis, dim))
        moments.append(_expand(moment, axis, dim))
    node_axes = tuple(range(1, dim + 1))
    shift = jax.lax.stop_gradient(jnp.max(base, axis=node_axes, keepdims=True))
    unnormalised = jnp.exp(base - shift)

    def weighted(skip):
        out = unnormalised
        for axis, fac in enumerate(factors):
            if fac is not None and axis != skip:
                out = out * fac
        return out

    total = jnp.sum(weighted(None), axis=node_axes)
    u = -nu * (jnp.log(total) + shift.reshape(-1) + log_norm)
    first_moments = [
        jnp.sum(weighted(axis) * moment, axis=node_axes)
        for axis, moment in enumerate(moments)
    ]
    line_axes = [a for a, p in enumerate(periods) if p is None]
    tails = _end_tails(weighted(None), total, dim, line_axes)
    return u, jnp.stack(first_moments, axis=-1) / total[:, None], tails


# Work sizes of the blocked quadrature: points per block, and on 1-D grids
# nodes per tile (a block × tile of float64 intermediates stays in cache).
BLOCK_PAIRS = 2**15
TILE = 256
# A tile is skipped when no pair in it can reach e^{−SKIP} of its row's
# largest term, divided by 3N (the image factor is < 3; N nodes): the skipped
# weight is then at most e^{−SKIP} of the kept sum in total.
SKIP = 40.0


def _by_point_blocks(fn, x2, nodes: int, lines: int):
    """``fn(x2)`` evaluated in ``lax.map`` blocks of points, each checkpointed.

    A block holds about ``BLOCK_PAIRS`` (point, node) pairs, so the
    intermediates stay small and in cache; under ``grad`` only the block's
    inputs are saved and its pairs recomputed. The last block is padded with
    copies of the first point.
    """
    k, dim = x2.shape
    size = max(1, min(k, BLOCK_PAIRS // nodes))
    if size == k:
        return fn(x2)
    count = -(-k // size)
    pad = jnp.broadcast_to(x2[:1], (count * size - k, dim))
    blocks = jnp.concatenate([x2, pad]).reshape(count, size, dim)
    u, m, tails = jax.lax.map(jax.checkpoint(fn), blocks)
    tails = tails.reshape(count * size, lines, 2)
    return u.reshape(-1)[:k], m.reshape(-1, dim)[:k], tails[:k]


def _fourier_line(nu, var, *, U_nodes, x2, grid, h, period):
    """1-D Fourier regime in its separable form: ``O(N + k)``, no pairs."""
    shift = jax.lax.stop_gradient(jnp.max(-U_nodes / nu))
    weights = jnp.exp(-U_nodes / nu - shift)
    total, moment = fourier_sums(x2[:, 0], grid, weights, var, period)
    log_norm = jnp.log(jnp.asarray(h, x2.dtype) / period)
    u = -nu * (jnp.log(total) + shift + log_norm)
    return u, (moment / total)[:, None], jnp.zeros((x2.shape[0], 0, 2), x2.dtype)


# Periodic images |m| ≤ IMAGE_REACH of the nodes in the tiled sum: with the
# points reduced into the nodes' period this holds the seven images around
# the nearest one, and the first one left out lies ≥ 4P away,
# exp(−16P²/(2σ²)) ≤ e^{−57} relative below the image/Fourier switch.
IMAGE_REACH = 4


def _banded(nu, var, active, *, U_nodes, x2, grid, h, period):
    """1-D quadrature over node tiles, skipping those of negligible weight.

    The nodes are cut into tiles of ``TILE`` (on the circle: of the periodic
    images ``y + mP``, ``|m| ≤ IMAGE_REACH``, so that one Gaussian, one
    exponential per pair, covers the nearest image and the image sum alike).
    For a block of points, a tile's largest exponent ``−(x − y)²/(2σ²) − U/ν``
    is bounded above by ``max_tile(−U/ν)`` minus the squared distance from the
    point to the tile's interval over ``2σ²``; the tiles are visited in
    decreasing order of that bound with an online (rescaled) logsumexp, and a
    tile whose bound lies below every point's running maximum minus
    ``SKIP + log(pairs per point)`` is skipped by a ``lax.cond``. Under
    ``vmap`` the skip is decided for all members together (a tile runs if any
    ``active`` member needs it: one that takes this branch), so it stays a
    real conditional.
    """
    n = grid.shape[0]
    dtype = x2.dtype
    count = -(-n // TILE)
    pad = count * TILE - n
    neg_U = -U_nodes / nu
    tiles = jnp.concatenate([grid, jnp.broadcast_to(grid[-1:], (pad,))])
    neg_tiles = jnp.concatenate([neg_U, jnp.full((pad,), -jnp.inf, dtype)])
    if period is not None:
        shifts = period * jnp.arange(-IMAGE_REACH, IMAGE_REACH + 1, dtype=dtype)
        tiles = (tiles[None] + shifts[:, None]).reshape(-1)
        neg_tiles = jnp.tile(neg_tiles, shifts.shape[0])
        var = clipped_var(var, period, IMAGES)
    tiles, neg_tiles = tiles.reshape(-1, TILE), neg_tiles.reshape(-1, TILE)
    # visited in groups (one period of images on the circle): a group none of
    # whose tiles is needed is skipped whole, so the long tail of far tiles
    # costs one check per group, not one per tile
    group = count if period is not None else max(1, int(count**0.5))
    groups = -(-tiles.shape[0] // group)
    spare = groups * group - tiles.shape[0]  # all −inf tiles, never needed
    tiles = jnp.concatenate([tiles, jnp.broadcast_to(tiles[-1:], (spare, TILE))])
    neg_tiles = jnp.concatenate([neg_tiles, jnp.full((spare, TILE), -jnp.inf, dtype)])
    centre = 0.5 * (tiles[:, 0] + tiles[:, -1])
    radius = 0.5 * (tiles[:, -1] - tiles[:, 0])
    top = jax.lax.stop_gradient(jnp.max(neg_tiles, axis=1))
    var_k = jax.lax.stop_gradient(var)
    margin = SKIP + jnp.log(float(n * (tiles.shape[0] // count)))
    log_norm = -0.5 * jnp.log(2 * jnp.pi * var) + jnp.log(jnp.asarray(h, dtype))
    ends = jnp.array([0, 1, n - 2, n - 1]) if period is None else None

    def block(xb):
        if period is not None:  # into the period of the nodes
            xb = xb - period * jnp.floor((xb - grid[0]) / period)
        x = jax.lax.stop_gradient(xb[:, 0])
        gap = jnp.maximum(jnp.abs(x[:, None] - centre[None]) - radius[None], 0.0)
        bound = top[None] - 0.5 * gap**2 / var_k  # (points, tiles)
        order = jnp.argsort(-jnp.max(bound, axis=0)).reshape(groups, group)

        def needed(peak, tile_bound):
            """Whether some active point may reach e^{−margin} of its peak."""
            keep = tile_bound >= (peak - margin).reshape(
                (-1,) + (1,) * (tile_bound.ndim - 1)
            )
            return _present_anywhere(active & jnp.any(keep))

        def visit(carry, j):
            def run(peak, total, moment):
                d = xb - tiles[j]
                base = -0.5 * d**2 / var + neg_tiles[j]
                new = jnp.maximum(peak, jax.lax.stop_gradient(jnp.max(base, axis=1)))
                scale = jnp.exp(peak - new)
                e = jnp.exp(base - new[:, None])
                total = total * scale + jnp.sum(e, axis=1)
                moment = moment * scale + jnp.sum(e * d, axis=1)
                return new, total, moment

            # checkpointed: under grad a step saves its carry, not its pairs
            need = needed(carry[0], bound[:, j])
            step = jax.checkpoint(run)
            return jax.lax.cond(need, step, lambda *c: c, *carry), None

        def visit_group(carry, js):
            def run(*carry):
                return jax.lax.scan(visit, carry, js)[0]

            need = needed(carry[0], bound[:, js])
            return jax.lax.cond(need, run, lambda *c: c, *carry), None

        size = xb.shape[0]
        init = (
            jnp.full((size,), -jnp.inf, dtype),
            jnp.zeros((size,), dtype),
            jnp.zeros((size,), dtype),
        )
        (peak, total, moment), _ = jax.lax.scan(visit_group, init, order)
        u = -nu * (jnp.log(total) + peak + log_norm)
        if ends is None:
            tails = jnp.zeros((size, 0, 2), dtype)
        else:
            quad = -0.5 * (xb - grid[ends]) ** 2 / var
            end_w = jnp.exp(quad + neg_U[ends] - peak[:, None])
            tails = _end_tails(end_w, total, 1, [0])
        return u, (moment / total)[:, None], tails

    return _by_point_blocks(block, x2, TILE, 0 if period is not None else 1)


def _tiled(x2, nodes) -> bool:
    """Whether a 1-D quadrature runs by node tiles (:func:`_banded`)."""
    return x2.shape[0] * nodes.shape[0] > BLOCK_PAIRS


def _quadrature(nu, var, active=True, *, x2, dense=False, **grid):
    """Trapezoid-rule Hopf–Cole: ``(u, τ v, tails)`` at the points ``x2`` (k, dim).

    The same sums as :func:`_dense` (which ``dense=True`` runs, as do
    problems of at most ``BLOCK_PAIRS`` pairs), in less time and memory: 1-D
    grids in their separable Fourier form or by node tiles (:func:`_banded`),
    more dimensions in blocks of points. ``grid`` holds ``modes``,
    ``U_nodes``, ``grids``, ``spacings``, ``periods`` as in :func:`_dense`;
    ``active`` (a boolean, batched under ``vmap``) marks the members whose
    result will be used.
    """
    if len(grid["grids"]) == 1 and not dense:
        (mode,), (nodes,), (h,), (period,) = (
            grid[key] for key in ("modes", "grids", "spacings", "periods")
        )
        one = dict(U_nodes=grid["U_nodes"], x2=x2, grid=nodes, h=h, period=period)
        if period is not None and mode == FOURIER:
            return _fourier_line(nu, var, **one)
        if _tiled(x2, nodes):
            return _banded(nu, var, active, **one)
    size = grid["U_nodes"].size
    if dense or x2.shape[0] * size <= BLOCK_PAIRS:  # small: one block
        return _dense(nu, var, x2=x2, **grid)
    lines = sum(p is None for p in grid["periods"])
    block = functools.partial(_dense, nu, var, **grid)
    return _by_point_blocks(lambda xb: block(x2=xb), x2, size, lines)


def _hopf_cole_core(U, nu, tau, x, nodes, period, name):
    """``(u, v, restore, dim)``: local entropy ``(k,)`` and gradient ``(k, dim)``."""
    axes = check_axes(nodes, period)
    dim = len(axes)
    x2, restore = check_points(x, dim, is_multi(nodes))
    check_potential(U, dim, x2.dtype)
    nu = _checks.positive_scalar(nu, "nu")
    tau = _checks.positive_scalar(tau, "tau", allow_zero=True)
    tau = check_resolution(nu, tau, axes, name, REFINE if dim == 1 else 1)
    # the refined branch is compiled only where it may be needed
    known = [_checks.concrete(a) for a in (nu, tau, axes[0].spacing)]
    refine = dim == 1 and (
        any(k is None for k in known)
        or 0 < float(known[0]) * float(known[1]) < float(known[2]) ** 2
    )
    grids = axis_nodes(nodes, axes, x2.dtype)
    spacings = tuple(a.spacing for a in axes)
    periods = tuple(a.period for a in axes)
    u, v, bad_U, tails = _hopf_cole_jit(
        U, nu, tau, x2, grids, spacings, periods, refine
    )
    out = _checks.raise_if(
        (u, v), bad_U, non_finite_values("U(nodes)"), _checks.NonFiniteInputError
    )
    if tails.shape[1]:
        out = warn_truncated(out, tails, bad_U, axes, nu, tau, x2.dtype, name)
    u, v = out
    return u, v, restore, dim


@jax.custom_batching.custom_vmap
def _present_anywhere(flags):
    """``flags`` itself, but OR-ed over every vmapped axis (and unbatched).

    Under ``vmap`` the per-member regime flags become one shared flag per
    regime, so that ``lax.cond`` on it stays a real conditional instead of a
    select that evaluates every branch for every member. Nested vmaps reduce
    axis by axis through the recursive call. Integer/boolean in and out, so it
    never carries a tangent and ``grad`` passes straight by it.
    """
    return flags


@_present_anywhere.def_vmap
def _present_anywhere_vmap(axis_size, in_batched, flags):
    del axis_size
    if in_batched[0]:
        flags = jnp.any(flags, axis=0)
    return _present_anywhere(flags), False


def _skipped(nu, var, active, *, x2, lines):
    """Stand-in for a representation no batch member needs (never selected)."""
    del nu, var, active
    k, dim = x2.shape
    zeros = jnp.zeros((k,), x2.dtype), jnp.zeros((k, dim), x2.dtype)
    return *zeros, jnp.zeros((k, lines, 2), x2.dtype)


# Node refinement for kernels narrower than the spacing (1-D): the potential is
# evaluated on REFINE times finer nodes, down to sqrt(ντ) = h / REFINE.
REFINE = 4


def _refined(nu, var, active, *, U, x2, grid, h, period):
    """:func:`_quadrature` on ``REFINE``× finer nodes (U evaluated there, exactly).

    Used only when ``sqrt(var) < h``; the kernel is then far narrower than the
    period, so the seven-image sum is exact (and the nearest image would do).
    """
    n = grid.shape[0]
    count = REFINE * n if period is not None else REFINE * (n - 1) + 1
    fine_h = jnp.asarray(h, x2.dtype) / REFINE
    fine = grid[0] + fine_h * jnp.arange(count, dtype=x2.dtype)
    return _quadrature(
        nu,
        var,
        active,
        modes=(IMAGES,),
        U_nodes=jax.vmap(U)(fine),
        x2=x2,
        grids=(fine,),
        spacings=(fine_h,),
        periods=(period,),
    )


def _initial_rate(U, nu, dim: int):
    """``∂_τ u`` at ``τ = 0⁺``, the PDE's right-hand side ``−½|∇U|² + (ν/2)ΔU``."""

    def rate(p):
        if dim == 1:
            return -0.5 * jax.grad(U)(p) ** 2 + 0.5 * nu * jax.grad(jax.grad(U))(p)
        return -0.5 * jnp.sum(jax.grad(U)(p) ** 2) + 0.5 * nu * jnp.trace(
            jax.hessian(U)(p)
        )

    return rate


# Compiled once per potential, grid shapes and periods, so that eager calls are
# fast too; inside a user's jit it is simply inlined.
@eqx.filter_jit
def _hopf_cole_jit(U, nu, tau, x2, grids, spacings, periods, refine: bool):
    dim = len(grids)
    positive = tau > 0
    tau_safe = jnp.where(positive, tau, 1.0)
    var = nu * tau_safe
    U_nodes = _potential_on_grid(U, grids)
    bad_U = ~jnp.all(jnp.isfinite(U_nodes))
    # One fused computation per combination of kernel representations on the
    # periodic axes (nearest image, image sum, Fourier series). Each runs under
    # its own lax.cond on whether *any* batch member needs it (see
    # _present_anywhere): a single call runs one, a vmapped sweep whose members
    # share a regime runs that one batched, and only a mixed batch runs several
    # and picks per member. A plain lax.switch would become a select under vmap
    # and evaluate every representation for every member. The image sum is
    # exact wherever the nearest image is, so where some member needs it on an
    # axis, the members that would take the nearest image there take it too;
    # on a tiled circle (_banded) the two are one computation anyway.
    periodic = [a for a, p in enumerate(periods) if p is not None]
    tiled = dim == 1 and bool(periodic) and _tiled(x2, grids[0])
    spread = (jnp.max(U_nodes) - jnp.min(U_nodes)) / nu
    count = U_nodes.size
    index = jnp.zeros((), jnp.int32)
    for a in periodic:
        mode = periodic_mode(var, periods[a], spacings[a], spread, count)
        images = True if tiled else _present_anywhere(mode == IMAGES)
        mode = jnp.where(images & (mode == NEAREST), IMAGES, mode)
        index = 3 * index + mode
    combos = list(itertools.product(range(3), repeat=len(periodic)))
    branches = []
    for combo in combos:
        if tiled and combo == (NEAREST,):  # never taken
            branches.append(functools.partial(_skipped, x2=x2, lines=dim - 1))
            continue
        chosen = dict(zip(periodic, combo, strict=True))
        branches.append(
            functools.partial(
                _quadrature,
                modes=tuple(chosen.get(a, 0) for a in range(dim)),
                U_nodes=U_nodes,
                x2=x2,
                grids=grids,
                spacings=spacings,
                periods=periods,
            )
        )
    if refine:  # 1-D, a kernel that may be narrower than the spacing
        fine = positive & (var < jnp.asarray(spacings[0], var.dtype) ** 2)
        index = jnp.where(fine, len(branches), index)
        branches.append(
            functools.partial(
                _refined, U=U, x2=x2, grid=grids[0], h=spacings[0], period=periods[0]
            )
        )
    present = _present_anywhere(jnp.arange(len(branches)) == index)
    lines = dim - len(periodic)
    u, v, tails = _skipped(nu, var, True, x2=x2, lines=lines)
    for i, branch in enumerate(branches):
        if len(branches) == 1:  # nothing to pick
            u, v, tails = branch(nu, var, True)
            break
        skip = functools.partial(_skipped, x2=x2, lines=lines)
        out_i = jax.lax.cond(
            present[i], jax.checkpoint(branch), skip, nu, var, index == i
        )
        u, v, tails = (
            jnp.where(index == i, new, old)
            for new, old in zip(out_i, (u, v, tails), strict=True)
        )
    v = v / tau_safe

    # τ = 0 is U itself. The term τ·(∂_τ u at 0⁺) added to it vanishes there
    # but makes ∂/∂τ the PDE's right derivative (the quadrature branch runs at
    # τ = 1 instead and is discarded, so it cannot carry one).
    pointwise = x2[:, 0] if dim == 1 else x2
    rate = _initial_rate(U, nu, dim)
    U_x = jax.vmap(U)(pointwise) + tau * jax.vmap(rate)(pointwise)
    dU_x = jax.vmap(jax.grad(U))(pointwise) + tau * jax.vmap(jax.grad(rate))(pointwise)
    initial = U_x, dU_x.reshape(v.shape)
    u, v = (jnp.where(positive, a, b) for a, b in zip((u, v), initial, strict=True))
    return u, v, bad_U, tails


def local_entropy(
    U: Callable, nu: Real, tau: Real, x: Points, *, nodes: Nodes, period: Period = None
) -> Float[Array, "*k"]:
    r"""Local entropy ``u^ν(τ, x) = −ν log (P_{ντ} e^{−U/ν})(x)``, exactly.

    ``P_{ντ} = exp((ντ/2) Δ)`` (paper convention: Gaussian kernel of variance
    ``ντ``; for the classic ``v_t + v v_x = ν_c v_xx`` pass ``nu = 2 ν_c``).
    By the trapezoid rule on the uniform ``nodes`` ``y_j`` (spacing ``h``):

        u = −ν logsumexp_j [log k_{ντ}(x − y_j) − U(y_j)/ν] − ν log h,

    all in the log domain, so ``ν`` down to ``1e-4`` and below gives finite,
    correct values where ``e^{−U/ν}`` itself would under- or overflow. ``u``
    solves the viscous Hamilton–Jacobi equation ``∂_τ u + ½|∇u|² = (ν/2) Δu``,
    ``u(0) = U``; at ``τ = 0`` its ``τ``-derivative is that equation's right
    derivative ``−½|∇U|² + (ν/2)ΔU``.

    Accuracy, and what is refused: the trapezoid rule integrates the kernel
    with relative error ``≈ 2 exp(−2π² ντ/h²)`` (``6e-9`` at ``sqrt(ντ) = h``,
    rounding from ``1.4 h`` on). A kernel narrower than the spacing,
    ``sqrt(ντ) < h`` with ``τ > 0``, cannot be resolved: a ``ValueError``
    saying how many nodes are needed (a run-time error under ``jit``). On the
    line the nodes must reach far enough that the weights at their ends are
    negligible; when the estimated truncated weight exceeds ``1e-7`` (float64;
    ``1e-4`` in float32) a :class:`geomshock.pde.TruncatedDomainWarning` says which
    end to extend and by how much (also under ``jit``, from a host callback).
    NaN or inf values of ``U`` on the nodes raise a "non-finite input" error.

    Args:
        U: the potential, ``scalar -> scalar`` (or ``(n,) -> scalar`` with
            ``n`` grids), a JAX function.
        nu: viscosity ``ν > 0`` (scalar; vmap over it for sweeps).
        tau: coarse-graining time ``τ ≥ 0``; ``τ = 0`` returns ``U(x)``.
        x: evaluation points: shape ``()`` or ``(k,)`` for a 1-D grid of nodes;
            ``(n,)`` or ``(k, n)`` when ``nodes`` is a tuple of ``n`` grids.
        nodes: a uniform 1-D grid, or a tuple of them (tensor-product grid,
            flat ``R^n`` or torus). Each grid may also be an axis
            (:class:`~geomshock.pde.LineAxis`, :class:`~geomshock.pde.PeriodicAxis`,
            any :class:`~geomshock.pde.AbstractAxis`), which carries its own
            period. Concrete grids are checked now (``ValueError``), traced
            ones (under ``jit``) when the computation runs: uniform,
            increasing, and one period with the endpoint excluded.
        period: ``None`` (the line) or ``P``: then ``nodes`` is exactly one
            period ``[a, a + P)`` with the endpoint excluded, and all periodic
            images are summed through the wrapped kernel (exact for any width,
            at a fixed cost). A tuple gives one period (or ``None``) per
            dimension.

    Returns:
        ``u`` with the shape of ``x`` (without its last axis in the
        multi-dimensional case).

    Supports ``jit``, ``vmap`` over ``nu``, ``tau``, ``x`` and over ``U``'s
    closed-over parameters, and ``grad`` in ``x``, ``nu``, ``tau``.

    Cost and memory: on a 1-D grid, one exponential per (point, node) pair
    that matters. The points are taken in blocks of 128 and the nodes in tiles
    of 256 (on the circle, tiles of the node images ``y + mP``, ``|m| ≤ 4``,
    which covers the nearest image and the image sum alike); a tile is skipped
    when no pair in it can reach ``e^{−40}`` of its point's largest term
    divided by the number of pairs, so the result equals the dense sum to
    rounding, the memory is a few blocks (``O(k + N)``, not ``O(kN)``), and
    narrow kernels cost in proportion to their width. Wide kernels on the
    circle (``ντ ≥ 0.14 P²``) use the separable Fourier form,
    ``Σ_j w_j cos ω(x − y_j) = cos ωx·Σ_j w_j cos ωy_j + sin ωx·Σ_j w_j sin ωy_j``:
    ``O(N + k)``. Small problems (``k N ≤ 32768`` pairs) and tensor-product
    grids sum all pairs of a block of points at once. Measured for the
    Basdevant field below at all N nodes (2 shared CPU cores, float64):
    3–7 ns per pair of the whole N², 1.1–2.3× less time than the dense
    formulation, and at N = 16384 0.8–1.1 s and +0.14 GB resident memory,
    compilation included (before this layout: 2.2 s and +4.3 GB);
    ``benchmarks/hopf_cole_scaling.py``. A ``vmap`` over
    ``nu``/``tau`` is a plain batch axis with no loop: each representation
    runs only if some member needs it (members that would take the nearest
    image take the image sum where some member needs that), and a tile only
    if a member taking that branch needs it, so a sweep costs about one field
    of its widest kernel per member. Reverse mode through the tiles
    recomputes each visited tile (checkpointed), about 10× the forward cost:
    for a slope field, ``vmap`` of ``grad`` over single points (each a small
    all-pairs sum) measured 2.8× faster than ``grad`` of the summed field.

    Float32 works (on GPUs too: all in the log domain, no ``e^{−U/ν}``): the
    Basdevant slope below comes out within ~1e-7 relative in float32 on CPU,
    and the whole Basdevant field at N = 2048 within 4e-7 (absolute, for
    ``|v| ≤ 1``) of the float64 one.

    Example:
        >>> import jax.numpy as jnp
        >>> nodes = jnp.linspace(-10.0, 10.0, 801)
        >>> u = local_entropy(lambda y: 0.5 * y**2, 0.1, 1.0, jnp.array([1.0]),
        ...                   nodes=nodes)
        >>> # exact: x²/(2(1+τ)) + (ν/2) log(1+τ)
        >>> bool(jnp.abs(u[0] - (0.25 + 0.05 * jnp.log(2.0))) < 1e-10)
        True
    """
    u, _, restore, _ = _hopf_cole_core(U, nu, tau, x, nodes, period, "local_entropy")
    return restore(u)


def burgers_hopf_cole(
    U: Callable, nu: Real, tau: Real, x: Points, *, nodes: Nodes, period: Period = None
) -> Float[Array, "*k"] | Float[Array, "*k n"]:
    r"""Viscous Burgers velocity ``v = ∂_x u^ν`` with initial data ``v(0) = U'``.

    ``∂_τ v + v ∂_x v = (ν/2) ∂_xx v`` (paper convention; the classic
    ``v_t + v v_x = ν_c v_xx`` is ``nu = 2 ν_c``). Computed as the softmax
    mean ``v = Σ_j p_j m(x − y_j)/τ`` with the Hopf–Cole weights
    ``p_j ∝ k_{ντ}(x − y_j) e^{−U(y_j)/ν}`` and ``m(d)`` the kernel's
    (image-weighted) mean displacement, ``d`` itself on the line; this is the
    exact derivative of the quadrature :func:`local_entropy`. Same arguments
    and rules as :func:`local_entropy`; ``τ = 0`` returns ``U'(x)``. With
    ``n`` grids, ``v`` is the gradient, of shape ``x.shape``.

    ``jax.grad`` in ``x`` gives the slope ``∂_x v``; also ``jit``, ``vmap``
    over ``nu``, ``tau``, ``x``, and ``grad`` in ``nu``, ``tau``.

    Example (Basdevant et al. 1986: ``u_t + u u_x = (0.01/π) u_xx``,
    ``u0 = −sin πx``, so ``ν = 0.02/π``, ``U = cos(πx)/π``):
        >>> import jax, jax.numpy as jnp
        >>> nodes = jnp.linspace(-1.0, 1.0, 2048, endpoint=False)
        >>> U = lambda y: jnp.cos(jnp.pi * y) / jnp.pi
        >>> v = lambda s: burgers_hopf_cole(U, 0.02 / jnp.pi, 1.6037 / jnp.pi,
        ...                                 s, nodes=nodes, period=2.0)
        >>> slope = jax.grad(v)(0.0)   # published: −152.005161576
        >>> round(float(slope), 6)
        -152.005162
        >>> from geomshock.pde import PeriodicAxis
        >>> float(v(0.5)) == float(burgers_hopf_cole(U, 0.02 / jnp.pi, 1.6037 / jnp.pi,
        ...     0.5, nodes=PeriodicAxis(-1.0, 2.0, 2048)))  # an axis as nodes
        True
    """
    _, v, restore, dim = _hopf_cole_core(
        U, nu, tau, x, nodes, period, "burgers_hopf_cole"
    )
    return restore(v[:, 0] if dim == 1 else v)


def first_order_semigroup(
    U: Callable,
    nu: Float[ArrayLike, ""],
    tau: Float[ArrayLike, ""],
    x: Float[ArrayLike, "*k"] | Float[ArrayLike, "*k n"],
    *,
    metric: Callable | None = None,
    convention: _checks.HeatConvention = "theorem",
) -> Float[Array, "*k"]:
    r"""The paper's first-order baseline ``u ≈ −ν log(φ + c ντ Δφ)``, ``φ = e^{−U/ν}``.

    Sec. 3.1 of the paper replaces the semigroup by its first-order Taylor
    polynomial. ``convention="theorem"`` (default) gives ``c = ½``, matching
    ``P_{ντ} = exp((ντ/2)Δ)`` used everywhere in geomshock;
    ``convention="as_printed"`` gives ``c = 1``, i.e. ``exp(ντ Δ)`` exactly as
    printed in Sec. 3.1. Using ``Δφ = φ (|∇U|²/ν² − ΔU/ν)`` it is evaluated
    without forming ``φ``:

        u = U − ν log(1 + c τ (|∇U|²/ν − ΔU)),

    with ``∇``, ``Δ`` by autodiff (flat, or of ``metric`` through
    :func:`geomshock.geometry.laplace_beltrami`). Where the first-order ``w``
    is not positive the scheme has broken down and ``u = +inf`` (its one
    breakdown value, never a NaN). Compare with :func:`local_entropy` for its
    error.

    Args:
        U: ``scalar -> scalar`` (``x`` of shape ``()``/``(k,)``) or
            ``(n,) -> scalar`` (``x`` of shape ``(n,)``/``(k, n)``, requires
            ``metric`` or uses the identity metric).
        nu, tau: ``ν > 0``, ``τ ≥ 0``.
        metric: optional ``q -> g(q)`` for ``n``-D points.
        convention: ``"theorem"`` (``c = ½``) or ``"as_printed"`` (``c = 1``).

    Supports ``jit``, ``vmap`` over ``nu``, ``tau``, ``x`` and ``grad``.

    Example (``U = y²/2``: ``u = U − ν log(1 + cτ(y²/ν − 1))``):
        >>> import jax.numpy as jnp
        >>> u = first_order_semigroup(lambda y: 0.5 * y**2, 0.5, 0.1, jnp.array([0.0]))
        >>> round(float(u[0]), 12) == round(-0.5 * float(jnp.log(0.95)), 12)
        True
        >>> first_order_semigroup(lambda y: 5 * y**2, 0.1, 0.5, 0.0,
        ...                       convention="as_printed")  # 1 − 5 < 0: broken down
        Array(inf, dtype=float64)
    """
    scale = _checks.heat_factor(convention)
    nu = _checks.positive_scalar(nu, "nu")
    tau = _checks.positive_scalar(tau, "tau", allow_zero=True)
    x = jnp.asarray(_checks.finite_array(x, "x"), dtype=_checks.default_float())
    one_d = metric is None and x.ndim <= 1
    if one_d:
        check_potential(U, 1, x.dtype)
    else:
        if x.ndim not in (1, 2):
            raise ValueError(
                f"with a metric, x must have shape (n,) or (k, n); got {x.shape}"
            )
        check_potential(U, x.shape[-1], x.dtype)
    u = _first_order(U, nu, tau, x.reshape(-1) if one_d else x, metric, scale)
    return u.reshape(x.shape if one_d else x.shape[:-1])


def _identity_metric(q):
    return jnp.eye(q.shape[0], dtype=q.dtype)


@eqx.filter_jit
def _first_order(U, nu, tau, x, metric, scale):
    if x.ndim == 1 and metric is None:
        dU = jax.vmap(jax.grad(U))(x)
        lap = jax.vmap(jax.grad(jax.grad(U)))(x)
        grad_sq, U_x = dU**2, jax.vmap(U)(x)
    else:
        metric = _identity_metric if metric is None else metric
        flat = x.reshape(-1, x.shape[-1])
        grad_sq = jax.vmap(grad_norm_sq(U, metric))(flat)
        lap = jax.vmap(laplace_beltrami(U, metric))(flat)
        U_x = jax.vmap(U)(flat)
    factor = 1 + scale * tau * (grad_sq / nu - lap)
    positive = factor > 0
    u = U_x - nu * jnp.log(jnp.where(positive, factor, 1.0))
    return jnp.where(positive, u, jnp.inf)
