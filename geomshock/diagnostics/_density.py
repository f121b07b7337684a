r"""Spectral densities of quotient and raw curvature (stochastic Lanczos quadrature).

The density of an operator ``B`` with eigenvalues ``λ_1..λ_n`` is
``ρ(t) = (1/n) Σ_i δ(t − λ_i)``, here broadened by a Gaussian of width ``σ``:
``ρ_σ(t) = (1/n) Σ_i φ_σ(t − λ_i)``. Stochastic Lanczos quadrature (SLQ)
estimates it from ``P`` probes: each probe's Krylov space of depth ``k`` gives
Gauss-quadrature nodes ``θ_j`` and weights ``τ_j`` with ``Σ_j τ_j p(θ_j) =
zᵀ p(B) z`` exactly for polynomials of degree ``< 2k``, and ``E zzᵀ = I``
makes ``(1/(P n)) Σ τ_j φ_σ(t − θ_j)`` an unbiased estimate of ``ρ_σ``.

Raw: ``B`` is the Hessian of the flattened parameters, the probes Rademacher
vectors ``ε`` (``matfree.stochtrace.sampler_signs``), the Krylov space
matfree's Lanczos (``matfree.decomp.tridiag_sym``).

Quotient: ``B = g^{-1} H_cov`` on the chart, self-adjoint in the ``g`` inner
product. Its quadrature needs starts ``x`` with ``E xxᵀ = g^{-1}`` (then
``E xᵀ g f(B) x = tr f(B)``): with ``J = P_H Dσ`` the horizontal Jacobian of
the lift (``g = JᵀJ``) and a Rademacher ``ε`` in parameter space,
``z = Jᵀε`` has ``E zzᵀ = g`` and ``x = g^{-1} z`` does. The Krylov space of
``B`` from ``x`` is built by matfree's Arnoldi iteration and the pencil
``(H_cov, g)`` projected onto it (as in :func:`quotient_curvature`); the
weights are ``τ_j = (v_jᵀ z)²`` for the g-normalised Ritz vectors ``v_j``.
For a chart with a horizontal gauge (``chart.horizontal_gauge``) ``B`` is the
symmetric covariant Hessian on the horizontal space ``H`` (``g = I`` there, see
:func:`~geomshock.diagnostics.quotient_curvature`): the starts are
``z = P_H ε`` (``E zzᵀ = P_H``, the identity on ``H``) and the Krylov space is
matfree's Lanczos, as for the raw Hessian, with no metric solve.
"""

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import lineax as lx
import matfree.stochtrace
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._checks import finite_array, finite_tree, positive_int, positive_scalar, tie
from ..charts._action import _horizontal_projector
from ._curvature import (
    _check_loss,
    _covariant_operators,
    _dense_pencil,
    _generalized_eigh,
    _horizontal_operators,
    _hvp,
    _krylov_depth,
    _lanczos_ritz,
    _pencil_ritz,
    _pick_method,
)

_METHODS = ("dense", "slq")


def _pick(method, dim: int) -> str:
    return _pick_method(method, dim, _METHODS)


def _check_grid(grid, sigma):
    grid = finite_array(grid, "spectral_density: grid")
    if grid.ndim != 1 or grid.shape[0] < 2:
        raise ValueError(
            f"spectral_density: grid must be a 1-D array of ≥ 2 points; got shape "
            f"{grid.shape}"
        )
    if sigma is None:
        sigma = 2 * (grid[-1] - grid[0]) / (grid.shape[0] - 1)
    sigma = positive_scalar(sigma, "spectral_density: sigma")
    return grid, sigma


def _broaden(grid, sigma, nodes, weights):
    z = (grid[:, None] - nodes.reshape(-1)[None, :]) / sigma
    kernel = jnp.exp(-0.5 * z**2) / (sigma * jnp.sqrt(2 * jnp.pi))
    return kernel @ weights.reshape(-1)


