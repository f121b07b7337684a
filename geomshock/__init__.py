"""geomshock: shock-wave theory and symmetry-reduced SGD, in JAX.

The public API (see ``shared/API.md``) is re-exported here; nothing is computed.
"""

from . import geometry as geometry
from .geometry import (
    christoffel as christoffel,
    divergence as divergence,
    grad_norm_sq as grad_norm_sq,
    gradient as gradient,
    inverse_metric as inverse_metric,
    laplace_beltrami as laplace_beltrami,
    volume_density as volume_density,
)

__version__ = "0.1.0"
