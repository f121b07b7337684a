"""Deep ReLU networks (MLP and CNN) quotiented by per-unit / per-channel
positive rescaling, in the layerwise balanced gauge."""

import abc
import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._custom_types import Point
from ._action import AbstractRescalingAction, Params
from ._balance import balance
from ._chart import AbstractPermutableChart, check_inputs
from ._sphere_coords import from_stereographic, normalize, to_stereographic


def _check_sizes(sizes, name: str, owner: str, minimum: int = 2) -> tuple[int, ...]:
    ok = isinstance(sizes, tuple | list) and len(sizes) >= minimum
    ok = ok and all(isinstance(s, int) and not isinstance(s, bool) for s in sizes)
    if not ok or min(sizes) < 1:
        raise ValueError(
            f"{owner}: {name} must be a tuple of at least {minimum} positive ints, "
            f"got {sizes!r}"
        )
    return tuple(sizes)


def _broadcast(v, ndim):
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def _outgoing_norms(w):
    """Norms of the slices ``W[:, j]`` (unit ``j``'s outgoing weights)."""
    return jnp.sqrt(jnp.sum(w**2, axis=tuple(a for a in range(w.ndim) if a != 1)))


class LayeredRescaling(AbstractRescalingAction):
    """Per-hidden-unit (or per-channel) rescaling of a layered ReLU network.

    Unit ``j`` of hidden layer ``i`` with scale ``c = e^{t}``: its incoming
    weights ``W_l[j]`` and bias ``b_l[j]`` are multiplied by ``c``, its outgoing
    weights ``W_{i+1}[:, j]`` by ``1/c``. Weights have shape
    ``(out, in, *kernel)``. Group elements are the log-scales ``t``, hidden
    layers concatenated; ``exp`` is the identity in these coordinates.
    """

    hidden: tuple[int, ...]

    @property
    def algebra_dim(self) -> int:
        return sum(self.hidden)

    def exp(self, xi):
        return xi

    def act(self, params, g):
        splits = jnp.split(g, list(itertools.accumulate(self.hidden))[:-1])
        scales = [jnp.exp(s) for s in splits]
        out = []
        for i, layer in enumerate(params):
            s_out = scales[i] if i < len(scales) else None
            s_in = scales[i - 1] if i > 0 else None
            w = layer["W"]
            if s_out is not None:
                w = w * _broadcast(s_out, w.ndim)
            if s_in is not None:
                w = w / _broadcast(s_in[None, :], w.ndim)
            new = {"W": w}
            if "b" in layer:
                new["b"] = layer["b"] if s_out is None else layer["b"] * s_out
            out.append(new)
        return tuple(out)

    def norm_sq_hessian(self, params, g):
        """Hessian of ``t ↦ ‖exp(t)·θ‖²`` at ``t = g``, in closed form.

        With ``N_l[i, j]`` the squared norm of ``W_l[i, j]`` (summed over kernel
        axes) and ``β_l = b_l²`` after the action: diagonal blocks
        ``4 diag(Σ_j N_l[:, j] + β_l + Σ_i N_{l+1}[i, :])``, off-diagonal blocks
        ``−4 N_{l+1}ᵀ`` between hidden layers ``l`` and ``l + 1``. One pass over
        the parameters instead of ``k`` (``jax.hessian``).
        """
        moved = self.act(params, g)
        sq = [
            jnp.sum(layer["W"] ** 2, axis=tuple(range(2, layer["W"].ndim)))
            for layer in moved
        ]
        offsets = [0, *itertools.accumulate(self.hidden)]
        hess = jnp.zeros((self.algebra_dim, self.algebra_dim), g.dtype)
        for i in range(len(self.hidden)):
            bias = moved[i]["b"] ** 2 if "b" in moved[i] else 0.0
            diag = 4 * (jnp.sum(sq[i], axis=1) + bias + jnp.sum(sq[i + 1], axis=0))
            lo, hi = offsets[i], offsets[i + 1]
            hess = hess.at[lo:hi, lo:hi].set(jnp.diag(diag))
            if i + 1 < len(self.hidden):
                nxt = offsets[i + 2]
                hess = hess.at[lo:hi, hi:nxt].set(-4 * sq[i + 1].T)
                hess = hess.at[hi:nxt, lo:hi].set(-4 * sq[i + 1])
        return hess


