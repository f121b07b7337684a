"""Minibatch noise models: where SGD's martingale noise ``M`` comes from.

A noise model does two things: it draws one minibatch for an SGD step
(``sample``), and it produces a weighted set of minibatches over which the
drift ``E[∇loss]`` and the covariance ``Cov(DΦ ∇loss)`` are averaged
(``draw``), either exactly (every minibatch of a finite set) or by Monte Carlo.
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._checks import is_concrete
from ._checks import check_single_key


class AbstractMinibatchNoise(eqx.Module):
    """Interface of a minibatch noise model (see ``SampledMinibatches``,
    ``AllMinibatches``)."""

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray) -> PyTree:
        """One minibatch, as passed to ``loss(params, batch)``."""

    @abc.abstractmethod
    def draw(self, key: PRNGKeyArray | None) -> tuple[PyTree, Float[Array, " k"], int]:
        """``(batches, weights, ddof)``: minibatches stacked on a leading axis of
        length ``k``, their probabilities (summing to 1) and the degrees of
        freedom lost in the covariance estimate (1 for Monte Carlo, 0 if exact)."""


class SampledMinibatches(AbstractMinibatchNoise):
    """Minibatches from a sampler ``key -> batch``; moments by Monte Carlo.

    ``draw`` evaluates ``sampler`` at ``num_samples`` keys split from ``key``
    and weights them equally; the covariance then uses the unbiased ``1/(k−1)``
    normalisation. Reusing one ``key`` at several parameter points gives common
    random numbers, so the spread of the moments along an orbit is free of
    Monte-Carlo error.
    """

    sampler: Callable[[PRNGKeyArray], PyTree]
    num_samples: int = eqx.field(static=True)

    def __check_init__(self):
        if not callable(self.sampler):
            raise ValueError(
                f"sampler must be a callable key -> batch, got {type(self.sampler)}"
            )
        if not isinstance(self.num_samples, int) or self.num_samples < 2:
            raise ValueError(
                f"num_samples must be an int >= 2, got {self.num_samples!r}"
            )

    def sample(self, key):
        return self.sampler(key)

    def draw(self, key):
        key = check_single_key(key, "key (needed to draw Monte-Carlo minibatches)")
        batches = jax.vmap(self.sampler)(jax.random.split(key, self.num_samples))
        weights = jnp.full((self.num_samples,), 1.0 / self.num_samples)
        return batches, weights, 1


class AllMinibatches(AbstractMinibatchNoise):
    """A finite set of minibatches, stacked on a leading axis; exact moments.

    ``batches`` is a pytree whose leaves all have the same leading length
    ``k >= 2`` (entry ``i`` of every leaf forms minibatch ``i``). ``weights``
    (default uniform) are their probabilities; they are normalised to sum to 1.
    Batch size 1 from a data set of ``N`` points is simply the data set itself.
    """

    batches: PyTree
    weights: Float[Array, " k"] | None = None

    def __check_init__(self):
        leaves = jax.tree_util.tree_leaves(self.batches)
        if not leaves:
            raise ValueError("batches must contain at least one array")
        lengths = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in leaves}
        if None in lengths or len(lengths) != 1:
            raise ValueError(
                "every leaf of batches must have the same leading (minibatch) axis; "
                f"got leading lengths {sorted(map(str, lengths))}"
            )
        (k,) = lengths
        if k < 2:
            raise ValueError(f"need at least 2 minibatches, got {k}")
        if self.weights is not None:
            shape = jnp.shape(self.weights)
            if shape != (k,):
                raise ValueError(
                    f"weights must have shape ({k},) (one per minibatch), got {shape}"
                )
            if is_concrete(self.weights):
                w = np.asarray(self.weights, dtype=float)
                if np.any(w < 0) or not w.sum() > 0:
                    raise ValueError(
                        "weights must be nonnegative with a positive sum, got "
                        f"min {w.min()} and sum {w.sum()}"
                    )

    @property
    def num_batches(self) -> int:
        return jnp.shape(jax.tree_util.tree_leaves(self.batches)[0])[0]

    def _probabilities(self):
        if self.weights is None:
            k = self.num_batches
            return jnp.full((k,), 1.0 / k)
        w = jnp.asarray(self.weights)
        w = eqx.error_if(
            w, jnp.any(w < 0) | ~(jnp.sum(w) > 0), "weights must be nonnegative"
        )
        return w / jnp.sum(w)

    def sample(self, key):
        index = jax.random.choice(key, self.num_batches, p=self._probabilities())
        return jax.tree_util.tree_map(lambda leaf: leaf[index], self.batches)

    def draw(self, key=None):
        return self.batches, self._probabilities(), 0
