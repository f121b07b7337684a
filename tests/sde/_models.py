"""Shared test models for geomshock.sde."""

import jax
import jax.numpy as jnp

from geomshock.sde import FunctionChart

# A rotation-invariant model: θ = (θ_1, θ_2) ∈ R²×R², G = SO(2)×SO(2) acting by
# isometries, Φ(θ) = (‖θ_1‖, ‖θ_2‖), loss(θ, t) = ½ (Φ(θ) − t)ᵀ H (Φ(θ) − t).
# Then b = H (Y − E t) and A = H Cov(t) H exactly.
H = jnp.array([[1.5, 0.5], [0.5, 1.0]])
TARGETS = jnp.array(
    [[2.0, 1.0], [2.4, 1.3], [1.7, 0.6], [2.1, 1.4], [1.9, 0.9], [2.3, 0.7]]
)


def radial_loss(params, target):
    d = jnp.linalg.norm(params, axis=-1) - target
    return 0.5 * d @ H @ d


def _rotate(params, key):
    angle = jax.random.uniform(key, (2,), maxval=2 * jnp.pi)
    c, s = jnp.cos(angle), jnp.sin(angle)
    return jnp.stack(
        [c * params[:, 0] - s * params[:, 1], s * params[:, 0] + c * params[:, 1]], -1
    )


RADIAL = FunctionChart(
    project=lambda p: jnp.linalg.norm(p, axis=-1),
    lift=lambda y: jnp.stack([y, jnp.zeros_like(y)], axis=-1),
    gauge=_rotate,
)
RADIAL_PARAMS = jnp.array([[1.1, 0.9], [-0.4, 0.8]])
