r"""The local entropy ``u^ν`` in any dimension, by Feynman–Kac Monte Carlo.

``u^ν(τ, q) = −ν log E[e^{−U(X_{ντ})/ν}]`` for Brownian motion ``X`` on
``(M, g)`` started at ``q``: the generator is ``½Δ_g``, so ``E[f(X_t)] =
(e^{(t/2)Δ} f)(q)`` and ``t = ντ`` is the paper's ``P_{ντ}`` (Gaussian kernel
of variance ``ντ`` on flat space; the paper's ν is twice the classic ν_c).

Brownian motion in chart coordinates (Itô):
``dX^i = −½ g^{jk}Γ^i_jk dt + (g^{-1/2})^i_a dW^a``; any factor ``σ`` with
``σσᵀ = g⁻¹`` gives the same law. Since ``Δ_g x^i = −g^{jk}Γ^i_jk``, the
drift is ``½Δ_g`` of the coordinate functions.

*Time change.* The paths are solved on ``s ∈ [0, 1]`` for
``dX = t b(X) ds + √t σ(X) dW_s`` (the same law at ``s = 1`` as ``X_t``), with
a fixed number of steps whatever ``t = ντ`` is: ``ν`` and ``τ`` may be traced
(``vmap``/``grad`` over them), ``τ = 0`` gives ``X = q`` exactly, and runs at
different ``ν, τ`` with one key share their Brownian paths (common random
numbers).

*The contracted Christoffel symbol* (exact geometry): with ``x = g⁻¹∇f``,
``g^{jk}Γ^i_jk ∂_i f = tr(g⁻¹ J(x)) − ½ D_x log det g``, ``J(x) = ∂(g(p)x)/∂p``
(the identity :func:`geomshock.laplace_beltrami` is built on). The right side
is linear in ``x``; its gradient in ``x`` is the lowered vector ``c♭ = g c``,
``c^i = g^{jk}Γ^i_jk``, so ``b = −½ g⁻¹ c♭``. The geometry layer's
``christoffel_trace`` and ``logdet_derivative`` are reused as they are:
``n + 1`` JVPs of the metric (``O(n²)`` memory, ``O(n³)`` work for a dense
metric; one JVP for ``c I``) per drift evaluation, never ``∂g`` of size ``n³``.

*Matrix-free charts.* For a quotient chart the metric is ``g = JᵀJ`` with
``J = P_H Dσ`` (``σ`` the lift, ``P_H`` the horizontal projector). With
``ξ ~ N(0, I_D)``, ``g⁻¹Jᵀξ`` has covariance ``g⁻¹``: the diffusion is one
vjp of the lift and one conjugate-gradient solve with the metric operator,
noise of the parameter dimension ``D``, no square root. The drift uses the
same identity with the trace estimated by probes ``ζ = g⁻¹Jᵀξ'`` (an
independent Rademacher ``ξ'`` per step, ``E ζζᵀ = g⁻¹``):
``ĉ♭ = (D_ζ g)ζ − ½ ∇_p(ζᵀ g(p) ζ)``, ``b̂ = −½ g⁻¹ ĉ♭`` (matfree's
Monte-Carlo estimator). ``b̂`` is unbiased (up to the CG tolerance); its
per-step noise adds ``O(dt)`` to the weak error (a step's extra variance is
``t² dt² Var b̂``), so the scheme keeps weak order 1 and ``dt → 0`` removes
the effect.

*Estimator.* ``u = −ν (logsumexp(−U(X_i)/ν) − log N)``; with the normalised
weights ``p_i = softmax(−U/ν)_i`` the delta-method standard error is
``ν √(Σ(N p_i − 1)² / (N(N − 1)))`` (the relative spread of ``e^{−U/ν}``
over ``√N``). ``−ν log`` of a mean is biased upwards by about
``stderr²/(2ν)`` (Jensen), negligible where ``stderr ≪ ν``.

*Gradient.* Pathwise: ``∇_q u = Σ_i p_i (∂X_i/∂q)ᵀ ∇U(X_i)``, the tilted mean
of ``∇U`` at the path ends transported back along each path by its tangent
flow; ``jax.grad`` of :func:`feynman_kac_local_entropy` computes it by
reverse mode through the SDE solve (fixed Brownian paths), and
:func:`feynman_kac_value_and_grad` also returns its delta-method (ratio
estimator) standard error from the per-path gradients. Cost: one gradient of
``U`` per path (``num_paths`` in all) plus one reverse pass through each
path's ``num_steps`` steps of drift and diffusion; the value and the gradient
come from the same paths at once.
"""

