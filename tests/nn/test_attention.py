"""MultiHeadAttention (NNX) vs a float64 NumPy transcription of the layer, plus its invariants."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import MultiHeadAttention
from jaxlib_methods.nn.attention import rotary_embedding, segment_positions


@nnx.jit
def _apply(layer, x, segment_ids=None):
  return layer(x, segment_ids=segment_ids)


def _np_rope(x, pos, base=10000.0):
  h = x.shape[-1]
  freq = base ** (-np.arange(0, h // 2) * 2.0 / h)
  ang = np.asarray(pos, np.float64)[:, None] * freq                   # [T, H/2]
  cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
  x1, x2 = x[..., : h // 2], x[..., h // 2:]
  return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def _np_layernorm(x, scale, eps=1e-6):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + eps) * scale


def _np_mha(layer, x, *, causal=True, use_rope=True, qk_ln=False):
  """Float64 NumPy transcription of the layer for one batch element x [T, D]."""
  wq, wk, wv, wo = (np.asarray(p[...], np.float64) for p in
                    (layer.q_weight_dnh, layer.k_weight_dkh, layer.v_weight_dkh, layer.o_weight_nhd))
  x = np.asarray(x, np.float64)
  q, k, v = np.einsum("td,dnh->tnh", x, wq), np.einsum("td,dkh->tkh", x, wk), np.einsum("td,dkh->tkh", x, wv)
  if qk_ln:
    q = _np_layernorm(q, np.asarray(layer.q_norm.scale[...], np.float64))
    k = _np_layernorm(k, np.asarray(layer.k_norm.scale[...], np.float64))
  t, n, h = q.shape
  if use_rope:
    q, k = _np_rope(q, np.arange(t)), _np_rope(k, np.arange(t))
  g = n // k.shape[1]
  out = np.zeros((t, n, v.shape[-1]))
  for i in range(n):
    logits = q[:, i] @ k[:, i // g].T / math.sqrt(h)
    if causal:
      logits = np.where(np.tril(np.ones((t, t), bool)), logits, -np.inf)
    p = np.exp(logits - logits.max(1, keepdims=True))
    out[:, i] = (p / p.sum(1, keepdims=True)) @ v[:, i // g]
  return np.einsum("tnh,nhd->td", out, wo)


@pytest.mark.parametrize("kv_heads, qk_ln, causal", [(4, False, True), (2, True, True), (1, False, False)])
def test_matches_numpy_transcription(kv_heads, qk_ln, causal):
  layer = MultiHeadAttention(32, 4, kv_heads, causal=causal, qk_layernorm=qk_ln, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 9, 32))
  y = _apply(layer, x)
  assert y.shape == (2, 9, 32) and layer.k_weight_dkh.shape == (32, kv_heads, 8)
  for b in range(2):
    np.testing.assert_allclose(np.asarray(y[b]), _np_mha(layer, x[b], causal=causal, qk_ln=qk_ln), atol=2e-5)


def test_head_dim_override_and_no_rope():
  layer = MultiHeadAttention(24, 2, head_dim=10, use_rope=False, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.PRNGKey(2), (1, 6, 24))
  np.testing.assert_allclose(np.asarray(_apply(layer, x)[0]), _np_mha(layer, x[0], use_rope=False), atol=2e-5)


def test_causality():
  layer = MultiHeadAttention(16, 2, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.PRNGKey(3), (1, 10, 16))
  y1 = _apply(layer, x)
  y2 = _apply(layer, x.at[:, 6:].set(5.0))
  np.testing.assert_allclose(np.asarray(y1[:, :6]), np.asarray(y2[:, :6]), atol=1e-6)
  assert not np.allclose(np.asarray(y1[:, 6:]), np.asarray(y2[:, 6:]))


def test_packed_segments_equal_separate_sequences():
  """Two sequences packed with segment_ids give the same outputs as each run alone (RoPE positions restart)."""
  layer = MultiHeadAttention(16, 4, 2, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.PRNGKey(4), (1, 12, 16))
  seg = jnp.asarray([[0] * 6 + [1] * 6], jnp.int32)

  @nnx.jit
  def run(layer, x, seg):   # every call below in one program (one compile instead of three)
    return layer(x, segment_ids=seg), layer(x[:, :6]), layer(x[:, 6:]), segment_positions(seg)

  y, y_a, y_b, positions = run(layer, x, seg)
  np.testing.assert_allclose(np.asarray(y[:, :6]), np.asarray(y_a), atol=2e-6)
  np.testing.assert_allclose(np.asarray(y[:, 6:]), np.asarray(y_b), atol=2e-6)
  np.testing.assert_array_equal(np.asarray(positions), [[0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]])


def test_rope_is_relative():
  """q_m . k_n after RoPE depends on m - n only (RoFormer's defining property)."""
  q = jax.random.normal(jax.random.PRNGKey(5), (1, 1, 1, 8))
  k = jax.random.normal(jax.random.PRNGKey(6), (1, 1, 1, 8))

  @jax.jit
  def dots(pos):   # one program for every dot product below: q at pos[i], k at pos[i + 1]
    return [jnp.sum(rotary_embedding(q, pos[i:i + 1]) * rotary_embedding(k, pos[i + 1:i + 2])) for i in (0, 2, 4)], \
        jnp.sum(q * k)

  (d73, d1410, d00), qk = dots(jnp.array([7, 3, 14, 10, 0, 0]))
  assert abs(float(d73) - float(d1410)) < 1e-5
  assert abs(float(d00) - float(qk)) < 1e-5


def test_pallas_interpret_matches_xla_and_trains():
  """The Pallas path (interpret) equals the XLA path, values and parameter gradients, under nnx.jit."""
  layer_p = MultiHeadAttention(32, 4, 2, implementation="pallas", interpret=True, rngs=nnx.Rngs(0))
  layer_x = MultiHeadAttention(32, 4, 2, implementation="xla", rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.PRNGKey(7), (1, 20, 32))
  value_and_grad = nnx.jit(nnx.value_and_grad(lambda m, x: jnp.mean(m(x) ** 2)))
  (l_p, g_p), (l_x, g_x) = value_and_grad(layer_p, x), value_and_grad(layer_x, x)
  np.testing.assert_allclose(float(l_p), float(l_x), rtol=1e-5)
  for a, b in zip(jax.tree.leaves(g_p), jax.tree.leaves(g_x)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_kv_heads=3), "num_kv_heads"),
    (dict(head_dim=7), "even"),
    (dict(implementation="flash"), "implementation"),
    (dict(d_model=30), "divisible"),
    (dict(softcap=-1.0), "softcap"),
])
def test_constructor_validation(kwargs, match):
  args = dict(d_model=32, num_heads=4)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    MultiHeadAttention(rngs=nnx.Rngs(0), **args)


def test_call_validation():
  layer = MultiHeadAttention(16, 2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="shape"):
    layer(jnp.zeros((2, 5, 8)))
  with pytest.raises(ValueError, match="segment_ids"):
    layer(jnp.zeros((2, 5, 16)), segment_ids=jnp.zeros((2, 4), jnp.int32))
