r"""Entropy-SGD (inner Langevin chain) in the quotient coordinates of a chart.

Chaudhari et al. (2017) minimise the local entropy by an inner SGLD chain; here
the chain runs in the chart coordinates ``q = Φ(θ)`` on the effective potential
``U_b(y) = value_fn(σ(y), b)`` of a minibatch ``b``. The chain samples the
local Gibbs measure of the quotient local entropy

    ρ_q(y) ∝ exp(−(U(y) + |y − q|²/(2τ)) / ν),
    u^ν(τ, q) = −ν log ∫ k_{ντ}(q − y) e^{−U(y)/ν} dy,   ∇u^ν(q) = (q − E_ρ[y]) / τ,

(the Gaussian kernel of variance ``ντ`` in the chart coordinates: the paper's
``P_{ντ} = exp((ντ/2)Δ)`` for the flat metric of the chart; ν is the paper's
viscosity, ``ν = 2ν_c``, and the Gibbs temperature; 1/τ is Entropy-SGD's
coupling γ). One step, given ``L`` minibatches ``b_1..b_L``:

    y_0 = q,
    y_l = y_{l−1} − η' (∇U_{b_l}(y_{l−1}) + (y_{l−1} − q)/τ) + sqrt(2νη') ξ_l,
    μ = (1/L) Σ_l y_l,  q' = q + sgd_update((q − μ)/τ),

the inner steps by ``optax.chain(optax.add_noise(2ν/η', 0, key), optax.sgd(η'))``
(SGLD), the outer one by ``optax.sgd(learning_rate, momentum)`` on ``q``; the
parameters move to ``σ(q')`` (see :mod:`geomshock.optim._coordinates` for why
the update regauges). **Cost per step: L minibatch gradients of the loss**
(through the lift), one ``project`` and ``L + 1`` lifts. ``chart=None`` runs the
same chain in the flattened raw parameters: Chaudhari et al.'s Entropy-SGD,
which is not gauge invariant.
"""

import jax
import jax.numpy as jnp
import optax
from jaxtyping import PRNGKeyArray

from .._checks import callable_arg, positive_scalar
from ._coordinates import ParamsMap, coordinates


def _batch_count(batches) -> int:
    leaves = jax.tree_util.tree_leaves(batches)
    if not leaves:
        raise ValueError(
            "batches must be a pytree of arrays with a leading axis of L "
            "minibatches (one per inner Langevin step); got no arrays"
        )
    sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in leaves}
    if None in sizes or len(sizes) != 1 or 0 in sizes:
        raise ValueError(
            "every leaf of batches needs the same leading axis L ≥ 1 (one "
            "minibatch per inner Langevin step); got leading sizes "
            f"{sorted(map(str, sizes))}"
        )
    return sizes.pop()


def quotient_entropy_sgd(
    chart,
    learning_rate,
    nu,
    tau,
    inner_learning_rate,
    momentum=None,
    nesterov: bool = False,
    params_map: ParamsMap | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Entropy-SGD on the quotient: an inner SGLD chain of ``L`` minibatch steps
    in chart coordinates, then a step along ``−∇u^ν ≈ −(q − μ)/τ``.

    Formula, cost and gauge rule in the module docstring. ``update`` takes the
    extra keyword arguments ``value_fn(params, batch) -> scalar`` (the user's
    minibatch loss, on the user's parameter format), ``batches`` (a pytree with
    a leading axis ``L``: one minibatch per inner step, ``L`` static) and
    ``key`` (a PRNG key, the chain's noise). The incoming ``updates`` (e.g.
    gradients) are not used.

    Args:
        chart: a geomshock chart (``None``: raw coordinates, the original
            Entropy-SGD).
        learning_rate: outer step ``η > 0`` on ``q`` (``η/τ = 1`` jumps to the
            chain's mean, Chaudhari et al.'s usual choice).
        nu: viscosity ``ν > 0`` (Gibbs temperature of the chain).
        tau: coarse-graining time ``τ > 0`` (coupling ``1/τ``).
        inner_learning_rate: SGLD step ``η' > 0``.
        momentum, nesterov: of the outer ``optax.sgd``.
        params_map: a :class:`ParamsMap` from the user's format to the chart's.

    Every numeric argument may be scheduled with ``optax.inject_hyperparams``
    (and be a traced array, e.g. under ``vmap`` over ν). Works under ``jit``;
    bad hyperparameters raise (``ValueError`` when known, an equinox error under
    ``jit``).

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> from geomshock.charts import TwoLayerReLUChart
        >>> from geomshock.optim import quotient_entropy_sgd
        >>> chart = TwoLayerReLUChart(2, 1)
        >>> params = chart.lift(jnp.array([1.0, -0.5, 0.3, 2.0, 0.0]))
        >>> x = jnp.linspace(-2, 2, 16)[:, None]
        >>> loss = lambda p, b: jnp.mean((chart.apply(p, b) - jnp.abs(b[:, 0])) ** 2)
        >>> opt = optax.inject_hyperparams(quotient_entropy_sgd)(
        ...     chart=chart, learning_rate=0.1, nu=1e-3, tau=0.1,
        ...     inner_learning_rate=0.02)
        >>> state = opt.init(params)
        >>> batches = x.reshape(4, 4, 1)  # L = 4 inner steps, 4 points each
        >>> updates, state = opt.update(params, state, params, value_fn=loss,
        ...                             batches=batches, key=jax.random.key(0))
        >>> new = optax.apply_updates(params, updates)
        >>> bool(loss(new, x) < loss(params, x))
        True
    """
    coords = coordinates(chart, params_map)

    def outer():
        return optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)

    def init_fn(params):
        return outer().init(coords.project(params))

    def update_fn(
        updates,
        state,
        params=None,
        *,
        value_fn=None,
        batches=None,
        key: PRNGKeyArray | None = None,
        **extra_args,
    ):
        del updates, extra_args
        if params is None:
            raise ValueError("quotient_entropy_sgd needs params in update()")
        callable_arg(value_fn, "value_fn (update(..., value_fn=loss))")
        if key is None:
            raise ValueError("quotient_entropy_sgd needs key= in update()")
        _batch_count(batches)
        q = coords.project(params)
        n = positive_scalar(nu, "nu", dtype=q.dtype)
        t = positive_scalar(tau, "tau", dtype=q.dtype)
        eta = positive_scalar(inner_learning_rate, "inner_learning_rate", dtype=q.dtype)

        def potential(y, batch):
            return value_fn(coords.lift(y, params), batch) + jnp.sum((y - q) ** 2) / (
                2 * t
            )

        inner = optax.chain(optax.add_noise(2 * n / eta, 0.0, key), optax.sgd(eta))

        def step(carry, batch):
            y, inner_state = carry
            g = jax.grad(potential)(y, batch)
            delta, inner_state = inner.update(g, inner_state, y)
            y = y + delta
            return (y, inner_state), y

        _, ys = jax.lax.scan(step, (q, inner.init(q)), batches)
        grad_u = (q - jnp.mean(ys, axis=0)) / t
        step_q, state = outer().update(grad_u, state, q)
        return coords.updates(q + step_q, params), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
