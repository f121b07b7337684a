"""Products of quotient charts acting on disjoint parts of a parameter pytree."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import lineax as lx
from jaxtyping import Array, PRNGKeyArray

from .._custom_types import Matrix, Point
from ._action import AbstractGroupAction, Params
from ._chart import AbstractQuotientChart


def _offsets(sizes) -> list[int]:
    """Split points of a concatenation of blocks of the given sizes."""
    out, total = [], 0
    for size in sizes[:-1]:
        total += size
        out.append(total)
    return out


class ProductAction(AbstractGroupAction):
    """The direct product of group actions on the entries of a dict of params.

    ``actions[name]`` acts on ``params[name]`` alone; a group element is the
    dict of the factors' elements, the algebra coordinates are the factors'
    concatenated in sorted-name order (the order in which JAX flattens dicts).

    Example:
        >>> import jax.numpy as jnp
        >>> from geomshock.charts import PositiveScaling
        >>> action = ProductAction({"v": PositiveScaling(), "w": PositiveScaling()})
        >>> moved = action.act({"v": jnp.ones(2), "w": jnp.ones(2)},
        ...                    action.exp(jnp.log(jnp.array([2.0, 3.0]))))
        >>> moved["v"].tolist(), moved["w"].tolist()
        ([2.0, 2.0], [3.0, 3.0])
    """

    _actions: tuple[tuple[str, AbstractGroupAction], ...]

    def __init__(self, actions: dict[str, AbstractGroupAction]):
        # Stored as sorted pairs: hashable (jit of bound methods) and in the
        # order JAX flattens dicts.
        self._actions = tuple(sorted(dict(actions).items()))

    @property
    def actions(self) -> dict[str, AbstractGroupAction]:
        return dict(self._actions)

    @property
    def _names(self) -> list[str]:
        return [n for n, _ in self._actions]

    @property
    def algebra_dim(self) -> int:
        return sum(a.algebra_dim for a in self.actions.values())

    def _split(self, xi) -> dict:
        sizes = [self.actions[n].algebra_dim for n in self._names]
        return dict(zip(self._names, jnp.split(xi, _offsets(sizes)), strict=True))

    def exp(self, xi):
        return {n: self.actions[n].exp(x) for n, x in self._split(xi).items()}

    def tangent_map(self, xi):
        return {n: self.actions[n].tangent_map(x) for n, x in self._split(xi).items()}

    def act(self, params, g):
        return {n: self.actions[n].act(params[n], g[n]) for n in self._names}


class ProductChart(AbstractQuotientChart):
    r"""The product of quotient charts, each acting on its own part of the params.

    ``charts`` maps names to charts; params are a dict with the same names,
    ``params[name]`` of ``charts[name].params_shape``. The group is the direct
    product of the factors' groups (:class:`ProductAction`), so

    - coordinates: the factors' ``q`` concatenated in sorted-name order,
      ``dim = Σ dim_i``;
    - ``metric``: block diagonal, ``diag(g_1(q_1), g_2(q_2), ...)`` (orbit
      tangents of different factors live on disjoint parameters, so the
      horizontal projector and the pulled-back metric split by blocks);
      ``metric_operator`` applies the factors' matrix-free operators block by
      block;
    - ``gauge``: each factor's own ``gauge`` with an independent key (so a
      factor that also permutes units, :class:`CanonicalOrderChart`, does so).

    ``apply(params, x)`` is ``forward(params, x)`` when a ``forward`` callable
    is given (the network that the product parametrises, composed by the
    caller, e.g. :class:`TransformerBlockChart`); without it, every factor is
    applied to the same ``x`` and the outputs are returned as a dict.

    Example:
        >>> import jax.numpy as jnp
        >>> from geomshock.charts import SphereChart, TwoLayerReLUChart
        >>> chart = ProductChart({"net": TwoLayerReLUChart(1, 1),
        ...                       "w": SphereChart((2,))})
        >>> params = {"net": {"a": jnp.array([2.0]), "u": jnp.array([[1.0, 0.0]]),
        ...                   "c": jnp.array(0.5)}, "w": jnp.array([3.0, 4.0])}
        >>> chart.dim
        4
        >>> chart.project(params).round(4).tolist()  # (γ, φ, c) then the sphere
        [2.0, 0.0, 0.5, 0.3333]
    """

    _charts: tuple[tuple[str, AbstractQuotientChart], ...]
    forward: Callable[[Params, Array], Array] | None

    def __init__(
        self,
        charts: dict[str, AbstractQuotientChart],
        forward: Callable[[Params, Array], Array] | None = None,
    ):
        if not isinstance(charts, dict) or not charts:
            raise ValueError(
                "ProductChart needs a non-empty dict name -> chart, got "
                f"{type(charts).__name__}"
            )
        if not all(isinstance(name, str) for name in charts):
            raise ValueError(f"ProductChart: names must be strings, got {list(charts)}")
        # Sorted pairs: hashable (jit of bound methods), in JAX's dict order.
        self._charts = tuple(sorted(charts.items()))
        self.forward = forward

    @property
    def charts(self) -> dict[str, AbstractQuotientChart]:
        """The factors, ``{name: chart}``."""
        return dict(self._charts)

    def __check_init__(self):
        for name, chart in self._charts:
            if not isinstance(chart, AbstractQuotientChart):
                raise ValueError(
                    f"ProductChart: charts[{name!r}] must be a quotient chart "
                    f"(AbstractQuotientChart), got {type(chart).__name__}"
                )
        if self.forward is not None and not callable(self.forward):
            raise ValueError("ProductChart: forward must be callable or None")

    @property
    def names(self) -> list[str]:
        """The factors' names in coordinate order (sorted)."""
        return [n for n, _ in self._charts]

    @property
    def action(self) -> ProductAction:
        return ProductAction({n: c.action for n, c in self.charts.items()})

    @property
    def params_shape(self):
        return {n: c.params_shape for n, c in self.charts.items()}

    @property
    def dim(self) -> int:
        return sum(c.dim for c in self.charts.values())

    @property
    def horizontal_gauge(self) -> bool:
        """True when every factor's gauge is horizontal (the blocks are independent)."""
        return all(c.horizontal_gauge for c in self.charts.values())

    def split(self, q: Point) -> dict[str, Point]:
        """The factors' coordinates ``{name: q_name}`` of a product point ``q``."""
        sizes = [self.charts[n].dim for n in self.names]
        return dict(zip(self.names, jnp.split(q, _offsets(sizes)), strict=True))

    def project(self, params: Params) -> Point:
        p = self.check_params(params)
        return jnp.concatenate([self.charts[n].project(p[n]) for n in self.names])

    def lift(self, q: Point) -> Params:
        parts = self.split(self.check_point(q))
        return {n: self.charts[n].lift(x) for n, x in parts.items()}

    def apply(self, params: Params, x: Array):
        p = self.check_params(params)
        if self.forward is not None:
            return self.forward(p, x)
        return {n: self.charts[n].apply(p[n], x) for n in self.names}

    def metric(self, q: Point) -> Matrix:
        """Block-diagonal metric ``diag(g_i(q_i))`` (sorted-name order)."""
        parts = self.split(self.check_point(q))
        return jsl.block_diag(*[self.charts[n].metric(x) for n, x in parts.items()])

    def metric_operator(
        self, q: Point, *, solver: lx.AbstractLinearSolver | None = None
    ) -> lx.FunctionLinearOperator:
        """Matrix-free block-diagonal metric: each factor's ``metric_operator``
        on its block of the vector (``solver`` passed to every factor)."""
        q = self.check_point(q)
        operators = [
            self.charts[n].metric_operator(x, solver=solver)
            for n, x in self.split(q).items()
        ]

        def matvec(v):
            blocks = self.split(v).values()
            return jnp.concatenate(
                [op.mv(b) for op, b in zip(operators, blocks, strict=True)]
            )

        return lx.FunctionLinearOperator(
            matvec,
            jax.ShapeDtypeStruct(q.shape, q.dtype),
            (lx.symmetric_tag, lx.positive_semidefinite_tag),
        )

    def gauge(self, params: Params, key: PRNGKeyArray, scale: float = 0.5) -> Params:
        """Each factor's ``gauge`` with its own key (independent symmetries)."""
        p = self.check_params(params)
        keys = jax.random.split(key, len(self.names))
        return {
            n: self.charts[n].gauge(p[n], k, scale)
            for n, k in zip(self.names, keys, strict=True)
        }


