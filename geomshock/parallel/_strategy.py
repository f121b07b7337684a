"""How ``sweep`` evaluates its cells: small option objects (strategies, options)."""

import abc
from collections.abc import Callable

import equinox as eqx
import numpy as np

from .. import _checks

# The automatic batch holds about this many output elements (a batch of
# fields stays in cache, and a vmapped batch's lanes are few enough that the
# slowest one does not hold up many others).
BATCH_ELEMENTS = 8192


class AbstractStrategy(eqx.Module):
    """How the cells of a sweep are batched (and ordered) on each device.

    Every strategy evaluates fixed *batches* of cells: ``vmap`` within a
    batch, ``lax.map`` over a device's batches, one batch after another.
    """

    @abc.abstractmethod
    def batch(self, cells: int, devices: int, out_size: int) -> int:
        """Cells per batch, given the cell count, device count and the number
        of output elements of one cell."""

    def costs(self, points: dict[str, np.ndarray]) -> np.ndarray | None:
        """Expected cost of each cell (host NumPy, cells in grid order), or
        None to keep the grid order. Only called when the axes are known."""
        del points
        return None


def _per_device(cells: int, devices: int) -> int:
    return max(1, -(-cells // devices))


class Vmap(AbstractStrategy):
    """``vmap`` over the cells: all of a device's cells at once, or ``chunk``
    at a time (``lax.map`` over chunks, for memory).

    ``Vmap()`` makes one batch per device, so the batch, and under ``vmap``
    everything shared by a batch (a batched while-loop runs every lane until
    the slowest finishes; the Hopf–Cole kernel tiles run for the union of
    the members' needs), depends on the device count: results are then
    equal across device counts to rounding, bit-identical only where ``fn``
    is batch-independent. ``Vmap(chunk)`` batches are fixed: bit-identical.
    """

    chunk: int | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        if self.chunk is not None:
            _checks.positive_int(self.chunk, "Vmap(chunk)")

    def batch(self, cells, devices, out_size):
        del out_size
        return self.chunk or _per_device(cells, devices)


class Map(AbstractStrategy):
    """Cells one after another in one compiled loop (``lax.map``), or
    ``batch_size`` at a time vmapped (as ``lax.map``'s ``batch_size``).

    ``Map()`` costs what a Python loop of jitted single calls costs, less
    their dispatch; every cell runs exactly as a single call (its own
    adaptive steps, its own kernel tiles).
    """

    batch_size: int = eqx.field(default=1, static=True)

    def __check_init__(self):
        _checks.positive_int(self.batch_size, "Map(batch_size)")

    def batch(self, cells, devices, out_size):
        del cells, devices, out_size
        return self.batch_size


# The automatic batch leaves at least this many batches, so that up to this
# many devices all get work with a batch size that does not depend on their
# number (each cell then sits in the same batch on any device count).
MIN_BATCHES = 16


def auto_batch(cells: int, devices: int, out_size: int) -> int:
    """About ``BATCH_ELEMENTS`` output elements per batch, and at least
    ``max(MIN_BATCHES, devices)`` batches (fewer when there are fewer cells)."""
    size = max(1, BATCH_ELEMENTS // max(1, out_size))
    return max(1, min(size, cells // max(MIN_BATCHES, devices)))


def auto_cost(points: dict[str, np.ndarray]) -> np.ndarray | None:
    """``ν·τ`` when the axes ``nu`` and ``tau`` are swept, ``ν`` for ``nu`` alone.

    ``ν·τ`` is the Hopf–Cole kernel variance: it decides the kernel regime
    (nearest image, image sum, Fourier series) and the tiles a field visits.
    ``ν`` orders adaptive solves by their step counts (more steps for small
    ν). Only the order matters.
    """
    if "nu" not in points:
        return None
    nu = np.asarray(points["nu"], dtype=np.float64)
    if "tau" in points:
        return nu * np.asarray(points["tau"], dtype=np.float64)
    return nu


class ByCost(AbstractStrategy):
    """Cells sorted by expected cost on the host, then batched by ``inner``.

    Batches then hold cells of similar cost (a vmapped batch of adaptive
    solves runs as long as its slowest member; a batch of Hopf–Cole fields in
    one kernel regime runs that regime only), and the batches are dealt to
    the devices in turn (``0, 1, …, D−1, D−1, …, 0``: each device gets a
    similar mix of costs). ``cost(**points) -> (cells,)`` receives the axes'
    values of every cell as NumPy arrays in grid order (``"auto"``:
    :func:`auto_cost`, ν·τ or ν); traced axes (a sweep inside ``jit``) keep
    the grid order. ``inner``: ``None`` (automatic batch size), ``Map`` or
    ``Vmap``.
    """

    cost: Callable | str = eqx.field(default="auto", static=True)
    inner: AbstractStrategy | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        if not (self.cost == "auto" or callable(self.cost)):
            raise ValueError(
                f"ByCost(cost) must be 'auto' or a callable; got {self.cost!r}"
            )
        if self.inner is not None and not isinstance(self.inner, (Map, Vmap)):
            raise ValueError(
                "ByCost(inner) must be None, Map(...) or Vmap(...); got "
                f"{type(self.inner).__name__}"
            )

    def batch(self, cells, devices, out_size):
        if self.inner is None:
            return auto_batch(cells, devices, out_size)
        return self.inner.batch(cells, devices, out_size)

    def costs(self, points):
        if self.cost == "auto":
            costs = auto_cost(points)
            if costs is None:
                return None
        else:
            costs = self.cost(**points)
        costs = np.asarray(costs, dtype=np.float64)
        cells = np.shape(next(iter(points.values())))[0]
        if costs.shape != (cells,):
            raise ValueError(
                f"ByCost(cost) must return one cost per cell, shape ({cells},); "
                f"got {costs.shape}"
            )
        return costs


class SweepOptions(eqx.Module):
    """Options of :func:`geomshock.parallel.sweep`, passed as ``options=``.

    Attributes:
        strategy: ``"auto"`` (``ByCost("auto")``: cells sorted by ν·τ or ν
            when those axes are swept, batches of about 8192 output
            elements), or a ``Vmap``, ``Map`` or ``ByCost`` object.
        replicate: whether every device holds the whole result grid. ``None``
            (default): replicated in a multi-process run (each process can
            read it), sharded over the devices along the grid's first axis
            otherwise (when its length is a multiple of the device count).
    """

    strategy: str | AbstractStrategy = eqx.field(default="auto", static=True)
    replicate: bool | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        if self.strategy != "auto" and not isinstance(self.strategy, AbstractStrategy):
            raise ValueError(
                "SweepOptions(strategy) must be 'auto' or a Vmap, Map or ByCost "
                f"object; got {self.strategy!r}"
            )
        if self.replicate not in (None, True, False):
            raise ValueError(
                f"SweepOptions(replicate) must be None, True or False; got "
                f"{self.replicate!r}"
            )

    def resolved(self) -> AbstractStrategy:
        return ByCost() if self.strategy == "auto" else self.strategy
