"""Sharding rules of every experiment, in one place: one mesh (data, fsdp, tensor) and one table of logical axes.

A run's devices form one `jax.sharding.Mesh` with three axes, outermost first:

    data    replicas of the model; the batch is split over it (plain data parallelism);
    fsdp    the batch is split over it too, and every parameter (and every optimizer-state leaf shaped like one) is
            split along its largest dimension that the axis divides (ZeRO-3 / FSDP: each device stores 1/fsdp of the
            state; jit's SPMD partitioner all-gathers a weight where a matmul needs it and reduce-scatters its
            gradient);
    tensor  attention heads and the MLP hidden dimension are split (Megatron-LM column/row pairs: q/k/v and W_1 are
            split on their output dimension, o and W_2 on their input dimension, so one all-reduce per block).

Parameters name their dimensions with logical axes (`embed`, `heads`, `mlp`, `vocab`, ... as NNX metadata, see
`jaxlib_methods.nn.transformer`), and `LOGICAL_AXIS_RULES` below maps logical names to mesh axes, the way MaxText
and big_vision keep theirs: the only place where "what is split over what" is decided. FSDP then takes the largest
remaining divisible dimension of each leaf (big_vision's `fsdp` rule), so unannotated parameters are sharded too.
Optimizer state is never listed by hand: `shard_like_params` derives each leaf's sharding from the parameter whose
path it ends with (optax states mirror the params' tree), keeping the parameter's mesh axes on the dimensions they
share (AdamW moments: all of them; GaLore's low-rank moments: the large dimension), and applies the FSDP rule to the
rest (projectors, quantisation scales); scalars are replicated. The shardings come from `jax.eval_shape`, so `init`
creates the state already sharded and the jitted step declares `in_shardings` / `out_shardings` and donates it.

A sharding mistake (`tensor=3` with 4 heads, a batch that `data * fsdp` does not divide) raises `ShardingError`
naming the leaf, its shape, the dimension and the mesh axis, before anything is compiled. No `pmap`.

References: Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models", 2020,
arXiv:1910.02054 (stage 3 = FSDP); Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models
Using Model Parallelism", 2019, arXiv:1909.08053, Sec. 3 (column/row-parallel pairs); Xu et al., "GSPMD: General and
Scalable Parallelization for ML Computation Graphs", 2021, arXiv:2105.04663 (what jit does with these shardings).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from jaxlib_methods.runner.experiment import MeshConfig, UsageError

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
TENSOR_AXIS = "tensor"
MESH_AXES = (DATA_AXIS, FSDP_AXIS, TENSOR_AXIS)
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)   # the batch is split over every axis that holds a different slice of data

# Logical axis -> mesh axis (None: no rule; FSDP may still take that dimension). The one table of the project.
LOGICAL_AXIS_RULES: tuple[tuple[str, Union[str, tuple[str, ...], None]], ...] = (
    ("batch", BATCH_AXES),     # activations' leading axis
    ("heads", TENSOR_AXIS),    # attention heads: column-parallel q/k/v, row-parallel o (Megatron-LM, Sec. 3)
    ("kv_heads", TENSOR_AXIS),  # grouped-query key/value heads
    ("mlp", TENSOR_AXIS),      # MLP hidden units: column-parallel W_1, row-parallel W_2
    ("embed", None),           # model width: left to FSDP
    ("vocab", None),           # vocabulary: left to FSDP
    ("head_dim", None),
    ("gate_rank", None),
    ("norm", None),
    ("seq", None),
)


class ShardingError(UsageError):
  """A sharding that cannot be built: names the leaf, its shape, the dimension and the mesh axis. A `UsageError`
  (a ValueError): the mesh or the sizes in the config do not fit, so the CLI reports it in one line (exit status 2)."""


# ----------------------------------------------------------------------------------------------------------------------
# The mesh.
# ----------------------------------------------------------------------------------------------------------------------

def mesh_shape(config: MeshConfig, num_devices: int) -> tuple[int, int, int]:
  """(data, fsdp, tensor) sizes for `num_devices` visible devices; one axis may be 0 = "the rest".

  Raises:
    UsageError: a negative size, more than one 0, a 0 that does not divide, or more devices than are visible.
  """
  sizes = {name: getattr(config, name) for name in MESH_AXES}
  for name, v in sizes.items():
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
      raise UsageError(f"mesh.{name} must be an int >= 0 (0 = the rest of the devices), got mesh.{name}={v!r}")
  zeros = [name for name, v in sizes.items() if v == 0]
  if len(zeros) > 1:
    raise UsageError(f"at most one mesh axis may be 0 (= the rest of the devices), got "
                     f"{', '.join(f'mesh.{n}=0' for n in zeros)}")
  fixed = math.prod(v for v in sizes.values() if v)
  if zeros:
    if num_devices % fixed:
      raise UsageError(f"mesh.{zeros[0]}=0 means the rest of the {num_devices} visible device(s), but the other "
                       f"axes multiply to {fixed}, which does not divide {num_devices}")
    sizes[zeros[0]] = num_devices // fixed
  total = math.prod(sizes.values())
  if total > num_devices:
    desc = " x ".join(f"mesh.{n}={sizes[n]}" for n in MESH_AXES if sizes[n] != 1) or "mesh"
    raise UsageError(f"{desc} but {num_devices} device(s) are visible; the product of mesh.data, mesh.fsdp and "
                     f"mesh.tensor must be at most {num_devices} (0 on one axis = the rest)")
  return sizes[DATA_AXIS], sizes[FSDP_AXIS], sizes[TENSOR_AXIS]


def make_mesh(config: MeshConfig, devices: Optional[Sequence[Any]] = None) -> Mesh:
  """The run's (data, fsdp, tensor) mesh over the first data*fsdp*tensor of `devices` (default `jax.devices()`).

  With every visible device it is `jax.make_mesh` (topology-aware on TPU/GPU); `tensor` is the innermost axis, so
  the tensor-parallel group is the fastest-connected one (one host, one ICI ring), then `fsdp`, then `data`. Axes are
  `AxisType.Auto`: jit's partitioner propagates the shardings declared here.

  Raises:
    UsageError: see `mesh_shape` (the message names the mesh fields and the visible device count).
  """
  available = list(jax.devices() if devices is None else devices)
  if not available:
    raise UsageError("no devices are visible")
  shape = mesh_shape(config, len(available))
  n = math.prod(shape)
  auto = (AxisType.Auto,) * len(MESH_AXES)
  if n == len(available) and devices is None:
    return jax.make_mesh(shape, MESH_AXES, axis_types=auto)
  return Mesh(np.asarray(available[:n]).reshape(shape), MESH_AXES, axis_types=auto)


def axis_size(mesh: Mesh, axis: Union[str, Sequence[str], None]) -> int:
  """The number of devices along a mesh axis (or the product over a tuple of axes; 1 for None or an absent axis)."""
  if axis is None:
    return 1
  if isinstance(axis, str):
    return int(mesh.shape.get(axis, 1))
  return math.prod(int(mesh.shape.get(a, 1)) for a in axis)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


# ----------------------------------------------------------------------------------------------------------------------
# Logical axes -> PartitionSpec.
# ----------------------------------------------------------------------------------------------------------------------

def _axes_in(entry: Any) -> tuple[str, ...]:
  if entry is None:
    return ()
  return (entry,) if isinstance(entry, str) else tuple(entry)


def _rules_dict(rules) -> dict:
  out = {}
  for name, target in rules:
    if name in out:
      raise ValueError(f"logical axis {name!r} appears twice in the rules")
    out[name] = target
  return out


def _check_divides(path: str, shape: tuple, dim: int, axes: tuple[str, ...], mesh: Mesh, why: str) -> None:
  size = axis_size(mesh, axes)
  if shape[dim] % size:
    ax = axes[0] if len(axes) == 1 else axes
    raise ShardingError(f"leaf {path} with shape {shape}: dimension {dim} ({why}) has size {shape[dim]}, which mesh "
                        f"axis {ax!r} of size {size} does not divide")


def fsdp_dimension(shape: Sequence[int], mesh: Mesh, taken: Sequence[Any] = ()) -> Optional[int]:
  """The dimension FSDP splits: the largest one that `fsdp` divides among those `taken` leaves free (ties: the
  first). None when `fsdp` is 1, the leaf is a scalar, or no free dimension is divisible (the leaf is replicated)."""
  n = axis_size(mesh, FSDP_AXIS)
  if n == 1 or len(shape) == 0:
    return None
  taken = tuple(taken) + (None,) * (len(shape) - len(taken))
  best = None
  for d, size in enumerate(shape):
    if taken[d] is None and size % n == 0 and size >= n and (best is None or size > shape[best]):
      best = d
  return best


def logical_to_spec(logical: Optional[Sequence[Optional[str]]], shape: Sequence[int], mesh: Mesh, *,
                    path: str = "<leaf>", rules=LOGICAL_AXIS_RULES, fsdp: bool = True) -> P:
  """The PartitionSpec of one array: its logical axes through `rules`, then the FSDP rule on what is left.

  Args:
    logical: one logical name (or None) per dimension, or None for an unannotated leaf (FSDP only).
    shape: the array's shape.
    mesh: the run's mesh (axes of size 1 are left out of the spec).
    path: the leaf's name, for errors.
    rules: (logical name, mesh axis | tuple of axes | None) pairs; default `LOGICAL_AXIS_RULES`.
    fsdp: apply the FSDP rule.

  Raises:
    ShardingError: a logical name the rules do not know, a rank mismatch, a mesh axis used twice, or a dimension the
      mesh axis does not divide (naming the leaf, its shape, the dimension and the axis).
  """
  shape = tuple(int(s) for s in shape)
  table = _rules_dict(rules)
  entries: list[Any] = [None] * len(shape)
  if logical is not None:
    logical = tuple(logical)
    if len(logical) != len(shape):
      raise ShardingError(f"leaf {path} with shape {shape} has {len(logical)} logical axes {logical}")
    used: dict[str, int] = {}
    for d, name in enumerate(logical):
      if name is None:
        continue
      if name not in table:
        raise ShardingError(f"leaf {path} with shape {shape}: logical axis {name!r} has no rule; known: "
                            f"{', '.join(sorted(table))}")
      axes = tuple(a for a in _axes_in(table[name]) if axis_size(mesh, a) > 1)
      if not axes:
        continue
      for a in axes:
        if a in used:
          raise ShardingError(f"leaf {path} with shape {shape}: mesh axis {a!r} would split both dimension "
                              f"{used[a]} and dimension {d}")
        used[a] = d
      _check_divides(path, shape, d, axes, mesh, f"logical axis {name!r}")
      entries[d] = axes[0] if len(axes) == 1 else axes
  if fsdp and not any(FSDP_AXIS in _axes_in(e) for e in entries):
    d = fsdp_dimension(shape, mesh, entries)
    if d is not None:
      entries[d] = FSDP_AXIS
  while entries and entries[-1] is None:
    entries.pop()
  return P(*entries)


def check_spec(spec: P, shape: Sequence[int], mesh: Mesh, path: str = "<leaf>") -> P:
  """Validate a hand-written PartitionSpec against a shape (ShardingError naming the leaf, shape, dim and axis)."""
  shape = tuple(int(s) for s in shape)
  if len(spec) > len(shape):
    raise ShardingError(f"leaf {path} with shape {shape}: PartitionSpec {spec} has more entries than dimensions")
  for d, entry in enumerate(spec):
    axes = _axes_in(entry)
    for a in axes:
      if a not in mesh.shape:
        raise ShardingError(f"leaf {path} with shape {shape}: mesh axis {a!r} is not one of {tuple(mesh.shape)}")
    if axes:
      _check_divides(path, shape, d, axes, mesh, f"PartitionSpec entry {entry!r}")
  return spec


# ----------------------------------------------------------------------------------------------------------------------
# Trees: parameters, then everything derived from them.
# ----------------------------------------------------------------------------------------------------------------------

def _key_name(k: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def _path_tuple(path) -> tuple[str, ...]:
  return tuple(_key_name(k) for k in path)


def _path_str(path) -> str:
  return "/".join(_path_tuple(path)) or "<root>"


def _is_spec_leaf(x: Any) -> bool:
  return x is None or isinstance(x, (P, tuple))


def logical_axes(abstract_state: Any) -> Any:
  """The logical axes of an NNX state (`nnx.state(model)` or `nnx.eval_shape(...)`), as a pure dict of tuples.

  Reads the NNX sharding metadata (`out_sharding`, set by `nnx.with_partitioning` or `Param(..., out_sharding=...)`);
  unannotated parameters map to None (FSDP only).
  """
  from flax import nnx
  specs = nnx.to_pure_dict(nnx.get_partition_spec(abstract_state))
  return jax.tree.map(lambda s: tuple(s) if isinstance(s, P) and len(s) else None, specs,
                      is_leaf=lambda x: isinstance(x, P))


def param_specs(params: Any, logical: Any = None, mesh: Optional[Mesh] = None, *, rules=LOGICAL_AXIS_RULES) -> Any:
  """PartitionSpecs of a params tree (arrays or ShapeDtypeStructs) from its logical axes (a tree of tuples | None,
  the params' structure; None: FSDP rule only). Raises ShardingError naming the first leaf that cannot be split."""
  if mesh is None:
    raise TypeError("param_specs needs the mesh")
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  if logical is None:
    names = [None] * len(leaves)
  else:
    names = treedef.flatten_up_to(logical) if not isinstance(logical, list) else logical
  out = [logical_to_spec(n, np.shape(x), mesh, path=_path_str(p), rules=rules) for (p, x), n in zip(leaves, names)]
  return jax.tree_util.tree_unflatten(treedef, out)


def shard_like_params(tree: Any, params: Any, specs: Any, mesh: Mesh) -> Any:
  """PartitionSpecs for any tree built from the params (optimizer state, gradients, EMA copies), derived, not listed.

  Each leaf whose key path ends with a parameter's path (optax states mirror the params' tree) keeps that parameter's
  mesh axes on every dimension where the two shapes agree (AdamW moments: the same spec; GaLore's [r, n] moments of
  an [m, n] weight: the n axis), and FSDP takes the largest free divisible dimension if `fsdp` is not already used.
  Leaves that match no parameter (projectors in a flat tuple, quantisation scales, counters) get the FSDP rule alone;
  scalars are replicated. Works on arrays and on `jax.eval_shape` results.
  """
  p_leaves, _ = jax.tree_util.tree_flatten_with_path(params)
  s_leaves = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P))
  if len(p_leaves) != len(s_leaves):
    raise ValueError(f"params have {len(p_leaves)} leaves but specs have {len(s_leaves)}")
  table = {_path_tuple(p): (tuple(np.shape(x)), s) for (p, x), s in zip(p_leaves, s_leaves)}
  by_len = sorted({len(k) for k in table}, reverse=True)

  def match(path: tuple[str, ...]):
    for n in by_len:
      if n <= len(path) and path[len(path) - n:] in table:
        return table[path[len(path) - n:]]
    return None

  def one(path, x):
    shape = tuple(np.shape(x))
    if not shape:
      return P()
    name = _path_str(path)
    hit = match(_path_tuple(path))
    entries: list[Any] = [None] * len(shape)
    if hit is not None:
      p_shape, p_spec = hit
      p_entries = tuple(p_spec) + (None,) * (len(p_shape) - len(p_spec))
      if p_shape == shape:
        entries = list(p_entries)
      elif len(p_shape) == len(shape):
        entries = [e if a == b else None for e, a, b in zip(p_entries, p_shape, shape)]
    if not any(FSDP_AXIS in _axes_in(e) for e in entries):
      d = fsdp_dimension(shape, mesh, entries)
      if d is not None:
        entries[d] = FSDP_AXIS
    while entries and entries[-1] is None:
      entries.pop()
    return check_spec(P(*entries), shape, mesh, name)

  return jax.tree_util.tree_map_with_path(one, tree)


