"""Symmetry-reduced SGD: projected drift and noise, projectability, projected
SGD and the quotient SDE (paper Sec. 2, Thm. 2.2)."""

from ._chart import (
    FunctionChart as FunctionChart,
    GaugedChart as GaugedChart,
    ProjectingChart as ProjectingChart,
    SectionChart as SectionChart,
)
from ._feynman_kac import (
    feynman_kac_local_entropy as feynman_kac_local_entropy,
    feynman_kac_value_and_grad as feynman_kac_value_and_grad,
)
from ._noise import (
    AbstractMinibatchNoise as AbstractMinibatchNoise,
    AllMinibatches as AllMinibatches,
    SampledMinibatches as SampledMinibatches,
)
from ._projectability import (
    ProjectabilityReport as ProjectabilityReport,
    ProjectedMoments as ProjectedMoments,
    check_projectability as check_projectability,
    default_projectability_rtol as default_projectability_rtol,
    projected_moments as projected_moments,
    quotient_coefficients as quotient_coefficients,
)
from ._sde import (
    AbstractMatrixSqrt as AbstractMatrixSqrt,
    CholeskySqrt as CholeskySqrt,
    EighSqrt as EighSqrt,
    QuotientSDEPath as QuotientSDEPath,
    solve_quotient_sde as solve_quotient_sde,
)
from ._sgd import (
    ProjectedSGDPath as ProjectedSGDPath,
    projected_sgd as projected_sgd,
)
