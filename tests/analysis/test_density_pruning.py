"""Tests of jaxlib_methods/analysis/density_pruning.py [37]: the quotas' invariants (sum to the budget, caps,
monotone in complexity, equal split as tau -> inf) and DBP on well-separated blobs against a NumPy transcription."""

import jax
import numpy as np
import pytest

from jaxlib_methods.analysis import density_pruning as dp


def test_dbp_quotas_invariants():
  c = np.array([0.1, 0.5, 0.2, 0.9, 0.4])
  sizes = np.array([50, 50, 50, 50, 50])
  q = dp.dbp_quotas(c, sizes, 60, 0.2)
  assert q.sum() == 60 and np.all(q <= sizes)
  assert np.all(np.diff(q[np.argsort(c)]) >= 0)                      # more complex clusters keep more
  np.testing.assert_array_equal(dp.dbp_quotas(c, sizes, 60, 1e9), [12] * 5)
  # caps: a tiny complex cluster keeps all it has, the rest is redistributed; the budget is still met exactly
  q = dp.dbp_quotas(c, np.array([50, 50, 50, 3, 50]), 100, 0.1)
  assert q[3] == 3 and q.sum() == 100
  assert dp.dbp_quotas(c, sizes, 250, 0.1).tolist() == sizes.tolist()
  with pytest.raises(ValueError, match="budget"):
    dp.dbp_quotas(c, sizes, 251, 0.1)
  with pytest.raises(ValueError, match="tau"):
    dp.dbp_quotas(c, sizes, 10, 0.0)


def test_dbp_prune_on_blobs_matches_numpy():
  rng = np.random.default_rng(0)
  centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
  spreads = np.array([0.2, 0.5, 1.0, 1.5])                           # the wider blobs are the more complex ones
  x = np.concatenate([c + s * rng.normal(size=(100, 2)) for c, s in zip(centres, spreads)]).astype(np.float32)
  keep, info = dp.dbp_prune(x, 4, 0.25, 0.5, key=jax.random.key(0), n_neighbors=3)
  a = info["assign"]
  assert all(len(set(a[i * 100:(i + 1) * 100])) == 1 for i in range(4))   # k-means recovers the blobs
  assert keep.sum() == 100 and info["quotas"].sum() == 100
  order = np.argsort(info["complexity"])
  assert np.all(np.diff(info["quotas"][order]) >= 0)
  # NumPy transcription of the per-cluster choice: the quota farthest from the centroid
  for j in range(4):
    members = np.flatnonzero(a == j)
    d = np.linalg.norm(x[members] - x[members].mean(0), axis=1)
    expect = set(members[np.argsort(-d)[: info["quotas"][j]]].tolist())
    assert set(np.flatnonzero(keep & (a == j)).tolist()) == expect
  with pytest.raises(ValueError, match="keep_frac"):
    dp.dbp_prune(x, 4, 0.0, 0.5, key=jax.random.key(0))
  with pytest.raises(ValueError, match="n_clusters"):
    dp.dbp_prune(x, 1000, 0.5, 0.5, key=jax.random.key(0))
