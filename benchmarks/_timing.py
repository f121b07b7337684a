"""Shared timing for the benchmark scripts: compile separately, then the median."""

import statistics
import time
from typing import Any, NamedTuple

import jax


class Timing(NamedTuple):
    out: Any  # the result of the last call
    first: float  # seconds of the first call (compile + run)
    median: float  # median seconds of the later calls


def timed(fn, *args, repeats: int = 5) -> Timing:
    """Call ``fn(*args)`` once (compile), then ``repeats`` times; block each call."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - start)
    return Timing(out, first, statistics.median(runs))
