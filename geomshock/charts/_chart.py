"""The abstract quotient chart: project, lift, metric, gauge."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._checks import default_float, finite_array, finite_tree
from .._custom_types import Matrix, Point
from ._action import (
    AbstractGroupAction,
    Params,
    quotient_metric,
    quotient_metric_operator,
)


class AbstractQuotientChart(eqx.Module):
    """A gauge-fixed chart ``Φ = χ∘π`` of the quotient ``Θ_reg / G``.

    Concrete charts define ``action``, ``params_shape`` (a pytree of
    ``jax.ShapeDtypeStruct`` giving the expected parameter structure), ``dim``,
    ``project``, ``lift`` and ``apply`` (the network function). ``metric``,
    ``metric_operator`` and ``gauge`` are derived here: the metric by autodiff
    of ``lift`` (:func:`quotient_metric`), never typed in by hand.

    Points off the regular stratum raise a ``ValueError`` (static problems) or
    an equinox runtime error (traced values), never a NaN. Every ``project``,
    ``lift``, ``apply`` and ``gauge`` goes through :meth:`check_params` or
    :meth:`check_point`, which refuse NaN/inf entries up front ("non-finite
    input": a ``ValueError`` for known values, an equinox runtime error under
    ``jit``), so a concrete chart gets that contract by calling them.
    """

    @property
    @abc.abstractmethod
    def action(self) -> AbstractGroupAction:
        """The continuous symmetry group acting on the parameters."""

    @property
    @abc.abstractmethod
    def params_shape(self) -> PyTree[jax.ShapeDtypeStruct]:
        """Expected parameter structure and shapes."""

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Dimension ``m`` of the quotient coordinates ``q``."""

    @abc.abstractmethod
    def project(self, params: Params) -> Point:
        """``q = Φ(θ)``, invariant under ``gauge``."""

    @abc.abstractmethod
    def lift(self, q: Point) -> Params:
        """The gauge-fixed representative ``σ(q)``, with ``project(lift(q)) == q``."""

    @abc.abstractmethod
    def apply(self, params: Params, x: Array) -> Array:
        """The network function at inputs ``x`` (unchanged by ``gauge``)."""

    def check_params(self, params: Params) -> Params:
        """``params`` as float arrays, checked: expected structure and shapes
        (``ValueError``) and finite entries (non-finite input error)."""
        owner = type(self).__name__
        params = check_structure(params, self.params_shape, owner)
        return finite_tree(params, f"the params given to {owner}")

    def check_point(self, q) -> Point:
        """``q`` as a float array, checked: shape ``(dim,)`` (``ValueError``) and
        finite entries (non-finite input error)."""
        q = jnp.asarray(q)
        if q.shape != (self.dim,):
            raise ValueError(
                f"{type(self).__name__} expects a point q of shape ({self.dim},), "
                f"got shape {q.shape}; use jax.vmap for many points"
            )
        return finite_array(q, f"the point q given to {type(self).__name__}")

    def metric(self, q: Point) -> Matrix:
        """Quotient metric ``g_ij = <P_H ∂_iσ, P_H ∂_jσ>`` at ``q`` (autodiff of
        ``lift``); ``(dim, dim)``, symmetric positive definite on the stratum.
        Supports ``jit``, ``vmap`` over ``q`` and ``grad``."""
        return quotient_metric(self.lift, self.action, self.check_point(q))

    def metric_operator(
        self, q: Point, *, solver: lx.AbstractLinearSolver | None = None
    ) -> lx.FunctionLinearOperator:
        """Matrix-free metric at ``q`` as a lineax operator (for large ``dim``);
        ``solver`` is passed to :func:`quotient_metric_operator`."""
        return quotient_metric_operator(
            self.lift, self.action, self.check_point(q), solver=solver
        )

    @property
    def horizontal_gauge(self) -> bool:
        """Whether the gauge is horizontal: the section's image ``B = σ(M)`` has
        tangent space ``T_θB = H_θ`` (the complement of the orbit tangents) at
        every ``θ ∈ B``. Then ``P_H Dσ = Dσ``, the quotient metric is the metric
        that ``B`` inherits from the Euclidean parameters, and the covariant
        Hessian of ``U = loss∘σ`` is that of ``loss`` restricted to ``B``:
        ``P_H(∇²loss v + (D_v P_H)∇loss)`` on ``H``, with no metric solve
        (:func:`~geomshock.diagnostics.quotient_curvature` uses it). True for
        the minimum-norm gauge of a rescaling group (its tangent space is
        ``{δθ : ⟨δθ, ξ_a·θ⟩ = 0}``, the generators being symmetric) and for
        unit-sphere gauges; ``False`` (the default) promises nothing."""
        return False

    def gauge(self, params: Params, key: PRNGKeyArray, scale: float = 0.5) -> Params:
        """Apply a random element ``exp(scale·ξ)``, ``ξ ~ N(0, I)``, of the
        continuous symmetry group: same network function, same ``project``."""
        params = self.check_params(params)
        return self.action.act(params, self.action.random_element(key, scale))


def check_inputs(x, features: int, owner: str, *, sequence: bool = False) -> Array:
    """Network inputs ``x`` as a float array of shape ``(..., features)``
    (``sequence=True``: ``(..., T, features)``); a ``ValueError`` naming the
    expected shape otherwise. Integer inputs become the default float dtype,
    float inputs keep theirs."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.ndim < (2 if sequence else 1) or x.shape[-1] != features:
        shape = f"(..., T, {features})" if sequence else f"(..., {features})"
        raise ValueError(
            f"{owner} expects inputs of shape {shape}, got shape {x.shape}"
        )
    return x


def check_structure(params, expected, owner: str):
    """``ValueError`` unless ``params`` matches ``expected`` in structure and shapes.

    Unlike :func:`geomshock._checks.check_structure` the containers need only
    flatten like ``expected`` (a list where a tuple is expected is accepted);
    leaves become arrays of the default float dtype."""
    try:
        leaves = jax.tree_util.tree_structure(expected).flatten_up_to(params)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{owner} expects params with structure "
            f"{_describe(expected)}, got {_describe(params)}"
        ) from err
    for leaf, spec in zip(leaves, jax.tree_util.tree_leaves(expected), strict=True):
        shape = jnp.shape(leaf)
        if shape != spec.shape:
            raise ValueError(
                f"{owner} expects params with shapes {_describe(expected)}, "
                f"got {_describe(params)}"
            )
    dtype = default_float()
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=dtype), params)


def _describe(tree) -> str:
    return str(jax.tree_util.tree_map(lambda x: tuple(jnp.shape(x)), tree))


class AbstractPermutableChart(AbstractQuotientChart):
    """A quotient chart whose units (hidden units, channels, heads) can also be
    permuted: the interface :class:`CanonicalOrderChart` needs.

    Besides the :class:`AbstractQuotientChart` methods, a concrete chart defines
    ``permutation_keys`` (one sort key per unit, per group of permutable units,
    invariant under the continuous group and moved along by permutations) and
    ``permute`` (reorder the units without changing the network function).
    """

    @abc.abstractmethod
    def permutation_keys(self, q: Point) -> tuple[Array, ...]:
        """One 1-D array of sort keys per group of permutable units, at ``q``."""

    @abc.abstractmethod
    def permute(self, params: Params, perms: tuple[Array, ...]) -> Params:
        """``params`` with group ``i``'s units reordered by ``perms[i]``."""
