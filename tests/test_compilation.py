"""No recompilation: repeated eager calls with new values reuse one compilation.

Each public entry point is called eagerly with new numerical arguments (a new
ν, new initial data of the same shape, new save times, a new point); a
``jax.monitoring`` listener (``tests/_compile_counter.py``) shows that only
the first call compiles or traces anything, and the jit cache of the
function's compiled core grows by at most one entry. The values of every
call equal the numbers of the implementation before caching (``REFERENCE``,
computed at commit 86eb953 from the same cases) to 1e-12, or a closed form.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomshock import _checks
from geomshock.charts import ReLUMLPChart, TwoLayerReLUChart
from geomshock.charts._action import _quotient_metric
from geomshock.pde import (
    IntegratingFactorRK,
    NeumannAxis,
    PeriodicAxis,
    burgers_sweep,
    grid_points,
    solve_burgers,
    solve_hj,
)
from geomshock.pde._solver._integrate import _solve

from ._compile_counter import count_compilations, jit_cache_size

# --- the cases (also run against the old implementation for REFERENCE) -----------

X = np.linspace(-1.0, 1.0, 40, endpoint=False)
TAUS = np.array([0.0, 0.05, 0.2])
BURGERS_CALLS = [  # (v0, ν, taus): then a new ν and new data, then new times too
    (-np.sin(np.pi * X), 0.3, TAUS),
    (-np.sin(np.pi * X) + 0.2 * np.cos(2 * np.pi * X), 0.4, TAUS),
    (0.5 * np.sin(np.pi * X), 0.35, 1.5 * TAUS),
]

XS = np.linspace(0.0, 2 * np.pi, 24, endpoint=False)
SWEEP_CALLS = [  # (v0s, nus)
    (np.stack([-np.sin(XS), np.cos(XS)]), np.array([0.5, 1.0])),
    (np.stack([np.sin(2 * XS), 0.3 * np.cos(XS)]), np.array([0.7, 0.9])),
]
SWEEP_TAUS = np.array([0.0, 0.2])

HJ_GRID = (NeumannAxis(0.0, np.pi, 12), PeriodicAxis(0.0, 2 * np.pi, 4))
_NODES = np.asarray(grid_points(HJ_GRID))
HJ_CALLS = [  # (U on the grid, ν, taus)
    (np.cos(_NODES[..., 0]), 0.4, np.array([0.0, 0.3])),
    (np.cos(_NODES[..., 0]) + 0.1 * np.sin(_NODES[..., 1]), 0.6, np.array([0.0, 0.3])),
    (0.5 * np.cos(2 * _NODES[..., 0]), 0.5, np.array([0.0, 0.2])),
]

MLP = ReLUMLPChart((2, 3, 2, 1))
MLP_POINTS = [0.5 * np.cos(1.3 * np.arange(MLP.dim) + k) + 0.1 for k in range(3)]


def sphere(q):
    """Round unit sphere in (colatitude, longitude): ``dθ² + sin²θ dφ²``."""
    return jnp.diag(jnp.array([1.0, jnp.sin(q[0]) ** 2]))


def burgers(call):
    v0, nu, taus = call
    return solve_burgers(v0, X, nu, taus, period=2.0)


def sweep(call):
    v0s, nus = call
    return burgers_sweep(v0s, XS, nus, SWEEP_TAUS, period=2 * np.pi)


def hj(call):
    values, nu, taus = call
    return solve_hj(values, sphere, nu, taus, HJ_GRID)


def summaries():
    """A few numbers of every call: what ``REFERENCE`` holds."""
    return {
        "burgers": [np.asarray(burgers(c))[-1, ::8] for c in BURGERS_CALLS],
        "sweep": [np.asarray(sweep(c))[..., -1, ::12].ravel() for c in SWEEP_CALLS],
        "hj": [np.asarray(hj(c))[-1, ::3, 1] for c in HJ_CALLS],
        "mlp": [np.diag(np.asarray(MLP.metric(q)))[::2] for q in MLP_POINTS],
    }


# ``summaries()`` printed by the implementation at commit 86eb953 (before caching)
REFERENCE = {
    "burgers": [
        [
            4.79247563651492e-16,
            0.6056932546697764,
            0.5705499108021943,
            -0.5705499108021951,
            -0.6056932546697761,
        ],
        [
            0.04491452206252351,
            0.5526090674294717,
            0.4804505493674944,
            -0.5056783003795898,
            -0.5753897940431879,
        ],
        [
            -1.6970101660552728e-16,
            -0.29338355367495084,
            -0.15131950974181474,
            0.15131950974181502,
            0.29338355367495084,
        ],
    ],
    "sweep": [
        [
            1.284913832549068e-16,
            2.9605947323337506e-16,
            0.9360929988173041,
            -0.9360929988173041,
            1.0281456607958897e-16,
            -7.401486830834377e-17,
            0.8928452040546646,
            -0.8928452040546643,
        ],
        [
            4.788467584858555e-16,
            -6.661338147750939e-16,
            0.27933613209248664,
            -0.27933613209248664,
            3.7224718281606136e-16,
            -1.0362081563168126e-15,
            0.27383212977909377,
            -0.27383212977909366,
        ],
    ],
    "hj": [
        [
            0.8592741204554758,
            0.4433291438701038,
            -0.23399765867619396,
            -0.7510346287253724,
        ],
        [
            0.8226210884041113,
            0.504023036476239,
            -0.12929799342282353,
            -0.6455665716442829,
        ],
        [
            0.2847247312447767,
            -0.1930903785192759,
            -0.4143212466563465,
            -0.009661324259128364,
        ],
    ],
    "mlp": [
        [
            0.32120949157832257,
            1.017855807913328,
            0.28731421777190375,
            3.160599682567471,
            2.1209305775385165,
            0.15012787097647395,
            1.5734201051848138,
            1.0,
        ],
        [
            1.198951081599202,
            0.591390933251016,
            0.5626096474657566,
            0.618690798650246,
            0.7741124656914643,
            1.6671566624011396,
            3.369504460090547,
            1.0,
        ],
        [
            1.0909743667325833,
            0.6717224017206522,
            1.2529490746004404,
            0.5792068200240307,
            0.3997830011400659,
            1.6700131625925383,
            2.541720626727792,
            1.0,
        ],
    ],
}

# --- the tests ------------------------------------------------------------------


def _assert_compiled_once(fn, calls, wrapper):
    """``fn`` over ``calls``: nothing compiled or traced after the first call,
    at most one new entry in ``wrapper``'s cache; returns the results."""
    before = jit_cache_size(wrapper)
    results = [np.asarray(fn(calls[0]))]
    with count_compilations() as repeated:
        results += [np.asarray(fn(call)) for call in calls[1:]]
    assert (repeated.compiles, repeated.traces) == (0, 0)
    assert jit_cache_size(wrapper) - before <= 1
    return results


