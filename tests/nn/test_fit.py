"""FiTv2 [137]: AdaLN-LoRA at full rank equals per-block adaLN, zero-init LoRA equals the shared base, parameter
count; FiT 2-D RoPE against a float64 NumPy transcription (complex rotation of interleaved pairs) and its
relative-position property; the logit-normal sampler's logit moments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.fit import AdaLNLoRA, apply_fit_rope, fit_rope_angles, logit_normal_timesteps


def _silu(x):
  return x / (1 + np.exp(-x))


def test_adaln_lora_full_rank_equals_adaln_and_zero_init_equals_base():
  D, L = 4, 3
  rng = np.random.default_rng(0)
  c = rng.normal(size=(5, D)).astype(np.float32)
  w_blocks, b_blocks = rng.normal(size=(L, D, 6 * D)), rng.normal(size=(L, 6 * D))   # adaLN: one Linear per block
  m = AdaLNLoRA(D, L, rank=D, rngs=nnx.Rngs(0))              # the paper's init: zero output projections
  graphdef, state = nnx.split(m)
  run = jax.jit(lambda s, c: nnx.merge(graphdef, s)(c))
  assert np.all(np.asarray(run(state, jnp.asarray(c))) == 0)                    # adaLN-Zero: identity blocks
  n = sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param)))
  assert n == 6 * D * D + 6 * D + L * (D * D + D + D * 6 * D + 6 * D)
  # rank = D: A_l = I, B_l = W_l - W_g reproduces any per-block adaLN exactly
  wg, bg = rng.normal(size=(D, 6 * D)), rng.normal(size=6 * D)
  m.global_kernel[...] = jnp.asarray(wg, jnp.float32)
  m.global_bias[...] = jnp.asarray(bg, jnp.float32)
  m.lora_a[...] = jnp.broadcast_to(jnp.eye(D), (L, D, D))
  m.lora_b[...] = jnp.asarray(w_blocks - wg, jnp.float32)
  m.lora_b_bias[...] = jnp.asarray(b_blocks - bg, jnp.float32)
  out = run(nnx.split(m)[1], jnp.asarray(c))
  want = np.stack([_silu(c.astype(np.float64)) @ w_blocks[l] + b_blocks[l] for l in range(L)])
  np.testing.assert_allclose(np.asarray(out), want, rtol=1e-4, atol=1e-4)
  # zero LoRA up-projections (as initialised): every block gets the shared projection only
  m.lora_b[...] = jnp.zeros_like(m.lora_b[...])
  m.lora_b_bias[...] = jnp.zeros_like(m.lora_b_bias[...])
  out = np.asarray(run(nnx.split(m)[1], jnp.asarray(c)))
  for l in range(L):
    np.testing.assert_allclose(out[l], _silu(c.astype(np.float64)) @ wg + bg, rtol=1e-4, atol=1e-4)


def _rope_np(x, gh, gw, theta):
  """FiT's VisionRotaryEmbedding, float64: pairs (x_2i, x_2i+1) as complex numbers times exp(i * angle)."""
  dh = x.shape[-1]
  d = dh // 2
  f = theta ** (-np.arange(0, d, 2) / d)
  ang = np.concatenate([gh[..., None] * f, gw[..., None] * f], -1)       # one angle per pair
  z = x[..., 0::2] + 1j * x[..., 1::2]
  z = z * np.exp(1j * ang)[..., None, :]
  out = np.empty_like(x)
  out[..., 0::2], out[..., 1::2] = z.real, z.imag
  return out


def test_rope_matches_numpy_and_is_relative():
  rng = np.random.default_rng(1)
  H, W, Dh = 3, 5, 16
  gh, gw = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
  gh, gw = gh.ravel(), gw.ravel()
  x = rng.normal(size=(2, H * W, 2, Dh))
  with jax.enable_x64(True):
    ang = fit_rope_angles(jnp.asarray(gh), jnp.asarray(gw), Dh, theta=100.0)
    got = np.asarray(jax.jit(apply_fit_rope)(jnp.asarray(x), ang.astype(jnp.float64)))
  np.testing.assert_allclose(got, _rope_np(x, gh, gw, 100.0), rtol=1e-5, atol=1e-5)
  # q.k after RoPE depends on (dh, dw) only: shift the whole grid
  q, k = rng.normal(size=(1, 2, 1, Dh)), rng.normal(size=(1, 2, 1, Dh))
  @jax.jit
  def score(h0, w0):
    a = fit_rope_angles(jnp.stack([h0, h0 + 2]), jnp.stack([w0, w0 + 1]), Dh)
    qq = apply_fit_rope(jnp.asarray(q, jnp.float32), a)
    kk = apply_fit_rope(jnp.asarray(k, jnp.float32), a)
    return qq[0, 0, 0] @ kk[0, 1, 0]
  np.testing.assert_allclose(float(score(jnp.int32(0), jnp.int32(0))), float(score(jnp.int32(7), jnp.int32(3))), rtol=1e-4)
  # ntk-aware: base theta * s^(d/(d-2)), s = 4 / 2
  a = np.asarray(fit_rope_angles(jnp.array([1]), jnp.array([0]), 16, custom_freqs="ntk-aware", max_pe_len=4,
                                 ori_max_pe_len=2))
  base = 10000.0 * 2.0 ** (8 / 6)
  np.testing.assert_allclose(a[0, :8:2], base ** (-np.arange(0, 8, 2) / 8), rtol=1e-5)


def test_logit_normal_and_bad_inputs():
  t = np.asarray(logit_normal_timesteps(jax.random.key(0), (20000,), mean=0.5, std=2.0), np.float64)
  u = np.log(t / (1 - t))
  # 20000 draws: the sample mean's sd is 2/sqrt(20000) = 0.014; 5 sd bounds (failure prob. < 1e-6)
  assert abs(u.mean() - 0.5) < 5 * 2.0 / np.sqrt(20000)
  assert abs(u.std() - 2.0) < 5 * 2.0 / np.sqrt(2 * 20000)
  with pytest.raises(ValueError, match="head_dim"):
    fit_rope_angles(jnp.array([0]), jnp.array([0]), 6)
  with pytest.raises(ValueError, match="rank"):
    AdaLNLoRA(4, 2, rank=0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="c must be"):
    AdaLNLoRA(4, 2, rank=1, rngs=nnx.Rngs(0))(jnp.ones((2, 3)))