def fsdp_specs(tree: Any, mesh: Mesh) -> Any:
  """The FSDP rule alone on every leaf (largest divisible dimension on `fsdp`; replicated when fsdp == 1)."""
  return jax.tree_util.tree_map_with_path(
      lambda p, x: logical_to_spec(None, np.shape(x), mesh, path=_path_str(p)), tree)


def named(mesh: Mesh, specs: Any) -> Any:
  """PartitionSpec tree -> NamedSharding tree."""
  return jax.tree.map(lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, P))


def state_sharding(state: Any, mesh: Mesh) -> Any:
  """NamedShardings of a state with no logical annotations: the FSDP rule on every leaf (replicated if fsdp == 1)."""
  return named(mesh, fsdp_specs(state, mesh))


def place_state(state: Any, mesh: Mesh, shardings: Any = None) -> Any:
  """Place a host-built state with `shardings` (default `state_sharding`).

  Single process: `jax.device_put`. Multi-process: every process holds the same host copy and builds only its
  addressable shards (`jax.make_array_from_callback`), so nothing is compared or sent between processes.
  """
  shardings = state_sharding(state, mesh) if shardings is None else shardings
  if jax.process_count() == 1:
    return jax.device_put(state, shardings)

  def put(x, s):
    host = np.asarray(jax.device_get(x)) if isinstance(x, jax.Array) and x.is_fully_addressable else np.asarray(x)
    return jax.make_array_from_callback(host.shape, s, lambda idx: host[idx])

  return jax.tree.map(put, state, shardings)