class TrivialAction(AbstractGroupAction):
    """The trivial group (``algebra_dim = 0``): every element acts as the identity.

    Example:
        >>> import jax.numpy as jnp
        >>> TrivialAction().act(jnp.ones(2), TrivialAction().exp(jnp.zeros(0))).tolist()
        [1.0, 1.0]
    """

    @property
    def algebra_dim(self) -> int:
        return 0

    def exp(self, xi):
        return xi

    def act(self, params, g):
        return params


class EuclideanChart(AbstractQuotientChart):
    """Parameters without symmetry (a factor of a :class:`ProductChart`): an array
    of ``shape``, ``q`` its flattening, the Euclidean metric ``I``.

    ``apply(params, x)`` returns ``x + params`` (a learned shift, e.g. a
    LayerNorm bias once its gain is gauge-fixed).

    Example:
        >>> import jax.numpy as jnp
        >>> EuclideanChart((2,)).project(jnp.array([1.0, 2.0])).tolist()
        [1.0, 2.0]
    """

    shape: tuple[int, ...]

    def __check_init__(self):
        ok = isinstance(self.shape, tuple) and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1
            for s in self.shape
        )
        if not ok:
            raise ValueError(
                f"EuclideanChart: shape must be a tuple of positive ints, got "
                f"{self.shape!r}"
            )

    @property
    def action(self) -> TrivialAction:
        return TrivialAction()

    @property
    def params_shape(self):
        return jax.ShapeDtypeStruct(self.shape, jnp.result_type(float))

    @property
    def dim(self) -> int:
        size = 1
        for s in self.shape:
            size *= s
        return size

    @property
    def horizontal_gauge(self) -> bool:
        """True: no symmetry, every direction is horizontal."""
        return True

    def project(self, params: Params) -> Point:
        return self.check_params(params).reshape(-1)

    def lift(self, q: Point) -> Params:
        return self.check_point(q).reshape(self.shape)

    def apply(self, params: Params, x: Array) -> Array:
        return jnp.asarray(x) + self.check_params(params)

    def metric(self, q: Point) -> Matrix:
        q = self.check_point(q)
        return jnp.eye(self.dim, dtype=q.dtype)

    def metric_operator(
        self, q: Point, *, solver: lx.AbstractLinearSolver | None = None
    ) -> lx.FunctionLinearOperator:
        q = self.check_point(q)
        return lx.FunctionLinearOperator(
            lambda v: v,
            jax.ShapeDtypeStruct(q.shape, q.dtype),
            (lx.symmetric_tag, lx.positive_semidefinite_tag),
        )
