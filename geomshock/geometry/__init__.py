"""Geometry by autodiff: metric ``q -> g(q)`` to Christoffel symbols, gradients,
divergence and the Laplace–Beltrami operator."""

from ._finite_difference import laplace_beltrami_fd as laplace_beltrami_fd
from ._metric import (
    inverse_metric as inverse_metric,
    volume_density as volume_density,
)
from ._operators import (
    christoffel as christoffel,
    divergence as divergence,
    grad_norm_sq as grad_norm_sq,
    gradient as gradient,
    laplace_beltrami as laplace_beltrami,
)
