"""Monolith's collisionless embedding table: a host-side id -> row map with a frequency filter and expiry, feeding
jitted lookups into a fixed [capacity, d] table.

Paper [162]: Zhuoran Liu, Leqi Zou, Xuan Zou, Caihua Wang, Biao Zhang, Da Tang, Bolin Zhu, Yijie Zhu, Peng Wu, Ke
Wang, Youlong Cheng, "Monolith: Real Time Recommendation System With Collisionless Embedding Table", ORSUM@RecSys
2022, arXiv:2209.07663 (Sec. 2.2, "Hash Table": every admitted id owns its own embedding row, so no two ids share
one, unlike the hashing trick; ids are admitted only after they occur a tunable number of times (the occurrence
filter), and ids not seen for a set period expire, releasing their memory).

What is kept and what differs from the paper. The paper stores rows in a growing cuckoo hash map inside TensorFlow's
parameter servers; here a Python dict maps ids to rows (collisionless by construction, like the cuckoo map) and the
rows live in a fixed-capacity array so that the jitted model sees static shapes. Row 0 is the shared default row: ids
that have not passed the filter, and ids arriving when every row is taken, read it (the paper's table would grow
instead; `overflow` counts them). The paper's optional probabilistic filter is not built.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass
class CollisionlessEmbedding:
  """Host-side id -> row map of Monolith's collisionless table (Liu et al. 2022, arXiv:2209.07663, Sec. 2.2).

  Row 0 is the default row; rows 1 .. capacity - 1 are given to admitted ids, one each, never shared. An id is
  admitted when its occurrence count reaches `min_count` (counts include every occurrence within a batch, and an id
  crossing the threshold inside a batch gets its row for the whole batch). `expire(step)` removes every admitted id
  whose last occurrence is more than `expire_after` steps before `step` and frees its row for new ids; an expired
  id must pass the filter again. Feed the rows to a jitted `collisionless_lookup(table, rows)`; re-initialise
  the rows `observe` reports as newly admitted so that a new id does not inherit a previous owner's vector.

  Args:
    capacity: number of rows of the embedding array, >= 2 (row 0 is the default row).
    min_count: occurrences needed before an id gets a row, >= 1 (1: no filter).
    expire_after: steps without an occurrence after which an id expires, >= 0, or None (never).

  Example:
    >>> t = CollisionlessEmbedding(capacity=4, min_count=2)
    >>> t.observe([7, 7, 9], step=0)[0].tolist()
    [1, 1, 0]
  """
  capacity: int
  min_count: int = 1
  expire_after: int | None = None

  def __post_init__(self):
    if isinstance(self.capacity, bool) or not isinstance(self.capacity, int) or self.capacity < 2:
      raise ValueError(f"capacity must be an int >= 2 (row 0 is the default row), got capacity={self.capacity!r}")
    if isinstance(self.min_count, bool) or not isinstance(self.min_count, int) or self.min_count < 1:
      raise ValueError(f"min_count must be an int >= 1, got min_count={self.min_count!r}")
    if self.expire_after is not None and (isinstance(self.expire_after, bool) or not isinstance(self.expire_after, int)
                                          or self.expire_after < 0):
      raise ValueError(f"expire_after must be an int >= 0 or None, got expire_after={self.expire_after!r}")
    self._row: dict[int, int] = {}        # admitted id -> row
    self._count: dict[int, int] = {}      # not yet admitted id -> occurrences so far
    self._last_seen: dict[int, int] = {}  # admitted id -> last step it occurred
    self._free = list(range(self.capacity - 1, 0, -1))  # pop() gives the lowest free row
    self.overflow = 0                     # occurrences that passed the filter but found no free row

  @staticmethod
  def _ids(ids) -> np.ndarray:
    a = np.asarray(ids)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
      raise TypeError(f"ids must be an integer array, got ids.dtype={a.dtype}")
    return a

  def observe(self, ids, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Count the occurrences of `ids` at `step`, admit ids that reach `min_count`, and map them to rows.

    Args:
      ids: integer array of any shape (feature ids of a batch).
      step: the current training step (used by expiry), an int.

    Returns:
      (rows, new_rows): int32 rows of `ids`'s shape (0 for ids not admitted) and the int32 rows given to ids
      admitted by this call (to re-initialise).
    """
    a = self._ids(ids)
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
      raise TypeError(f"step must be an int, got {step=!r}")
    new_rows = []
    uniq, counts = np.unique(a.ravel(), return_counts=True)
    for i, c in zip(uniq.tolist(), counts.tolist()):
      if i in self._row:
        self._last_seen[i] = int(step)
        continue
      total = self._count.get(i, 0) + c
      if total >= self.min_count and self._free:
        row = self._free.pop()
        self._row[i] = row
        self._last_seen[i] = int(step)
        self._count.pop(i, None)
        new_rows.append(row)
      else:
        if total >= self.min_count:
          self.overflow += c
        self._count[i] = total
    return self.lookup(a), np.asarray(new_rows, np.int32)

  def lookup(self, ids) -> np.ndarray:
    """Rows of `ids` without counting them: int32 array of `ids`'s shape, 0 (the default row) where not admitted."""
    a = self._ids(ids)
    return np.vectorize(lambda i: self._row.get(int(i), 0), otypes=[np.int32])(a) if a.size else a.astype(np.int32)

  def expire(self, step: int) -> np.ndarray:
    """Expire the ids not seen for more than `expire_after` steps before `step`; returns their freed int32 rows."""
    if self.expire_after is None:
      return np.zeros((0,), np.int32)
    old = [i for i, s in self._last_seen.items() if step - s > self.expire_after]
    freed = []
    for i in old:
      row = self._row.pop(i)
      del self._last_seen[i]
      freed.append(row)
    self._free.extend(sorted(freed, reverse=True))
    self._free.sort(reverse=True)
    return np.asarray(sorted(freed), np.int32)

  @property
  def num_admitted(self) -> int:
    """Number of ids that own a row now."""
    return len(self._row)


def collisionless_lookup(table: jax.Array, rows: jax.Array) -> jax.Array:
  """Gather the embeddings of `rows` (from `CollisionlessEmbedding.observe`/`lookup`) inside jit (Liu et al. 2022,
  arXiv:2209.07663, Sec. 2.2).

  Args:
    table: [capacity, d] embedding array; row 0 is the default row.
    rows: integer array [...] of rows in [0, capacity).

  Returns:
    [..., d] embeddings, table's dtype.
  """
  table = jnp.asarray(table)
  if table.ndim != 2:
    raise ValueError(f"table must be [capacity, d], got table.shape={table.shape}")
  if not jnp.issubdtype(jnp.asarray(rows).dtype, jnp.integer):
    raise TypeError(f"rows must be an integer array, got rows.dtype={jnp.asarray(rows).dtype}")
  if not isinstance(rows, jax.core.Tracer):
    r = np.asarray(rows)
    if r.size and (r.min() < 0 or r.max() >= table.shape[0]):
      raise ValueError(f"rows must be in [0, {table.shape[0]}), got values in [{r.min()}, {r.max()}]")
  return jnp.take(table, rows, axis=0, mode="clip")


__all__ = ["CollisionlessEmbedding", "collisionless_lookup"]
