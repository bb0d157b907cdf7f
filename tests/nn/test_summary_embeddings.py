"""Music2Latent2 [199] summary embeddings: one layer against a float64 NumPy transcription; K latents for any chunk
length; invariant to the order of (position-free) chunk tokens and equivariant to the order of the summary tokens."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.summary_embeddings import SummaryEmbeddings


def _np_forward(m, x):
  p = lambda a: np.asarray(a[...], np.float64)
  B, T, D = x.shape
  z = np.concatenate([x, np.broadcast_to(p(m.summary_tokens), (B, m.num_summary, D))], 1)
  mu, var = z.mean(-1, keepdims=True), z.var(-1, keepdims=True)
  zn = (z - mu) / np.sqrt(var + m.norm.epsilon) * p(m.norm.scale) + p(m.norm.bias)
  a = m.attention
  q = np.einsum("btd,dnh->btnh", zn, p(a.q_weight_dnh))
  k = np.einsum("btd,dnh->btnh", zn, p(a.k_weight_dkh))
  v = np.einsum("btd,dnh->btnh", zn, p(a.v_weight_dkh))
  s = np.einsum("bqnh,bknh->bnqk", q, k) / np.sqrt(q.shape[-1])
  w = np.exp(s - s.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  o = np.einsum("bnqk,bknh->bqnh", w, v)
  h = z + np.einsum("bqnh,nhd->bqd", o, p(a.o_weight_nhd))
  return h[:, T:] @ p(m.out.kernel) + p(m.out.bias)


def test_summary_embeddings():
  m = SummaryEmbeddings(8, 3, 5, num_heads=2, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 6, 8)).astype(np.float32)
  graphdef, state = nnx.split(m)
  f = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
  y = np.asarray(f(state, jnp.asarray(x)))
  assert y.shape == (2, 3, 5)
  np.testing.assert_allclose(y, _np_forward(m, x.astype(np.float64)), rtol=1e-4, atol=1e-5)
  perm = rng.permutation(6)
  np.testing.assert_allclose(np.asarray(f(state, jnp.asarray(x[:, perm]))), y, rtol=1e-5, atol=1e-6)   # a set summary
  m.summary_tokens[...] = m.summary_tokens[...][::-1]
  _, state_rev = nnx.split(m)
  np.testing.assert_allclose(np.asarray(f(state_rev, jnp.asarray(x))), y[:, ::-1], rtol=1e-5, atol=1e-6)  # unordered
  assert jax.eval_shape(f, state, jnp.ones((1, 11, 8))).shape == (1, 3, 5)   # K latents whatever the chunk length
  with pytest.raises(ValueError, match="x must be"):
    m(jnp.ones((1, 4, 7)))