# ----------------------------------------------------------------------------------------------------------------------
# The batch: split over (data, fsdp); each process feeds only its own rows.
# ----------------------------------------------------------------------------------------------------------------------

def batch_spec(ndim: int = 1, batch_axis: int = 0) -> P:
  if not 0 <= batch_axis < max(ndim, 1):
    raise ValueError(f"batch_axis={batch_axis} is not an axis of a {ndim}-d array")
  entries: list[Any] = [None] * ndim
  entries[batch_axis] = BATCH_AXES
  return P(*entries)


def batch_sharding(mesh: Mesh, ndim: int = 1, batch_axis: int = 0) -> NamedSharding:
  """The batch axis split over (data, fsdp); everything else replicated (over tensor too)."""
  return NamedSharding(mesh, batch_spec(ndim, batch_axis))


def process_rows(global_batch: int, mesh: Mesh, *, path: str = "batch") -> slice:
  """The rows of a global batch this process must feed (contiguous, from the mesh's addressable devices).

  Raises:
    ShardingError: `data * fsdp` does not divide the batch.
  """
  n = axis_size(mesh, BATCH_AXES)
  if global_batch % n:
    raise ShardingError(f"leaf {path} with shape ({global_batch}, ...): dimension 0 (batch) has size {global_batch}, "
                        f"which mesh axes {BATCH_AXES} of size {n} (mesh.data x mesh.fsdp) do not divide")
  sharding = batch_sharding(mesh)
  idx = sharding.addressable_devices_indices_map((global_batch,))
  starts = sorted({(s[0].start or 0) for s in idx.values()})
  stops = sorted({(s[0].stop if s[0].stop is not None else global_batch) for s in idx.values()})
  lo, hi = starts[0], stops[-1]
  covered = sum(b - a for a, b in sorted({(s[0].start or 0, s[0].stop or global_batch) for s in idx.values()}))
  if covered != hi - lo:
    raise ShardingError(f"this process's devices hold non-contiguous rows of the batch ({sorted(starts)}); order "
                        f"the mesh so each process owns a contiguous block")
  return slice(lo, hi)


