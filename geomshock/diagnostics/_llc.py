r"""The local learning coefficient (LLC) by SGLD, as devinterp estimates it.

Lau et al., "Quantifying degeneracy in singular models via the learning
coefficient" (devinterp's ``estimate_learning_coeff``): at a point ``w*``,
sample the tempered posterior localised at ``w*``,

    p(w) ∝ exp(−nβ L_n(w) − (γ/2)‖w − w*‖²),

by stochastic-gradient Langevin dynamics and report
``λ̂ = nβ (E_p[L_n(w)] − L_n(w*))``, with ``β = 1/log n`` by default (the
inverse temperature β* of Watanabe's WBIC). For a regular minimum with
Hessian ``A`` it tends to ``d/2`` as ``γ → 0`` and ``n → ∞``; degenerate
(singular) minima give less.

The chains are the Euler–Maruyama discretisation of the Langevin SDE
``dw = −½(nβ∇L_n(w) + γ(w − w*)) dt + dB`` with ``dt = ε`` (the step size),
integrated by diffrax. Time is counted in steps (``s = t/ε``, so the SDE
reads ``dw = −(ε/2)(…) ds + sqrt(ε) dB_s`` with ``ds = 1``): the time grid is
then exact in floating point and one Euler step is devinterp's update
``Δw = (ε/2)(−nβ∇L_n(w) − γ(w − w*)) + N(0, ε I)``.
"""

import math
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jax.flatten_util import ravel_pytree
from jaxtyping import PRNGKeyArray, PyTree

from .._checks import finite_tree, positive_int, positive_scalar, raise_if
from ._curvature import _check_loss

_OWNER = "local_learning_coefficient"


def _count(value, name: str, minimum: int, fix: str) -> int:
    """A static Python integer ``≥ minimum``; the message says how to fix it."""
    try:
        return positive_int(value, name, minimum=minimum)
    except ValueError as error:
        raise ValueError(f"{_OWNER}: {error}; {fix}") from None


def _burnin(num_burnin, num_steps: int) -> int:
    if num_burnin is None:
        return num_steps // 4
    num_burnin = _count(
        num_burnin, "num_burnin", 0, "pass None for num_steps // 4, or 0 for none"
    )
    if num_burnin >= num_steps:
        raise ValueError(
            f"{_OWNER}: num_burnin must be < num_steps so that some draws are "
            f"kept; got num_burnin={num_burnin}, num_steps={num_steps}; lower "
            "num_burnin or raise num_steps"
        )
    return num_burnin


class _Langevin(eqx.Module):
    # A Module (not closures) so that repeated calls with the same loss hit
    # the compilation cache of ``_chain_losses``.
    loss: Callable
    unravel: Callable

    def potential(self, x):
        return self.loss(self.unravel(x))

    def drift(self, s, x, args):
        center, step_size, n_beta, localization = args
        force = n_beta * jax.grad(self.potential)(x) + localization * (x - center)
        return -0.5 * step_size * force

    def diffusion(self, s, x, args):
        step_size = args[1]
        return lx.DiagonalLinearOperator(
            jnp.broadcast_to(jnp.sqrt(step_size), x.shape).astype(x.dtype)
        )

    def record(self, s, x, args):
        return self.potential(x)


@eqx.filter_jit
def _chain_losses(langevin, center, keys, step_size, n_beta, localization, num_steps):
    """``L_n(w_k)`` after each step ``k = 1..num_steps``: shape (chains, steps)."""
    shape = jax.ShapeDtypeStruct(center.shape, center.dtype)
    args = (center, step_size, n_beta, localization)
    t1 = jnp.asarray(num_steps, center.dtype)

    def chain(key):
        terms = diffrax.MultiTerm(
            diffrax.ODETerm(langevin.drift),
            diffrax.ControlTerm(
                langevin.diffusion, diffrax.UnsafeBrownianPath(shape, key)
            ),
        )
        solution = diffrax.diffeqsolve(
            terms,
            diffrax.Euler(),
            jnp.zeros((), center.dtype),
            t1,
            jnp.ones((), center.dtype),
            center,
            args=args,
            saveat=diffrax.SaveAt(steps=True, fn=langevin.record),
            max_steps=num_steps,
            adjoint=diffrax.ForwardMode(),
        )
        return solution.ys

    return jax.vmap(chain)(keys)


