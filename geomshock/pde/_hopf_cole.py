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

from ..geometry import grad_norm_sq, laplace_beltrami
from ._kernel import kernel_terms, periodic_mode
from ._nodes import (
    check_grids,
    check_points,
    check_positive,
    check_potential,
)

Nodes = Float[ArrayLike, " N"] | tuple[Float[ArrayLike, " N"], ...]
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


def _quadrature(nu, var, *, modes, U_nodes, x2, grids, spacings, periods):
    """Trapezoid-rule Hopf–Cole: ``(u, τ v)`` at the points ``x2`` of shape (k, dim).

    Weights ``p_j ∝ exp(quad_j − U_j/ν)·factor_j`` are normalised by hand:
    ``factor`` is bounded in ``(0, 3)``, so subtracting ``max(quad − U/ν)``
    keeps every exponent ≤ 0 and the sum ≥ its largest term (a logsumexp in
    factored form, one exponential per node pair on the line).
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
    return u, jnp.stack(first_moments, axis=-1) / total[:, None]


def _hopf_cole_core(U, nu, tau, x, nodes, period):
    """``(u, v, restore)``: local entropy ``(k,)`` and gradient ``(k, dim)``."""
    grids, spacings, periods = check_grids(nodes, period)
    dim = len(grids)
    multi = isinstance(nodes, tuple | list)
    x2, restore = check_points(x, dim, multi)
    check_potential(U, dim, x2.dtype)
    nu = check_positive(nu, "nu", allow_zero=False)
    tau = check_positive(tau, "tau", allow_zero=True)
    u, v = _hopf_cole_jit(U, nu, tau, x2, grids, spacings, periods)
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


def _skipped(nu, var, *, x2):
    """Stand-in for a representation no batch member needs (never selected)."""
    del nu, var
    return jnp.zeros(x2.shape[:1], x2.dtype), jnp.zeros(x2.shape, x2.dtype)


# Compiled once per potential, grid shapes and periods, so that eager calls are
# fast too; inside a user's jit it is simply inlined.
@eqx.filter_jit
def _hopf_cole_jit(U, nu, tau, x2, grids, spacings, periods):
    dim = len(grids)
    positive = tau > 0
    tau_safe = jnp.where(positive, tau, 1.0)
    var = nu * tau_safe
    U_nodes = _potential_on_grid(U, grids)
    # One fused computation per combination of kernel representations on the
    # periodic axes (nearest image, image sum, Fourier series). Each runs under
    # its own lax.cond on whether *any* batch member needs it (see
    # _present_anywhere): a single call runs one, a vmapped sweep whose members
    # share a regime runs that one batched, and only a mixed batch runs several
    # and picks per member. A plain lax.switch would become a select under vmap
    # and evaluate every representation for every member.
    periodic = [a for a, p in enumerate(periods) if p is not None]
    spread = (jnp.max(U_nodes) - jnp.min(U_nodes)) / nu
    count = U_nodes.size
    index = jnp.zeros((), jnp.int32)
    for a in periodic:
        mode = periodic_mode(var, periods[a], spacings[a], spread, count)
        index = 3 * index + mode
    combos = list(itertools.product(range(3), repeat=len(periodic)))
    present = _present_anywhere(jnp.arange(len(combos)) == index)
    u = jnp.zeros(x2.shape[:1], x2.dtype)
    v = jnp.zeros(x2.shape, x2.dtype)
    for i, combo in enumerate(combos):
        chosen = dict(zip(periodic, combo, strict=True))
        modes = tuple(chosen.get(a, 0) for a in range(dim))
        branch = functools.partial(
            _quadrature,
            modes=modes,
            U_nodes=U_nodes,
            x2=x2,
            grids=grids,
            spacings=spacings,
            periods=periods,
        )
        if len(combos) == 1:  # the line (or no periodic axis): nothing to pick
            u, v = branch(nu, var)
            break
        skip = functools.partial(_skipped, x2=x2)
        u_i, v_i = jax.lax.cond(present[i], jax.checkpoint(branch), skip, nu, var)
        u, v = jnp.where(index == i, u_i, u), jnp.where(index == i, v_i, v)
    v = v / tau_safe

    pointwise = x2[:, 0] if dim == 1 else x2
    U_x = jax.vmap(U)(pointwise)
    dU_x = jax.vmap(jax.grad(U))(pointwise).reshape(v.shape)
    return jnp.where(positive, u, U_x), jnp.where(positive, v, dU_x)


def local_entropy(
    U: Callable, nu: Real, tau: Real, x: Points, *, nodes: Nodes, period: Period = None
) -> Float[Array, "*k"]:
    r"""Local entropy ``u^ν(τ, x) = −ν log (P_{ντ} e^{−U/ν})(x)``, exactly.

    ``P_{ντ} = exp((ντ/2) Δ)`` (paper convention: Gaussian kernel of variance
    ``ντ``; for the classic ``v_t + v v_x = ν_c v_xx`` pass ``nu = 2 ν_c``).
    By the trapezoid rule on the uniform ``nodes`` ``y_j`` (spacing ``h``):

        u = −ν logsumexp_j [log k_{ντ}(x − y_j) − U(y_j)/ν] − ν log h,

    all in the log domain, so ``ν`` down to ``1e-4`` and below gives finite,
    correct values where ``e^{−U/ν}`` itself would under- or overflow. The
    trapezoid rule is spectrally accurate once the kernel width ``sqrt(ντ)``
    spans a few node spacings (and, on the line, the nodes reach far enough that
    the weights at their ends are negligible). ``u`` solves the viscous
    Hamilton–Jacobi equation ``∂_τ u + ½|∇u|² = (ν/2) Δu``, ``u(0) = U``.

    Args:
        U: the potential, ``scalar -> scalar`` (or ``(n,) -> scalar`` with
            ``n`` grids), a JAX function.
        nu: viscosity ``ν > 0`` (scalar; vmap over it for sweeps).
        tau: coarse-graining time ``τ ≥ 0``; ``τ = 0`` returns ``U(x)``.
        x: evaluation points: shape ``()`` or ``(k,)`` for a 1-D grid of nodes;
            ``(n,)`` or ``(k, n)`` when ``nodes`` is a tuple of ``n`` grids.
        nodes: a uniform 1-D grid, or a tuple of them (tensor-product grid,
            flat ``R^n`` or torus).
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

    Cost: one exponential per (point, node) pair on the line and, on the
    circle, whenever the far images are provably negligible; otherwise the
    image sum (two more) or the Fourier series (a few multiplications). A
    ``vmap`` over ``nu``/``tau`` is a plain batch axis with no loop; on the
    circle each representation runs only if some member needs it, so a sweep
    whose members share a regime costs one field per member, and a mixed sweep
    one field per member and per regime present. Float32 works: the Basdevant
    slope below comes out within ~1e-7 relative in float32 on CPU.

    Example:
        >>> import jax.numpy as jnp
        >>> nodes = jnp.linspace(-10.0, 10.0, 801)
        >>> u = local_entropy(lambda y: 0.5 * y**2, 0.1, 1.0, jnp.array([1.0]),
        ...                   nodes=nodes)
        >>> # exact: x²/(2(1+τ)) + (ν/2) log(1+τ)
        >>> bool(jnp.abs(u[0] - (0.25 + 0.05 * jnp.log(2.0))) < 1e-10)
        True
    """
    u, _, restore, _ = _hopf_cole_core(U, nu, tau, x, nodes, period)
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
        >>> slope = jax.grad(v)(0.0)   # ≈ −152.005161576
    """
    _, v, restore, dim = _hopf_cole_core(U, nu, tau, x, nodes, period)
    return restore(v[:, 0] if dim == 1 else v)


