"""Shared checks of a Sec. 6 Trace (the dict the sub-experiments return)."""

import numpy as np

# What ``_sec6_signals.curvature_signals`` (with the LLC) gives besides the raw
# norm, and the loss slope ``make_trace`` adds.
CURVATURE_SIGNALS = frozenset(
    {
        "quotient_min_eig",
        "quotient_max_eig",
        "quotient_laplacian",
        "raw_min_eig",
        "raw_max_eig",
        "llc",
    }
)


def assert_well_formed(trace, signal_names):
    """Shapes, increasing steps, integer events on most seeds, finite signals
    (plain and gauged) with exactly ``signal_names`` plus raw norm and loss slope.
    Returns ``(steps, loss, event_step)``."""
    steps, loss, event = trace["steps"], trace["loss"], trace["event_step"]
    seeds, checkpoints = loss.shape
    assert steps.shape == (checkpoints,) and np.all(np.diff(steps) > 0)
    assert event.shape == (seeds,) and event.dtype.kind == "i"
    assert np.mean(event >= 0) >= 0.75  # events on most seeds
    assert set(trace["signals"]) == set(signal_names) | {"raw_norm", "loss_slope"}
    assert set(trace["signals_gauged"]) == set(trace["signals"])
    for v in [*trace["signals"].values(), *trace["signals_gauged"].values()]:
        assert v.shape == (seeds, checkpoints) and np.all(np.isfinite(v))
    return steps, loss, event
