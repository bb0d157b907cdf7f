"""Monolith [162] collisionless table: ids never share a row, the frequency filter maps rare ids to the default row,
expiry frees rows that new ids then reuse; checked against an independent occurrence count (collections.Counter)."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.nn.collisionless_embedding import CollisionlessEmbedding, collisionless_lookup


def test_never_collides_and_filters_exactly():
  rng = np.random.default_rng(0)
  t = CollisionlessEmbedding(capacity=10_000, min_count=3)
  seen = collections.Counter()
  for step in range(20):
    batch = rng.zipf(1.5, size=(16, 4)) % 5000   # power-law ids, many rare
    rows, new = t.observe(batch, step=step)
    seen.update(batch.ravel().tolist())
    for i, r in zip(batch.ravel().tolist(), rows.ravel().tolist()):
      assert (r != 0) == (seen[i] >= 3), (i, seen[i], r)    # filtered exactly at the threshold
    assert len(set(new.tolist())) == len(new) and 0 not in new
  admitted = [i for i, c in seen.items() if c >= 3]
  rows = t.lookup(np.array(admitted))
  assert len(set(rows.tolist())) == len(admitted) == t.num_admitted   # one row per id: no collision
  assert rows.min() >= 1 and rows.max() < t.capacity
  np.testing.assert_array_equal(t.lookup(np.array([i for i, c in seen.items() if c < 3][:50])), 0)


def test_expiry_frees_rows_and_capacity():
  t = CollisionlessEmbedding(capacity=4, min_count=1, expire_after=2)   # 3 usable rows
  rows, new = t.observe(np.array([10, 11, 12, 13]), step=0)
  np.testing.assert_array_equal(rows, [1, 2, 3, 0])                     # full: 13 reads the default row
  assert t.overflow == 1 and sorted(new.tolist()) == [1, 2, 3]
  t.observe(np.array([11]), step=2)
  np.testing.assert_array_equal(t.expire(step=3), [1, 3])               # 10 and 12 unseen for 3 > 2 steps
  np.testing.assert_array_equal(t.lookup(np.array([10, 11, 12])), [0, 2, 0])
  rows, new = t.observe(np.array([20, 21, 22]), step=3)
  np.testing.assert_array_equal(rows, [1, 3, 0])                        # freed rows reused, lowest first
  np.testing.assert_array_equal(np.sort(new), [1, 3])
  # an expired id must pass the filter again
  f = CollisionlessEmbedding(capacity=8, min_count=2, expire_after=0)
  assert f.observe(np.array([5, 5]), step=0)[0].tolist() == [1, 1]
  f.expire(step=1)
  assert f.observe(np.array([5]), step=1)[0].tolist() == [0]
  assert f.observe(np.array([5]), step=2)[0].tolist() == [1]


def test_lookup_under_jit_and_bad_inputs():
  t = CollisionlessEmbedding(capacity=5)
  rows, _ = t.observe(np.array([[3, 9], [9, 4]]), step=0)
  table = jnp.arange(10.0).reshape(5, 2)
  got = jax.jit(collisionless_lookup)(table, rows)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(table)[rows])
  with pytest.raises(ValueError, match="capacity"):
    CollisionlessEmbedding(capacity=1)
  with pytest.raises(ValueError, match="min_count"):
    CollisionlessEmbedding(capacity=4, min_count=0)
  with pytest.raises(TypeError, match="ids"):
    t.observe(np.array([1.5]), step=0)
  with pytest.raises(ValueError, match="rows"):
    collisionless_lookup(table, np.array([5]))
