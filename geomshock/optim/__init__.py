"""Optimizers on quotient charts: local entropy ``u^ν`` with ν as a control knob."""

from ._coordinates import (
    ParamsMap as ParamsMap,
    eqx_params_map as eqx_params_map,
    nnx_params_map as nnx_params_map,
)
from ._entropy_sgd import quotient_entropy_sgd as quotient_entropy_sgd
from ._local_entropy import quotient_local_entropy as quotient_local_entropy
