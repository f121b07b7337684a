"""PDE engine: exact log-domain Hopf–Cole / heat semigroup, shock times, and
diffrax time-steppers for source-corrected Burgers and viscous Hamilton–Jacobi."""

# --- exact solutions (part 2) ---
from .._checks import TruncatedDomainWarning as TruncatedDomainWarning
from ._hopf_cole import (
    burgers_hopf_cole as burgers_hopf_cole,
    first_order_semigroup as first_order_semigroup,
    local_entropy as local_entropy,
)
from ._inviscid import (
    LaxOleinik as LaxOleinik,
    Shocks as Shocks,
    characteristics as characteristics,
    entropy_solution as entropy_solution,
    hopf_lax as hopf_lax,
    lax_oleinik as lax_oleinik,
    shock_positions as shock_positions,
)
from ._shock import shock_time as shock_time
from ._slice import (
    AbstractSliceScheme as AbstractSliceScheme,
    ExactCircle as ExactCircle,
    FirstOrderFD as FirstOrderFD,
    SliceProfile as SliceProfile,
    paper_theta_grid as paper_theta_grid,
    slice_local_entropy as slice_local_entropy,
)

# isort: split

# --- diffrax time-steppers (part 3) ---
from ._burgers_solve import (
    UnderResolvedWarning as UnderResolvedWarning,
    burgers_sweep as burgers_sweep,
    solve_burgers as solve_burgers,
)
from ._hj_solve import (
    grid_points as grid_points,
    solve_heat as solve_heat,
    solve_hj as solve_hj,
)
from ._solver import (
    AbstractAxis as AbstractAxis,
    AbstractBurgersDiscretization as AbstractBurgersDiscretization,
    AbstractSpectralAxis as AbstractSpectralAxis,
    FiniteDifference as FiniteDifference,
    IntegratingFactorRK as IntegratingFactorRK,
    LineAxis as LineAxis,
    NeumannAxis as NeumannAxis,
    PDESolution as PDESolution,
    PeriodicAxis as PeriodicAxis,
    PseudoSpectral as PseudoSpectral,
    SplitSpectralTerm as SplitSpectralTerm,
    axis_from_nodes as axis_from_nodes,
)