def shard_batch(batch: Any, mesh: Mesh, *, batch_axis: int = 0, process_local: bool = False) -> Any:
  """Global jax.Arrays from host data, the batch axis split over (data, fsdp).

  Each process contributes only its own rows (`jax.make_array_from_process_local_data`): with `process_local=True`
  the leaves ARE this process's rows (what a sharded data loader yields); otherwise they are the global batch and
  each process takes `process_rows` of it (single-process runs: all of it).

  Raises:
    ShardingError: the batch axis is not divisible by mesh.data * mesh.fsdp (naming the leaf and its shape).
  """
  n_proc = jax.process_count()

  def put(path, x):
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    name = _path_str(path)
    if x.ndim <= batch_axis:
      raise ShardingError(f"batch leaf {name} with shape {x.shape} has no batch axis {batch_axis}")
    local_rows = x.shape[batch_axis]
    global_rows = local_rows * n_proc if process_local else local_rows
    gshape = x.shape[:batch_axis] + (global_rows,) + x.shape[batch_axis + 1:]
    rows = process_rows(global_rows, mesh, path=name)
    sharding = batch_sharding(mesh, x.ndim, batch_axis)
    if not process_local:
      x = np.asarray(x)[(slice(None),) * batch_axis + (rows,)]
    elif local_rows != rows.stop - rows.start:
      raise ShardingError(f"batch leaf {name}: this process fed {local_rows} rows but owns {rows.stop - rows.start} "
                          f"of the global {global_rows}")
    return jax.make_array_from_process_local_data(sharding, np.asarray(x), gshape)

  return jax.tree_util.tree_map_with_path(put, batch)