import abc
import math
from typing import Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import lineax as lx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray
from matfree import stochtrace

from .._checks import is_concrete, positive_int, positive_scalar, raise_if
from .._custom_types import Point, ScalarField
from ..charts._action import _horizontal_projector, quotient_metric_operator
from ..charts._chart import AbstractQuotientChart
from ..charts._sphere import SphereChart
from ..charts._sphere_coords import from_stereographic, to_stereographic
from ..geometry._metric import check_metric_shape, check_point, check_scalar_field
from ..geometry._operators import _metric_batch_size
from ..geometry._point_metric import (
    DenseMetric,
    DiagonalMetric,
    LowRankPlusDiagonalMetric,
    ScaledIdentityMetric,
    point_metric,
)
from ._checks import check_single_key

Sampler = Literal["sde", "geodesic"]

_DEFAULT_NUM_STEPS = 32


# --- the geometry of the paths: Itô drift and a diffusion factor -------------------


class _AbstractGeometry(eqx.Module):
    """Brownian motion of a metric: ``b = ½Δ_g x`` and ``σ`` with ``σσᵀ = g⁻¹``."""

    @abc.abstractmethod
    def noise_shape(self, q: Point) -> jax.ShapeDtypeStruct:
        """Shape of the Brownian increments the diffusion factor takes."""

    @abc.abstractmethod
    def drift(self, y: Point, key: PRNGKeyArray) -> Point:
        """The Itô drift ``−½ g^{jk}Γ^i_jk`` at ``y`` (``key`` for estimators)."""

    @abc.abstractmethod
    def diffusion(self, y: Point, dw: Array) -> Point:
        """``σ(y) dw`` with ``σσᵀ = g⁻¹(y)``."""

    def check_at(self, q: Point) -> Point:
        """``q``, with the metric at ``q`` checked (``ValueError`` when known)."""
        return q


class _PointwiseGeometry(_AbstractGeometry):
    """A metric function (array or structured lineax operator), exact drift."""

    metric: object

    def _at(self, y):
        return point_metric(self.metric(y))

    def check_at(self, q):
        at_q = self._at(q)
        leaf = jax.tree_util.tree_leaves(at_q)[0]
        return q + 0 * jnp.sum(leaf).astype(q.dtype)

    def noise_shape(self, q):
        at_q = jax.eval_shape(self._at, q)
        if isinstance(at_q, LowRankPlusDiagonalMetric):
            rank = at_q.factor.shape[1]
            return jax.ShapeDtypeStruct((q.shape[0] + rank,), q.dtype)
        return jax.ShapeDtypeStruct(q.shape, q.dtype)

    def drift(self, y, key):
        at_y = self._at(y)
        factors = at_y.inverse_factors()
        batch = _metric_batch_size(self.metric, y)

        def contraction(x):
            # g^{jk}Γ^i_jk (g⁻¹∇f)... written as a linear form in x = g⁻¹∇f.
            return at_y.christoffel_trace(
                self.metric, y, x, factors, batch
            ) - 0.5 * at_y.logdet_derivative(self.metric, y, x, factors)

        lowered = jax.grad(contraction)(jnp.zeros_like(y))
        return -0.5 * at_y.solve(lowered)

    def diffusion(self, y, dw):
        at_y = self._at(y)
        if isinstance(at_y, ScaledIdentityMetric):
            return dw / jnp.sqrt(at_y.scale)
        if isinstance(at_y, DiagonalMetric):
            return dw / jnp.sqrt(at_y.diagonal)
        if isinstance(at_y, DenseMetric):
            # σ = L^{-ᵀ}: σσᵀ = (L Lᵀ)^{-1}.
            return jsl.solve_triangular(at_y.chol, dw, lower=True, trans="T")
        if isinstance(at_y, LowRankPlusDiagonalMetric):
            # g = AᵀA with A = [D^{1/2}; Uᵀ]: g⁻¹Aᵀ has covariance g⁻¹.
            n = y.shape[0]
            a_t_dw = jnp.sqrt(at_y.diagonal) * dw[:n] + at_y.factor @ dw[n:]
            return at_y.solve(a_t_dw)
        v, _ = at_y.inverse_factors()
        return v @ dw


