"""[40] GPICL task generator: inputs are exactly A x and labels exactly rho(y) for the sampled task, A has the
N(0, 1/N_x) statistics, the task pool is finite and fixed by the key, and the tokens carry the previous label."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxlib_methods.data.gpicl import GPICLBatch, gpicl_batch, gpicl_task


def test_gpicl_tasks_are_exact_projections_and_permutations():
  rng = np.random.default_rng(0)
  nx, ny, n = 5, 4, 30
  x = rng.normal(size=(n, nx)).astype(np.float32)
  y = rng.integers(0, ny, size=n).astype(np.int32)
  key = jax.random.key(7)
  make = jax.jit(gpicl_batch, static_argnames=("num_classes", "batch_size", "seq_len", "num_tasks"))
  b = make(key, x, y, num_classes=ny, batch_size=16, seq_len=6, num_tasks=3)
  assert isinstance(b, GPICLBatch)
  ids, idx = np.asarray(b.task_ids), np.asarray(b.indices)
  assert b.inputs.shape == (16, 6, nx) and b.tokens.shape == (16, 6, nx + ny)
  assert set(ids.tolist()) <= {0, 1, 2}
  tasks = jax.jit(jax.vmap(lambda t: gpicl_task(jax.random.fold_in(jax.random.fold_in(key, 0), t), nx, ny)))
  As, rhos = (np.asarray(v) for v in tasks(ids))  # the pool key is fold_in(key, 0) (documented)
  for s in range(16):
    A, rho = As[s].astype(np.float64), rhos[s]
    assert sorted(rho.tolist()) == list(range(ny))
    np.testing.assert_allclose(b.inputs[s], x[idx[s]].astype(np.float64) @ A.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(b.labels[s], rho[y[idx[s]]])
    np.testing.assert_array_equal(b.tokens[s, 0, nx:], 0)  # no label before the first step
    np.testing.assert_array_equal(b.tokens[s, 1:, nx:], np.eye(ny)[rho[y[idx[s]]]][:-1])
  assert set(ids.tolist()) == {0, 1, 2}  # 16 draws from a pool of 3 (fixed seed)
  # pool_key (an21d): another key draws other examples and task ids from the same pool (meta-training's batches)
  b2 = make(jax.random.key(8), x, y, num_classes=ny, batch_size=16, seq_len=6, num_tasks=3,
            pool_key=jax.random.fold_in(key, 0))
  ids2, idx2 = np.asarray(b2.task_ids), np.asarray(b2.indices)
  assert not np.array_equal(idx2, idx)
  As2, rhos2 = (np.asarray(v) for v in tasks(ids2))
  np.testing.assert_allclose(b2.inputs, np.einsum("bjk,btk->btj", As2.astype(np.float64), x[idx2]), rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_array_equal(b2.labels, np.take_along_axis(rhos2, y[idx2], axis=1))


@pytest.mark.slow  # three more compiles (~5 s on the loaded 2-core machine)
def test_gpicl_pool_is_fixed_by_key_fresh_tasks_and_projection_statistics():
  rng = np.random.default_rng(0)
  x, y, key = rng.normal(size=(30, 5)).astype(np.float32), rng.integers(0, 4, size=30).astype(np.int32), jax.random.key(7)
  a = gpicl_batch(key, x, y, num_classes=4, batch_size=8, seq_len=3, num_tasks=2)
  b = gpicl_batch(key, x, y, num_classes=4, batch_size=20, seq_len=2, num_tasks=2)
  for t in (0, 1):  # the same task id is the same task in batches of different sizes
    i, j = int(np.argmax(np.asarray(a.task_ids) == t)), int(np.argmax(np.asarray(b.task_ids) == t))
    assert np.asarray(a.task_ids)[i] == t and np.asarray(b.task_ids)[j] == t
    pa = {int(u): int(v) for u, v in zip(y[np.asarray(a.indices)[i]], np.asarray(a.labels)[i])}
    pb = {int(u): int(v) for u, v in zip(y[np.asarray(b.indices)[j]], np.asarray(b.labels)[j])}
    assert all(pa[k] == pb[k] for k in pa.keys() & pb.keys())
  fresh = gpicl_batch(key, x, y, num_classes=4, batch_size=4, seq_len=2)
  assert (np.asarray(fresh.task_ids) == -1).all()
  # A's entries are N(0, 1/N_x): over 64 tasks of N_x = 32, N_x * mean(A^2) has sd sqrt(2 / 65536) ~ 0.0055, so
  # |N_x mean(A^2) - 1| < 0.03 fails with probability < 1e-7 (5.4 sd); |mean A| < 0.01 is 5 sd (mean's sd 0.0020)
  As = jax.jit(jax.vmap(lambda k: gpicl_task(k, 32, 2)[0]))(jax.random.split(jax.random.key(1), 64))
  assert abs(32 * float(np.mean(np.asarray(As) ** 2)) - 1) < 0.03
  assert abs(float(np.mean(np.asarray(As)))) < 0.01


def test_gpicl_bad_input():
  x, y = np.zeros((4, 3), np.float32), np.array([0, 1, 2, 1])
  key = jax.random.key(0)
  kw = dict(num_classes=3, batch_size=2, seq_len=2)
  with pytest.raises(ValueError, match="y"):
    gpicl_batch(key, x, np.array([0, 1, 3, 1]), **kw)
  with pytest.raises(TypeError, match="y"):
    gpicl_batch(key, x, y.astype(float), **kw)
  with pytest.raises(TypeError, match="x"):
    gpicl_batch(key, x.astype(int), y, **kw)
  with pytest.raises(ValueError, match="num_tasks"):
    gpicl_batch(key, x, y, num_tasks=0, **kw)
  with pytest.raises(ValueError, match="num_classes"):
    gpicl_task(key, 3, 1)
  with pytest.raises(ValueError, match="x must be finite"):
    gpicl_batch(key, np.full((4, 3), np.nan, np.float32), y, **kw)
