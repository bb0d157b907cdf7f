"""[122] compressed embeddings, exact checks: parameter counts ((ceil(N/m) + m) d for QR), QR indices unique per id
and QR embeddings pairwise distinct, the hash vs Python integer arithmetic, TT lookups == the dense contraction of
the cores (NumPy einsum), TT under nnx.jit, each module through nnx.split / merge."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import HashEmbed, QREmbed, TTEmbed


def _n_params(model):
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_compressed_embeddings_exact():
  N, d, m = 1000, 8, 37
  qr = QREmbed(N, m, d, rngs=nnx.Rngs(0))
  assert _n_params(qr) == (math.ceil(N / m) + m) * d
  q, r = map(np.asarray, qr.indices(jnp.arange(N)))
  assert len(set(zip(q.tolist(), r.tolist()))) == N  # (q, r) unique per id
  E = np.asarray(qr(jnp.arange(N)), np.float64)
  sq = np.sum(E * E, 1)
  dist2 = sq[:, None] + sq[None] - 2 * E @ E.T
  np.fill_diagonal(dist2, np.inf)
  assert dist2.min() > 1e-6  # distinct ids -> distinct embeddings
  qc = QREmbed(N, m, d, op="concat", rngs=nnx.Rngs(0))
  assert _n_params(qc) == (math.ceil(N / m) + m) * d // 2 and qc(jnp.arange(3)).shape == (3, d)
  # Hash: buckets vs Python's exact integers.
  he = HashEmbed(N, 64, d, hash_seed=3, rngs=nnx.Rngs(0))
  ids = np.array([0, 1, 2, 999, 517])
  ref = [(((he.a * int(i) + he.b) % 2 ** 32) >> 8) % 64 for i in ids]
  np.testing.assert_array_equal(he.bucket(jnp.asarray(ids)), ref)
  np.testing.assert_array_equal(he(jnp.asarray(ids)), np.asarray(he.table[...])[ref])
  assert _n_params(he) == 64 * d
  # TT: the lookup equals the dense table from a NumPy contraction of the cores, in the id's mixed-radix order.
  tt = TTEmbed((4, 5, 6), (2, 2, 3), (3, 2), rngs=nnx.Rngs(1))
  G = [np.asarray(c[...], np.float64) for c in tt.cores]
  dense = np.einsum("aibj,cjdk,ekfl->acebdfil", G[0], G[1], G[2])[..., 0, 0].reshape(120, 12)
  np.testing.assert_allclose(tt.full_table(), dense, rtol=1e-5, atol=1e-6)
  assert _n_params(tt) == 4 * 1 * 2 * 3 + 5 * 3 * 2 * 2 + 6 * 2 * 3 * 1
  ids = jnp.array([[0, 119], [37, 64]])
  np.testing.assert_allclose(tt(ids), dense[np.asarray(ids)], rtol=1e-5, atol=1e-6)
  # nnx.jit and split / merge.
  out = nnx.jit(lambda mdl, x: mdl(x))(tt, jnp.array([3, 7]))
  np.testing.assert_allclose(out, dense[[3, 7]], rtol=1e-5, atol=1e-6)
  for model in (qr, he, tt):
    gdef, state = nnx.split(model)
    np.testing.assert_array_equal(nnx.merge(gdef, state)(jnp.array([3, 7])), model(jnp.array([3, 7])))


def test_compressed_embeddings_errors():
  with pytest.raises(ValueError, match="ids must lie"):
    QREmbed(10, 3, 4, rngs=nnx.Rngs(0))(jnp.array([10]))
  with pytest.raises(TypeError, match="ids"):
    QREmbed(10, 3, 4, rngs=nnx.Rngs(0))(jnp.array([1.0]))
  with pytest.raises(ValueError, match="op"):
    QREmbed(10, 3, 4, op="bad", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="num_buckets"):
    HashEmbed(10, 11, 4, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="ranks"):
    TTEmbed((2, 3), (2, 2), (), rngs=nnx.Rngs(0))
