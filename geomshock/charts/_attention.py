"""Multi-head attention quotiented by per-head GL(d_k) × GL(d_v)."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.linalg import expm
from jaxtyping import Array

from .._checks import positive_int, run_time_check
from .._custom_types import Point
from ._action import AbstractGroupAction, Params
from ._chart import AbstractPermutableChart, check_inputs

# Relative size below which a singular value / gap counts as zero.
_RANK_RTOL = 1e-10


class HeadGL(AbstractGroupAction):
    """Per head ``h``: ``W_Q → W_Q A``, ``W_K → W_K A^{−T}`` (``A ∈ GL(d_k)``) and
    ``W_V → W_V B``, ``W_O → B^{−1} W_O`` (``B ∈ GL(d_v)``).

    Group elements are ``(A, B)`` of shapes ``(H, d_k, d_k)``, ``(H, d_v, d_v)``;
    ``exp`` takes ``ξ ∈ R^{H(d_k² + d_v²)}`` (per head the row-major entries of
    the two algebra matrices) to their matrix exponentials.
    """

    heads: int
    d_k: int
    d_v: int

    @property
    def algebra_dim(self) -> int:
        return self.heads * (self.d_k**2 + self.d_v**2)

    def exp(self, xi):
        h, k, v = self.heads, self.d_k, self.d_v
        xi = xi.reshape(h, k * k + v * v)
        a = jax.vmap(expm)(xi[:, : k * k].reshape(h, k, k))
        b = jax.vmap(expm)(xi[:, k * k :].reshape(h, v, v))
        return a, b

    def tangent_map(self, xi):
        """``(I + ξ_A, I + ξ_B)``: the differential of ``expm`` at 0, cheaply."""
        h, k, v = self.heads, self.d_k, self.d_v
        xi = xi.reshape(h, k * k + v * v)
        a = jnp.eye(k, dtype=xi.dtype) + xi[:, : k * k].reshape(h, k, k)
        b = jnp.eye(v, dtype=xi.dtype) + xi[:, k * k :].reshape(h, v, v)
        return a, b

    def act(self, params, g):
        a, b = g
        return {
            "wq": params["wq"] @ a,
            "wk": jnp.swapaxes(
                jnp.linalg.solve(a, jnp.swapaxes(params["wk"], 1, 2)), 1, 2
            ),
            "wv": params["wv"] @ b,
            "wo": jnp.linalg.solve(b, params["wo"]),
        }


def _top_block_gauge(left, right, what: str):
    """``(L T⁻¹, T R)`` with ``T = L[:r]``: the representative whose left factor
    starts with the identity (a smooth chart of rank-r products ``L R``)."""
    r = left.shape[1]
    top = left[:r]
    sv = jnp.linalg.svd(top, compute_uv=False)
    # The check is threaded into ``top``, which both outputs use (a zero head
    # would otherwise give NaN under jit, the check removed as dead code).
    top = run_time_check(
        top,
        ~(sv[-1] > _RANK_RTOL * jnp.linalg.norm(left)),
        f"the top {r}×{r} block of {what} is singular (smallest singular value "
        f"<= {_RANK_RTOL:g} × ‖{what}‖, e.g. a zero head): outside this chart's "
        "domain (or the factor is rank-deficient); expected a head whose first "
        f"{r} rows of {what} are linearly independent",
    )
    return jnp.linalg.solve(top.T, left.T).T, top @ right


def _balanced_svd(left, right, what: str):
    """Canonical factors ``(U S^{1/2}, S^{1/2} Vᵀ)`` of ``L R = U S Vᵀ`` (thin SVD
    from the QR factors of ``L`` and ``Rᵀ``). Distinct, nonzero singular values
    are required: zero is a rank deficiency, ties are the stratum boundary."""
    q1, r1 = jnp.linalg.qr(left)
    q2, r2 = jnp.linalg.qr(right.T)
    u, s, vt = jnp.linalg.svd(r1 @ r2.T)
    gaps = jnp.concatenate([s[:-1] - s[1:], s[-1:]])
    s = eqx.error_if(
        s,
        ~jnp.all(gaps > _RANK_RTOL * s[0]),
        f"{what} has a zero or repeated singular value (rank-deficient attention "
        "factors or a tie): off the regular stratum",
    )
    root = jnp.sqrt(s)
    return (q1 @ u) * root, (root[:, None] * vt) @ q2.T


class MultiHeadAttentionChart(AbstractPermutableChart):
    r"""Multi-head self-attention quotiented by per-head ``GL(d_k) × GL(d_v)``.

    ``f(X) = Σ_h softmax(X W_Q^h (X W_K^h)ᵀ / sqrt(d_k)) X W_V^h W_O^h`` for
    ``X: (T, d_model)``; params ``{"wq": (H, d, d_k), "wk": (H, d, d_k),
    "wv": (H, d, d_v), "wo": (H, d_v, d)}`` (``d = d_model``).

    Coordinates, per head: the products ``W_Q W_Kᵀ`` and ``W_V W_O`` (rank
    ``d_k``, ``d_v``) written in the gauge where the left factor starts with the
    identity block, ``W_Q = [I; X_Q]``, ``W_V = [I; X_V]``: ``q_h = (X_Q, W_Kᵀ,
    X_V, W_O)`` flattened, ``dim = H (2 d d_k − d_k² + 2 d d_v − d_v²)``. The lift
    is the canonical balanced-SVD form, ``W_Q = U S^{1/2}``, ``W_K = V S^{1/2}``
    for ``W_Q W_Kᵀ = U S Vᵀ`` (and likewise ``W_V``, ``W_Oᵀ``), the minimum-norm
    point of the orbit.

    Off the stratum: rank-deficient factors, repeated singular values;
    outside the chart: a singular top block of ``W_Q`` or ``W_V``.
    """

    d_model: int
    heads: int
    d_k: int
    d_v: int

    def __check_init__(self):
        for name in ("d_model", "heads", "d_k", "d_v"):
            positive_int(getattr(self, name), f"MultiHeadAttentionChart: {name}")
        if max(self.d_k, self.d_v) > self.d_model:
            raise ValueError(
                "MultiHeadAttentionChart needs d_k, d_v <= d_model, got "
                f"d_k={self.d_k}, d_v={self.d_v}, d_model={self.d_model}"
            )

    @property
    def action(self) -> HeadGL:
        return HeadGL(self.heads, self.d_k, self.d_v)

    @property
    def params_shape(self):
        f = jnp.result_type(float)
        h, d, k, v = self.heads, self.d_model, self.d_k, self.d_v
        return {
            "wq": jax.ShapeDtypeStruct((h, d, k), f),
            "wk": jax.ShapeDtypeStruct((h, d, k), f),
            "wv": jax.ShapeDtypeStruct((h, d, v), f),
            "wo": jax.ShapeDtypeStruct((h, v, d), f),
        }

    def _head_dim(self) -> int:
        d, k, v = self.d_model, self.d_k, self.d_v
        return 2 * d * k - k * k + 2 * d * v - v * v

    @property
    def dim(self) -> int:
        return self.heads * self._head_dim()

    def project(self, params: Params) -> Point:
        p = self.check_params(params)

        def head(wq, wk, wv, wo):
            lq, rq = _top_block_gauge(wq, wk.T, "W_Q")
            lv, rv = _top_block_gauge(wv, wo, "W_V")
            k, v = self.d_k, self.d_v
            parts = [lq[k:], rq, lv[v:], rv]
            return jnp.concatenate([x.reshape(-1) for x in parts])

        return jax.vmap(head)(p["wq"], p["wk"], p["wv"], p["wo"]).reshape(-1)

    def _split(self, q):
        d, k, v = self.d_model, self.d_k, self.d_v
        sizes = [(d - k) * k, k * d, (d - v) * v, v * d]
        blocks = jnp.split(q.reshape(self.heads, -1), list(_cumsum(sizes)), axis=1)
        xq = blocks[0].reshape(-1, d - k, k)
        rq = blocks[1].reshape(-1, k, d)
        xv = blocks[2].reshape(-1, d - v, v)
        rv = blocks[3].reshape(-1, v, d)
        eye_k = jnp.broadcast_to(jnp.eye(k, dtype=q.dtype), (self.heads, k, k))
        eye_v = jnp.broadcast_to(jnp.eye(v, dtype=q.dtype), (self.heads, v, v))
        return (
            jnp.concatenate([eye_k, xq], axis=1),
            rq,
            jnp.concatenate([eye_v, xv], axis=1),
            rv,
        )

    def lift(self, q: Point) -> Params:
        lq, rq, lv, rv = self._split(self.check_point(q))
        wq, wkt = jax.vmap(lambda a, b: _balanced_svd(a, b, "W_Q W_Kᵀ"))(lq, rq)
        wv, wo = jax.vmap(lambda a, b: _balanced_svd(a, b, "W_V W_O"))(lv, rv)
        return {"wq": wq, "wk": jnp.swapaxes(wkt, 1, 2), "wv": wv, "wo": wo}

    def apply(self, params: Params, x: Array) -> Array:
        """Self-attention output for ``x`` of shape ``(..., T, d_model)``."""
        p = self.check_params(params)
        x = check_inputs(x, self.d_model, "MultiHeadAttentionChart", sequence=True)
        qh = jnp.einsum("...td,hdk->...htk", x, p["wq"])
        kh = jnp.einsum("...td,hdk->...htk", x, p["wk"])
        logits = jnp.einsum("...htk,...hsk->...hts", qh, kh) / jnp.sqrt(self.d_k)
        vals = jnp.einsum("...td,hdv,hve->...hte", x, p["wv"], p["wo"])
        return jnp.einsum("...hts,...hse->...te", jax.nn.softmax(logits, -1), vals)

    def permutation_keys(self, q: Point) -> tuple[Array, ...]:
        """Per head ``‖W_Q W_Kᵀ‖_F`` (invariant under the head's GL action)."""
        lq, rq, _, _ = self._split(q)
        return (jnp.sqrt(jnp.sum((lq @ rq) ** 2, axis=(1, 2))),)

    def permute(self, params: Params, perms: tuple[Array, ...]) -> Params:
        """Reorder the heads by ``perms[0]`` (same function)."""
        (perm,) = perms
        return jax.tree_util.tree_map(lambda x: x[perm], params)


def _cumsum(sizes):
    total, out = 0, []
    for s in sizes[:-1]:
        total += s
        out.append(total)
    return out