def shard_leading(tree: Any, mesh: Mesh, *, what: str = "seed") -> Any:
  """Split the leading axis of every array of `tree` over the mesh's (data, fsdp) devices: data parallelism over
  independent runs (seeds, grid points) that an experiment vmaps.

  The arrays may be host data or jax.Arrays (PRNG key arrays included); a jitted function of them then runs each
  device's share of the vmapped runs on that device (jit's partitioner propagates the input sharding), and the
  results gather back with `np.asarray`. On a one-device mesh it only commits the arrays to that device, so a run
  with the default `MeshConfig()` computes exactly what it computed before.

  Args:
    tree: a pytree of arrays, each with a leading axis of the same size (the runs).
    mesh: the run's mesh (`make_mesh`).
    what: what the leading axis counts, for the error message (e.g. "seed", "grid point").

  Returns:
    The same pytree, each leaf a jax.Array sharded `P(("data", "fsdp"), None, ...)` over `mesh`.

  Raises:
    ShardingError: a leaf has no leading axis, or mesh.data x mesh.fsdp does not divide its size (the message names
      the leaf, its shape and the mesh).
  """
  n = axis_size(mesh, BATCH_AXES)

  def put(path, x):
    name = _path_str(path)
    ndim = len(np.shape(x))
    if ndim == 0:
      raise ShardingError(f"leaf {name} is a scalar: shard_leading needs a leading axis of {what}s")
    rows = np.shape(x)[0]
    if rows % n:
      raise ShardingError(f"leaf {name} with shape {tuple(np.shape(x))}: its {rows} {what}s cannot be split evenly "
                          f"over mesh.data x mesh.fsdp = {n} devices; use a multiple of {n} {what}s or a smaller mesh")
    return jax.device_put(x, batch_sharding(mesh, ndim))

  return jax.tree_util.tree_map_with_path(put, tree)


