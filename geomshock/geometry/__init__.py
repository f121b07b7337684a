"""Geometry by autodiff: metric ``q -> g(q)`` to Christoffel symbols, gradients,
divergence and the Laplace–Beltrami operator. A metric may return a lineax
operator (identity, scaled identity, diagonal, low rank plus diagonal) whose
structure the operators exploit."""

from ._finite_difference import laplace_beltrami_fd as laplace_beltrami_fd
from ._metric import (
    check_metric as check_metric,
    symmetry_rtol as symmetry_rtol,
)
from ._operators import (
    christoffel as christoffel,
    divergence as divergence,
    grad_norm_sq as grad_norm_sq,
    gradient as gradient,
    inverse_metric as inverse_metric,
    laplace_beltrami as laplace_beltrami,
    volume_density as volume_density,
)
from ._point_metric import (
    AbstractPointMetric as AbstractPointMetric,
    DenseMetric as DenseMetric,
    DiagonalMetric as DiagonalMetric,
    LowRankPlusDiagonalMetric as LowRankPlusDiagonalMetric,
    ScaledIdentityMetric as ScaledIdentityMetric,
    low_rank_plus_diagonal as low_rank_plus_diagonal,
    point_metric as point_metric,
    scaled_identity as scaled_identity,
)
from ._stochastic import stochastic_laplace_beltrami as stochastic_laplace_beltrami