def _metric_probes(chart, q):
    """``ε -> Jᵀ ε`` (``J = P_H Dσ`` at ``q``, so ``E (Jᵀε)(Jᵀε)ᵀ = g``) and a
    flat parameter vector to shape the probes."""

    def flat_lift(p):
        lifted = chart.lift(p)
        return ravel_pytree(lifted)[0], lifted

    flat, vjp_fn, lifted = jax.vjp(flat_lift, q, has_aux=True)
    if chart.action.algebra_dim == 0:
        return flat, lambda eps: vjp_fn(eps)[0]
    project = _horizontal_projector(chart.action, lifted, None)
    return flat, lambda eps: vjp_fn(project(eps))[0]


def spectral_density(
    loss: Callable,
    params,
    *,
    grid: Float[Array, " G"],
    chart=None,
    sigma=None,
    method: Literal["dense", "slq"] | None = None,
    num_probes: int = 10,
    num_lanczos: int | None = None,
    key=None,
    solver: lx.AbstractLinearSolver | None = None,
) -> dict:
    r"""Gaussian-broadened spectral density of the curvature of ``loss``.

    With ``chart``: the spectrum of the quotient operator ``g^{-1} H_cov`` of
    ``U = loss∘chart.lift`` at ``q = chart.project(params)`` (the pencil of
    :func:`quotient_curvature`), invariant under ``chart.gauge``; without:
    the raw Hessian of the flattened parameters. ``n`` is ``chart.dim`` or the
    number of parameters.

    Returns a dict:

    - ``"grid"``: the grid ``t`` (as given);
    - ``"density"``: ``ρ_σ(t) = Σ_j w_j φ_σ(t − θ_j)``, ``φ_σ`` the normal
      density of width ``sigma`` (default: twice the grid spacing);
    - ``"nodes"``, ``"weights"``: the quadrature ``θ``, ``w``, shape ``(P, k)``;
      ``Σ w = 1`` in expectation. ``"dense"``: ``P = 1``, the exact
      eigenvalues with ``w = 1/n``. ``"slq"``: probe ``p`` (the ``p``-th of
      ``matfree.stochtrace.sampler_signs(theta, num=num_probes)(key)``,
      ``theta`` the flattened parameters or lifted representative) gives its
      Ritz values and ``w = τ/(P n)`` (module docstring).

    Args:
        loss: ``params -> scalar``.
        params: a point (on the chart's regular stratum if ``chart``).
        grid: 1-D array of evaluation points ``t``.
        chart: an :class:`~geomshock.charts.AbstractQuotientChart`, or None for
            the raw Hessian.
        sigma: broadening width (> 0).
        method: ``"dense"`` (eigendecomposition), ``"slq"`` (matrix-free) or
            None: dense for ``n ≤ 200``.
        num_probes: SLQ probes ``P``; cost ``P (k + k)`` (covariant)
            Hessian-vector products, and with a chart whose gauge is not
            horizontal ``P (k + 1)`` metric CG solves and ``P`` horizontal
            projections (a horizontal gauge needs no solve).
        num_lanczos: Krylov depth ``k`` (default ``min(n, 40)``).
        key: PRNG key for the probes (default ``PRNGKey(0)``).
        solver: lineax solver for ``g^{-1}`` (as in :func:`quotient_curvature`).

    Works under ``jit`` and ``vmap`` over ``params``. Wrong params structure:
    ``ValueError``; non-finite params or grid: non-finite input error (eagerly a
    ``ValueError``, under jit an equinox runtime error); points off the
    stratum: the chart's error.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> loss = lambda p: 0.5 * (p[0] ** 2 + 3 * p[1] ** 2)  # eigenvalues 1, 3
        >>> grid = jnp.linspace(-2.0, 6.0, 401)
        >>> out = spectral_density(loss, jnp.zeros(2), grid=grid, sigma=0.1)
        >>> out["nodes"].tolist(), out["weights"].tolist()
        ([[1.0, 3.0]], [[0.5, 0.5]])
        >>> round(float(jnp.trapezoid(out["density"] * grid, grid)), 6)  # tr/n
        2.0
    """
    owner = "spectral_density"
    if chart is not None:
        params = chart.check_params(params)  # structure first: the loss needs it
    loss = _check_loss(loss, params, owner)
    grid, sigma = _check_grid(grid, sigma)
    num_probes = positive_int(num_probes, f"{owner}: num_probes")
    key = jax.random.PRNGKey(0) if key is None else key
    if chart is None:
        nodes, weights = _raw(loss, params, method, num_probes, num_lanczos, key)
    else:
        nodes, weights = _quotient(
            loss, chart, params, method, num_probes, num_lanczos, key, solver
        )
    return {
        "grid": grid,
        "density": _broaden(grid, sigma, nodes, weights),
        "nodes": nodes,
        "weights": weights,
    }


