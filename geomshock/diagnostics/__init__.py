"""Diagnostics for training loops: quotient and raw curvature (part 7)."""

from ._closure import (
    ClosureFit as ClosureFit,
    describe_forecast as describe_forecast,
    fit_closure as fit_closure,
    shock_forecast as shock_forecast,
)
from ._curvature import (
    quotient_curvature as quotient_curvature,
    raw_curvature as raw_curvature,
)
from ._density import spectral_density as spectral_density
from ._llc import local_learning_coefficient as local_learning_coefficient
from ._monitor import JSONLinesLogger as JSONLinesLogger, Monitor as Monitor
from ._observables import (
    observables as observables,
    raw_observables as raw_observables,
)
from ._scores import (
    DEFAULT_ORIENTATION as DEFAULT_ORIENTATION,
    forecast_scores as forecast_scores,
    score_note as score_note,
)
