"""Smooth local coordinates on spheres: stereographic and (on S¹) the angle."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

# A unit vector this close to the stereographic pole ``−e_n`` is refused.
_POLE_TOL = 1e-12


def normalize(v: Float[Array, "... n"], what: str) -> tuple[Array, Array]:
    """``(v/‖v‖, ‖v‖)`` along the last axis; a zero vector is an error."""
    r = jnp.linalg.norm(v, axis=-1)
    r = eqx.error_if(r, ~jnp.all(r > 0), f"{what} has zero norm (off the stratum)")
    return v / r[..., None], r


def to_stereographic(s: Float[Array, "... n"]) -> Float[Array, "... n-1"]:
    """Stereographic coordinates ``y = s_{:n−1} / (1 + s_n)`` of unit vectors,
    projecting from the pole ``−e_n`` (the only point the chart misses)."""
    denom = 1 + s[..., -1:]
    denom = eqx.error_if(
        denom,
        ~jnp.all(denom > _POLE_TOL),
        "unit vector at the stereographic pole −e_n: outside this chart's domain",
    )
    return s[..., :-1] / denom


def from_stereographic(y: Float[Array, "... n-1"]) -> Float[Array, "... n"]:
    """Inverse stereographic map ``y -> (2y, 1 − |y|²) / (1 + |y|²)``; the round
    metric in these coordinates is ``4 / (1 + |y|²)² I``."""
    n2 = jnp.sum(y**2, axis=-1, keepdims=True)
    return jnp.concatenate([2 * y, 1 - n2], axis=-1) / (1 + n2)


def to_angle(s: Float[Array, "... 2"]) -> Float[Array, "..."]:
    """Angle ``φ ∈ (−π, π]`` of unit vectors ``s = (cos φ, sin φ)``."""
    return jnp.arctan2(s[..., 1], s[..., 0])


def from_angle(phi: Float[Array, "..."]) -> Float[Array, "... 2"]:
    """``φ -> (cos φ, sin φ)``."""
    return jnp.stack([jnp.cos(phi), jnp.sin(phi)], axis=-1)


def to_sphere_coords(s, *, angle: bool):
    """Angle on S¹ (``angle=True``), stereographic otherwise."""
    return to_angle(s)[..., None] if angle else to_stereographic(s)


def from_sphere_coords(y, *, angle: bool):
    return from_angle(y[..., 0]) if angle else from_stereographic(y)