class _AbstractLayeredChart(AbstractPermutableChart):
    """Shared machinery of the MLP and CNN charts.

    Coordinates: each hidden unit's incoming vector ``v = (W_l[j].ravel(),
    b_l[j])``, normalized layer by layer (pushing the norm into the next
    layer), in stereographic coordinates from the pole ``−e_last`` (with a bias:
    the direction of a unit that is off for every input), unit-major, hidden
    layers in order; then the last layer's weights and bias, raw (they carry
    the scales). ``lift`` rebuilds that normalized representative and moves it
    to the balanced gauge (incoming norm = outgoing norm for every unit, the
    minimum-norm point of the orbit).
    """

    @property
    @abc.abstractmethod
    def _sizes(self) -> tuple[int, ...]: ...

    @property
    @abc.abstractmethod
    def _kernel(self) -> tuple[int, ...]: ...

    use_bias: eqx.AbstractVar[bool]

    @abc.abstractmethod
    def _check_inputs(self, x) -> None: ...

    @abc.abstractmethod
    def _linear(self, x, layer) -> Array: ...

    def apply(self, params: Params, x: Array) -> Array:
        """Network output for inputs ``x`` (MLP: ``(..., n_0)``; CNN: NCHW)."""
        p = self.check_params(params)
        x = jnp.asarray(x, dtype=jnp.result_type(float))
        self._check_inputs(x)
        for i, layer in enumerate(p):
            x = self._linear(x, layer)
            if i < len(p) - 1:
                x = jax.nn.relu(x)
        return x

    @property
    def action(self) -> LayeredRescaling:
        return LayeredRescaling(self._sizes[1:-1])

    @property
    def params_shape(self):
        f = jnp.result_type(float)
        layers = []
        for n_in, n_out in zip(self._sizes[:-1], self._sizes[1:], strict=True):
            layer = {"W": jax.ShapeDtypeStruct((n_out, n_in) + self._kernel, f)}
            if self.use_bias:
                layer["b"] = jax.ShapeDtypeStruct((n_out,), f)
            layers.append(layer)
        return tuple(layers)

    def _fan_in(self, i: int) -> int:
        size = 1
        for k in self._kernel:
            size *= k
        return self._sizes[i] * size + int(self.use_bias)

    @property
    def dim(self) -> int:
        sizes = self._sizes
        hidden = sum(n * (self._fan_in(i) - 1) for i, n in enumerate(sizes[1:-1]))
        return hidden + sizes[-1] * self._fan_in(len(sizes) - 2)

    def _incoming(self, layer) -> Array:
        v = layer["W"].reshape(layer["W"].shape[0], -1)
        return jnp.concatenate([v, layer["b"][:, None]], axis=1) if "b" in layer else v

    def _set_incoming(self, layer, v):
        shape = layer["W"].shape
        if "b" in layer:
            return {"W": v[:, :-1].reshape(shape), "b": v[:, -1]}
        return {"W": v.reshape(shape)}

    def _normalized(self, params) -> tuple[tuple, list]:
        """Normalized representative and the unit directions of hidden layers."""
        layers, dirs = list(params), []
        for i in range(len(layers) - 1):
            s, r = normalize(
                self._incoming(layers[i]),
                f"a unit's incoming weights in hidden layer {i + 1} (dead unit)",
            )
            dirs.append(s)
            layers[i] = self._set_incoming(layers[i], s)
            w = layers[i + 1]["W"]
            w = w * _broadcast(r[None, :], w.ndim)
            w = eqx.error_if(
                w,
                ~jnp.all(_outgoing_norms(w) > 0),
                f"a unit in hidden layer {i + 1} has zero outgoing weights "
                "(off the stratum: no balanced representative)",
            )
            layers[i + 1] = {**layers[i + 1], "W": w}
        return tuple(layers), dirs

    @property
    def horizontal_gauge(self) -> bool:
        """True: the balanced gauge is the minimum-norm one."""
        return True

    def project(self, params: Params) -> Point:
        normalized, dirs = self._normalized(self.check_params(params))
        parts = [to_stereographic(s).reshape(-1) for s in dirs]
        parts.append(self._incoming(normalized[-1]).reshape(-1))
        return jnp.concatenate(parts)

    def _unit_representative(self, q: Point):
        """The normalized (unit incoming norms) representative encoded by ``q``."""
        q = self.check_point(q)
        layers, start = [], 0
        template = self.params_shape
        for i, spec in enumerate(template):
            n_out, fan = spec["W"].shape[0], self._fan_in(i)
            last = i == len(template) - 1
            size = n_out * (fan if last else fan - 1)
            block = q[start : start + size].reshape(n_out, -1)
            start += size
            v = block if last else from_stereographic(block)
            dummy = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, q.dtype), spec)
            layers.append(self._set_incoming(dummy, v))
        return tuple(layers)

    def lift(self, q: Point) -> Params:
        theta = self._unit_representative(q)
        theta, _ = self._normalized(theta)  # checks outgoing weights are nonzero
        return balance(self.action, theta)

    def balance_error(self, params: Params) -> Array:
        """``max |‖incoming_j‖ − ‖outgoing_j‖|`` over hidden units (0 if balanced)."""
        p = self.check_params(params)
        errs = []
        for i in range(len(p) - 1):
            out_norm = _outgoing_norms(p[i + 1]["W"])
            in_norm = jnp.linalg.norm(self._incoming(p[i]), axis=1)
            errs.append(jnp.max(jnp.abs(in_norm - out_norm)))
        return jnp.max(jnp.stack(errs))

    def permutation_keys(self, q: Point) -> tuple[Array, ...]:
        """Per hidden layer, each unit's outgoing norm in the normalized gauge."""
        theta = self._unit_representative(q)
        return tuple(_outgoing_norms(layer["W"]) for layer in theta[1:])

    def permute(self, params: Params, perms: tuple[Array, ...]) -> Params:
        """Reorder hidden units of layer ``i`` by ``perms[i]`` (same function)."""
        layers = list(params)
        for i, perm in enumerate(perms):
            layers[i] = {name: x[perm] for name, x in layers[i].items()}
            layers[i + 1] = {**layers[i + 1], "W": layers[i + 1]["W"][:, perm]}
        return tuple(layers)


