"""A one-dimensional slice of the two-layer ReLU quotient (Sec. 3.1 of the paper)."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .. import _checks
from ._action import Params
from ._two_layer import TwoLayerReLUChart


def quotient_slice(
    chart: TwoLayerReLUChart, params: Params, loss: Callable, *, unit: int = 0
) -> tuple[Callable, Float[Array, ""], Float[Array, ""]]:
    """The loss along ``s_j(θ) = cos θ s_j* + sin θ J s_j*`` and its slice metric.

    In the chart coordinates ``q = (γ_1..γ_m, φ_1..φ_m, c)`` rotating the
    direction ``s_j`` of hidden unit ``j = unit`` by θ is ``q(θ) = q* + θ
    e_{φ_j}``, ``q* = chart.project(params)``; all other quotient coordinates
    stay fixed. ``J`` is the quarter turn of the plane.

    Args:
        chart: a ``TwoLayerReLUChart(width, 1)`` (scalar inputs, so each
            direction is an angle).
        params: parameters ``{"a", "u", "c"}`` (e.g. trained ones).
        loss: ``params -> scalar``, the training loss.
        unit: which hidden unit to rotate (default 0: the paper's ``s_1``).

    Returns:
        ``(U, g, variation)``: ``U: θ -> loss(chart.lift(q(θ)))`` (2π-periodic),
        ``g = g_θθ(q*) = e_{φ_j}ᵀ chart.metric(q*) e_{φ_j}`` (from the chart's
        autodiff quotient metric, never typed in; it equals ``|γ_j|``), and
        ``variation``, the largest relative change of ``g_θθ`` at θ ∈ {±π/2, π}
        (0 when ``Δ_Q = g^{-1}∂²_θ`` is exact on the slice). Works under
        ``jit`` and ``vmap`` over ``params``.

    >>> import jax, jax.numpy as jnp
    >>> from geomshock.charts import TwoLayerReLUChart
    >>> chart = TwoLayerReLUChart(2, 1)
    >>> params = {"a": jnp.array([2.0, -1.0]),
    ...           "u": jnp.array([[0.0, 2.0], [1.0, 0.0]]), "c": jnp.array(0.0)}
    >>> def metric_and_rotated(p):
    ...     U, g, variation = quotient_slice(chart, p, lambda q: q["u"][0, 0])
    ...     return g, variation, U(jnp.pi / 2)
    >>> g, variation, rotated = jax.jit(metric_and_rotated)(params)
    >>> round(float(g), 12), round(float(variation), 12)  # g = |γ_1| = 2·2
    (4.0, 0.0)
    >>> round(float(rotated), 12)  # u_1 = (0, 2) turned a quarter turn
    -2.0
    """
    if not isinstance(chart, TwoLayerReLUChart) or chart.in_dim != 1:
        raise ValueError(
            "quotient_slice needs a TwoLayerReLUChart(width, 1) (scalar inputs: "
            f"each unit's direction is an angle φ_j); got {chart!r}"
        )
    _checks.callable_arg(loss, "loss")
    unit = _checks.positive_int(unit, "unit", minimum=0)
    if unit >= chart.width:
        raise ValueError(
            f"unit must be a hidden unit index in [0, {chart.width}); got {unit}"
        )
    q_star = chart.project(params)
    direction = jnp.zeros_like(q_star).at[chart.width + unit].set(1.0)

    def U(theta):
        return loss(chart.lift(q_star + theta * direction))

    def g_at(theta):
        return direction @ chart.metric(q_star + theta * direction) @ direction

    g = g_at(0.0)
    probes = jnp.array([jnp.pi / 2, -jnp.pi / 2, jnp.pi], dtype=q_star.dtype)
    variation = jnp.max(jnp.abs(jax.vmap(g_at)(probes) / g - 1.0))
    return U, g, variation
