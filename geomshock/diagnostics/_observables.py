r"""Quotient observables per architecture, and the raw baseline (paper, Sec. 6).

A quotient observable is a function of the orbit ``[θ]`` only: unchanged by
every symmetry the chart quotients (``chart.gauge``), unlike raw parameter
norms. Each chart type has its own list (:func:`observables`); all are
computed from invariant combinations of the parameters (products along
paths, normalised directions, the canonical form of attention factors) or
from the network function on a batch.
"""

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array

from .._checks import finite_array, finite_tree, tie
from ..charts import (
    CanonicalOrderChart,
    MultiHeadAttentionChart,
    ProductChart,
    SphereChart,
    TransformerBlockChart,
    TwoLayerReLUChart,
)
from ..charts._layered import _AbstractLayeredChart

Observables = dict[str, Array]


def _prefixed(prefix: str, obs: Observables) -> Observables:
    return {f"{prefix}/{k}": v for k, v in obs.items()}


def _path_norms(layers) -> Observables:
    """ℓ1 and ℓ2 path norms of a layered ReLU network (with biases).

    ``layers``: ``(W, b)`` pairs, ``W: (out, in, *kernel)``, ``b`` or None.
    ``Σ_paths Π |w|`` (resp. ``sqrt(Σ_paths Π w²)``) over all paths from an
    input (or a bias) to an output, by a forward pass of ``|W|`` (``W²``)
    from a vector of ones; kernel entries count as parallel edges between
    channels. A unit rescaling multiplies its incoming edges by ``c`` and
    outgoing ones by ``1/c``: every path through it is unchanged.
    """
    out = {}
    for name, power in (("path_norm_l1", 1), ("path_norm_l2", 2)):
        v = jnp.ones(layers[0][0].shape[1], layers[0][0].dtype)
        for w, b in layers:
            edges = jnp.abs(w) ** power
            v = jnp.sum(edges.reshape(*w.shape[:2], -1), axis=-1) @ v
            if b is not None:
                v = v + jnp.abs(b) ** power
        out[name] = jnp.sum(v) ** (1 / power)
    return out


def _layered(chart: _AbstractLayeredChart, params, batch) -> Observables:
    """Path norms; per hidden layer ``i`` (1-based) the unit directions and
    ``γ`` (outgoing norms) in the normalised gauge; on a batch, the fraction
    of inputs (and positions) where each unit is active."""
    normalized, dirs = chart._normalized(params)
    obs = _path_norms([(layer["W"], layer.get("b")) for layer in params])
    for i, (d, layer) in enumerate(zip(dirs, normalized[1:], strict=True), 1):
        w = layer["W"]
        axes = tuple(a for a in range(w.ndim) if a != 1)
        obs[f"gamma_{i}"] = jnp.sqrt(jnp.sum(w**2, axis=axes))
        obs[f"direction_{i}"] = d
    if batch is not None:
        x = jnp.asarray(batch, dtype=jnp.result_type(float))
        chart._check_inputs(x)
        for i, layer in enumerate(params[:-1], 1):
            x = chart._linear(x, layer)
            unit_axis = 1 if x.ndim == 4 else x.ndim - 1
            axes = tuple(a for a in range(x.ndim) if a != unit_axis)
            obs[f"active_fraction_{i}"] = jnp.mean(x > 0, axis=axes)
            x = jax.nn.relu(x)
    return obs


def _two_layer(chart: TwoLayerReLUChart, params, batch) -> Observables:
    """``γ_j = a_j ‖u_j‖``, directions ``u_j/‖u_j‖``, path norms; on a batch
    ``(N, in_dim)`` the active fraction of every unit."""
    u, a = params["u"], params["a"]
    norms = jnp.linalg.norm(u, axis=1)
    obs = _path_norms([(u[:, :-1], u[:, -1]), (a[None, :], params["c"][None])])
    obs["gamma"] = a * norms
    obs["direction"] = u / norms[:, None]
    if batch is not None:
        x = jnp.asarray(batch, dtype=u.dtype)
        if x.ndim != 2 or x.shape[1] != chart.in_dim:
            raise ValueError(
                f"observables: a batch for TwoLayerReLUChart has shape (N, "
                f"{chart.in_dim}); got {x.shape}"
            )
        obs["active_fraction"] = jnp.mean(x @ u[:, :-1].T + u[:, -1] > 0, axis=0)
    return obs


