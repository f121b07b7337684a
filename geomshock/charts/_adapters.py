"""Build quotient charts from flax and equinox models of the matching architecture.

The adapters quotient the **rescaling** symmetry only (per hidden unit: incoming
weights and bias × c, outgoing × 1/c): the chart they return is a
:class:`ReLUMLPChart`. Hidden-unit permutations are a second, discrete
symmetry; to quotient them as well, wrap the chart:
``CanonicalOrderChart(chart)`` sorts the units of every hidden layer by a
gauge-invariant key (``project``) and refuses ties (see
:class:`CanonicalOrderChart`).

Mapping (documented so that users can check it against their model):

- ``flax.linen``: an MLP of ``nn.Dense`` layers with ReLU between them and no
  activation after the last, e.g. ``x = nn.relu(nn.Dense(h)(x))`` … then
  ``nn.Dense(out)(x)``. Its ``variables["params"]`` holds one entry per layer
  with ``kernel: (in, out)`` and ``bias: (out,)``, under any names, taken in
  module order (the order of the dict, which is the order flax created the
  layers in); the chart's layer ``l`` is ``{"W": kernelᵀ, "b": bias}``. The
  activation cannot be read from the variables: pass ``model=`` and the
  adapter compares ``model.apply`` with the chart on a probe batch, refusing
  another activation (GELU, tanh, …) or a different wiring.
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

``flax`` is imported by the functions that need it, not by ``import geomshock``.
"""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp

from ._layered import ReLUMLPChart


class UncheckedArchitectureWarning(UserWarning):
    """An adapter could not check that the model computes the chart's function."""


def _check_on_probe(forward, chart, params, *, dtype, what: str, probe_size: int):
    """Refuse a model whose ``forward(x)`` differs from ``chart.apply(params, x)``.

    ``x`` is a standard-normal probe batch of ``probe_size`` inputs (cast to
    ``dtype``, the model's parameter dtype); agreement is required to ``1e-4``
    relative to the output scale, which float32 models meet and a different
    activation or wiring does not.
    """
    x = jax.random.normal(jax.random.PRNGKey(0), (probe_size, chart.layer_sizes[0]))
    expected = jnp.asarray(forward(x.astype(dtype)))
    got = chart.apply(params, x)
    scale = 1.0 + float(jnp.max(jnp.abs(got)))
    if expected.shape != got.shape or not bool(
        jnp.all(jnp.abs(expected - got) <= 1e-4 * scale)
    ):
        gap = (
            float(jnp.max(jnp.abs(expected - got)))
            if expected.shape == got.shape
            else f"shape {expected.shape} vs {got.shape}"
        )
        raise ValueError(
            f"{what} does not compute the ReLU MLP of its layers on a probe batch "
            f"(max difference {gap}); expected Dense/Linear layers with ReLU "
            "between them and no final activation (another activation, skip "
            "connections or layers out of order are not this chart)"
        )


def _flax_layers(variables) -> list[tuple[str, dict]]:
    params = variables.get("params", variables) if hasattr(variables, "get") else None
    if not hasattr(params, "items") or not params:
        raise ValueError(
            "expected flax variables {'params': {'Dense_0': {...}, ...}}, got "
            f"{type(variables).__name__}"
        )
    layers = []
    for name, layer in params.items():
        if not hasattr(layer, "keys") or "kernel" not in layer:
            entries = list(layer) if hasattr(layer, "keys") else type(layer).__name__
            raise ValueError(
                "expected Dense layers named like 'Dense_0' (any names, taken in "
                f"module order) each with a 'kernel', got {name!r} with entries "
                f"{entries}"
            )
        layers.append((name, layer))
    return layers


def mlp_chart_from_flax(
    variables, model=None, *, probe_size: int = 8
) -> tuple[ReLUMLPChart, tuple]:
    """``(chart, params)`` for a flax ``nn.Dense``/ReLU MLP's variables.

    Layers are the entries of ``variables["params"]`` in module order, under
    any names. All layers must have a bias, or none. With ``model`` (the
    ``flax.linen`` Module the variables belong to), ``model.apply(variables,
    x)`` is compared with ``chart.apply(params, x)`` on ``probe_size`` random
    inputs and a different function (e.g. GELU instead of ReLU) raises
    ``ValueError``; without it an :class:`UncheckedArchitectureWarning` says
    the activation was not checked. Raises ``ValueError`` for other trees.
    The chart quotients rescalings only: wrap it in ``CanonicalOrderChart``
    for permutations too.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import flax.linen as nn
        >>> class MLP(nn.Module):
        ...     @nn.compact
        ...     def __call__(self, x):
        ...         return nn.Dense(1)(nn.relu(nn.Dense(3)(x)))
        >>> model = MLP()
        >>> variables = model.init(jax.random.PRNGKey(0), jnp.ones((1, 2)))
        >>> chart, params = mlp_chart_from_flax(variables, model)
        >>> chart.layer_sizes
        (2, 3, 1)
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
    params = chart.check_params(tuple(params))
    if model is None:
        warnings.warn(
            "mlp_chart_from_flax cannot read the activation from variables; pass "
            "model= (the flax.linen Module) to check that it is a ReLU MLP",
            UncheckedArchitectureWarning,
            stacklevel=2,
        )
    else:
        _check_on_probe(
            lambda x: model.apply(variables, x),
            chart,
            params,
            dtype=jnp.result_type(layers[0][1]["kernel"], jnp.float32),
            what=type(model).__name__,
            probe_size=probe_size,
        )
    return chart, params


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
    from flax import nnx

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
    _check_on_probe(
        model,
        chart,
        params,
        dtype=linears[0].kernel.get_value().dtype,
        what=type(model).__name__,
        probe_size=probe_size,
    )
    return chart, params


def nnx_mlp_from_params(model, params):
    """A copy (``nnx.clone``) of ``model`` with the weights of chart ``params``."""
    from flax import nnx

    model = nnx.clone(model)
    linears = _nnx_linears(model)
    if len(linears) != len(params):
        raise ValueError(f"expected {len(linears)} layers, got {len(params)}")
    for lin, layer in zip(linears, params, strict=True):
        lin.kernel.set_value(jnp.asarray(layer["W"]).T)
        if lin.bias is not None:
            lin.bias.set_value(jnp.asarray(layer["b"]))
    return model
