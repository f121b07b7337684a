"""jaxtyping aliases shared across geomshock."""

from collections.abc import Callable

from jaxtyping import Array, ArrayLike, Float

Scalar = Float[Array, ""]
ScalarLike = Float[ArrayLike, ""]
Point = Float[Array, " n"]
Vector = Float[Array, " n"]
Matrix = Float[Array, "n n"]

ScalarField = Callable[[Point], Scalar]
MetricFn = Callable[[Point], Matrix]
VectorField = Callable[[Point], Vector]

__all__ = [
    "Array",
    "ArrayLike",
    "Float",
    "Scalar",
    "ScalarLike",
    "Point",
    "Vector",
    "Matrix",
    "ScalarField",
    "MetricFn",
    "VectorField",
]