class _ChartGeometry(_AbstractGeometry):
    """A quotient chart, matrix-free: ``σ dw = g⁻¹Jᵀdw`` (CG), stochastic drift."""

    chart: AbstractQuotientChart
    solver: lx.AbstractLinearSolver
    num_probes: int = eqx.field(static=True)

    def _operator(self, p):
        return quotient_metric_operator(self.chart.lift, self.chart.action, p)

    def _solve(self, operator, b):
        return lx.linear_solve(operator, b, self.solver, throw=False).value

    def _j_transpose(self, y):
        """``dw ↦ Jᵀdw = Dσᵀ P_H dw`` (flat parameter vectors ``dw``)."""

        def flat_lift(p):
            params = self.chart.lift(p)
            return ravel_pytree(params)[0], params

        _, jvp_fn, params = jax.linearize(flat_lift, y, has_aux=True)
        vjp_fn = jax.linear_transpose(jvp_fn, y)
        project = _horizontal_projector(self.chart.action, params, None)
        return lambda dw: vjp_fn(project(dw))[0]

    def noise_shape(self, q):
        size = sum(
            leaf.size for leaf in jax.tree_util.tree_leaves(self.chart.params_shape)
        )
        return jax.ShapeDtypeStruct((size,), q.dtype)

    def check_at(self, q):
        return self.chart.check_point(q)

    def diffusion(self, y, dw):
        return self._solve(self._operator(y), self._j_transpose(y)(dw))

    def drift(self, y, key):
        operator = self._operator(y)
        j_t = self._j_transpose(y)

        def lowered_estimate(_, xi):
            zeta = self._solve(operator, j_t(xi))

            def g_zeta(p):
                return self._operator(p).mv(zeta)

            d_g = jax.jvp(g_zeta, (y,), (zeta,))[1]
            d_quad = jax.grad(lambda p: zeta @ g_zeta(p))(y)
            return d_g - 0.5 * d_quad

        like = jnp.zeros(self.noise_shape(y).shape, y.dtype)
        sampler = stochtrace.sampler_signs(like, num=self.num_probes)
        estimate = stochtrace.estimator_monte_carlo(lowered_estimate, sampler)
        return -0.5 * self._solve(operator, estimate(None, key))


def _geometry_of(metric, q: Point, num_probes: int, cg_solver):
    """The geometry a ``metric`` argument describes (see the public docstring)."""
    chart = _chart_of(metric, methods=("metric_operator",))
    if chart is not None:
        if chart.dim != q.shape[0]:
            raise ValueError(f"the chart has dim {chart.dim} but q has shape {q.shape}")
        solver = (
            lx.CG(rtol=1e-8, atol=1e-12, max_steps=1000)
            if cg_solver is None
            else cg_solver
        )
        return _ChartGeometry(chart, solver, num_probes)
    if not callable(metric):
        raise ValueError(
            "metric must be None (flat), a function q -> (n, n) array or lineax "
            "operator, a quotient chart or its metric_operator; got "
            f"{type(metric).__name__}"
        )
    check_metric_shape(metric, q)
    return _PointwiseGeometry(metric)


def _chart_of(metric, methods=("metric", "metric_operator")):
    """The chart when ``metric`` is a chart or one of its bound ``methods``."""
    if isinstance(metric, AbstractQuotientChart):
        return metric
    owner = getattr(metric, "__self__", None)
    name = getattr(getattr(metric, "__func__", None), "__name__", None)
    if isinstance(owner, AbstractQuotientChart) and name in methods:
        return owner
    return None


# --- samplers: the path ends X_t -----------------------------------------------------


class _Args(eqx.Module):
    time: Array  # t = ντ
    key: PRNGKeyArray  # drift probes, folded in with the step index
    num_steps: int = eqx.field(static=True)


def _drift_term(geometry):
    def drift(s, y, args):
        step = jnp.floor(s * args.num_steps + 0.5).astype(jnp.int32)
        return args.time * geometry.drift(y, jax.random.fold_in(args.key, step))

    return diffrax.ODETerm(drift)


