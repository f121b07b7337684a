"""Quotient charts of neural-network parameter spaces by their exact symmetries.

Group actions, orbit tangents (``jvp`` of the action), the horizontal projector
(lineax) and the quotient metric ``g_ij = <P_H ∂_iσ, P_H ∂_jσ>`` derived by
autodiff from each chart's gauge-fixed ``lift``.
"""

from ._action import (
    AbstractGroupAction as AbstractGroupAction,
    AbstractRescalingAction as AbstractRescalingAction,
    default_projection_solver as default_projection_solver,
    horizontal_projection as horizontal_projection,
    orbit_tangent_operator as orbit_tangent_operator,
    orbit_tangents as orbit_tangents,
    quotient_metric as quotient_metric,
    quotient_metric_operator as quotient_metric_operator,
)
from ._adapters import (
    UncheckedArchitectureWarning as UncheckedArchitectureWarning,
    eqx_mlp_from_params as eqx_mlp_from_params,
    flax_variables_from_params as flax_variables_from_params,
    mlp_chart_from_eqx as mlp_chart_from_eqx,
    mlp_chart_from_flax as mlp_chart_from_flax,
    mlp_chart_from_nnx as mlp_chart_from_nnx,
    nnx_mlp_from_params as nnx_mlp_from_params,
)
from ._attention import (
    HeadGL as HeadGL,
    MultiHeadAttentionChart as MultiHeadAttentionChart,
)
from ._balance import balance as balance
from ._chart import (
    AbstractPermutableChart as AbstractPermutableChart,
    AbstractQuotientChart as AbstractQuotientChart,
)
from ._layered import (
    LayeredRescaling as LayeredRescaling,
    ReLUCNNChart as ReLUCNNChart,
    ReLUMLPChart as ReLUMLPChart,
)
from ._mean_field import (
    EmpiricalMeasure as EmpiricalMeasure,
    MeanFieldChart as MeanFieldChart,
    energy_distance as energy_distance,
    gaussian_mmd as gaussian_mmd,
)
from ._permutation import CanonicalOrderChart as CanonicalOrderChart
from ._product import (
    EuclideanChart as EuclideanChart,
    ProductAction as ProductAction,
    ProductChart as ProductChart,
    TrivialAction as TrivialAction,
)
from ._slice import quotient_slice as quotient_slice
from ._sphere import PositiveScaling as PositiveScaling, SphereChart as SphereChart
from ._transformer import (
    TransformerBlockChart as TransformerBlockChart,
    TransformerBlockSymmetry as TransformerBlockSymmetry,
)
from ._two_layer import (
    TwoLayerReLUChart as TwoLayerReLUChart,
    TwoLayerRescaling as TwoLayerRescaling,
)
