"""Helpers for the error contract: every error test has an eager and a jit twin."""

import equinox as eqx
import jax
import pytest

# What a failed ``eqx.error_if`` raises: equinox's own error under
# ``eqx.filter_jit``, an XLA runtime error wrapping its message under ``jax.jit``.
RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)


def raises_eager_and_jit(fn, *args, match, eager=ValueError):
    """``fn(*args)`` raises ``eager`` now, and a runtime error under ``jax.jit``.

    The jitted call traces every argument, so checks that run on concrete
    values at trace time must have a run-time ``error_if`` form that survives
    dead-code elimination (its result used) for the second half to pass.
    """
    with pytest.raises(eager, match=match):
        jax.block_until_ready(fn(*args))
    with pytest.raises(RUNTIME_ERRORS, match=match):
        jax.block_until_ready(jax.jit(fn)(*args))
