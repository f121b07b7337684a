"""Second-order finite-difference Laplace–Beltrami: the peer we compare against.

This is what a py-pde / findiff user would write: central differences of the
divergence form with a step ``h``, everything (``∂f``, ``∂g``) by differences.
It is a reference for benchmarks only; the library's operators use autodiff.
"""

import jax
import jax.numpy as jnp

from .._custom_types import MetricFn, ScalarField
from ._metric import check_metric_shape, check_point, check_scalar_field


def laplace_beltrami_fd(f: ScalarField, metric: MetricFn, h: float) -> ScalarField:
    r"""``Δf ≈ |g|^{-1/2} Σ_i [F^i(q + h e_i/2) − F^i(q − h e_i/2)] / h``.

    with the flux ``F = |g|^{1/2} g^{-1} ∇f`` and ``∇f`` itself from central
    differences of step ``h``. Second order in ``h``; round-off grows like
    ``ε/h²``, so the best ``h`` is near ``ε^{1/4}``.
    """
    if not h > 0:
        raise ValueError(f"step h must be positive, got {h}")

    def lap(q):
        q = check_point(q)
        check_metric_shape(metric, q)
        check_scalar_field(f, q)
        n = q.shape[0]
        steps = 0.5 * h * jnp.eye(n, dtype=q.dtype)
        # Flux points q ± (h/2) e_i, and around each the stencil p ± (h/2) e_j.
        centres = jnp.concatenate([q + steps, q - steps])  # (2n, n)
        stencil = centres[:, None, None, :] + jnp.stack([steps, -steps], axis=1)
        values = jax.vmap(jax.vmap(jax.vmap(f)))(stencil)  # (2n, n, 2)
        df = (values[..., 0] - values[..., 1]) / h  # (2n, n)
        g = jax.vmap(metric)(centres)
        flux = (
            jnp.sqrt(jnp.linalg.det(g))[:, None]
            * jnp.linalg.solve(g, df[..., None])[..., 0]
        )
        div = jnp.sum(jnp.diagonal(flux[:n] - flux[n:])) / h
        return div / jnp.sqrt(jnp.linalg.det(metric(q)))

    return lap