def first_order_semigroup(
    U: Callable,
    nu: Float[ArrayLike, ""],
    tau: Float[ArrayLike, ""],
    x: Float[ArrayLike, "*k"] | Float[ArrayLike, "*k n"],
    *,
    metric: Callable | None = None,
    half: bool = True,
) -> Float[Array, "*k"]:
    r"""The paper's first-order baseline ``u ≈ −ν log(φ + c ντ Δφ)``, ``φ = e^{−U/ν}``.

    Sec. 3.1 of the paper replaces the semigroup by its first-order Taylor
    polynomial. With ``half=True`` (default) ``c = ½``, matching
    ``P_{ντ} = exp((ντ/2)Δ)`` used everywhere in geomshock; ``half=False``
    gives ``c = 1``, i.e. ``exp(ντ Δ)`` exactly as printed in Sec. 3.1.
    Using ``Δφ = φ (|∇U|²/ν² − ΔU/ν)`` it is evaluated without forming ``φ``:

        u = U − ν log(1 + c τ (|∇U|²/ν − ΔU)),

    with ``∇``, ``Δ`` by autodiff (flat, or of ``metric`` through
    :func:`geomshock.geometry.laplace_beltrami`). Where the first-order ``w``
    is not positive the scheme has broken down and ``u = +inf`` (reported,
    never a NaN). Compare with :func:`local_entropy` for its error.

    Args:
        U: ``scalar -> scalar`` (``x`` of shape ``()``/``(k,)``) or
            ``(n,) -> scalar`` (``x`` of shape ``(n,)``/``(k, n)``, requires
            ``metric`` or uses the identity metric).
        nu, tau: ``ν > 0``, ``τ ≥ 0``.
        metric: optional ``q -> g(q)`` for ``n``-D points.

    Supports ``jit``, ``vmap`` over ``nu``, ``tau``, ``x`` and ``grad``.
    """
    nu = check_positive(nu, "nu", allow_zero=False)
    tau = check_positive(tau, "tau", allow_zero=True)
    x = jnp.asarray(x, dtype=jnp.zeros(()).dtype)
    scale = 0.5 if half else 1.0
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
