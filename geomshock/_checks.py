"""The one validation layer of geomshock: every input check in the package.

Each check decides once whether the value is *known now* (a Python number or
a concrete array: a static problem, a ``ValueError`` at trace time with a
message saying what was expected and what was given) or *traced* (under
``jit``/``vmap``/``grad``: a run-time ``eqx.error_if``). The run-time form
**returns** the checked value; callers must thread that return value into the
computation, or ``jit`` removes the check as dead code.

>>> import jax, jax.numpy as jnp
>>> float(positive_scalar(0.5, "nu"))
0.5
>>> positive_scalar(-1.0, "nu")
Traceback (most recent call last):
...
ValueError: nu must be finite and > 0; got -1.0
>>> float(jax.jit(lambda nu: positive_scalar(nu, "nu") * 2)(1.0))
2.0
"""

import math
import numbers
import warnings
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "HeatConvention",
    "NonFiniteInputError",
    "TruncatedDomainWarning",
    "UnderResolvedWarning",
    "check_float_dtype",
    "check_shape",
    "check_structure",
    "concrete",
    "default_float",
    "finite_array",
    "finite_tree",
    "heat_factor",
    "is_concrete",
    "per_dtype",
    "positive_int",
    "positive_scalar",
    "run_time_check",
    "warn_if",
]


class UnderResolvedWarning(UserWarning):
    """The grid cannot resolve a length scale of the solution (a kernel, a layer)."""


class TruncatedDomainWarning(UserWarning):
    """A finite grid cuts off weight that a result on the whole line would need."""


class NonFiniteInputError(ValueError):
    """Input data contain NaN or inf (raised at trace time for concrete data)."""


# --- known now or traced? -------------------------------------------------------


def is_concrete(x) -> bool:
    """Whether ``x`` (an array or a pytree of them) has a value at trace time."""
    leaves = jax.tree_util.tree_leaves(x)
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def concrete(x) -> np.ndarray | None:
    """``x`` as a NumPy array when its value is known at trace time, else None."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def default_float():
    """The default float dtype (float64 with ``jax_enable_x64``, else float32)."""
    return jnp.zeros(()).dtype


def run_time_check(x, bad, message: str):
    """``eqx.error_if(x, bad, message)``; the caller must use the result."""
    return eqx.error_if(x, bad, message)


def warn_if(x, bad, message: str, category: type[Warning] = UserWarning):
    """Warn with ``message`` when ``bad``: now if known, else when the code runs.

    Returns ``x``. Under ``jit`` the warning is issued from a
    ``jax.debug.callback`` on the host when the computation runs.
    """
    bad_c = concrete(bad)
    if bad_c is not None:
        if bool(np.any(bad_c)):
            warnings.warn(message, category, stacklevel=3)
        return x

    def _emit(flag):
        if bool(np.any(flag)):
            warnings.warn(message, category, stacklevel=2)

    jax.debug.callback(_emit, bad)
    return x


# --- scalars --------------------------------------------------------------------


def _expect_scalar(value, name: str, hint: str):
    shape = jnp.shape(value)
    if shape != ():
        raise ValueError(f"{name} must be a scalar{hint}; got shape {shape}")


def positive_scalar(
    value,
    name: str,
    *,
    allow_zero: bool = False,
    dtype=None,
    hint: str = " (vmap over it for a sweep)",
):
    """A finite scalar ``> 0`` (``≥ 0`` with ``allow_zero``) as a float array."""
    _expect_scalar(value, name, hint)
    relation = "≥ 0" if allow_zero else "> 0"
    value_c = concrete(value)
    arr = jnp.asarray(value, dtype=default_float() if dtype is None else dtype)
    if value_c is not None:
        v = float(value_c)
        if not math.isfinite(v) or (v < 0 if allow_zero else v <= 0):
            raise ValueError(f"{name} must be finite and {relation}; got {v}")
        return arr
    bad = ~jnp.isfinite(arr) | ((arr < 0) if allow_zero else (arr <= 0))
    return run_time_check(arr, bad, f"{name} must be finite and {relation}")


def positive_int(value, name: str, *, minimum: int = 1) -> int:
    """A Python integer ``≥ minimum`` (static: sizes, counts, step limits)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name} must be an integer ≥ {minimum}; got {value!r} "
            f"({type(value).__name__})"
        )
    if value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}; got {value}")
    return int(value)


# --- arrays and pytrees -----------------------------------------------------------


def check_float_dtype(x, name: str):
    """``x`` as an inexact array (integers are promoted to the default float)."""
    arr = jnp.asarray(x)
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise ValueError(f"{name} must be real; got dtype {arr.dtype}")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(default_float())
    return arr


def check_shape(x, shape: tuple[int, ...], name: str, *, expected: str = ""):
    """Require ``x.shape == shape`` (static); ``expected`` says why."""
    got = jnp.shape(x)
    if tuple(got) != tuple(shape):
        why = f" ({expected})" if expected else ""
        raise ValueError(f"{name} must have shape {tuple(shape)}{why}; got {got}")
    return x


