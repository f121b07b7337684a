"""``sweep``: a function on a Cartesian grid, batched, sharded, multi-process."""

import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .. import _checks
from .._custom_types import Array, ArrayLike
from ._strategy import SweepOptions

MESH_AXIS = "cells"
RESERVED = ("devices", "options")

# What JAX raises when a traced value is used where a Python value is needed:
# under vmap that means fn's output shape (or control flow) depends on the point.
_CONCRETIZATION_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerBoolConversionError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.TracerArrayConversionError,
)


def _is_key(value) -> bool:
    dtype = getattr(value, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _split_axes(axes: dict) -> tuple[dict, dict]:
    """``(grid axes, scalar keys)``, each axis checked to be a non-empty 1-D array."""
    if not axes:
        raise ValueError(
            "sweep needs at least one axis: sweep(fn, name=values_1d, ...), e.g. "
            "sweep(fn, nu=jnp.array([0.1, 0.2]))"
        )
    grid, keys = {}, {}
    for name, value in axes.items():
        if _is_key(value) and jnp.shape(value) == ():
            keys[name] = value  # a typed key: one derived key per cell
            continue
        arr = value if _is_key(value) else jnp.asarray(value)
        if name == "key" and arr.dtype == jnp.uint32 and arr.shape == (2,):
            keys[name] = arr  # a raw jax.random.PRNGKey
            continue
        if arr.ndim != 1:
            hint = ""
            if arr.dtype == jnp.uint32 and arr.ndim == 2 and arr.shape[-1] == 2:
                hint = (
                    " (raw PRNG keys: sweep over seeds with a typed key array, "
                    "jax.random.split(jax.random.key(0), n))"
                )
            raise ValueError(
                f"sweep axis {name!r} must be a 1-D array of values; got shape "
                f"{arr.shape}{hint}"
            )
        if arr.shape[0] == 0:
            raise ValueError(
                f"sweep axis {name!r} is empty; give it at least one value"
            )
        grid[name] = arr
    if not grid:
        raise ValueError(
            f"sweep needs at least one 1-D axis besides the key(s) {sorted(keys)}"
        )
    return grid, keys


def _check_devices(devices) -> tuple:
    known = jax.devices()
    if devices is None:
        return tuple(known)
    if isinstance(devices, jax.Device):
        devices = [devices]
    try:
        devices = tuple(devices)
    except TypeError:
        raise ValueError(
            f"devices must be a sequence of jax devices (e.g. jax.devices()); got "
            f"{type(devices).__name__}"
        ) from None
    if not devices:
        raise ValueError("devices is empty; pass None (all devices) or jax devices")
    for device in devices:
        if not isinstance(device, jax.Device) or device not in known:
            raise ValueError(
                f"unknown device {device!r}: devices must be among jax.devices() = "
                f"{list(known)}"
            )
    if len(set(devices)) != len(devices):
        raise ValueError(f"devices contains duplicates: {list(devices)}")
    return devices


def _layout(cells: int, batch: int, devices: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each sorted position goes: ``(slot → position, position → slot)``.

    The sorted cells are cut into batches of ``batch`` (the last one filled
    with copies of the last cell), the batch count is padded to a multiple of
    ``devices`` (batches of copies of the first, cheapest cell), and the
    batches are dealt in turn ``0, 1, …, D−1, D−1, …, 0``; device ``d`` owns
    the slots ``[d·k·b, (d+1)·k·b)``. The batches and their members do not
    depend on the device count, so each cell is computed in the same batch
    whatever the devices.
    """
    count = -(-cells // batch)
    rounds = -(-count // devices)
    positions = np.arange(rounds * devices * batch).reshape(rounds * devices, batch)
    positions = np.where(positions < cells, positions, cells - 1)
    positions[count:] = 0
    j = np.arange(rounds * devices)
    r, d = j // devices, j % devices
    d = np.where(r % 2 == 0, d, devices - 1 - d)
    slot_batch = d * rounds + r  # the batch's index among all device slots
    slot_to_pos = np.empty_like(positions)
    slot_to_pos[slot_batch] = positions
    slot_to_pos = slot_to_pos.reshape(-1)
    pos = np.arange(cells)
    pos_to_slot = slot_batch[pos // batch] * batch + pos % batch
    return slot_to_pos, pos_to_slot


def _cell_function(fn, names, shape, key_names):
    """``cell_id -> fn(**point)`` with the point gathered from the axes."""
    strides = [math.prod(shape[i + 1 :]) for i in range(len(shape))]

    def cell(cell_id, grid, keys):
        point = {
            name: grid[name][(cell_id // stride) % size]
            for name, stride, size in zip(names, strides, shape, strict=True)
        }
        for name in key_names:
            point[name] = jax.random.fold_in(keys[name], cell_id.astype(jnp.uint32))
        return fn(**point)

    return cell


def _evaluate_batches(cell, ids, batch, grid, keys):
    """``cell`` on the ``ids`` (a multiple of ``batch``): vmap within a batch,
    ``lax.map`` over batches."""
    blocks = ids.reshape(-1, batch)

    def one_batch(block):
        if batch == 1:
            return jax.tree.map(lambda o: o[None], cell(block[0], grid, keys))
        return jax.vmap(cell, in_axes=(0, None, None))(block, grid, keys)

    out = jax.lax.map(one_batch, blocks)
    return jax.tree.map(lambda o: o.reshape((-1,) + o.shape[2:]), out)


def _out_size(cell, grid, keys) -> int:
    try:
        shapes = jax.eval_shape(
            jax.vmap(cell, in_axes=(0, None, None)),
            jnp.zeros((1,), jnp.int32),
            grid,
            keys,
        )
    except _CONCRETIZATION_ERRORS as error:
        raise ValueError(
            "sweep evaluates fn with the point traced (under vmap): fn's output "
            "shapes must be the same at every point and fn may not branch in "
            f"Python on the point's values; fn raised {type(error).__name__}: "
            f"{str(error).splitlines()[0]}"
        ) from error
    return sum(math.prod(s.shape[1:]) for s in jax.tree.leaves(shapes))


@eqx.filter_jit
def _core(fn, grid, keys, order, position, *, shape, strategy, mesh, replicate):
    """The compiled sweep: cells in slots, evaluated per device, gathered."""
    names = tuple(grid)
    cells = math.prod(shape)
    devices = mesh.devices.size
    cell = _cell_function(fn, names, shape, tuple(keys))
    batch = strategy.batch(cells, devices, _out_size(cell, grid, keys))
    slot_to_pos, pos_to_slot = _layout(cells, batch, devices)
    ids = order[jnp.asarray(slot_to_pos)]

    def local(ids, grid, keys):
        return _evaluate_batches(cell, ids, batch, grid, keys)

    if devices > 1:
        cells_spec = PartitionSpec(MESH_AXIS)
        ids = jax.lax.with_sharding_constraint(ids, NamedSharding(mesh, cells_spec))
        local = jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(cells_spec, PartitionSpec(), PartitionSpec()),
            out_specs=cells_spec,
            check_vma=False,
        )
    out = local(ids, grid, keys)
    slots = jnp.asarray(pos_to_slot)[position]  # cell → its sorted position → slot

    def gather(o):
        o = jnp.take(o, slots, axis=0).reshape(shape + o.shape[1:])
        if devices > 1:
            spec = PartitionSpec(MESH_AXIS) if shape[0] % devices == 0 else None
            if replicate:
                spec = PartitionSpec()
            if spec is not None:
                o = jax.lax.with_sharding_constraint(o, NamedSharding(mesh, spec))
        return o

    return jax.tree.map(gather, out)


def _replicated(tree, mesh):
    """Concrete array leaves as arrays replicated over ``mesh`` (global arrays
    in a multi-process run); traced leaves as they are."""
    sharding = NamedSharding(mesh, PartitionSpec())

    def put(leaf):
        if not eqx.is_array(leaf) or isinstance(leaf, jax.core.Tracer):
            return leaf
        if _is_key(leaf):
            data = put(jax.random.key_data(leaf))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
        if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
            return leaf
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda i: host[i])

    return jax.tree.map(put, tree)


def sweep(
    fn: Callable,
    /,
    *,
    devices: Sequence[jax.Device] | None = None,
    options: SweepOptions | None = None,
    **axes: ArrayLike,
) -> Array:
    r"""``fn(**point)`` on the Cartesian grid of the 1-D arrays ``axes``.

    ``out[i_1, …, i_a, ...] = fn(name_1=axis_1[i_1], …, name_a=axis_a[i_a])``,
    the grid axes in the order the keywords are given, then ``fn``'s own
    output axes (a pytree output gets the grid axes on every leaf).

    How it runs: the grid is flattened into cells, the cells are sorted by
    expected cost on the host when the strategy asks for it and the axes are
    known (``"auto"``: by ν·τ when axes ``nu`` and ``tau`` are swept, the
    Hopf–Cole kernel variance that decides the kernel regime and the tiles a
    field needs; by ν alone, the step count of adaptive solves), cut into
    fixed batches (``vmap`` within a batch, ``lax.map`` over batches: one
    compiled program, no per-cell dispatch), and the batches dealt to the
    ``devices`` in turn (``0, 1, …, D−1, D−1, …, 0``, so that each device
    gets a similar mix of cheap and costly cells). With more than one device
    the cells are sharded (``Mesh`` + ``NamedSharding``) and each device runs
    its own batches under ``shard_map`` (its own adaptive while-loops); the
    result is gathered in grid order. A vmapped batch of Hopf–Cole fields in
    one kernel regime computes that regime only, so mixed-regime periodic
    sweeps cost no more than their single calls (``vmap`` over a mixed
    batch computes the union of the members' tiles and regimes).

    Random keys: an argument holding a single typed key
    (``jax.random.key(s)``; also a raw ``jax.random.PRNGKey(s)`` when named
    ``key``) is not an axis: each cell receives
    ``jax.random.fold_in(key, c)`` under that name, ``c`` the cell's index in
    the row-major grid. A typed key array of shape ``(s,)``
    (``jax.random.split``) is an ordinary axis of seeds. With the automatic
    or a fixed batch size, each cell is computed in the same batch whatever
    the device count, so results are bit-identical on 1, 2, 4 … devices and
    across processes.

    Args:
        fn: a JAX function of the axes' names (keyword arguments), returning
            arrays (or a pytree of arrays) of the same shapes at every point.
            Positional-only, so ``fn`` may also be an axis name.
        devices: the devices to shard over (a sequence of ``jax.Device``);
            default ``jax.devices()``: all local devices, and in a
            multi-process run (``jax.distributed.initialize``) the devices of
            every process.
        options: a :class:`SweepOptions` (strategy, replication).
            ``devices`` and ``options`` are therefore not axis names.
        **axes: the grid, ``name=values`` with 1-D arrays (non-empty).

    Returns:
        An array of shape ``(len(axis_1), …, len(axis_a)) + fn's shape``
        (sharded over the devices along its first axis when that length is a
        multiple of their number; replicated in a multi-process run).

    Raises:
        ValueError: no axes, an axis that is not 1-D or is empty, an unknown
            or empty device list, a ``fn`` whose output shape depends on the
            point (or that branches in Python on it). All are static and
            raise the same under ``jit``.

    Compilation: one cached ``eqx.filter_jit`` per ``fn`` object, axis
    shapes and dtypes, devices and options; new axis values reuse it (define
    ``fn`` once; a fresh ``lambda`` per call compiles again). ``sweep`` works
    inside ``jit`` (traced axes keep the grid order) and is differentiable
    through the axes.

    Example:
        >>> import jax.numpy as jnp
        >>> out = sweep(lambda a, b: a * b + jnp.zeros(3), a=jnp.arange(2.0),
        ...             b=jnp.array([1.0, 2.0, 3.0]))
        >>> out.shape, float(out[1, 2, 0])
        ((2, 3, 3), 3.0)
    """
    _checks.callable_arg(fn, "fn")
    options = SweepOptions() if options is None else options
    if not isinstance(options, SweepOptions):
        raise ValueError(
            f"options must be a SweepOptions; got {type(options).__name__}"
        )
    strategy = options.resolved()
    grid, keys = _split_axes(axes)
    devices = _check_devices(devices)
    shape = tuple(int(a.shape[0]) for a in grid.values())
    cells = math.prod(shape)
    order = np.arange(cells)
    if _checks.is_concrete(grid):
        costs = strategy.costs(_points(grid, shape))
        if costs is not None:
            order = np.argsort(costs, kind="stable")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(cells)
    mesh = Mesh(np.asarray(devices), (MESH_AXIS,))
    multi_process = len({d.process_index for d in devices}) > 1
    replicate = multi_process if options.replicate is None else options.replicate
    fn, grid, keys, order, inverse = _replicated(
        (fn, grid, keys, order.astype(np.int32), inverse.astype(np.int32)), mesh
    )
    return _core(
        fn,
        grid,
        keys,
        order,
        inverse,
        shape=shape,
        strategy=strategy,
        mesh=mesh,
        replicate=replicate,
    )


def _points(grid: dict, shape) -> dict[str, np.ndarray]:
    """Every cell's axis values (NumPy, cells in row-major grid order)."""
    index = np.indices(shape).reshape(len(shape), -1)
    return {
        name: np.asarray(values)[i]
        for (name, values), i in zip(grid.items(), index, strict=True)
        if not _is_key(values)
    }


__all__ = ["sweep"]
