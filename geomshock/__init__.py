"""geomshock: shock-wave theory and symmetry-reduced SGD, in JAX.

The public API (the README lists it, with examples) is re-exported here; nothing
is computed.
Importing geomshock widens XLA's CPU thread pool on jaxlib < 0.11.2 (unless
``NPROC`` is set) to avoid a jaxlib deadlock; see ``geomshock/_runtime.py``.
"""

from . import (
    _runtime as _runtime,
    charts as charts,
    diagnostics as diagnostics,
    geometry as geometry,
    optim as optim,
    parallel as parallel,
    pde as pde,
    sde as sde,
)
from .geometry import (
    christoffel as christoffel,
    divergence as divergence,
    grad_norm_sq as grad_norm_sq,
    gradient as gradient,
    inverse_metric as inverse_metric,
    laplace_beltrami as laplace_beltrami,
    stochastic_laplace_beltrami as stochastic_laplace_beltrami,
    volume_density as volume_density,
)
from .parallel import sweep as sweep
from .pde import (
    burgers_hopf_cole as burgers_hopf_cole,
    burgers_sweep as burgers_sweep,
    characteristics as characteristics,
    entropy_solution as entropy_solution,
    first_order_semigroup as first_order_semigroup,
    hopf_lax as hopf_lax,
    lax_oleinik as lax_oleinik,
    local_entropy as local_entropy,
    shock_positions as shock_positions,
    shock_time as shock_time,
    solve_burgers as solve_burgers,
    solve_heat as solve_heat,
    solve_hj as solve_hj,
)
from .sde import (
    feynman_kac_local_entropy as feynman_kac_local_entropy,
    feynman_kac_value_and_grad as feynman_kac_value_and_grad,
)

__version__ = "0.1.0"
