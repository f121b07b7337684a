"""A pre-LN Transformer block quotiented by its continuous symmetries."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._checks import positive_int, positive_scalar
from .._custom_types import Point
from ._action import AbstractGroupAction, Params
from ._attention import HeadGL, MultiHeadAttentionChart
from ._chart import AbstractQuotientChart, check_inputs
from ._layered import LayeredRescaling, ReLUMLPChart
from ._product import EuclideanChart, ProductChart


class TransformerBlockSymmetry(AbstractGroupAction):
    """The continuous symmetries of :class:`TransformerBlockChart`'s block.

    Group elements ``(t1, (A, B), t2, s)``, algebra coordinates in that order:

    - ``t1 ∈ R^d``: LayerNorm-1 gain and bias ``× e^{t1}``, rows ``i`` (input
      feature) of every head's ``W_Q, W_K, W_V`` ``× e^{−t1_i}``;
    - ``(A, B)``: :class:`HeadGL` on the attention weights;
    - ``t2 ∈ R^d``: LayerNorm-2 gain and bias ``× e^{t2}``, columns of the MLP's
      first weight matrix ``× e^{−t2}``;
    - ``s ∈ R^{d_ff}``: :class:`LayeredRescaling` of the MLP's hidden units.

    Example:
        >>> TransformerBlockSymmetry(4, heads=2, d_k=2, d_v=1, d_ff=3).algebra_dim
        21
    """

    d_model: int
    heads: int
    d_k: int
    d_v: int
    d_ff: int

    @property
    def _head_gl(self) -> HeadGL:
        return HeadGL(self.heads, self.d_k, self.d_v)

    @property
    def algebra_dim(self) -> int:
        return 2 * self.d_model + self._head_gl.algebra_dim + self.d_ff

    def _split(self, xi):
        d, k = self.d_model, self._head_gl.algebra_dim
        return xi[:d], xi[d : d + k], xi[d + k : 2 * d + k], xi[2 * d + k :]

    def exp(self, xi):
        t1, gl, t2, s = self._split(xi)
        return t1, self._head_gl.exp(gl), t2, s

    def tangent_map(self, xi):
        t1, gl, t2, s = self._split(xi)
        return t1, self._head_gl.tangent_map(gl), t2, s

    def act(self, params, g):
        t1, gl, t2, s = g
        c1, c2 = jnp.exp(t1), jnp.exp(t2)
        attn = {
            name: w / c1[None, :, None] if name != "wo" else w
            for name, w in params["attn"].items()
        }
        first, second = params["mlp"]
        first = {**first, "W": first["W"] / c2[None, :]}
        mlp = LayeredRescaling((self.d_ff,)).act((first, second), s)
        return {
            "ln1": {k: v * c1 for k, v in params["ln1"].items()},
            "attn": self._head_gl.act(attn, gl),
            "ln2": {k: v * c2 for k, v in params["ln2"].items()},
            "mlp": mlp,
        }


def _nonzero_gain(gain, which: str):
    return eqx.error_if(
        gain,
        ~jnp.all(gain != 0),
        f"a LayerNorm-{which} gain entry is zero: the feature is switched off and "
        "its rescaling orbit degenerates (off the regular stratum of the "
        "gain rescaling)",
    )


def _layer_norm(x, eps):
    centred = x - jnp.mean(x, axis=-1, keepdims=True)
    return centred / jnp.sqrt(jnp.mean(centred**2, axis=-1, keepdims=True) + eps)


class TransformerBlockChart(AbstractQuotientChart):
    r"""A pre-LN Transformer block quotiented by its continuous symmetries.

    ``f(X) = H + MLP(LN₂(H))``, ``H = X + Attn(LN₁(X))`` for ``X: (..., T, d)``,
    with ``LN(x) = γ ⊙ (x − mean x)/sqrt(var x + ε) + β`` over features,
    ``Attn`` the multi-head self-attention of
    :class:`MultiHeadAttentionChart` and ``MLP(u) = W₂ relu(W₁ u + b₁) + b₂``.
    Params ``{"ln1": {"gain", "bias"}: (d,), "attn": {"wq", "wk", "wv",
    "wo"}, "ln2": {"gain", "bias"}: (d,), "mlp": ({"W": (d_ff, d), "b":
    (d_ff,)}, {"W": (d, d_ff), "b": (d,)})}``.

    Quotiented (:class:`TransformerBlockSymmetry`, ``2d + H(d_k² + d_v²) +
    d_ff`` generators): the LayerNorm gain rescalings (``γ_i, β_i → c_i γ_i,
    c_i β_i`` with the next layer's input row/column ``i`` divided by ``c_i``,
    exact for any ``ε``), the per-head ``GL(d_k) × GL(d_v)`` of attention, and
    the positive rescaling of every MLP hidden unit. Chart: the gains are
    absorbed into the next layer (``W'_{Q,K,V} = diag(γ₁) W_{Q,K,V}``,
    ``W'₁ = W₁ diag(γ₂)``, shifts ``β/γ``), which is invariant under the gain
    rescalings (also under sign flips ``c_i < 0``), and the absorbed weights
    are charted by the :class:`ProductChart` ``{"attn":
    MultiHeadAttentionChart, "ln1_shift": EuclideanChart, "mlp":
    ReLUMLPChart((d, d_ff, d)), "ln2_shift": EuclideanChart}``
    (:attr:`reduced`). ``lift`` puts ``γ = 1``, ``β = β/γ``. ``metric`` is the
    autodiff quotient metric of that section for the full group.

    Not quotiented (the chart is a quotient by a subgroup; these directions
    stay coordinates): head permutations and MLP unit permutations (discrete;
    ``gauge`` does not apply them), and the exact continuous symmetries that
    LayerNorm's centring creates (its normalised output is orthogonal to
    ``1``), written for the absorbed weights and shifts ``b = β/γ``: ``W'₁ →
    W'₁ + u 1ᵀ`` with ``b₁ → b₁ − (1ᵀb₂) u``, and ``W'_K → W'_K + 1 vᵀ`` per
    head (a key shift common to all positions, cancelled by the softmax);
    also ``b₂ → b₂ + δ`` with ``b₁ → b₁ − W'₁ δ`` (a LayerNorm bias feeding a
    layer with its own bias). They are not free actions of a group this chart
    fixes, so the metric treats them as genuine directions.

    Off the stratum: a zero LayerNorm gain entry; the attention and MLP
    factors' own conditions (rank-deficient heads, dead units).

    Example:
        >>> import jax
        >>> chart = TransformerBlockChart(d_model=3, heads=1, d_k=1, d_v=1, d_ff=2)
        >>> chart.dim, chart.action.algebra_dim
        (31, 10)
    """

    d_model: int
    heads: int
    d_k: int
    d_v: int
    d_ff: int
    eps: float = 1e-5

    def __check_init__(self):
        for name in ("d_model", "heads", "d_k", "d_v", "d_ff"):
            positive_int(getattr(self, name), f"TransformerBlockChart: {name}")
        positive_scalar(self.eps, "TransformerBlockChart: eps", allow_zero=True)

    @property
    def attention(self) -> MultiHeadAttentionChart:
        return MultiHeadAttentionChart(self.d_model, self.heads, self.d_k, self.d_v)

    @property
    def mlp(self) -> ReLUMLPChart:
        return ReLUMLPChart((self.d_model, self.d_ff, self.d_model))

    @property
    def reduced(self) -> ProductChart:
        """The product chart of the gain-absorbed parameters (:meth:`absorb`)."""
        shift = EuclideanChart((self.d_model,))
        return ProductChart(
            {"attn": self.attention, "ln1_shift": shift, "mlp": self.mlp,
             "ln2_shift": shift}
        )  # fmt: skip

    @property
    def action(self) -> TransformerBlockSymmetry:
        return TransformerBlockSymmetry(
            self.d_model, self.heads, self.d_k, self.d_v, self.d_ff
        )

    @property
    def params_shape(self):
        f = jnp.result_type(float)
        ln = {
            "gain": jax.ShapeDtypeStruct((self.d_model,), f),
            "bias": jax.ShapeDtypeStruct((self.d_model,), f),
        }
        return {
            "ln1": ln,
            "attn": self.attention.params_shape,
            "ln2": ln,
            "mlp": self.mlp.params_shape,
        }

    @property
    def dim(self) -> int:
        return self.reduced.dim

    def absorb(self, params: Params) -> Params:
        """The gain-absorbed parameters of :attr:`reduced`, invariant under the
        LayerNorm gain rescalings: ``W' = diag(γ) W``, shifts ``β/γ``."""
        p = self.check_params(params)
        g1 = _nonzero_gain(p["ln1"]["gain"], "1")
        g2 = _nonzero_gain(p["ln2"]["gain"], "2")
        attn = {
            name: w * g1[None, :, None] if name != "wo" else w
            for name, w in p["attn"].items()
        }
        first, second = p["mlp"]
        return {
            "attn": attn,
            "ln1_shift": p["ln1"]["bias"] / g1,
            "mlp": ({**first, "W": first["W"] * g2[None, :]}, second),
            "ln2_shift": p["ln2"]["bias"] / g2,
        }

    def project(self, params: Params) -> Point:
        return self.reduced.project(self.absorb(params))

    def lift(self, q: Point) -> Params:
        r = self.reduced.lift(self.check_point(q))
        ones = jnp.ones((self.d_model,), q.dtype)
        return {
            "ln1": {"gain": ones, "bias": r["ln1_shift"]},
            "attn": r["attn"],
            "ln2": {"gain": ones, "bias": r["ln2_shift"]},
            "mlp": tuple(r["mlp"]),
        }

    def branches(self, params: Params, x: Array) -> tuple[Array, Array]:
        """The attention and MLP branch outputs ``(Attn(LN₁(X)), MLP(LN₂(H)))``."""
        s = self.streams(params, x)
        return s["attn"], s["mlp"]

    def streams(self, params: Params, x: Array) -> dict[str, Array]:
        """The branches' inputs and outputs: ``{"ln1": LN₁(X), "attn":
        Attn(LN₁(X)), "ln2": LN₂(H), "mlp": MLP(LN₂(H))}``."""
        p = self.check_params(params)
        x = check_inputs(x, self.d_model, "TransformerBlockChart", sequence=True)

        def ln(u, which):
            return p[which]["gain"] * _layer_norm(u, self.eps) + p[which]["bias"]

        u1 = ln(x, "ln1")
        attn = self.attention.apply(p["attn"], u1)
        u2 = ln(x + attn, "ln2")
        return {"ln1": u1, "attn": attn, "ln2": u2, "mlp": self.mlp.apply(p["mlp"], u2)}

    def apply(self, params: Params, x: Array) -> Array:
        """The block output for inputs ``x`` of shape ``(..., T, d)`` (same shape)."""
        attn, mlp = self.branches(params, x)
        return jnp.asarray(x, dtype=attn.dtype) + attn + mlp
