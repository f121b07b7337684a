"""Build quotient charts from flax and equinox models of the matching architecture.

Mapping (documented so that users can check it against their model):

- ``flax.linen``: an MLP of ``nn.Dense`` layers with ReLU between them and no
  activation after the last, e.g. ``x = nn.relu(nn.Dense(h)(x))`` … then
  ``nn.Dense(out)(x)``. Its ``variables["params"]`` holds ``Dense_0``,
  ``Dense_1``, … (ordered by their index) with ``kernel: (in, out)`` and
  ``bias: (out,)``; the chart's layer ``l`` is ``{"W": kernelᵀ, "b": bias}``.
- ``flax.nnx``: any ``nnx.Module`` whose ``nnx.Linear`` submodules, in the
  order ``nnx.iter_modules`` visits them (list index, then attribute name),
  form a ReLU MLP (``nnx.Sequential(Linear, nnx.relu, …, Linear)`` or a module
  looping over an ``nnx.List`` of ``Linear`` layers): layer ``l`` is
  ``{"W": kernelᵀ, "b": bias}``. As the architecture cannot be read from the
  graph, the adapter evaluates the model and the chart on a probe batch and
  refuses a model that does not compute the same function.
- ``eqx.nn.MLP`` with ``activation=jax.nn.relu`` and the identity final
  activation: layer ``l`` is ``{"W": layers[l].weight, "b": layers[l].bias}``.
  ``use_bias`` and ``use_final_bias`` must agree.
"""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
from flax import nnx

from ._layered import ReLUMLPChart


def _flax_layers(variables) -> list[tuple[str, dict]]:
    params = variables.get("params", variables) if hasattr(variables, "get") else None
    if not hasattr(params, "items") or not params:
        raise ValueError(
            "expected flax variables {'params': {'Dense_0': {...}, ...}}, got "
            f"{type(variables).__name__}"
        )
    layers = []
    for name, layer in params.items():
        match = re.fullmatch(r".*?_?(\d+)", name)
        if match is None or not hasattr(layer, "keys") or "kernel" not in layer:
            entries = list(layer) if hasattr(layer, "keys") else type(layer).__name__
            raise ValueError(
                "expected Dense layers named like 'Dense_0' with a 'kernel', got "
                f"{name!r} with entries {entries}"
            )
        layers.append((int(match.group(1)), name, layer))
    layers.sort(key=lambda t: t[0])
    return [(name, layer) for _, name, layer in layers]


def mlp_chart_from_flax(variables) -> tuple[ReLUMLPChart, tuple]:
    """``(chart, params)`` for a flax ``nn.Dense``/ReLU MLP's variables.

    All layers must have a bias, or none. Raises ``ValueError`` for other trees.
    """
    layers = _flax_layers(variables)
    biases = {"bias" in layer for _, layer in layers}
    if len(biases) != 1:
        raise ValueError("either every Dense layer has a bias or none has")
    params, sizes = [], [jnp.shape(layers[0][1]["kernel"])[0]]
    for name, layer in layers:
        kernel = jnp.asarray(layer["kernel"])
        if kernel.ndim != 2 or kernel.shape[0] != sizes[-1]:
            raise ValueError(
                f"layer {name!r}: kernel of shape (n_in={sizes[-1]}, n_out) "
                f"expected, got {kernel.shape}"
            )
        sizes.append(kernel.shape[1])
        entry = {"W": kernel.T}
        if "bias" in layer:
            entry["b"] = jnp.asarray(layer["bias"])
        params.append(entry)
    chart = ReLUMLPChart(tuple(int(s) for s in sizes), use_bias=biases.pop())
    return chart, chart.check_params(tuple(params))


def flax_variables_from_params(params, like):
    """Write chart ``params`` back into a copy of the flax variables ``like``."""
    layers = _flax_layers(like)
    if len(layers) != len(params):
        raise ValueError(f"expected {len(layers)} layers, got {len(params)}")
    new = {}
    for (name, _), layer in zip(layers, params, strict=True):
        new[name] = {"kernel": layer["W"].T}
        if "b" in layer:
            new[name]["bias"] = layer["b"]
    return {"params": new} if "params" in like else new


