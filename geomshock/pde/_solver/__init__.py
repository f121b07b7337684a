"""Time-stepping schemes and spatial discretizations for the diffrax solvers."""

from ._axes import (
    AbstractAxis as AbstractAxis,
    AbstractSpectralAxis as AbstractSpectralAxis,
    LineAxis as LineAxis,
    NeumannAxis as NeumannAxis,
    PeriodicAxis as PeriodicAxis,
    axis_from_nodes as axis_from_nodes,
)
from ._burgers_space import (
    AbstractBurgersDiscretization as AbstractBurgersDiscretization,
    FiniteDifference as FiniteDifference,
    PseudoSpectral as PseudoSpectral,
)
from ._integrate import PDESolution as PDESolution
from ._lawson import (
    IntegratingFactorRK as IntegratingFactorRK,
    SplitSpectralTerm as SplitSpectralTerm,
)