@eqx.filter_jit
def _sde_ends(geometry, solver, q, time, keys, num_steps):
    noise = geometry.noise_shape(q)
    grid = jnp.linspace(0.0, 1.0, num_steps + 1, dtype=q.dtype)

    def diffusion(s, y, args):
        scale = jnp.sqrt(args.time)
        return lx.FunctionLinearOperator(
            lambda dw: scale * geometry.diffusion(y, dw), noise
        )

    def one(key):
        brownian_key, probe_key = jax.random.split(key)
        brownian = diffrax.VirtualBrownianTree(
            0.0, 1.0, tol=0.5 / num_steps, shape=noise, key=brownian_key
        )
        terms = diffrax.MultiTerm(
            _drift_term(geometry), diffrax.ControlTerm(diffusion, brownian)
        )
        solution = diffrax.diffeqsolve(
            terms,
            solver,
            0.0,
            1.0,
            None,
            q,
            args=_Args(time, probe_key, num_steps),
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.StepTo(ts=grid),
            max_steps=num_steps,
        )
        return solution.ys[-1]

    return jax.vmap(one)(keys)


@eqx.filter_jit
def _flat_ends(q, time, keys):
    """Flat ``R^n``: ``X_t = q + √t Z`` exactly (no time stepping)."""
    noise = jax.vmap(lambda key: jax.random.normal(key, q.shape, q.dtype))(keys)
    return q + jnp.sqrt(time) * noise


@eqx.filter_jit
def _geodesic_ends(q, time, keys, num_steps):
    """Geodesic random walk on the unit sphere in stereographic coordinates:
    ``s ← exp_s(√h P_s ξ)``, ``ξ ~ N(0, I)``, ``h = t / num_steps``."""
    start = from_stereographic(q)
    h = time / num_steps

    def one(key):
        def step(s, xi):
            v = jnp.sqrt(h) * (xi - (xi @ s) * s)
            r = jnp.linalg.norm(v)
            s = jnp.cos(r) * s + jnp.sinc(r / jnp.pi) * v
            return s / jnp.linalg.norm(s), None

        xis = jax.random.normal(key, (num_steps, start.shape[0]), q.dtype)
        end, _ = jax.lax.scan(step, start, xis)
        return to_stereographic(end)

    return jax.vmap(one)(keys)


# --- the estimator -------------------------------------------------------------------


def _num_steps(num_steps, dt, nu, tau) -> int:
    if dt is not None and num_steps is not None:
        raise ValueError("pass either num_steps or dt, not both")
    if dt is None:
        default = _DEFAULT_NUM_STEPS if num_steps is None else num_steps
        return positive_int(default, "num_steps")
    if not (is_concrete(nu) and is_concrete(tau)):
        raise ValueError(
            "dt needs nu and tau known at trace time (the step count is "
            "ceil(nu * tau / dt)); under jit/vmap over nu or tau pass num_steps"
        )
    dt = float(positive_scalar(dt, "dt"))
    return max(1, math.ceil(float(nu) * float(tau) / dt * (1 - 1e-12)))


def _path_sampler(U, metric, nu, tau, q, num_paths, options):
    """Validated ``(nu, q, num_paths)`` and ``ends(q, keys)``, the path ends
    ``X_i`` for a batch of path keys (shape ``(len(keys), n)``)."""
    q = check_point(q)
    check_scalar_field(U, q)
    nu = positive_scalar(nu, "nu", dtype=q.dtype)
    tau = positive_scalar(tau, "tau", allow_zero=True, dtype=q.dtype)
    num_paths = positive_int(num_paths, "num_paths", minimum=2)
    num_steps = _num_steps(options.get("num_steps"), options.get("dt"), nu, tau)
    sampler = options.get("sampler", "sde")
    time = nu * tau
    if sampler == "geodesic":
        chart = _chart_of(metric)
        if not isinstance(chart, SphereChart):
            raise ValueError(
                "sampler='geodesic' needs the closed-form exponential map of a "
                "geomshock.charts.SphereChart: pass the chart (or its metric) as "
                f"metric; got {type(metric).__name__}"
            )
        q = chart.check_point(q)
        return (
            nu,
            q,
            num_paths,
            lambda p, keys: _geodesic_ends(p, time, keys, num_steps),
        )
    if sampler != "sde":
        raise ValueError(f"sampler must be 'sde' or 'geodesic'; got {sampler!r}")
    if metric is None:
        return nu, q, num_paths, lambda p, keys: _flat_ends(p, time, keys)
    num_probes = positive_int(options.get("num_probes", 1), "num_probes")
    geometry = _geometry_of(metric, q, num_probes, options.get("cg_solver"))
    q = geometry.check_at(q)
    solver = options.get("solver")
    solver = diffrax.Euler() if solver is None else solver
    if not isinstance(solver, diffrax.AbstractSolver):
        raise ValueError(f"solver must be a diffrax solver; got {solver!r}")

    def ends(p, keys):
        return _sde_ends(geometry, solver, p, time, keys, num_steps)

    return nu, q, num_paths, ends