def local_learning_coefficient(
    loss: Callable[[PyTree], jax.Array],
    params: PyTree,
    key: PRNGKeyArray,
    *,
    n: int,
    num_chains: int = 4,
    num_steps: int = 200,
    num_burnin: int | None = None,
    step_size=1e-4,
    localization=100.0,
    beta=None,
) -> dict:
    r"""Estimate the local learning coefficient of ``loss`` at ``params`` by SGLD.

    ``λ̂ = nβ (mean over chains and kept draws of L_n(w_k) − L_n(w*))``, the
    draws ``w_k`` from ``num_chains`` SGLD chains started at ``w* = params``
    targeting ``p(w) ∝ exp(−nβ L_n(w) − (γ/2)‖w − w*‖²)``, ``γ =
    localization``. Each chain takes ``num_steps`` Euler–Maruyama steps

        w ← w + (ε/2)(−nβ ∇L_n(w) − γ(w − w*)) + sqrt(ε) ξ,   ξ ~ N(0, I),

    on the flattened parameters (``jax.flatten_util.ravel_pytree``), with the
    full gradient of ``loss`` (put whatever batch you want inside ``loss``;
    a fixed batch makes this Langevin dynamics rather than stochastic-gradient
    Langevin dynamics). The loss after each of the first ``num_burnin`` steps
    is discarded. Unlike devinterp (whose default burn-in is 0), the default
    burn-in is a quarter of the chain, ``num_steps // 4``.

    Args:
        loss: ``params -> scalar``, the empirical loss ``L_n`` (a mean over
            ``n`` samples) at any point.
        params: the point ``w*``, a pytree of float arrays.
        key: PRNG key; chain ``i`` uses ``jax.random.split(key, num_chains)[i]``.
        n: the nominal number of samples behind ``L_n`` (a Python int ≥ 2).
        num_chains, num_steps, num_burnin: static Python ints.
        step_size: ``ε > 0``; Euler–Maruyama is stable only for ``ε c < 4``,
            ``c`` the largest curvature of ``nβ L_n + (γ/2)‖·‖²`` met along
            the chains, and biased by ``O(ε c)`` (for a quadratic the draws have
            variance ``1/(c (1 − ε c/4))`` instead of ``1/c``).
        localization: ``γ ≥ 0``.
        beta: the inverse temperature ``β > 0``; default ``1/log n``.

    Returns:
        A dict of arrays: ``"llc"`` (scalar), ``"llc_std"`` (the standard
        error: the standard deviation of the per-chain estimates, ``ddof=1``,
        over ``sqrt(num_chains)``; NaN for one chain), ``"llc_chains"`` (the
        per-chain estimates, shape ``(num_chains,)``) and ``"mean_loss"`` (the
        mean of ``L_n`` over the kept draws).

    Cost: ``num_chains × num_steps`` gradient evaluations of ``loss`` (and as
    many evaluations of ``loss`` itself, for the recorded losses); memory
    ``O(num_chains × (dim + num_steps))``.

    Works under ``jax.jit`` (with ``n`` and the counts static) and
    ``jax.vmap`` over ``params``, ``key`` and the scalar settings. Counts out
    of range and a non-scalar ``loss`` raise ``ValueError``; ``step_size``,
    ``localization``, ``beta`` out of range and non-finite ``params`` raise
    ``ValueError`` when known and fail at run time (``eqx.error_if``) when
    traced; so does a chain whose loss turns non-finite (lower ``step_size``
    or raise ``localization``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> loss = lambda w: 0.5 * jnp.sum(w**2)  # regular, d = 2: λ = d/2 = 1
        >>> out = local_learning_coefficient(
        ...     loss, jnp.zeros(2), jax.random.key(0), n=10_000, num_chains=16,
        ...     num_steps=1000, step_size=1e-4, localization=1.0,
        ... )
        >>> bool(abs(out["llc"] - 1.0) < 4 * out["llc_std"]), out["llc_chains"].shape
        (True, (16,))
    """
    loss = _check_loss(loss, params, _OWNER)
    n = _count(n, "n", 2, "it is the number of samples behind loss (β* = 1/log n)")
    num_chains = _count(num_chains, "num_chains", 1, "run at least one chain")
    num_steps = _count(num_steps, "num_steps", 1, "take at least one step")
    num_burnin = _burnin(num_burnin, num_steps)

    params = finite_tree(params, f"the params given to {_OWNER}")
    center, unravel = ravel_pytree(params)
    center = jnp.asarray(center, dtype=jnp.result_type(center.dtype, float))
    dtype = center.dtype
    step_size = positive_scalar(step_size, f"{_OWNER}: step_size", dtype=dtype)
    localization = positive_scalar(
        localization, f"{_OWNER}: localization", allow_zero=True, dtype=dtype
    )
    beta = 1.0 / math.log(n) if beta is None else beta
    beta = positive_scalar(beta, f"{_OWNER}: beta", dtype=dtype)
    n_beta = n * beta

    langevin = _Langevin(loss, unravel)
    init_loss = langevin.potential(center)
    init_loss = raise_if(
        init_loss,
        ~jnp.isfinite(init_loss),
        f"{_OWNER}: loss(params) is not finite; the LLC needs a finite loss at w*",
    )
    keys = jax.random.split(key, num_chains)
    losses = _chain_losses(
        langevin, center, keys, step_size, n_beta, localization, num_steps
    )
    losses = raise_if(
        losses,
        ~jnp.all(jnp.isfinite(losses)),
        f"{_OWNER}: an SGLD chain diverged (its loss became non-finite); lower "
        "step_size or raise localization",
    )
    kept = losses[:, num_burnin:]
    llc_chains = n_beta * jnp.mean(kept - init_loss, axis=1)
    if num_chains > 1:
        llc_std = jnp.std(llc_chains, ddof=1) / math.sqrt(num_chains)
    else:
        llc_std = jnp.full((), jnp.nan, dtype)
    return {
        "llc": jnp.mean(llc_chains),
        "llc_std": llc_std,
        "llc_chains": llc_chains,
        "mean_loss": jnp.mean(kept),
    }
