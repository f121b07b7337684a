"""Shared check of the "non-finite input" contract of the exact PDE solutions."""

import jax
import jax.numpy as jnp
import pytest

from geomshock._checks import NonFiniteInputError

from .._errors import RUNTIME_ERRORS, raises_eager_and_jit


def refuses_non_finite(fn, good: float, bad: float, match: str):
    """``fn(good)`` is not NaN; ``fn(bad)`` is refused eagerly, under ``jit`` and
    under ``vmap`` with one bad member (a run-time error)."""
    assert not bool(jnp.any(jnp.isnan(fn(good))))
    raises_eager_and_jit(fn, bad, match=match, eager=NonFiniteInputError)
    with pytest.raises(RUNTIME_ERRORS, match="non-finite input"):
        jax.block_until_ready(jax.jit(jax.vmap(fn))(jnp.array([good, bad])))
