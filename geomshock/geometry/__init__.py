"""Geometry by autodiff: metric ``q -> g(q)`` to Christoffel symbols, gradients,
divergence and the Laplace–Beltrami operator."""

from ._finite_difference import laplace_beltrami_fd as laplace_beltrami_fd
from ._metric import (
    check_metric as check_metric,
    inverse_metric as inverse_metric,
    symmetry_rtol as symmetry_rtol,
    volume_density as volume_density,
)
from ._operators import (
    christoffel as christoffel,
    divergence as divergence,
    grad_norm_sq as grad_norm_sq,
    gradient as gradient,
    laplace_beltrami as laplace_beltrami,
)
