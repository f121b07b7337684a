r"""Gradient descent on the quotient local entropy ``u^ν``, by Feynman–Kac.

For the user's loss ``L`` and a chart ``(Φ, σ)``, the effective potential is
``U(q) = L(σ(q))`` and its local entropy (the paper's Thm. 3.1, heat semigroup
``P_{ντ} = exp((ντ/2)Δ_g)``, paper ν = 2ν_c)

    u^ν(τ, q) = −ν log E[e^{−U(X_{ντ})/ν}],  X Brownian motion on (M, g) from q,

solves ``∂_τ u + ½|grad u|²_g = (ν/2)Δ_g u`` with ``u(0) = U``: ν smooths
(large ν) or sharpens (small ν) the landscape the optimizer sees, and
``ν → 0`` (at fixed τ) gives ``u → U``, plain (quotient) gradient descent. One
step, at ``q = Φ(θ)``:

    ∇u = Σ_i p_i (∂X_i/∂q)ᵀ ∇U(X_i),  p = softmax(−U(X)/ν)   (pathwise, num_paths paths)
    d = ∇u  or (natural = True)  d = g(q)⁻¹ ∇u  (lineax CG, chart.metric_operator)
    q' = q + sgd_update(d),  θ' = σ(q')   (regauged, see :mod:`._coordinates`)

``∇u`` comes from :func:`geomshock.sde.feynman_kac_value_and_grad` (paths by a
diffrax SDE solve). **Cost per step:** ``num_paths`` gradient evaluations of
the loss (through the lift), plus one reverse pass through each path's
``num_steps`` SDE steps: nothing more for ``metric=None`` (flat Brownian
motion in the chart coordinates; exact in law in one step, which is used), the
metric's JVPs per step for ``metric="dense"``, and per step one vjp of the lift
and conjugate-gradient solves with the metric operator for ``metric="chart"``
(matrix-free, for charts with ~1e4 parameters); ``natural=True`` adds one CG
solve with the metric operator.
"""

import jax
import lineax as lx
import optax

from .._checks import callable_arg, positive_int
from ._coordinates import ParamsMap, coordinates

_METRICS = ("chart", "dense", None)


def _geometry(coords, metric):
    chart = coords.free_chart
    if metric is None:
        return None, {"num_steps": 1}  # flat: X = q + sqrt(ντ) Z exactly
    if chart is None:
        raise ValueError(
            "raw coordinates (chart=None) have the flat metric only: pass metric=None"
        )
    if metric == "chart":
        return chart, {}
    if metric == "dense":
        return chart.metric, {}
    raise ValueError(f"metric must be one of {_METRICS}; got {metric!r}")


def _static_paths(num_paths) -> int:
    if isinstance(num_paths, jax.core.Tracer):
        raise ValueError(
            "num_paths is an array size and cannot be traced or scheduled: with "
            "optax.inject_hyperparams pass static_args=('num_paths',)"
        )
    return positive_int(int(num_paths), "num_paths", minimum=2)