def _non_finite_message(name: str, count=None, size=None) -> str:
    where = f" at {count} of {size} entries" if count is not None else ""
    return (
        f"non-finite input: {name} contains NaN or inf{where}; pass finite data "
        "(check the initial data, coefficients and parameters)"
    )


def finite_array(x, name: str):
    """``x`` with every entry finite: ``NonFiniteInputError`` or ``error_if``."""
    arr = check_float_dtype(x, name)
    arr_c = concrete(x)
    if arr_c is not None:
        bad = ~np.isfinite(np.asarray(arr_c, dtype=np.float64))
        if np.any(bad):
            raise NonFiniteInputError(
                _non_finite_message(name, int(bad.sum()), bad.size)
            )
        return arr
    return run_time_check(arr, ~jnp.all(jnp.isfinite(arr)), _non_finite_message(name))


def finite_tree(tree, name: str):
    """Every inexact leaf of ``tree`` finite; returns the tree (checks threaded)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    out = []
    for path_leaf in leaves:
        is_float = hasattr(path_leaf, "dtype") and jnp.issubdtype(
            jnp.asarray(path_leaf).dtype, jnp.inexact
        )
        out.append(finite_array(path_leaf, name) if is_float else path_leaf)
    return jax.tree_util.tree_unflatten(treedef, out)


def check_structure(tree, reference, name: str, reference_name: str = "expected"):
    """Same pytree structure and leaf shapes as ``reference`` (static)."""
    got = jax.tree_util.tree_structure(tree)
    want = jax.tree_util.tree_structure(reference)
    if got != want:
        raise ValueError(
            f"{name} has structure {got}, but {reference_name} has structure {want}"
        )
    for leaf, ref in zip(
        jax.tree_util.tree_leaves(tree),
        jax.tree_util.tree_leaves(reference),
        strict=True,
    ):
        if jnp.shape(leaf) != jnp.shape(ref):
            raise ValueError(
                f"{name} has a leaf of shape {jnp.shape(leaf)} where "
                f"{reference_name} has shape {jnp.shape(ref)}"
            )
    return tree


# --- dtype-dependent defaults -------------------------------------------------------


def per_dtype(dtype, *, float64, float32, float16=None):
    """A documented default that depends on the float dtype of the computation."""
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64:
        return float64
    if dtype in (jnp.float16, jnp.bfloat16) and float16 is not None:
        return float16
    return float32


# --- the heat-semigroup convention ---------------------------------------------------

HeatConvention = Literal["theorem", "as_printed"]


def heat_factor(convention: HeatConvention) -> float:
    """The factor ``c`` of ``exp(c ντ Δ)``: ``½`` for ``"theorem"``, 1 as printed.

    ``"theorem"`` is geomshock's (and the paper's theorems') ``P_{ντ} =
    exp((ντ/2)Δ)``; ``"as_printed"`` is the ``exp(ντΔ)`` printed in Sec. 3.1.
    """
    factors = {"theorem": 0.5, "as_printed": 1.0}
    if convention not in factors:
        raise ValueError(
            f"convention must be 'theorem' (exp((ντ/2)Δ)) or 'as_printed' "
            f"(exp(ντΔ), Sec. 3.1); got {convention!r}"
        )
    return factors[convention]


def callable_arg(fn, name: str) -> Callable:
    """Require a callable argument."""
    if not callable(fn):
        raise ValueError(f"{name} must be callable; got {type(fn).__name__}")
    return fn


def tie(x, *checked):
    """``x``, made to depend on run-time-checked values so their checks survive jit.

    For a checked value that does not otherwise enter the result (the ``start``
    of a traced grid whose solver needs only its spacing): ``jit`` would delete
    its ``error_if`` as dead code. Concrete values were checked already and are
    ignored; a traced one turns ``x`` into NaN only if it is NaN itself.

    >>> import jax, jax.numpy as jnp
    >>> check = lambda s: run_time_check(s, s < 0, "start must be >= 0")
    >>> float(jax.jit(lambda x, s: tie(x, check(s)))(1.0, 2.0))
    1.0
    """
    for value in checked:
        if not is_concrete(value):
            x = jnp.where(jnp.any(jnp.isnan(value)), jnp.nan, x)
    return x


def raise_if(x, bad, message: str, error: type[Exception] = ValueError):
    """Raise ``error(message)`` now when ``bad`` is known and true, else ``error_if``.

    For checks on values a computation produced (``U`` at the nodes, a
    resolution ratio): eagerly they are concrete and raise ``error`` (a
    ``ValueError`` subclass by default); under ``jit``/``vmap`` the check runs
    with the computation. Returns ``x``; the caller must use the result.

    >>> import jax, jax.numpy as jnp
    >>> raise_if(1.0, jnp.array(False), "never")
    1.0
    >>> raise_if(1.0, jnp.array(True), "U(nodes) is NaN")
    Traceback (most recent call last):
    ...
    ValueError: U(nodes) is NaN
    """
    bad_c = concrete(bad)
    if bad_c is not None:
        if bool(np.any(bad_c)):
            raise error(message)
        return x
    return run_time_check(x, jnp.any(bad), message)