class ReLUMLPChart(_AbstractLayeredChart):
    """Deep ReLU MLP ``f(x) = W_L relu(⋯ relu(W_1 x + b_1) ⋯) + b_L``, quotiented
    by per-hidden-unit positive rescaling, in the layerwise balanced gauge.

    Params: a tuple of layers ``{"W": (n_{i+1}, n_l), "b": (n_{i+1},)}`` (no
    ``"b"`` when ``use_bias=False``), ``layer_sizes = (n_0, ..., n_L)``.
    Coordinates as described in the module: stereographic directions of every
    hidden unit's incoming vector, then the last layer. ``dim`` is the number of
    parameters minus the number of hidden units.
    """

    layer_sizes: tuple[int, ...]
    use_bias: bool = True

    def __check_init__(self):
        _check_sizes(self.layer_sizes, "layer_sizes", "ReLUMLPChart", minimum=3)

    @property
    def _sizes(self):
        return tuple(self.layer_sizes)

    @property
    def _kernel(self):
        return ()

    def _check_inputs(self, x):
        return check_inputs(x, self.layer_sizes[0], "ReLUMLPChart")

    def _linear(self, x, layer):
        return x @ layer["W"].T + (layer["b"] if "b" in layer else 0)


class ReLUCNNChart(_AbstractLayeredChart):
    """A stack of 2-D convolutions (stride 1, ``SAME`` padding, ReLU between
    layers) quotiented by per-channel rescaling, in the balanced-channel gauge.

    Params: a tuple of layers ``{"W": (c_{l+1}, c_l, kh, kw), "b": (c_{l+1},)}``
    (OIHW kernels), ``channels = (c_0, ..., c_L)``. Channel ``j`` of layer ``l``:
    kernel ``W_l[j]`` and bias ``b_l[j]`` times ``c``, the next layer's incoming
    kernel slice ``W_{l+1}[:, j]`` times ``1/c``. Coordinates as for the MLP,
    with a channel's incoming vector the flattened kernel (and bias).
    """

    channels: tuple[int, ...]
    kernel_size: tuple[int, int] = (3, 3)
    use_bias: bool = True

    def __check_init__(self):
        _check_sizes(self.channels, "channels", "ReLUCNNChart", minimum=3)
        _check_sizes(self.kernel_size, "kernel_size", "ReLUCNNChart", minimum=2)
        if len(self.kernel_size) != 2:
            raise ValueError(
                "ReLUCNNChart: kernel_size must have 2 entries, got "
                f"{self.kernel_size!r}"
            )

    @property
    def _sizes(self):
        return tuple(self.channels)

    @property
    def _kernel(self):
        return tuple(self.kernel_size)

    def _check_inputs(self, x):
        if x.ndim != 4 or x.shape[1] != self.channels[0]:
            raise ValueError(
                f"ReLUCNNChart expects images of shape (N, {self.channels[0]}, H, W), "
                f"got shape {x.shape}"
            )

    def _linear(self, x, layer):
        x = jax.lax.conv_general_dilated(
            x, layer["W"], (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")
        )
        return x + layer["b"][None, :, None, None] if "b" in layer else x
