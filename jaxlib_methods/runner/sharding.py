"""Sharding rules of every experiment, in one place (data parallel now; FSDP later changes only this file).

The jitted step runs under a `jax.sharding.Mesh` with one axis, `data`: the batch's leading axis is split over it,
parameters and optimizer state are replicated. jit inserts the gradient all-reduce. No `pmap`.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxlib_methods.runner.experiment import MeshConfig, UsageError

DATA_AXIS = "data"


def make_mesh(config: MeshConfig) -> Mesh:
  """A 1-axis ('data') mesh over `config.data` devices (0: all visible devices).

  Raises:
    UsageError: more devices asked for than are visible, or a negative count.
  """
  available = jax.devices()
  n = len(available) if config.data == 0 else config.data
  if n < 1 or n > len(available):
    raise UsageError(f"mesh.data={config.data} but {len(available)} device(s) are visible "
                     f"({available[0].platform}); use 1..{len(available)} or 0 for all")
  return Mesh(np.asarray(available[:n]), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over `data`, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Place every leaf of `batch` with its leading axis split over the mesh (which must divide it)."""
  n = mesh.shape[DATA_AXIS]

  def put(x):
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    if x.ndim == 0 or x.shape[0] % n:
      raise ValueError(f"batch leading axis {x.shape[:1]} is not divisible by mesh.data={n}")
    return jax.device_put(x, batch_sharding(mesh))

  return jax.tree.map(put, batch)


def state_sharding(state: Any, mesh: Mesh) -> Any:
  """The sharding of params / optimizer state: replicated (the FSDP rule will go here)."""
  return jax.tree.map(lambda _: replicated(mesh), state)


def place_state(state: Any, mesh: Mesh) -> Any:
  return jax.device_put(state, state_sharding(state, mesh))
