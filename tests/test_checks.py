"""The shared validation layer: each check eagerly and under jit/vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomshock import _checks

from ._errors import RUNTIME_ERRORS, raises_eager_and_jit


def test_positive_scalar_eager_jit_vmap():
    assert float(_checks.positive_scalar(2.0, "nu")) == 2.0
    assert float(_checks.positive_scalar(0.0, "tau", allow_zero=True)) == 0.0
    for bad in (0.0, -1.0, np.nan, np.inf):
        raises_eager_and_jit(
            lambda v: _checks.positive_scalar(v, "nu") + 1.0,
            jnp.asarray(bad),
            match="nu must be finite and > 0",
        )
    raises_eager_and_jit(
        lambda v: _checks.positive_scalar(v, "tau", allow_zero=True) + 1.0,
        jnp.asarray(-1e-3),
        match="tau must be finite and ≥ 0",
    )
    with pytest.raises(RUNTIME_ERRORS, match="nu must be finite"):
        jax.vmap(lambda v: _checks.positive_scalar(v, "nu"))(jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="nu must be a scalar"):
        _checks.positive_scalar(jnp.ones(2), "nu")


def test_finite_array_and_tree():
    raises_eager_and_jit(
        lambda v: _checks.finite_array(v, "v0") * 2,
        jnp.array([1.0, np.nan, 3.0]),
        match="non-finite input: v0",
        eager=_checks.NonFiniteInputError,
    )
    tree = {"a": jnp.ones(2), "b": jnp.array([np.inf])}
    with pytest.raises(ValueError, match="non-finite input: params"):
        _checks.finite_tree(tree, "params")
    with pytest.raises(RUNTIME_ERRORS, match="non-finite input: params"):
        jax.jit(lambda t: _checks.finite_tree(t, "params"))(tree)
    ok = _checks.finite_tree({"a": jnp.ones(2), "n": 3}, "params")
    assert ok["n"] == 3


def test_static_checks():
    assert _checks.positive_int(3, "n") == 3
    for bad in (0, -2, 2.5, True, None):
        with pytest.raises(ValueError, match="n must be an integer ≥ 1"):
            _checks.positive_int(bad, "n")
    with pytest.raises(ValueError, match=r"v0 must have shape \(3,\)"):
        _checks.check_shape(jnp.ones(4), (3,), "v0")
    with pytest.raises(ValueError, match="has structure"):
        _checks.check_structure({"a": 1}, {"b": 1}, "params")
    with pytest.raises(ValueError, match="has a leaf of shape"):
        _checks.check_structure({"a": jnp.ones(2)}, {"a": jnp.ones(3)}, "params")
    with pytest.raises(ValueError, match="must be real"):
        _checks.check_float_dtype(jnp.ones(2, complex), "x")
    assert _checks.check_float_dtype(jnp.arange(3), "x").dtype == jnp.float64
    assert _checks.heat_factor("theorem") == 0.5
    assert _checks.heat_factor("as_printed") == 1.0
    with pytest.raises(ValueError, match="convention must be"):
        _checks.heat_factor("half")
    assert _checks.per_dtype(jnp.float32, float64=1e-9, float32=1e-5) == 1e-5


def test_warn_if_eager_and_jit():
    with pytest.warns(_checks.TruncatedDomainWarning, match="widen"):
        _checks.warn_if(1.0, True, "widen the grid", _checks.TruncatedDomainWarning)

    def f(x):
        return _checks.warn_if(
            x, x > 1, "widen the grid", _checks.TruncatedDomainWarning
        )

    with pytest.warns(_checks.TruncatedDomainWarning, match="widen"):
        jax.block_until_ready(jax.jit(f)(2.0))
        jax.effects_barrier()


def test_tie_keeps_a_run_time_check_under_jit():
    def f(x, start):
        checked = _checks.run_time_check(start, start < 0, "start must be >= 0")
        return _checks.tie(x * 2.0, checked)

    with pytest.raises(RUNTIME_ERRORS, match="start must be >= 0"):
        jax.block_until_ready(jax.jit(f)(1.0, -1.0))
    assert float(jax.jit(f)(1.0, 3.0)) == 2.0
    with pytest.raises(RUNTIME_ERRORS, match="start must be >= 0"):
        jax.block_until_ready(jax.jit(jax.vmap(f))(jnp.ones(2), jnp.array([1.0, -1.0])))


def test_raise_if_eager_jit_and_vmap():
    def f(x):
        return _checks.raise_if(x * 2.0, x < 0, "x must be >= 0; got a negative x")

    assert float(f(1.0)) == 2.0
    raises_eager_and_jit(f, -1.0, match="x must be >= 0")
    with pytest.raises(_checks.NonFiniteInputError, match="non-finite"):
        _checks.raise_if(1.0, True, "non-finite input", _checks.NonFiniteInputError)
    with pytest.raises(RUNTIME_ERRORS, match="x must be >= 0"):
        jax.block_until_ready(jax.jit(jax.vmap(f))(jnp.array([1.0, -1.0])))