def _sphere(chart: SphereChart, params, batch) -> Observables:
    """The direction ``w/‖w‖`` of the normalised weights (BN/LN)."""
    return {"direction": params / jnp.linalg.norm(params)}


def _singular_values(left, right, rank: int):
    """Top ``rank`` singular values of ``left @ right.T`` per head, from the
    triangular QR factors (``rank × rank``: no ``d × d`` product)."""
    r1 = jnp.linalg.qr(left)[1]
    r2 = jnp.linalg.qr(right)[1]
    return jnp.linalg.svd(r1 @ jnp.swapaxes(r2, -1, -2), compute_uv=False)[..., :rank]


def _attention_weights(p, d_k: int, d_v: int) -> Observables:
    """Per head the singular values of ``W_Q W_Kᵀ`` and ``W_V W_O`` (the
    GL(d_k) × GL(d_v) invariants)."""
    return {
        "qk_singular_values": _singular_values(p["wq"], p["wk"], d_k),
        "vo_singular_values": _singular_values(
            p["wv"], jnp.swapaxes(p["wo"], 1, 2), d_v
        ),
    }


def _attention_batch(p, u, d_k: int) -> Observables:
    """Logit statistics, per-head entropy and output energy for inputs ``u``."""
    qh = jnp.einsum("...td,hdk->...htk", u, p["wq"])
    kh = jnp.einsum("...td,hdk->...htk", u, p["wk"])
    logits = jnp.einsum("...htk,...hsk->...hts", qh, kh) / jnp.sqrt(d_k)
    probs = jax.nn.softmax(logits, axis=-1)
    entropy = -jnp.sum(probs * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    out = jnp.einsum("...hts,...sd,hdv,hve->...hte", probs, u, p["wv"], p["wo"])
    head_axis = logits.ndim - 3
    others = tuple(a for a in range(entropy.ndim) if a != head_axis)
    energy = jnp.sum(out**2, axis=-1)
    return {
        "logit_max_abs": jnp.max(jnp.abs(logits)),
        "logit_std": jnp.std(logits),
        "attention_entropy": jnp.mean(entropy, axis=others),
        "head_output_energy": jnp.mean(energy, axis=others),
    }


def _check_tokens(x, d_model: int, owner: str):
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    if x.ndim < 2 or x.shape[-1] != d_model:
        raise ValueError(
            f"observables: a batch for {owner} has shape (..., T, {d_model}); "
            f"got {x.shape}"
        )
    return x


def _attention(chart: MultiHeadAttentionChart, params, batch) -> Observables:
    """Singular values of ``W_Q W_Kᵀ``, ``W_V W_O`` per head; on a batch
    ``(..., T, d)``: ``logit_max_abs``, ``logit_std`` (over all logits),
    per-head ``attention_entropy`` (mean over queries) and
    ``head_output_energy`` (mean ``‖head output‖²`` over positions)."""
    obs = _attention_weights(params, chart.d_k, chart.d_v)
    if batch is not None:
        x = _check_tokens(batch, chart.d_model, "MultiHeadAttentionChart")
        obs.update(_attention_batch(params, x, chart.d_k))
    return obs


def _transformer(chart: TransformerBlockChart, params, batch) -> Observables:
    """Attention (``attn/``) and MLP (``mlp/``) observables of the
    gain-absorbed weights (:meth:`TransformerBlockChart.absorb`), the
    LayerNorm shifts ``β/γ``; on a batch also the branch energies (mean
    ``‖branch output‖²`` per position) and ``branch_balance = E_attn /
    (E_attn + E_mlp)``."""
    r = chart.absorb(params)
    obs = _prefixed("attn", _attention_weights(r["attn"], chart.d_k, chart.d_v))
    obs.update(_prefixed("mlp", _layered(chart.mlp, r["mlp"], None)))
    obs["ln1_shift"], obs["ln2_shift"] = r["ln1_shift"], r["ln2_shift"]
    if batch is None:
        return obs
    x = _check_tokens(batch, chart.d_model, "TransformerBlockChart")
    s = chart.streams(params, x)
    # raw weights on LN₁(X) give the same logits as absorbed ones on (n + β/γ)
    obs.update(_prefixed("attn", _attention_batch(params["attn"], s["ln1"], chart.d_k)))
    tokens = _layered(chart.mlp, params["mlp"], s["ln2"])
    obs["mlp/active_fraction_1"] = tokens["active_fraction_1"]
    e_attn = jnp.mean(jnp.sum(s["attn"] ** 2, axis=-1))
    e_mlp = jnp.mean(jnp.sum(s["mlp"] ** 2, axis=-1))
    obs["attn_branch_energy"], obs["mlp_branch_energy"] = e_attn, e_mlp
    obs["branch_balance"] = e_attn / (e_attn + e_mlp)
    return obs


def _product(chart: ProductChart, params, batch) -> Observables:
    """Each factor's observables under ``name/``; ``batch`` a dict by factor
    name, or one batch for every factor."""
    obs = {}
    for name in chart.names:
        b = batch.get(name) if isinstance(batch, dict) else batch
        obs.update(_prefixed(name, _dispatch(chart.charts[name], params[name], b)))
    return obs


def _canonical(chart: CanonicalOrderChart, params, batch) -> Observables:
    """The inner chart's observables with units in canonical order."""
    inner = chart.chart
    # chart.project refuses tied keys; tie keeps that check alive under jit
    q = chart.project(params)
    params = jax.tree_util.tree_map(lambda x: tie(x, q), params)
    perms = tuple(jnp.argsort(k) for k in inner.permutation_keys(inner.project(params)))
    return _dispatch(inner, inner.permute(params, perms), batch)


_HANDLERS = (
    (CanonicalOrderChart, _canonical),
    (ProductChart, _product),
    (TransformerBlockChart, _transformer),
    (MultiHeadAttentionChart, _attention),
    (_AbstractLayeredChart, _layered),
    (TwoLayerReLUChart, _two_layer),
    (SphereChart, _sphere),
)


def _dispatch(chart, params, batch) -> Observables:
    for kind, handler in _HANDLERS:
        if isinstance(chart, kind):
            return handler(chart, params, batch)
    supported = ", ".join(
        k.__name__.lstrip("_").replace("Abstract", "") for k, _ in _HANDLERS
    )
    raise ValueError(
        f"observables: no quotient observables for {type(chart).__name__}; "
        f"supported charts: {supported} (ReLUMLPChart, ReLUCNNChart)"
    )


def observables(chart, params, batch=None) -> Observables:
    r"""Quotient observables of ``params`` for ``chart``: a flat dict of arrays.

    Every value is invariant under ``chart.gauge`` (the symmetries the chart
    quotients), so it can be logged across a training run without
    symmetry-driven drift. Per chart type:

    - :class:`~geomshock.charts.ReLUMLPChart`,
      :class:`~geomshock.charts.ReLUCNNChart`: ``path_norm_l1``,
      ``path_norm_l2`` (``Σ_paths Π|w|``, ``sqrt(Σ_paths Π w²)``, biases as
      paths, CNN kernels as parallel channel edges); per hidden layer ``i``:
      ``gamma_i`` (each unit's outgoing norm once every incoming vector is
      normalised layer by layer, the deep analogue of ``a_j‖u_j‖``) and
      ``direction_i`` (unit incoming directions in that gauge); with a batch
      ``active_fraction_i``.
    - :class:`~geomshock.charts.TwoLayerReLUChart`: ``gamma`` (``a_j‖u_j‖``),
      ``direction``, the path norms; with a batch ``active_fraction``.
    - :class:`~geomshock.charts.SphereChart` (weights before BN/LN):
      ``direction``, ``w/‖w‖``.
    - :class:`~geomshock.charts.MultiHeadAttentionChart`:
      ``qk_singular_values`` ``(H, d_k)`` and ``vo_singular_values``
      ``(H, d_v)`` of ``W_Q W_Kᵀ``, ``W_V W_O``; with a batch ``(..., T, d)``:
      ``logit_max_abs``, ``logit_std``, per head ``attention_entropy`` (nats,
      mean over queries) and ``head_output_energy``.
    - :class:`~geomshock.charts.TransformerBlockChart`: the attention keys
      under ``attn/`` and the MLP keys under ``mlp/`` for the gain-absorbed
      weights, ``ln1_shift``, ``ln2_shift`` (``β/γ``); with a batch also
      ``attn_branch_energy``, ``mlp_branch_energy`` (mean squared norm of
      each residual branch's output) and ``branch_balance`` (attention share).
    - :class:`~geomshock.charts.ProductChart`: each factor's keys under
      ``name/`` (``batch`` a dict by name, or one batch for all).
    - :class:`~geomshock.charts.CanonicalOrderChart`: the inner chart's, with
      the units in canonical order (invariant under permutations too).

    Works under ``jit`` (``chart`` static) and ``vmap`` over ``params``.
    Params not matching ``chart.params_shape``: ``ValueError``; non-finite
    params or batch: non-finite input error (eager ``ValueError``, under jit
    an equinox runtime error); points off the chart's regular stratum: its
    error.

    Example:
        >>> import jax.numpy as jnp
        >>> from geomshock.charts import TwoLayerReLUChart
        >>> chart = TwoLayerReLUChart(width=1, in_dim=1)
        >>> p = {"a": jnp.array([2.0]), "u": jnp.array([[3.0, 4.0]]), "c": 0.0}
        >>> obs = observables(chart, p)
        >>> obs["gamma"].tolist(), float(obs["path_norm_l2"])  # a‖u‖, sqrt(Σ Π w²)
        ([10.0], 10.0)
        >>> moved = chart.gauge(p, jax.random.PRNGKey(0))
        >>> float(observables(chart, moved)["gamma"][0])
        10.0
    """
    params = chart.check_params(params)
    if batch is not None:
        batch = jax.tree_util.tree_map(
            lambda b: finite_array(b, "the batch given to observables"), batch
        )
    return _dispatch(chart, params, batch)


def _path_name(path) -> str:
    parts = []
    for key in path:
        for attr in ("key", "idx", "name"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
    return "/".join(parts) or "params"


def raw_observables(params) -> Observables:
    """Raw parameter statistics, the symmetry-blind baseline: ``norm`` (the
    Euclidean norm of all parameters), ``max_abs``, and ``norm/<path>`` per
    leaf (``path`` the leaf's keys joined by ``/``, e.g. ``norm/0/W``).

    Works under ``jit`` and ``vmap``; non-finite params raise the
    non-finite input error.

    Example:
        >>> import jax.numpy as jnp
        >>> obs = raw_observables({"W": jnp.array([[3.0, 4.0]]), "b": jnp.zeros(1)})
        >>> float(obs["norm"]), float(obs["norm/W"])
        (5.0, 5.0)
    """
    params = finite_tree(params, "the params given to raw_observables")
    flat = ravel_pytree(params)[0]
    obs = {"norm": jnp.linalg.norm(flat), "max_abs": jnp.max(jnp.abs(flat))}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        obs[f"norm/{_path_name(path)}"] = jnp.linalg.norm(jnp.ravel(leaf))
    return obs
