"""Time-stepping schemes and spatial discretizations for the diffrax solvers."""

from ._axes import (
    AbstractAxis as AbstractAxis,
    NeumannAxis as NeumannAxis,
    PeriodicAxis as PeriodicAxis,
)
from ._burgers_space import (
    AbstractBurgersDiscretization as AbstractBurgersDiscretization,
    FiniteDifference as FiniteDifference,
    PseudoSpectral as PseudoSpectral,
)
from ._lawson import (
    IntegratingFactorRK as IntegratingFactorRK,
    SplitSpectralTerm as SplitSpectralTerm,
)