def _assert_reference(name, values):
    for got, want in zip(values, REFERENCE[name], strict=True):
        np.testing.assert_allclose(
            got, want, rtol=1e-12, atol=1e-12 * np.max(np.abs(want))
        )


def test_counter_counts_a_compilation():
    with count_compilations() as count:
        float(jax.jit(lambda y: jnp.sum(y**3))(jnp.arange(5.0)))  # a new function
    assert count.compiles >= 1 and count.traces >= 1 and count.seconds > 0


def test_solve_burgers_compiles_once_for_new_nu_data_and_times():
    results = _assert_compiled_once(burgers, BURGERS_CALLS, _solve)
    _assert_reference("burgers", [r[-1, ::8] for r in results])
    v0 = BURGERS_CALLS[0][0]
    # the checks still run eagerly, before the cached solve
    with pytest.raises(ValueError, match="nu must be finite and > 0"):
        solve_burgers(v0, X, -0.1, TAUS, period=2.0)
    with pytest.raises(_checks.NonFiniteInputError, match="non-finite input: v0"):
        solve_burgers(np.where(X > 0.5, np.nan, v0), X, 0.3, TAUS, period=2.0)
    with pytest.raises(ValueError, match="viscous layer width"):
        solve_burgers(v0, X, 1e-4, TAUS, period=2.0, on_under_resolved="raise")


def test_burgers_sweep_compiles_once_for_new_nus_and_data():
    from geomshock.pde._burgers_solve import _sweep

    results = _assert_compiled_once(sweep, SWEEP_CALLS, _sweep)
    _assert_reference("sweep", [r[..., -1, ::12].ravel() for r in results])


def test_solve_hj_compiles_once_for_new_nu_data_and_times():
    results = _assert_compiled_once(hj, HJ_CALLS, _solve)
    _assert_reference("hj", [r[-1, ::3, 1] for r in results])
    with pytest.raises(ValueError, match="nu must be finite and > 0"):
        hj((HJ_CALLS[0][0], 0.0, HJ_CALLS[0][2]))
    # U as a function: the same function object with a new ν reuses its nodes
    from_function = [(zonal, nu, HJ_CALLS[0][2]) for nu in (0.4, 0.45)]
    results = _assert_compiled_once(hj, from_function, _solve)
    np.testing.assert_allclose(results[0], hj(HJ_CALLS[0]), rtol=0, atol=1e-15)


def zonal(q):
    return jnp.cos(q[0])


def test_chart_metric_compiles_once_for_new_points():
    results = _assert_compiled_once(MLP.metric, MLP_POINTS, _quotient_metric)
    _assert_reference("mlp", [np.diag(g)[::2] for g in results])
    with pytest.raises(_checks.NonFiniteInputError, match="non-finite input"):
        MLP.metric(np.where(np.arange(MLP.dim) == 2, np.nan, MLP_POINTS[0]))


def test_two_layer_metric_compiles_once_and_matches_closed_form():
    # in_dim = 1: q = (γ_1, γ_2, φ_1, φ_2, c), g = diag(1/(2|γ|), |γ|, 1)
    chart = TwoLayerReLUChart(2, 1)
    points = [np.array([g1, g2, 0.4, 2.0 - g1, 0.1]) for g1, g2 in
              [(0.8, -0.7), (1.3, 0.2), (-0.4, 2.5)]]  # fmt: skip
    results = _assert_compiled_once(chart.metric, points, _quotient_metric)
    for q, g in zip(points, results, strict=True):
        gamma = np.abs(q[:2])
        expected = np.diag([*(1 / (2 * gamma)), *gamma, 1.0])
        np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-14)


def test_solver_with_a_tableau_is_a_valid_cache_key():
    # NumPy arrays in a static field broke the cache lookup of a second tableau
    default, dopri = IntegratingFactorRK(), IntegratingFactorRK(diffrax.Dopri5.tableau)
    structure = jax.tree_util.tree_structure
    assert structure(default) == structure(IntegratingFactorRK())
    assert structure(default) != structure(dopri)
    assert hash(structure(default)) == hash(structure(IntegratingFactorRK()))
    assert dopri.tableau is diffrax.Dopri5.tableau
