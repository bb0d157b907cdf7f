"""[6] UnifiedEmbedding: lookups against multiply-shift hashing in Python integers, and the per-feature baseline."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.unified_embedding import UnifiedEmbedding, per_feature_hash_embeddings
from tests.nn._layer_contract import check_layer_contract


def test_unified_embedding_equals_python_hashing():
  vocab, B, d, k = (1000, 37, 5), 23, 3, 2
  m = UnifiedEmbedding(vocab, B, d, num_probes=k, hash_seed=4, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(1)
  ids = np.stack([rng.integers(0, v, 40) for v in vocab], -1)
  out = np.asarray(jax.jit(lambda m, i: m(i))(m, jnp.asarray(ids)))
  table = np.asarray(m.table[...])
  for n in range(40):
    for f in range(3):
      want = []
      for j in range(k):
        a, b = m.hash_a[f][j], m.hash_b[f][j]
        assert a % 2 == 1
        want.append(table[(((a * int(ids[n, f]) + b) % 2 ** 32) >> 8) % B])
      np.testing.assert_array_equal(out[n, f], np.concatenate(want))
  # different features hash the same value to different rows (per-feature seeds)
  same = np.asarray(m.rows(jnp.asarray([[3, 3, 3]])))[0]
  assert len({tuple(r) for r in same}) == 3
  # gradient reaches exactly the looked-up rows
  g = nnx.jit(nnx.grad(lambda m: m(jnp.asarray(ids[:2])).sum()))(m)
  touched = np.unique(np.asarray(m.rows(jnp.asarray(ids[:2]))))
  nz = np.nonzero(np.abs(np.asarray(g.table[...])).sum(-1))[0]
  np.testing.assert_array_equal(nz, touched)
  # the baseline: one HashEmbed per feature
  base = per_feature_hash_embeddings(vocab, (10, 8, 5), d, rngs=nnx.Rngs(0))
  assert [t.num_buckets for t in base] == [10, 8, 5]


def test_unified_embedding_bad_input():
  with pytest.raises(ValueError, match="vocab_sizes"):
    UnifiedEmbedding((), 4, 2, rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match="num_probes"):
    UnifiedEmbedding((5,), 4, 2, num_probes=1.5, rngs=nnx.Rngs(0))
  m = UnifiedEmbedding((5, 7), 4, 2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="ids must be"):
    m(jnp.zeros((3, 3), jnp.int32))
  with pytest.raises(ValueError, match="vocab_sizes"):
    m(jnp.asarray([[5, 0]]))
  with pytest.raises(TypeError, match="integer"):
    m(jnp.zeros((3, 2)))
  with pytest.raises(ValueError, match="same nonzero length"):
    per_feature_hash_embeddings((5, 7), (3,), 2, rngs=nnx.Rngs(0))


class _Sum(nnx.Module):
  def __init__(self, dt):
    self.e = UnifiedEmbedding((50, 9), 16, 4, num_probes=2, rngs=nnx.Rngs(0), param_dtype=dt)

  def __call__(self, ids):
    return self.e(ids).sum(-1)


@pytest.mark.slow  # nnx.jit, split/merge train step, bf16, orbax: a few s of compiles
def test_unified_embedding_contract(tmp_path):
  ids = jnp.stack([jnp.arange(12) % 50, jnp.arange(12) % 9], -1)
  check_layer_contract(_Sum, ids, tmp_path)
