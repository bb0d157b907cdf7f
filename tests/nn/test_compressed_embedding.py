"""[122] compressed embeddings, exact checks: parameter counts ((ceil(N/m) + m) d for QR), QR indices unique per id
and QR embeddings pairwise distinct, the hash vs Python integer arithmetic, TT lookups == the dense contraction of
the cores (NumPy einsum), all under nnx.jit, and each module through nnx.split / merge."""

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
  run = nnx.jit(lambda mdl, x: mdl(x))  # one compilation per module instead of one per eager op
  ids = jnp.arange(N)
  qr = QREmbed(N, m, d, rngs=nnx.Rngs(0))
  assert _n_params(qr) == (math.ceil(N / m) + m) * d
  q, r = map(np.asarray, nnx.jit(lambda mdl, x: mdl.indices(x))(qr, ids))
  assert len(set(zip(q.tolist(), r.tolist()))) == N  # (q, r) unique per id
  E = np.asarray(run(qr, ids), np.float64)
  np.testing.assert_allclose(E, np.asarray(qr.quotient[...])[q] * np.asarray(qr.remainder[...])[r], rtol=1e-6)
  sq = np.sum(E * E, 1)
  dist2 = sq[:, None] + sq[None] - 2 * E @ E.T
  np.fill_diagonal(dist2, np.inf)
  assert dist2.min() > 1e-6  # distinct ids -> distinct embeddings
  qc = QREmbed(N, m, d, op="concat", rngs=nnx.Rngs(0))
  assert _n_params(qc) == (math.ceil(N / m) + m) * d // 2
  # Hash: buckets vs Python's exact integers.
  he = HashEmbed(N, 64, d, hash_seed=3, rngs=nnx.Rngs(0))
  ref = [(((he.a * i + he.b) % 2 ** 32) >> 8) % 64 for i in range(N)]
  np.testing.assert_array_equal(nnx.jit(lambda mdl, x: mdl.bucket(x))(he, ids), ref)
  np.testing.assert_array_equal(run(he, ids), np.asarray(he.table[...])[ref])
  assert _n_params(he) == 64 * d
  # TT: the lookup equals the dense table from a NumPy contraction of the cores, in the id's mixed-radix order.
  tt = TTEmbed((4, 5, 6), (2, 2, 3), (3, 2), rngs=nnx.Rngs(1))
  G = [np.asarray(c[...], np.float64) for c in tt.cores]
  dense = np.einsum("aibj,cjdk,ekfl->acebdfil", G[0], G[1], G[2])[..., 0, 0].reshape(120, 12)
  np.testing.assert_allclose(run(tt, jnp.arange(120)), dense, rtol=1e-5, atol=1e-6)
  assert _n_params(tt) == 4 * 1 * 2 * 3 + 5 * 3 * 2 * 2 + 6 * 2 * 3 * 1
  # Through nnx.split / merge (the graph def and state round-trip to the same outputs).
  for model, x in ((qr, ids), (he, ids), (tt, jnp.arange(120))):
    gdef, state = nnx.split(model)
    np.testing.assert_array_equal(run(nnx.merge(gdef, state), x), run(model, x))


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
