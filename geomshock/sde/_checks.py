"""Input checks specific to the SDE subpackage: PRNG keys and output shapes.

Generic checks (positive scalars, finite arrays, "known now or traced?") come
from :mod:`geomshock._checks`.
"""

import jax
import jax.numpy as jnp


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
    """Require a non-empty 1-D batch of keys (one per seed); return it and the
    seed count."""
    keys = jnp.asarray(keys) if not hasattr(keys, "dtype") else keys
    if key_batch_ndim(keys) != 1:
        raise ValueError(
            "keys must be a batch of PRNG keys with one leading seed axis, e.g. "
            f"jax.random.split(key, 256); got shape {keys.shape}"
        )
    if keys.shape[0] == 0:
        raise ValueError(
            "keys must hold at least one PRNG key (one run per key), e.g. "
            "jax.random.split(key, 8); got 0 keys"
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


def float_dtype_of(tree):
    """The float dtype of a parameter pytree (its floating leaves promoted
    together), or the default float when it has none."""
    dtypes = [
        jnp.result_type(leaf)
        for leaf in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)
    ]
    return jnp.result_type(*dtypes) if dtypes else jnp.zeros(()).dtype
