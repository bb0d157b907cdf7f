"""epoch_minibatch_indices: random reshuffling, checked by counting (no repeat within an epoch, every index once per
epoch when B divides n), determinism, jit/vmap use and clear errors."""

import jax
import numpy as np
import pytest

from jaxlib_methods import data


@pytest.mark.parametrize("n,b,steps", [(12, 4, 7), (10, 3, 8), (5, 5, 3), (7, 1, 7)])
def test_each_epoch_draws_without_replacement(n, b, steps):
  idx = np.asarray(data.epoch_minibatch_indices(jax.random.key(0), n, b, steps))
  assert idx.shape == (steps, b) and idx.dtype == np.int32
  assert idx.min() >= 0 and idx.max() < n
  per_epoch = n // b
  for start in range(0, steps, per_epoch):
    epoch = idx[start:start + per_epoch].ravel()
    assert len(set(epoch.tolist())) == epoch.size          # no index twice within an epoch
    if n % b == 0 and epoch.size == n:
      assert sorted(epoch.tolist()) == list(range(n))     # every index exactly once


def test_epochs_differ_and_seeds_are_reproducible():
  key = jax.random.key(3)
  idx = np.asarray(data.epoch_minibatch_indices(key, 64, 8, 32))
  np.testing.assert_array_equal(idx, data.epoch_minibatch_indices(key, 64, 8, 32))
  assert not np.array_equal(idx[:8], idx[8:16])           # a fresh permutation per epoch
  other = np.asarray(data.epoch_minibatch_indices(jax.random.key(4), 64, 8, 32))
  assert not np.array_equal(idx, other)
  # a prefix of a longer draw: the number of steps does not change the batches drawn
  np.testing.assert_array_equal(idx[:10], data.epoch_minibatch_indices(key, 64, 8, 10))


def test_uniform_marginal():
  """Every index is equally likely at every position: counts over 4000 epochs of n = 8 are ~500 each."""
  idx = np.asarray(data.epoch_minibatch_indices(jax.random.key(1), 8, 4, 8000))
  counts = np.stack([np.bincount(idx[:, j], minlength=8) for j in range(4)])
  assert counts.sum() == 32000
  np.testing.assert_allclose(counts, 1000, atol=5 * np.sqrt(1000))


def test_jit_and_vmap_over_keys():
  keys = jax.random.split(jax.random.key(0), 3)
  f = jax.jit(jax.vmap(lambda k: data.epoch_minibatch_indices(k, 20, 5, 6)))
  out = np.asarray(f(keys))
  assert out.shape == (3, 6, 5)
  np.testing.assert_array_equal(out[1], data.epoch_minibatch_indices(keys[1], 20, 5, 6))


@pytest.mark.parametrize("args,match", [((10, 11, 3), "batch_size must be <= num_examples"),
                                        ((10, 0, 3), "batch_size must be an int >= 1"),
                                        ((10, 2, 0), "steps must be an int >= 1"),
                                        ((10.0, 2, 3), "num_examples must be an int >= 1"),
                                        ((True, 1, 3), "num_examples must be an int >= 1")])
def test_bad_sizes_are_rejected(args, match):
  with pytest.raises(ValueError, match=match):
    data.epoch_minibatch_indices(jax.random.key(0), *args)