# ----------------------------------------------------------------------------------------------------------------------
# Measurement.
# ----------------------------------------------------------------------------------------------------------------------

def bytes_per_device(tree: Any) -> dict[str, int]:
  """Bytes each addressable device holds for the arrays of `tree`, summed from their addressable shards (what is
  really allocated, not a formula): {str(device): bytes}."""
  out: dict[str, int] = {}
  for x in jax.tree.leaves(tree):
    if not isinstance(x, jax.Array):
      continue
    for shard in x.addressable_shards:
      out[str(shard.device)] = out.get(str(shard.device), 0) + int(shard.data.nbytes)
  return out


def replicated_bytes(tree: Any) -> int:
  """Total bytes of the leaves that are fully replicated (scalars and leaves no rule could split)."""
  return sum(int(x.nbytes) for x in jax.tree.leaves(tree)
             if isinstance(x, jax.Array) and x.sharding.is_fully_replicated)


def describe(specs: Any, tree: Any = None) -> list[tuple[str, tuple, str]]:
  """(path, shape, spec) rows for docs and logs."""
  rows = []
  leaves = jax.tree_util.tree_flatten_with_path(specs, is_leaf=lambda x: isinstance(x, P))[0]
  shapes = [tuple(np.shape(x)) for x in jax.tree.leaves(tree)] if tree is not None else [()] * len(leaves)
  for (p, s), shp in zip(leaves, shapes):
    rows.append((_path_str(p), shp, str(s)))
  return rows


__all__ = [
    "BATCH_AXES", "DATA_AXIS", "FSDP_AXIS", "LOGICAL_AXIS_RULES", "MESH_AXES", "TENSOR_AXIS", "ShardingError",
    "axis_size", "batch_sharding", "batch_spec", "bytes_per_device", "check_spec", "describe", "fsdp_dimension",
    "fsdp_specs", "logical_axes", "logical_to_spec", "make_mesh", "mesh_shape", "named", "param_specs",
    "place_state", "process_rows", "replicated", "replicated_bytes", "shard_batch", "shard_like_params",
    "state_sharding",
]