_OPTIONS = ("num_steps", "dt", "solver", "sampler", "num_probes", "cg_solver")


def _check_options(options):
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown solver options {unknown}; expected some of {list(_OPTIONS)}"
        )


def _finite_values(values):
    return raise_if(
        values,
        ~jnp.all(jnp.isfinite(values)),
        "U is non-finite at a path end (the path left U's domain or diverged; "
        "lower the step size or check the metric away from q)",
    )


def _weights(values, nu):
    log_w = -values / nu
    n = values.shape[0]
    u = -nu * (jax.nn.logsumexp(log_w) - jnp.log(n))
    p = jax.nn.softmax(log_w)
    stderr = nu * jnp.sqrt(jnp.sum((n * p - 1) ** 2) / (n * (n - 1)))
    return u, p, stderr


def feynman_kac_local_entropy(
    U: ScalarField,
    metric,
    nu: Float[ArrayLike, ""],
    tau: Float[ArrayLike, ""],
    q: Float[ArrayLike, " n"],
    key: PRNGKeyArray,
    *,
    num_paths: int,
    **solver_options,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""Local entropy ``u^ν(τ, q) = −ν log E[e^{−U(X_{ντ})/ν}]`` by Feynman–Kac.

    ``X`` is Brownian motion on ``(M, g)`` started at ``q`` with generator
    ``½Δ_g`` (heat semigroup ``exp((t/2)Δ)`` at ``t = ντ``, the paper's
    ``P_{ντ}``; paper ν = 2 ν_c), so ``u^ν`` solves ``∂_τ u + ½|grad u|²_g =
    (ν/2)Δ_g u``, ``u(0) = U``. Paths in chart coordinates (Itô drift
    ``−½ g^{jk}Γ^i_jk``, diffusion with covariance ``g⁻¹``) by a diffrax SDE
    solve (``VirtualBrownianTree``, paths vmapped); the mean in the log domain
    (logsumexp). See the module docstring for the derivations.

    Args:
        U: ``(n,) -> scalar``.
        metric: one of
            ``None`` — flat ``R^n``: ``X_t = q + √t Z`` sampled exactly (no
            time stepping, ``num_steps`` unused);
            a function ``q -> g(q)``, an ``(n, n)`` array or a lineax operator
            (scaled identity, diagonal, ``low_rank_plus_diagonal``: their
            structure gives the drift and a square-root-free diffusion), drift
            exact (``n + 1`` metric JVPs per step);
            a quotient chart (``gs.charts.*``) or its bound ``metric_operator``
            — matrix-free (CG solves with the metric operator, a ``D``-dimensional
            noise ``g⁻¹Jᵀξ``, an unbiased stochastic drift), for charts with
            ~1e4 parameters. ``chart.metric`` (dense) takes the exact path.
        nu: ``ν > 0``. tau: ``τ ≥ 0`` (``τ = 0``: ``U(q)``, stderr 0).
        q: the start point, shape ``(n,)``.
        key: one PRNG key (split into ``num_paths`` path keys).
        num_paths: number of paths, ``≥ 2``.
        **solver_options: ``num_steps`` (default 32, on ``[0, ντ]``) or ``dt``
            (time step in ``t = ντ``; needs concrete ν, τ); ``solver`` (a diffrax
            SDE solver, default ``diffrax.Euler()`` — Euler–Maruyama, weak order
            1; the drift is Itô, so a Stratonovich solver such as ``Heun`` is
            consistent only for a constant metric); ``sampler``: ``"sde"`` (the
            default) or ``"geodesic"`` (geodesic random walk with the closed-form
            exponential map of a ``SphereChart`` passed as ``metric``);
            ``num_probes`` (drift probes per step, matrix-free path, default 1);
            ``cg_solver`` (a lineax solver for the matrix-free path, default
            ``lx.CG(rtol=1e-8, atol=1e-12, max_steps=1000)``).

    Returns:
        ``(u, stderr)``: the estimate and its delta-method standard error
        ``ν √(Σ(N p_i − 1)²/(N(N−1)))``, ``p = softmax(−U(X)/ν)``.

    Supports ``jax.jit``, ``jax.vmap`` over ``q``, ``nu``, ``tau`` (and keys),
    and ``jax.grad`` in ``q`` (pathwise, fixed Brownian paths: the tilted mean
    of ``∇U(X)`` transported back by ``∂X/∂q``), ``nu`` and ``tau``; see
    :func:`feynman_kac_value_and_grad` for the gradient with its error bar.
    ν ≤ 0, τ < 0, ``num_paths < 2`` and a metric that is not SPD at ``q``
    raise ``ValueError`` (an equinox runtime error under ``jit``); a metric
    that stops being SPD along a path, or a non-finite ``U`` at a path end,
    raises at run time.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> U = lambda x: 0.5 * jnp.sum(x**2)  # exact: ½|q|²/(1+τ) + ν log(1+τ)
        >>> u, se = feynman_kac_local_entropy(
        ...     U, None, 0.5, 1.0, jnp.ones(2), jax.random.key(0), num_paths=4096)
        >>> exact = 0.5 * 2 / 2 + 0.5 * jnp.log(2.0)
        >>> bool(abs(u - exact) < 4 * se)
        True
    """
    _check_options(solver_options)
    nu, q, num_paths, ends = _path_sampler(
        U, metric, nu, tau, q, num_paths, solver_options
    )
    keys = jax.random.split(check_single_key(key), num_paths)
    values = _finite_values(jax.vmap(U)(ends(q, keys)))
    u, _, stderr = _weights(values, nu)
    return u, stderr


def feynman_kac_value_and_grad(
    U: ScalarField,
    metric,
    nu: Float[ArrayLike, ""],
    tau: Float[ArrayLike, ""],
    q: Float[ArrayLike, " n"],
    key: PRNGKeyArray,
    *,
    num_paths: int,
    **solver_options,
) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, " n"], Float[Array, " n"]]:
    r"""``(u, stderr, ∇_q u, stderr of ∇_q u)`` from one set of paths.

    Same arguments and conventions as :func:`feynman_kac_local_entropy`.
    ``∇_q u = Σ_i p_i ∇_q[U(X_i(q))]`` (the pathwise, tilted gradient;
    ``p = softmax(−U(X)/ν)``), the per-path gradients by one reverse pass
    each (vmapped over paths: the cost of one ``jax.grad`` of the sum), so the
    whole call costs ``num_paths`` gradient evaluations of ``U`` plus one
    reverse pass through each path's steps. Its standard error is the
    delta-method (ratio estimator) one, per component:
    ``√(N/(N−1) Σ p_i² (g_i − ∇u)²)``. The gradient is the Euclidean one
    (``∂u/∂q``); the Riemannian gradient is ``g⁻¹∂u``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> U = lambda x: 0.5 * jnp.sum(x**2)  # exact gradient q / (1 + τ)
        >>> u, se, grad, grad_se = feynman_kac_value_and_grad(
        ...     U, None, 0.5, 1.0, jnp.ones(2), jax.random.key(0), num_paths=4096)
        >>> bool(jnp.all(abs(grad - 0.5) < 4 * grad_se))
        True
    """
    _check_options(solver_options)
    nu, q, num_paths, ends = _path_sampler(
        U, metric, nu, tau, q, num_paths, solver_options
    )
    keys = jax.random.split(check_single_key(key), num_paths)

    def path_value(p, path_key):
        # One path per call (its key reproduces its Brownian motion), so the
        # vmap over paths gives every path's own gradient at one reverse pass.
        return U(ends(p, path_key[None])[0])

    values, grads = jax.vmap(jax.value_and_grad(path_value), in_axes=(None, 0))(q, keys)
    values = _finite_values(values)
    u, p, stderr = _weights(values, nu)
    grad = p @ grads
    n = values.shape[0]
    grad_stderr = jnp.sqrt(n / (n - 1) * (p**2) @ (grads - grad) ** 2)
    return u, stderr, grad, grad_stderr