def _dense_result(vals):
    n = vals.shape[0]
    return vals[None], jnp.full((1, n), 1.0 / n, vals.dtype)


def _raw(loss, params, method, num_probes, num_lanczos, key):
    params = finite_tree(params, "the params given to spectral_density")
    flat, unravel = ravel_pytree(params)
    flat = jnp.asarray(flat, dtype=jnp.result_type(flat.dtype, float))
    n = flat.shape[0]

    def f(x):
        return loss(unravel(x))

    if _pick(method, n) == "dense":
        hess = jax.hessian(f)(flat)
        # tie: the params' finiteness check must survive a loss whose Hessian
        # does not depend on them (jit would drop it as dead code)
        return _dense_result(tie(jnp.linalg.eigvalsh(0.5 * (hess + hess.T)), flat))
    k = _krylov_depth(num_lanczos, n)
    nodes, tau = _slq(_hvp(f, flat), None, flat, num_probes, k, key)
    return tie(nodes, flat), tau / (num_probes * n)


def _slq(matvec, subspace, flat, num_probes, k, key):
    """Lanczos nodes and unnormalised weights ``τ = (vᵀz)²`` from the starts
    ``z = subspace(ε)`` (a projector, or None for all of ``R^n``), ``ε``
    matfree's Rademacher probes shaped like ``flat``."""
    probes = matfree.stochtrace.sampler_signs(flat, num=num_probes)(key)

    def one(eps):
        z = eps if subspace is None else subspace(eps)
        vals, vecs = _lanczos_ritz(matvec, z, k, subspace)
        return vals, (vecs @ z) ** 2

    return jax.vmap(one)(probes)


def _quotient(loss, chart, params, method, num_probes, num_lanczos, key, solver):
    q = chart.project(params)
    n = chart.dim

    def potential(p):
        return loss(chart.lift(p))

    if _pick(method, n) == "dense":
        vals = _generalized_eigh(*_dense_pencil(potential, chart, q))[0]
        return _dense_result(tie(vals, q))
    k = _krylov_depth(num_lanczos, n)
    if chart.horizontal_gauge:  # g = I on H: plain Lanczos from P_H ε
        hessian, project, flat, _ = _horizontal_operators(loss, chart, q)
        nodes, tau = _slq(hessian, project, flat, num_probes, k, key)
        return tie(nodes, q), tau / (num_probes * n)
    h_cov, operator, solve = _covariant_operators(potential, chart, q, solver)
    flat, to_metric = _metric_probes(chart, q)
    probes = matfree.stochtrace.sampler_signs(flat, num=num_probes)(key)

    def one(eps):
        z = to_metric(eps)
        vals, vecs = _pencil_ritz(h_cov, operator, solve, solve(z), k)
        return vals, (vecs @ z) ** 2

    nodes, tau = jax.vmap(one)(probes)
    return tie(nodes, q), tau / (num_probes * n)
