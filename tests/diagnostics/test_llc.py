"""Local learning coefficient by SGLD: the exact (discretised) Gaussian answer
for quadratics, a singular loss against quadrature, rotation invariance, jit
and vmap against eager, errors (eager and jit).

The losses are equinox Modules with array fields, so that calls with the same
shapes share one compilation of the sampler."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from geomshock.diagnostics import local_learning_coefficient

from .._errors import RUNTIME_ERRORS


class Polynomial(eqx.Module):
    """``½ rᵀ M r + s (r₁ r₂)² + const``, ``r = w − c``: quadratic (``s = 0``)
    or, with ``M = diag(0, 0, a₃)``, singular in the first two coordinates."""

    m: jax.Array
    center: jax.Array
    quartic: jax.Array
    const: jax.Array

    def __call__(self, w):
        r = w - self.center
        return 0.5 * r @ self.m @ r + self.quartic * (r[0] * r[1]) ** 2 + self.const


class Regression(eqx.Module):
    """Mean squared error of a linear model with pytree params."""

    x: jax.Array
    y: jax.Array

    def __call__(self, params):
        pred = self.x @ params["a"] + params["b"]
        return 0.5 * jnp.mean((pred - self.y) ** 2)


def discretised_llc(eigenvalues, n, localization, step_size, beta=None):
    """``nβ ½ Σ a_i v_i``, ``v_i = 1/(c_i (1 − ε c_i/4))`` the stationary variance
    of Euler–Maruyama for the Gaussian ``N(0, 1/c_i)``, ``c_i = nβ a_i + γ``."""
    n_beta = n * (1 / math.log(n) if beta is None else beta)
    a = np.asarray(eigenvalues)
    c = n_beta * a + localization
    return n_beta * 0.5 * np.sum(a / (c * (1 - step_size * c / 4)))


def singular_llc(n_beta, localization):
    """``nβ E[w1² w2²]`` under ``exp(−nβ w1²w2² − γ/2 |w|²)`` by quadrature
    (``w2`` integrated out in closed form)."""
    weight = lambda x: (
        np.exp(-localization * x**2 / 2) / np.sqrt(n_beta * x**2 + localization / 2)
    )
    inner = lambda x: n_beta * x**2 / (2 * n_beta * x**2 + localization)
    num = integrate.quad(lambda x: weight(x) * inner(x), -np.inf, np.inf, limit=200)
    den = integrate.quad(weight, -np.inf, np.inf, limit=200)
    return num[0] / den[0]


# --- exact answers ------------------------------------------------------------------

# One static configuration (chains, steps, loss class, dimension) for every
# accuracy test: a single compilation of the sampler.
RUN = dict(num_chains=64, num_steps=3000, num_burnin=500)
QUAD = dict(n=1000, localization=100.0, step_size=1e-3)


def _estimate(m, center, key, quartic=0.0, **settings):
    loss = Polynomial(
        jnp.asarray(m), jnp.asarray(center), jnp.asarray(quartic), jnp.asarray(0.7)
    )
    out = local_learning_coefficient(loss, jnp.asarray(center), key, **RUN, **settings)
    return {k: np.asarray(v) for k, v in out.items()}


def test_quadratic_matches_discretised_gaussian():
    a = np.array([1.0, 2.0, 4.0])
    out = _estimate(np.diag(a), np.zeros(3), jax.random.key(0), **QUAD)
    exact = discretised_llc(a, **QUAD)
    continuous = discretised_llc(a, QUAD["n"], QUAD["localization"], 0.0)
    assert abs(out["llc"] - exact) < 4 * out["llc_std"]
    assert abs(out["llc"] - exact) < 0.02 * exact
    # the Euler–Maruyama bias (≈ 12 % here) is resolved: the test can tell
    assert abs(out["llc"] - continuous) > 10 * out["llc_std"]
    assert out["llc_chains"].shape == (64,)
    np.testing.assert_allclose(out["llc"], out["llc_chains"].mean(), rtol=1e-12)
    np.testing.assert_allclose(
        out["llc_std"], out["llc_chains"].std(ddof=1) / 8, rtol=1e-12
    )
    n_beta = QUAD["n"] / math.log(QUAD["n"])
    np.testing.assert_allclose(out["mean_loss"], 0.7 + out["llc"] / n_beta, rtol=1e-12)


def test_rotated_quadratic_at_rotated_point():
    # LLC of loss∘Qᵀ at Q w* equals LLC of loss at w*: both within Monte Carlo
    # error of the same exact value (the noise is isotropic).
    a = np.array([1.0, 2.0, 4.0])
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    center = np.array([0.3, -1.0, 2.0])
    exact = discretised_llc(a, **QUAD)
    plain = _estimate(np.diag(a), center, jax.random.key(1), **QUAD)
    rotated = _estimate(q @ np.diag(a) @ q.T, q @ center, jax.random.key(2), **QUAD)
    for out in (plain, rotated):
        assert abs(out["llc"] - exact) < 4 * out["llc_std"]
        assert abs(out["llc"] - exact) < 0.02 * exact
    diff = abs(plain["llc"] - rotated["llc"])
    assert diff < 4 * math.hypot(plain["llc_std"], rotated["llc_std"])


def test_singular_below_regular():
    # (w1 w2)² (RLCT ½) against w1² + w2² (RLCT 1), same settings, each plus a
    # regular third coordinate ½ w3²; the singular value is also checked
    # against quadrature of the localised tempered posterior.
    settings = dict(n=10_000, localization=10.0, step_size=2e-4)
    n_beta = settings["n"] / math.log(settings["n"])
    key = jax.random.key(3)
    regular = _estimate(np.diag([2.0, 2.0, 1.0]), np.zeros(3), key, **settings)
    singular = _estimate(np.diag([0.0, 0.0, 1.0]), np.zeros(3), key, 1.0, **settings)

    third = discretised_llc([1.0], **settings)
    regular_exact = discretised_llc([2.0, 2.0, 1.0], **settings)
    singular_reference = singular_llc(n_beta, settings["localization"]) + third
    assert abs(regular["llc"] - regular_exact) < 4 * regular["llc_std"]
    assert abs(regular["llc"] - regular_exact) < 0.03 * regular_exact
    assert abs(singular["llc"] - singular_reference) < 4 * singular["llc_std"]
    assert abs(singular["llc"] - singular_reference) < 0.05 * singular_reference
    # the first two coordinates: ≈ 0.3 against ≈ 1.1
    assert singular["llc"] - third + 10 * singular["llc_std"] < 0.5 * (
        regular["llc"] - third
    )


# --- transformations ------------------------------------------------------------------

SMALL = dict(n=500, num_chains=3, num_steps=40, step_size=1e-3, localization=50.0)


@pytest.fixture(scope="module")
def regression():
    kx, ky = jax.random.split(jax.random.key(7))
    x = jax.random.normal(kx, (20, 2))
    y = x @ jnp.array([1.0, -0.5]) + 0.3 + 0.1 * jax.random.normal(ky, (20,))
    params = {"a": jnp.array([0.9, -0.4]), "b": jnp.array(0.2, dtype=float)}
    return Regression(x, y), params


def _call(loss, params, key, step_size, localization, beta):
    return local_learning_coefficient(
        loss,
        params,
        key,
        n=SMALL["n"],
        num_chains=SMALL["num_chains"],
        num_steps=SMALL["num_steps"],
        step_size=step_size,
        localization=localization,
        beta=beta,
    )


# jit of vmap over (params, key), compiled once for the equality test and
# every error twin below (each distinct program costs seconds to compile)
_jit_call = jax.jit(jax.vmap(_call, in_axes=(None, 0, 0, None, None, None)))
_SETTINGS = (SMALL["step_size"], SMALL["localization"], 1 / math.log(SMALL["n"]))


def _batch(params, key):
    """Three points and three keys."""
    batch = jax.tree_util.tree_map(lambda p: jnp.stack([p, p + 0.1, p - 0.2]), params)
    return batch, jax.random.split(key, 3)


def _pick(tree, i):
    return jax.tree_util.tree_map(lambda v: v[i], tree)


def test_jit_and_vmap_match_eager(regression):
    loss, params = regression
    batch, keys = _batch(params, jax.random.key(11))
    eager = lambda p, k: local_learning_coefficient(loss, p, k, **SMALL)
    # beta=None (eager) is β* = 1/log n (passed explicitly to the jitted twin)
    batched = _jit_call(loss, batch, keys, *_SETTINGS)
    for i in range(3):
        reference = eager(_pick(batch, i), keys[i])
        assert np.isfinite(reference["llc"]) and reference["llc_chains"].shape == (3,)
        for k in ("llc", "llc_std", "llc_chains", "mean_loss"):
            np.testing.assert_allclose(
                _pick(batched, i)[k], reference[k], rtol=1e-10, atol=1e-12
            )
    # different keys and points give different chains
    assert len(set(np.asarray(batched["llc"]).tolist())) == 3


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(step_size=0.0), "step_size must be finite and > 0"),
        (dict(step_size=-1e-3), "step_size must be finite and > 0"),
        (dict(localization=-1.0), "localization must be finite and ≥ 0"),
        (dict(beta=0.0), "beta must be finite and > 0"),
        (dict(beta=float("nan")), "beta must be finite and > 0"),
        (dict(params_nan=True), "non-finite input: the params"),
        (dict(step_size=1e3), "chain diverged .* lower step_size or raise localiz"),
        (dict(y_inf=True), r"loss\(params\) is not finite"),
    ],
)
def test_traced_errors_eager_and_jit(regression, change, match):
    loss, params = regression
    change = dict(change)
    if change.pop("params_nan", False):
        params = {**params, "b": params["b"] * jnp.nan}
    if change.pop("y_inf", False):
        loss = Regression(loss.x, loss.y.at[0].set(jnp.inf))
    settings = dict(zip(("step_size", "localization", "beta"), _SETTINGS, strict=True))
    settings = tuple({**settings, **change}.values())
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=match):
        jax.block_until_ready(_call(loss, params, key, *settings))
    # The jitted twin is compiled once, with good values; the bad ones reuse
    # that executable (no retrace), so the error is raised at run time. A
    # cached jax.jit call re-raises equinox's error as a plain ValueError.
    good, keys = _batch(regression[1], key)
    jax.block_until_ready(_jit_call(regression[0], good, keys, *_SETTINGS))
    compiled = _jit_call._cache_size()
    # one bad member of the batch is enough
    batch = jax.tree_util.tree_map(lambda b, p: b.at[1].set(p), good, params)
    with pytest.raises((*RUNTIME_ERRORS, ValueError), match=match):
        jax.block_until_ready(_jit_call(loss, batch, keys, *settings))
    assert _jit_call._cache_size() == compiled


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=1), "n must be an integer ≥ 2; got 1; it is the number of samples"),
        (dict(n=1e4), "n must be an integer"),
        (dict(num_chains=0), "num_chains must be an integer ≥ 1; got 0; run at"),
        (dict(num_steps=0), "num_steps must be an integer ≥ 1"),
        (dict(num_steps=10, num_burnin=10), "num_burnin must be < num_steps.*lower"),
        (dict(num_burnin=-1), "num_burnin must be an integer ≥ 0"),
        (dict(vector_loss=True), "loss must map params to a scalar"),
        (dict(loss_not_callable=True), "loss must be callable"),
    ],
)
def test_static_errors_eager_and_jit(regression, kwargs, match, jit):
    loss, params = regression
    kwargs = dict(kwargs)
    if kwargs.pop("vector_loss", False):
        loss = lambda p: p["a"]
    if kwargs.pop("loss_not_callable", False):
        loss = 3.0
    run = {**SMALL, **kwargs}
    fn = lambda p: local_learning_coefficient(loss, p, jax.random.key(0), **run)
    with pytest.raises(ValueError, match=match):
        (jax.jit(fn) if jit else fn)(params)