def quotient_local_entropy(
    chart,
    learning_rate,
    nu,
    tau,
    num_paths: int = 16,
    metric: str | None = "chart",
    natural: bool = False,
    momentum=None,
    nesterov: bool = False,
    params_map: ParamsMap | None = None,
    solver_options: dict | None = None,
    natural_solver: lx.AbstractLinearSolver | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Descend the quotient local entropy ``u^ν(τ, ·)`` of the loss in chart
    coordinates (formula, cost and gauge rule in the module docstring).

    ``update(updates, state, params, *, value_fn, key)``: ``value_fn(params) ->
    scalar`` is the loss on the user's parameter format (close over a minibatch
    for stochastic losses), ``key`` a PRNG key for the paths (same key, same
    paths: common random numbers across steps of different runs). The incoming
    ``updates`` are not used. Applying the returned updates moves the params
    to ``σ(q')``, the chart's representative.

    Args:
        chart: a geomshock chart (``None``: raw flattened parameters, flat
            metric only; not gauge invariant).
        learning_rate: step ``η > 0`` of the ``optax.sgd`` on ``q``.
        nu: viscosity ``ν > 0``. tau: coarse-graining time ``τ > 0``.
        num_paths: Monte-Carlo paths per step (static, ``≥ 2``; with
            ``optax.inject_hyperparams`` pass ``static_args=("num_paths",)``).
        metric: the Brownian motion's metric: ``"chart"`` (the quotient metric,
            matrix-free), ``"dense"`` (``chart.metric``, exact drift, small
            charts), ``None`` (flat in the chart's coordinates).
        natural: precondition by ``g(q)⁻¹`` (Riemannian gradient).
        momentum, nesterov: of the outer ``optax.sgd``.
        params_map: a :class:`ParamsMap` from the user's format to the chart's.
        solver_options: passed to
            :func:`~geomshock.sde.feynman_kac_value_and_grad` (``num_steps``,
            ``solver``, ``num_probes``, ``cg_solver``).
        natural_solver: lineax solver for ``g d = ∇u`` (default CG, rtol 1e-10).

    ``learning_rate``, ``nu`` and ``tau`` may be scheduled by
    ``optax.inject_hyperparams`` and be traced (``vmap`` over ν). Works under
    ``jit``; ν ≤ 0, τ < 0 and ``num_paths < 2`` raise.

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> from geomshock.charts import TwoLayerReLUChart
        >>> from geomshock.optim import quotient_local_entropy
        >>> chart = TwoLayerReLUChart(2, 1)
        >>> params = chart.lift(jnp.array([1.0, -0.5, 0.3, 2.0, 0.0]))
        >>> x = jnp.linspace(-2, 2, 16)[:, None]
        >>> loss = lambda p: jnp.mean((chart.apply(p, x) - jnp.abs(x[:, 0])) ** 2)
        >>> inject = optax.inject_hyperparams
        >>> opt = inject(quotient_local_entropy, static_args=("num_paths",))(
        ...     chart=chart, learning_rate=0.05, nu=1e-2, tau=0.1, num_paths=8,
        ...     metric=None)
        >>> state = opt.init(params)
        >>> updates, state = opt.update(params, state, params, value_fn=loss,
        ...                             key=jax.random.key(0))
        >>> bool(loss(optax.apply_updates(params, updates)) < loss(params))
        True
    """
    coords = coordinates(chart, params_map)
    geometry, defaults = _geometry(coords, metric)
    options = {**defaults, **(solver_options or {})}
    if natural and coords.free_chart is None:
        raise ValueError("natural=True needs a chart (its metric)")

    def outer():
        return optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)

    def init_fn(params):
        _static_paths(num_paths)
        return outer().init(coords.project(params))

    def update_fn(updates, state, params=None, *, value_fn=None, key=None, **extra):
        from ..sde._feynman_kac import feynman_kac_value_and_grad

        del updates, extra
        if params is None:
            raise ValueError("quotient_local_entropy needs params in update()")
        callable_arg(value_fn, "value_fn (update(..., value_fn=loss))")
        if key is None:
            raise ValueError("quotient_local_entropy needs key= in update()")
        paths = _static_paths(num_paths)
        q = coords.project(params)

        def potential(y):
            return value_fn(coords.lift(y, params))

        _, _, grad_u, _ = feynman_kac_value_and_grad(
            potential, geometry, nu, tau, q, key, num_paths=paths, **options
        )
        if natural:
            solver = natural_solver or lx.CG(rtol=1e-10, atol=1e-14, max_steps=10_000)
            operator = coords.free_chart.metric_operator(q)
            grad_u = lx.linear_solve(operator, grad_u, solver).value
        step_q, state = outer().update(grad_u, state, q)
        return coords.updates(q + step_q, params), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
