"""EasyControl [113]: the causal condition mask entry by entry, LoRA on condition tokens only, and the cache claim on
a toy two-layer attention stack: condition-token K/V do not depend on the noisy tokens, and attention with cached
condition K/V equals the full recomputation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.easycontrol import ConditionLoRALinear, easycontrol_attention_mask


def test_mask_semantics():
  seg = np.array([0, 0, 0, 1, 1, 2, 2, 2])        # 3 denoising tokens, condition 1 (2 tokens), condition 2 (3)
  m = np.asarray(easycontrol_attention_mask(jnp.asarray(seg)))
  for i in range(8):
    for j in range(8):
      assert m[i, j] == (seg[i] == 0 or seg[i] == seg[j]), (i, j)
  assert not m[3:, :3].any()          # condition tokens never attend to text/noise tokens
  assert not m[3:5, 5:].any() and not m[5:, 3:5].any()   # nor to another condition
  assert m[:3].all()                  # denoising tokens attend to everything
  assert easycontrol_attention_mask(jnp.zeros((2, 5), jnp.int32)).shape == (2, 5, 5)
  with pytest.raises(TypeError, match="segment_ids"):
    easycontrol_attention_mask(jnp.zeros(3))


def _stack(layers, x, seg):
  """Two attention layers whose Q/K/V are ConditionLoRALinear; returns outputs and each layer's (K, V)."""
  cond = seg > 0
  mask = easycontrol_attention_mask(seg)[None, None]      # [B=1, heads=1, T, T]
  kvs = []
  for q_p, k_p, v_p in layers:
    q, k, v = q_p(x, cond), k_p(x, cond), v_p(x, cond)
    kvs.append((k, v))
    x = x + jax.nn.dot_product_attention(q[None, :, None], k[None, :, None], v[None, :, None], mask=mask)[0, :, 0]
  return x, kvs


def test_lora_only_on_condition_tokens_and_kv_cache():
  D, r = 8, 2
  rngs = nnx.Rngs(0)
  layers = [[ConditionLoRALinear(D, D, r, alpha=4.0, rngs=rngs) for _ in range(3)] for _ in range(2)]
  for trio in layers:                                      # non-zero LoRA, as after training
    for p in trio:
      p.lora_b[...] = jax.random.normal(rngs.params(), p.lora_b[...].shape)
  rng = np.random.default_rng(0)
  seg = jnp.array([0] * 5 + [1] * 3 + [2] * 2)
  x = rng.normal(size=(10, D)).astype(np.float32)
  p = layers[0][0]
  y = np.asarray(p(jnp.asarray(x), seg > 0))
  W, A, B = (np.asarray(a, np.float64) for a in (p.kernel[...], p.lora_a[...], p.lora_b[...]))
  np.testing.assert_allclose(y[:5], x[:5] @ W, rtol=1e-4, atol=1e-5)                 # base only
  np.testing.assert_allclose(y[5:], x[5:] @ (W + 2.0 * A @ B), rtol=1e-4, atol=1e-5)  # W + (alpha/r) A B
  run = jax.jit(lambda x: _stack(layers, x, seg))
  out1, kv1 = run(jnp.asarray(x))
  x2 = x.copy()
  x2[:5] = rng.normal(size=(5, D))                         # other noisy tokens (another timestep)
  out2, kv2 = run(jnp.asarray(x2))
  for (k1, v1), (k2, v2) in zip(kv1, kv2):                 # condition K/V identical in every layer: cacheable
    np.testing.assert_array_equal(np.asarray(k1[5:]), np.asarray(k2[5:]))
    np.testing.assert_array_equal(np.asarray(v1[5:]), np.asarray(v2[5:]))
  assert not np.allclose(np.asarray(kv1[1][0][:5]), np.asarray(kv2[1][0][:5]))
  # denoising tokens with the cached condition K/V of step 1 equal the full recomputation of step 2
  @jax.jit
  def with_cache(h, kv_cache):
    cond = seg > 0
    for (q_p, k_p, v_p), (kc, vc) in zip(layers, kv_cache):
      q, k, v = q_p(h, cond), k_p(h, cond), v_p(h, cond)
      k = jnp.concatenate([k[:5], kc[5:]])
      v = jnp.concatenate([v[:5], vc[5:]])
      att = jax.nn.dot_product_attention(q[None, :, None], k[None, :, None], v[None, :, None],
                                         mask=easycontrol_attention_mask(seg)[None, None])[0, :, 0]
      h = h + att
    return h
  np.testing.assert_allclose(np.asarray(with_cache(jnp.asarray(x2), kv1)), np.asarray(out2), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="is_condition"):
    p(jnp.asarray(x), jnp.ones(3, bool))