def mlp_chart_from_eqx(model: eqx.nn.MLP) -> tuple[ReLUMLPChart, tuple]:
    """``(chart, params)`` for an ``eqx.nn.MLP`` with ReLU hidden activations."""
    if not isinstance(model, eqx.nn.MLP):
        raise ValueError(f"expected an eqx.nn.MLP, got {type(model).__name__}")
    if model.activation is not jax.nn.relu:
        raise ValueError(
            f"the chart needs activation=jax.nn.relu, got {model.activation!r}"
        )
    probe = jnp.linspace(-1.0, 1.0, 5)
    if not bool(jnp.all(model.final_activation(probe) == probe)):
        raise ValueError("the chart needs the identity final_activation")
    if model.in_size == "scalar" or model.out_size == "scalar":
        raise ValueError("scalar in_size/out_size is not supported; use size 1")
    if model.use_bias != model.use_final_bias:
        raise ValueError("use_bias and use_final_bias must agree")
    sizes = [model.in_size] + [layer.out_features for layer in model.layers]
    params = []
    for layer in model.layers:
        entry = {"W": layer.weight}
        if layer.bias is not None:
            entry["b"] = layer.bias
        params.append(entry)
    chart = ReLUMLPChart(tuple(int(s) for s in sizes), use_bias=model.use_bias)
    return chart, chart.check_params(tuple(params))


def eqx_mlp_from_params(model: eqx.nn.MLP, params) -> eqx.nn.MLP:
    """A copy of ``model`` with the weights (and biases) of chart ``params``."""
    weights = [layer["W"] for layer in params]
    model = eqx.tree_at(lambda m: [lin.weight for lin in m.layers], model, weights)
    if model.use_bias:
        biases = [layer["b"] for layer in params]
        model = eqx.tree_at(lambda m: [lin.bias for lin in m.layers], model, biases)
    return model


def _nnx_linears(model) -> list:
    if not isinstance(model, nnx.Module):
        raise ValueError(f"expected a flax.nnx.Module, got {type(model).__name__}")
    linears = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nnx.Linear layers")
    return linears


def mlp_chart_from_nnx(model, *, probe_size: int = 8) -> tuple[ReLUMLPChart, tuple]:
    """``(chart, params)`` for a ``flax.nnx`` ReLU MLP (see the module docstring).

    The model and ``chart.apply(params, ·)`` are compared on ``probe_size``
    random inputs; a different function (another activation, layers visited
    out of order, skip connections) raises ``ValueError``.
    """
    linears = _nnx_linears(model)
    biases = {lin.bias is not None for lin in linears}
    if len(biases) != 1:
        raise ValueError("either every nnx.Linear layer has a bias or none has")
    sizes = [linears[0].in_features]
    params = []
    for i, lin in enumerate(linears):
        if lin.in_features != sizes[-1]:
            raise ValueError(
                f"nnx.Linear layer {i} takes {lin.in_features} inputs but the "
                f"previous layer gives {sizes[-1]}: not an MLP in visiting order"
            )
        sizes.append(lin.out_features)
        entry = {"W": jnp.asarray(lin.kernel.get_value()).T}
        if lin.bias is not None:
            entry["b"] = jnp.asarray(lin.bias.get_value())
        params.append(entry)
    chart = ReLUMLPChart(tuple(int(s) for s in sizes), use_bias=biases.pop())
    params = chart.check_params(tuple(params))
    x = jax.random.normal(jax.random.PRNGKey(0), (probe_size, sizes[0]))
    expected = jnp.asarray(model(x.astype(linears[0].kernel.get_value().dtype)))
    got = chart.apply(params, x)
    scale = 1.0 + float(jnp.max(jnp.abs(got)))
    if expected.shape != got.shape or not bool(
        jnp.all(jnp.abs(expected - got) <= 1e-4 * scale)
    ):
        raise ValueError(
            f"{type(model).__name__} does not compute the ReLU MLP of its "
            "nnx.Linear layers (in nnx.iter_modules order) on a probe batch"
        )
    return chart, params


def nnx_mlp_from_params(model, params):
    """A copy (``nnx.clone``) of ``model`` with the weights of chart ``params``."""
    model = nnx.clone(model)
    linears = _nnx_linears(model)
    if len(linears) != len(params):
        raise ValueError(f"expected {len(linears)} layers, got {len(params)}")
    for lin, layer in zip(linears, params, strict=True):
        lin.kernel.set_value(jnp.asarray(layer["W"]).T)
        if lin.bias is not None:
            lin.bias.set_value(jnp.asarray(layer["b"]))
    return model
