"""A guard against a jaxlib CPU deadlock on machines with few cores.

jaxlib 0.10.x runs batched LAPACK kernels (``solve``, ``qr``, ``svd``,
``cholesky``, triangular solves: the calls behind the charts' lifts and group
actions) through ``ParallelBatchMap``: the kernel occupies a worker of XLA's
CPU intra-op pool and blocks until batch chunks queued on the *same* pool have
run. When the thunk executor runs as many independent batched LAPACK calls at
once as the pool has workers, every worker waits and nothing runs: the process
sleeps at 0 % CPU forever. The pool is sized from the CPU count, so a 2-core
machine (a CI runner, a laptop VM) hits it with two concurrent calls. jaxlib
0.11.2 removes the parallel path.

XLA sizes that pool from the ``NPROC`` environment variable when it is set. If
the user has not set it and the CPU backend has not started yet, we set it to at
least 8, so that a deadlock would need 8 concurrent batched calls. Set ``NPROC``
yourself to override; it only changes the number of (mostly idle) pool threads.
"""

import os

_MIN_POOL = 8


def widen_cpu_pool() -> None:
    """Set ``NPROC`` to ``max(8, cpu count)`` unless it is set (see module doc)."""
    import jaxlib

    version = tuple(int(p) for p in jaxlib.__version__.split(".")[:3] if p.isdigit())
    if version >= (0, 11, 2) or "NPROC" in os.environ:
        return
    os.environ["NPROC"] = str(max(_MIN_POOL, os.cpu_count() or 1))


widen_cpu_pool()  # on import, before any geomshock computation starts the backend
