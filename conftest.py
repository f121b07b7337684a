"""Doctests of the package run in float64, as the test suite does.

The suite is dominated by XLA compilation (thousands of small programs, each
run a few times), so tests compile with XLA's cheaper CPU backend settings
(LLVM optimisation level 0, no expensive LLVM passes): measured 16-20 % less
wall time per test file on the 2-core CI machine, same results. Set
``GEOMSHOCK_TEST_XLA_FLAGS=0`` to test with XLA's defaults.
"""

import os

if os.environ.get("GEOMSHOCK_TEST_XLA_FLAGS", "1") != "0":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    ).strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
