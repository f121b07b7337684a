"""Trace-time and run-time input checks shared by the SDE subpackage."""

import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """Whether ``x`` has a value at trace time (a Python number or a concrete array)."""
    if isinstance(x, numbers.Number):
        return True
    return not isinstance(x, jax.core.Tracer)


def check_positive(value, name: str):
    """``value > 0``: ``ValueError`` when known at trace time, else ``eqx.error_if``."""
    if is_concrete(value):
        arr = np.asarray(value)
        if arr.shape != ():
            raise ValueError(f"{name} must be a scalar, got shape {arr.shape}")
        if not float(arr) > 0:
            raise ValueError(f"{name} must be > 0, got {float(arr)}")
        return value
    arr = jnp.asarray(value)
    if arr.shape != ():
        raise ValueError(f"{name} must be a scalar, got shape {arr.shape}")
    return eqx.error_if(arr, ~(arr > 0), f"{name} must be > 0")


def key_batch_ndim(keys) -> int:
    """Number of batch axes of a PRNG key array (typed or raw ``uint32[..., 2]``)."""
    if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        return keys.ndim
    if keys.dtype != jnp.uint32 or keys.ndim == 0 or keys.shape[-1] != 2:
        raise ValueError(
            "expected PRNG keys (jax.random.key or jax.random.PRNGKey), got an "
            f"array of dtype {keys.dtype} and shape {keys.shape}"
        )
    return keys.ndim - 1


def check_seed_keys(keys):
    """Require a 1-D batch of keys (one per seed); return it and the seed count."""
    keys = jnp.asarray(keys) if not hasattr(keys, "dtype") else keys
    if key_batch_ndim(keys) != 1:
        raise ValueError(
            "keys must be a batch of PRNG keys with one leading seed axis, e.g. "
            f"jax.random.split(key, 256); got shape {keys.shape}"
        )
    return keys, keys.shape[0]


def check_single_key(key, name: str = "key"):
    """Require exactly one PRNG key."""
    if key is None or key_batch_ndim(key) != 0:
        shape = None if key is None else key.shape
        raise ValueError(
            f"{name} must be a single PRNG key (jax.random.key(0)), got "
            f"{'None' if key is None else f'shape {shape}'}"
        )
    return key


def require_method(chart, name: str, purpose: str):
    """Return ``chart.<name>`` or raise a ValueError naming what needed it."""
    fn = getattr(chart, name, None)
    if not callable(fn):
        raise ValueError(
            f"{purpose} needs a chart with a callable `{name}`; "
            f"{type(chart).__name__} has none"
        )
    return fn


def check_vector_output(fn, arg, name: str, expected: tuple[int, ...] | None):
    """Static shape check of ``fn(arg)`` (a vector, or exactly ``expected``)."""
    out = jax.eval_shape(fn, arg)
    shape = getattr(out, "shape", None)
    if expected is None:
        if shape is None or len(shape) != 1:
            raise ValueError(
                f"{name} must return a 1-D array of quotient coordinates, "
                f"got {'a non-array' if shape is None else f'shape {shape}'}"
            )
        return shape
    if shape != expected:
        raise ValueError(f"{name} must return shape {expected}, got shape {shape}")
    return shape
