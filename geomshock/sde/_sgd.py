"""SGD in parameter space (optax), projected onto a quotient chart."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._checks import check_structure, finite_tree, positive_scalar
from ._chart import ProjectingChart, SectionChart, require_chart
from ._checks import check_seed_keys, check_vector_output, float_dtype_of
from ._noise import AbstractMinibatchNoise
from ._projectability import Loss, _check_loss, _check_noise


class ProjectedSGDPath(eqx.Module):
    """Projected SGD trajectories.

    ``ts[i] = η · n_i`` (the SDE time of step ``n_i``); ``ys[s, i] = Φ(θ_{n_i})``
    for seed ``s``; ``params`` are the final parameters, one per seed (a
    leading seed axis on every leaf).
    """

    ts: Float[Array, " t"]
    ys: Float[Array, "s t m"]
    params: PyTree


def projected_sgd(
    loss: Loss,
    chart: ProjectingChart | SectionChart,
    params0: PyTree,
    noise: AbstractMinibatchNoise,
    *,
    learning_rate,
    num_steps: int,
    keys: PRNGKeyArray,
    optimizer: optax.GradientTransformation | None = None,
    regauge: bool = False,
    save_every: int = 1,
    per_seed: bool = False,
) -> ProjectedSGDPath:
    r"""Run minibatch SGD in parameter space, one run per key, and project it.

    ``θ_{n+1} = θ_n − η ∇loss(θ_n, batch_{n+1})`` (``optax.sgd(η)`` unless
    ``optimizer`` is given), ``batch_{n+1} = noise.sample(fold_in(key, n))``,
    recorded as ``Y_n = Φ(θ_n) = chart.project(θ_n)`` at times ``t = η n``
    (the time of the quotient SDE ``dY = −b dt + sqrt(η) σ dB``).

    Args:
        loss: ``loss(params, batch) -> scalar``.
        chart: a :class:`ProjectingChart` (anything with ``project``), a
            :class:`SectionChart` (also ``lift``) if ``regauge``.
        params0: the initial parameters, shared by every seed; with
            ``per_seed=True``, one set per seed: every leaf has a leading axis
            of length ``len(keys)`` (run ``s`` starts from ``params0[s]`` with
            ``keys[s]``, exactly as a run of that seed alone).
        noise: the minibatch noise model (``SampledMinibatches`` or
            ``AllMinibatches``).
        learning_rate: ``η > 0`` (a Python float, or a traced scalar so that
            sweeps can ``jax.vmap`` over it). With a custom ``optimizer`` it
            only sets the time scale ``t = η n``.
        num_steps: number of SGD steps (static).
        keys: a batch of PRNG keys, one run per key (``jax.random.split``).
        optimizer: an optax transformation; default ``optax.sgd(learning_rate)``.
        regauge: replace ``θ`` by ``lift(project(θ))`` at the start and after
            every step (SGD that keeps the gauge, e.g. the paper's "balanced
            gauge kept"); then ``Y_n`` is exactly a Markov chain in the chart.
            The optimizer state is not transported, so use it with stateless
            optimizers such as SGD.
        save_every: record every ``save_every`` steps (must divide ``num_steps``).
        per_seed: whether ``params0`` carries a leading seed axis (see above).

    Returns:
        ``ProjectedSGDPath(ts, ys, params)`` with ``ts`` of length
        ``num_steps // save_every + 1`` (starting at 0).

    Works under ``jax.jit``, ``jax.vmap`` (over ``learning_rate``, ``params0``;
    seeds are the ``keys`` axis) and ``jax.grad`` (pathwise, for fixed keys).
    Computes in the parameters' float dtype (float32 parameters give float32
    paths). Non-finite ``params0`` or ``learning_rate`` are refused up front;
    a run that leaves the chart's domain or diverges fails with an error
    instead of returning NaN.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from geomshock.sde import AllMinibatches, FunctionChart
        >>> chart = FunctionChart(project=lambda p: p)
        >>> loss = lambda p, t: 0.5 * jnp.sum((p - t) ** 2)
        >>> data = AllMinibatches(jnp.array([[1.0], [3.0]]))
        >>> keys = jax.random.split(jax.random.key(0), 3)
        >>> path = projected_sgd(
        ...     loss, chart, jnp.zeros(1), data, learning_rate=0.5, num_steps=4,
        ...     keys=keys,
        ... )
        >>> path.ys.shape  # (seeds, saved steps, m)
        (3, 5, 1)
    """
    _check_noise(noise)
    project = require_chart(chart, ProjectingChart, "projected_sgd").project
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}")
    if not isinstance(save_every, int) or save_every < 1 or num_steps % save_every:
        raise ValueError(
            f"save_every must be a positive int dividing num_steps={num_steps}, "
            f"got {save_every!r}"
        )
    keys, num_seeds = check_seed_keys(keys)
    params0 = finite_tree(params0, "params0")
    one = _one_seed(params0, num_seeds) if per_seed else params0
    learning_rate = positive_scalar(
        learning_rate, "learning_rate", dtype=float_dtype_of(params0)
    )
    check_vector_output(project, one, "chart.project", None)
    _check_loss(loss, one, jax.eval_shape(noise.sample, keys[0]))
    if regauge:
        lift = require_chart(chart, SectionChart, "projected_sgd(regauge=True)").lift
        check_structure(
            jax.eval_shape(lambda p: lift(project(p)), one), one, "chart.lift", "params"
        )
    setup = (
        loss,
        chart,
        noise,
        optimizer,
        regauge,
        num_steps // save_every,
        save_every,
        per_seed,
    )
    ys, params = _run(setup, params0, learning_rate, keys)
    ys = eqx.error_if(
        ys,
        ~jnp.all(jnp.isfinite(ys)),
        "projected SGD produced non-finite coordinates (divergence or a point "
        "off the chart's domain); lower the learning rate",
    )
    ts = learning_rate * save_every * jnp.arange(ys.shape[1], dtype=ys.dtype)
    return ProjectedSGDPath(ts=ts, ys=ys, params=params)


def _one_seed(params0, num_seeds: int):
    """The structure of one seed's ``params0`` (``per_seed=True``), checked."""
    for leaf in jax.tree_util.tree_leaves(params0):
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != num_seeds:
            raise ValueError(
                "with per_seed=True every leaf of params0 needs a leading seed "
                f"axis of length len(keys) = {num_seeds}; got a leaf of shape "
                f"{jnp.shape(leaf)}"
            )
    return jax.tree_util.tree_map(lambda x: x[0], params0)


@eqx.filter_jit
def _run(setup, params0, learning_rate, keys):
    loss, chart, noise, optimizer, regauge, num_blocks, save_every, per_seed = setup
    opt = optax.sgd(learning_rate) if optimizer is None else optimizer

    def fix(params):
        return chart.lift(chart.project(params)) if regauge else params

    def run(key, params0):
        start = fix(params0)

        def step(carry, n):
            params, state = carry
            batch = noise.sample(jax.random.fold_in(key, n))
            grads = jax.grad(loss)(params, batch)
            updates, state = opt.update(grads, state, params)
            return (fix(optax.apply_updates(params, updates)), state), None

        def block(carry, j):
            steps = j * save_every + jnp.arange(save_every)
            carry, _ = jax.lax.scan(step, carry, steps)
            return carry, chart.project(carry[0])

        init = (start, opt.init(start))
        (params, _), ys = jax.lax.scan(block, init, jnp.arange(num_blocks))
        return jnp.concatenate([chart.project(start)[None], ys]), params

    return jax.vmap(run, in_axes=(0, 0 if per_seed else None))(keys, params0)
