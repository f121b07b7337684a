"""Sweeps over parameter grids: batched, sharded, multi-process (part 9)."""

from ._strategy import (
    AbstractStrategy as AbstractStrategy,
    ByCost as ByCost,
    Map as Map,
    SweepOptions as SweepOptions,
    Vmap as Vmap,
)
from ._sweep import sweep as sweep
