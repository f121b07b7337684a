"""Build quotient charts from flax and equinox models of the matching architecture.

Mapping (documented so that users can check it against their model):

- ``flax.linen``: an MLP of ``nn.Dense`` layers with ReLU between them and no
  activation after the last, e.g. ``x = nn.relu(nn.Dense(h)(x))`` … then
  ``nn.Dense(out)(x)``. Its ``variables["params"]`` holds ``Dense_0``,
  ``Dense_1``, … (ordered by their index) with ``kernel: (in, out)`` and
  ``bias: (out,)``; the chart's layer ``l`` is ``{"W": kernelᵀ, "b": bias}``.
- ``eqx.nn.MLP`` with ``activation=jax.nn.relu`` and the identity final
  activation: layer ``l`` is ``{"W": layers[l].weight, "b": layers[l].bias}``.
  ``use_bias`` and ``use_final_bias`` must agree.
"""

import re

import equinox as eqx
import jax
import jax.numpy as jnp

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
