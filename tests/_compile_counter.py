"""Count what JAX compiles: XLA backend compilations and jaxpr traces.

JAX reports every backend (XLA) compilation and every trace of a Python
function to a jaxpr through ``jax.monitoring`` duration events; a listener
counts them. Eager op-by-op dispatch compiles each primitive once per shape
and dtype, so a *repeated* call with new values of the same shapes must add
nothing when everything it runs is cached.

>>> import jax, jax.numpy as jnp
>>> with count_compilations() as counter:
...     _ = jax.jit(lambda x: x * 2.0 + 1.0)(jnp.arange(3.0))
>>> counter.compiles >= 1 and counter.traces >= 1
True
"""

import contextlib
import dataclasses

import jax

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
JAXPR_TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"


@dataclasses.dataclass
class CompileCount:
    """Running totals while :func:`count_compilations` is active."""

    compiles: int = 0
    traces: int = 0
    seconds: float = 0.0  # time spent in backend compilation


@contextlib.contextmanager
def count_compilations():
    """Context manager yielding a :class:`CompileCount` of what runs inside."""
    count = CompileCount()

    def listener(event, duration_secs, **kwargs):
        if event == BACKEND_COMPILE_EVENT:
            count.compiles += 1
            count.seconds += duration_secs
        elif event == JAXPR_TRACE_EVENT:
            count.traces += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield count
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def jit_cache_size(wrapper) -> int:
    """Number of compiled entries of an ``eqx.filter_jit`` wrapper."""
    return wrapper._cached._cache_size()
