"""Mean-field two-layer networks: particles pushed forward to the quotient."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._chart import check_inputs
from ._sphere_coords import normalize


class EmpiricalMeasure(eqx.Module):
    """``Σ_i w_i δ_{x_i}``: ``points`` of shape ``(N, p)``, ``weights`` ``(N,)``
    summing to one."""

    points: Float[Array, "N p"]
    weights: Float[Array, " N"]


def _pairwise_distances(x, y):
    d2 = jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
    # sqrt is not differentiable at 0 (the diagonal of a self-distance matrix).
    safe = jnp.where(d2 > 0, d2, 1.0)
    return jnp.where(d2 > 0, jnp.sqrt(safe), 0.0)


def energy_distance(mu: EmpiricalMeasure, nu: EmpiricalMeasure) -> Array:
    r"""Squared energy distance ``2 E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖`` (≥ 0, zero iff
    ``μ = ν``) between weighted empirical measures (``X, X' ~ μ``, ``Y, Y' ~ ν``
    independent). ``scipy.stats.energy_distance`` returns the square root of
    this in one dimension. Supports ``jit``, ``vmap`` and ``grad``.
    """
    if mu.points.shape[1:] != nu.points.shape[1:]:
        raise ValueError(
            "energy_distance needs points of the same dimension, got "
            f"{mu.points.shape} and {nu.points.shape}"
        )
    cross = mu.weights @ _pairwise_distances(mu.points, nu.points) @ nu.weights
    self_mu = mu.weights @ _pairwise_distances(mu.points, mu.points) @ mu.weights
    self_nu = nu.weights @ _pairwise_distances(nu.points, nu.points) @ nu.weights
    return 2 * cross - self_mu - self_nu


def gaussian_mmd(mu: EmpiricalMeasure, nu: EmpiricalMeasure, bandwidth: float) -> Array:
    """Squared maximum mean discrepancy with kernel ``exp(−‖x−y‖²/(2 h²))``."""

    def kernel_mean(a, b):
        d2 = jnp.sum((a.points[:, None] - b.points[None]) ** 2, axis=-1)
        return a.weights @ jnp.exp(-d2 / (2 * bandwidth**2)) @ b.weights

    return kernel_mean(mu, mu) + kernel_mean(nu, nu) - 2 * kernel_mean(mu, nu)


class MeanFieldChart(eqx.Module):
    r"""Mean-field two-layer ReLU net ``f(x) = (1/N) Σ_j a_j relu(u_jᵀ (x, 1))``.

    The parameters are the particles ``{"a": (N,), "u": (N, in_dim + 1)}``
    (any ``N``): the empirical measure ``μ = (1/N) Σ δ_{(a_j, u_j)}``. The
    symmetry is per-particle rescaling ``(a, u) → (a/c, c u)`` plus particle
    permutations (the measure ignores order). ``push_forward`` maps ``μ`` to
    ``π_# μ`` on the quotient ``R × S^{in_dim}``, each particle to
    ``(γ_j, s_j) = (a_j ‖u_j‖, u_j/‖u_j‖)`` in the embedding
    ``R × S^{in_dim} ⊂ R^{in_dim + 2}`` (Thm. 5.4 of the paper). Compare
    measures with :func:`energy_distance` or :func:`gaussian_mmd`.
    """

    in_dim: int

    def __check_init__(self):
        if isinstance(self.in_dim, bool) or not isinstance(self.in_dim, int):
            raise ValueError(
                f"MeanFieldChart: in_dim must be an int, got {self.in_dim!r}"
            )
        if self.in_dim < 1:
            raise ValueError(f"MeanFieldChart: in_dim must be >= 1, got {self.in_dim}")

    def _check(self, params):
        ok = isinstance(params, dict) and set(params) == {"a", "u"}
        if ok:
            a, u = jnp.asarray(params["a"]), jnp.asarray(params["u"])
            ok = a.ndim == 1 and u.shape == (a.shape[0], self.in_dim + 1)
        if not ok:
            got = jax.tree_util.tree_map(jnp.shape, params)
            raise ValueError(
                "MeanFieldChart expects particles {'a': (N,), 'u': (N, "
                f"{self.in_dim + 1})}}, got {got}"
            )
        f = jnp.result_type(float)
        return {"a": a.astype(f), "u": u.astype(f)}

    def push_forward(self, params) -> EmpiricalMeasure:
        """``π_# μ`` as an :class:`EmpiricalMeasure` on ``R × S^{in_dim}``."""
        p = self._check(params)
        s, r = normalize(p["u"], "a particle's weight vector u_j (dead particle)")
        points = jnp.concatenate([(p["a"] * r)[:, None], s], axis=1)
        n = p["a"].shape[0]
        return EmpiricalMeasure(points, jnp.full((n,), 1.0 / n, points.dtype))

    def lift(self, measure: EmpiricalMeasure):
        """Balanced particles ``|a_j| = ‖u_j‖`` of an equally weighted measure."""
        gamma, s = measure.points[:, 0], measure.points[:, 1:]
        r = jnp.sqrt(jnp.abs(gamma))
        return {"a": jnp.sign(gamma) * r, "u": r[:, None] * s}

    def apply(self, params, x: Array) -> Array:
        """``f(x)`` for inputs of shape ``(..., in_dim)``."""
        p = self._check(params)
        x = check_inputs(x, self.in_dim, "MeanFieldChart")
        xt = jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1)
        return jax.nn.relu(xt @ p["u"].T) @ p["a"] / p["a"].shape[0]

    def gauge(self, params, key: PRNGKeyArray, scale: float = 0.5):
        """Random per-particle rescaling and a random permutation of particles."""
        p = self._check(params)
        k_scale, k_perm = jax.random.split(key)
        n = p["a"].shape[0]
        c = jnp.exp(scale * jax.random.normal(k_scale, (n,)))
        perm = jax.random.permutation(k_perm, n)
        return {"a": (p["a"] / c)[perm], "u": (p["u"] * c[:, None])[perm]}
