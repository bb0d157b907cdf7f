"""Multi-head (grouped-query) softmax self-attention as a Flax NNX module, dispatching to `kernels.attention`.

The attention itself is FlashAttention-2 on GPU (Dao, "FlashAttention-2: Faster Attention with Better Parallelism and
Work Partitioning", 2023, arXiv:2307.08691) or the XLA reference elsewhere; see `jaxlib_methods.kernels.dispatch`.
RoPE: Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021, arXiv:2104.09864, Sec. 3.4.2.
Grouped-query attention: Ainslie et al., "GQA", 2023, arXiv:2305.13245. qk-layernorm: Dehghani et al., "Scaling
Vision Transformers to 22 Billion Parameters", 2023, arXiv:2302.05442 (LayerNorm on queries and keys per head).
"""

from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import validation
from jaxlib_methods.kernels import dispatch


def rotary_embedding(x: jax.Array, positions: jax.Array, base: float = 10000.0) -> jax.Array:
  """RoPE (Su et al. 2021, arXiv:2104.09864, Sec. 3.4.2), rotate-half layout: the pair (x_i, x_{i + H/2}) is rotated
  by angle pos * base^(-2i/H), so that q_m . k_n depends on m - n only.

  Args:
    x: [B, T, N, H], H even. positions: [T] or [B, T] integer positions. base: frequency base.

  Returns:
    [B, T, N, H] in x's dtype (computed in float32).
  """
  h = x.shape[-1]
  if h % 2:
    raise ValueError(f"RoPE needs an even head_dim, got {x.shape=}")
  freq = base ** (-jnp.arange(0, h // 2, dtype=jnp.float32) * 2.0 / h)
  pos = jnp.asarray(positions, jnp.float32)
  pos = pos[None] if pos.ndim == 1 else pos
  ang = pos[..., None] * freq
  cos, sin = jnp.cos(ang)[:, :, None, :], jnp.sin(ang)[:, :, None, :]
  xf = x.astype(jnp.float32)
  x1, x2 = xf[..., : h // 2], xf[..., h // 2:]
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def segment_positions(segment_ids: jax.Array) -> jax.Array:
  """[B, T] segment ids -> [B, T] position of each token inside its (contiguous) segment: 0, 1, 2, 0, 1, ..."""
  t = segment_ids.shape[1]
  idx = jnp.arange(t)[None, :]
  start = jnp.concatenate([jnp.ones_like(segment_ids[:, :1], bool), segment_ids[:, 1:] != segment_ids[:, :-1]], 1)
  last_start = jax.lax.cummax(jnp.where(start, idx, 0), axis=1)
  return idx - last_start


class MultiHeadAttention(nnx.Module):
  """Self-attention y = Attn(RoPE(LN(x W_q)), RoPE(LN(x W_k)), x W_v) W_o with N query and K key/value heads.

  Grouped-query attention (Ainslie et al., "GQA", 2023, arXiv:2305.13245), RoPE (Su et al., "RoFormer", 2021,
  arXiv:2104.09864, Sec. 3.4.2) and qk-layernorm (Dehghani et al., "Scaling Vision Transformers to 22 Billion
  Parameters", 2023, arXiv:2302.05442); the attention itself is FlashAttention-2 on GPU (Dao, "FlashAttention-2",
  2023, arXiv:2307.08691) or the XLA reference elsewhere.

  Args:
    d_model: D, the input and output width.
    num_heads: N query heads.
    num_kv_heads: K key/value heads (divides N; default N; 1 = multi-query attention).
    head_dim: H (default D // N; must then divide evenly).
    causal: causal mask (decoder).
    use_rope: rotary position embedding on q and k (positions restart at each segment when segment_ids is given).
    qk_layernorm: LayerNorm (learnable scale, no bias) on each query and key head before the dot product.
    implementation: passed to `kernels.attention` (None: the Pallas kernels on GPU and TPU, XLA on CPU; "pallas",
      "xla", "cudnn", "splash").
    dtype, param_dtype: computation and parameter dtypes.
    rope_base: RoPE frequency base (keyword-only).
    window, softcap: passed to `kernels.attention` (keyword-only).
    interpret: run the Pallas kernel in interpret mode (CPU tests; keyword-only).
    platform: the platform to build the attention for (None: jax's default backend; "gpu", "tpu", "cpu"), fixed
      at trace time so a step can be exported for an accelerator from any machine (keyword-only).
    rngs: nnx.Rngs with a 'params' stream.

  Shapes: `__call__(x [B, T, D], *, segment_ids [B, T] or None) -> [B, T, D]`.
  Parameters: q_weight_dnh [D, N, H], k_weight_dkh / v_weight_dkh [D, K, H], o_weight_nhd [N, H, D].
  """

  def __init__(self, d_model: int, num_heads: int, num_kv_heads: Optional[int] = None,
               head_dim: Optional[int] = None, *, causal: bool = True, use_rope: bool = True,
               qk_layernorm: bool = False, implementation: dispatch.Implementation = None, dtype=jnp.float32,
               param_dtype=jnp.float32, rope_base: float = 10000.0, window=None, softcap: Optional[float] = None,
               interpret: bool = False, platform: Optional[str] = None, rngs: nnx.Rngs):
    for name, val in (("d_model", d_model), ("num_heads", num_heads)):
      if not isinstance(val, int) or val <= 0:
        raise ValueError(f"{name} must be a positive int, got {name}={val!r}")
    num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    if not isinstance(num_kv_heads, int) or num_kv_heads <= 0 or num_heads % num_kv_heads:
      raise ValueError(f"num_kv_heads must be a positive divisor of num_heads, got {num_kv_heads=}, {num_heads=}")
    if head_dim is None:
      if d_model % num_heads:
        raise ValueError(f"d_model must be divisible by num_heads (or pass head_dim), got {d_model=}, {num_heads=}")
      head_dim = d_model // num_heads
    if not isinstance(head_dim, int) or head_dim <= 0:
      raise ValueError(f"head_dim must be a positive int, got {head_dim=}")
    if use_rope and head_dim % 2:
      raise ValueError(f"RoPE needs an even head_dim, got {head_dim=}")
    if implementation not in dispatch.IMPLEMENTATIONS:
      raise ValueError(f"implementation must be one of {dispatch.IMPLEMENTATIONS}, got {implementation=}")
    validation.check_positive(rope_base, "rope_base")
    if softcap is not None:
      validation.check_positive(softcap, "softcap")
    self.d_model, self.num_heads, self.num_kv_heads, self.head_dim = d_model, num_heads, num_kv_heads, head_dim
    self.causal, self.use_rope, self.qk_layernorm = causal, use_rope, qk_layernorm
    self.implementation, self.rope_base, self.window, self.softcap = implementation, rope_base, window, softcap
    if platform not in (None, "gpu", "cuda", "rocm", "tpu", "cpu"):
      raise ValueError(f"platform must be None, 'gpu', 'cuda', 'rocm', 'tpu' or 'cpu', got {platform=}")
    self.interpret, self.platform = interpret, platform
    self.dtype = dtype
    init = nnx.initializers.normal(1.0 / math.sqrt(d_model))
    self.q_weight_dnh = nnx.Param(init(rngs.params(), (d_model, num_heads, head_dim), param_dtype))
    self.k_weight_dkh = nnx.Param(init(rngs.params(), (d_model, num_kv_heads, head_dim), param_dtype))
    self.v_weight_dkh = nnx.Param(init(rngs.params(), (d_model, num_kv_heads, head_dim), param_dtype))
    out_init = nnx.initializers.normal(1.0 / math.sqrt(num_heads * head_dim))
    self.o_weight_nhd = nnx.Param(out_init(rngs.params(), (num_heads, head_dim, d_model), param_dtype))
    if qk_layernorm:
      self.q_norm = nnx.LayerNorm(head_dim, use_bias=False, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
      self.k_norm = nnx.LayerNorm(head_dim, use_bias=False, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    else:
      self.q_norm = self.k_norm = None

  def __call__(self, x: jax.Array, *, segment_ids: Optional[jax.Array] = None) -> jax.Array:
    if x.ndim != 3 or x.shape[-1] != self.d_model:
      raise ValueError(f"x must have shape [B, T, {self.d_model}], got {x.shape=}")
    if segment_ids is not None and getattr(segment_ids, "shape", None) != x.shape[:2]:
      raise ValueError(f"segment_ids must have shape {x.shape[:2]}, got {getattr(segment_ids, 'shape', None)}")
    x = x.astype(self.dtype)
    q = jnp.einsum("BTD,DNH->BTNH", x, self.q_weight_dnh[...].astype(self.dtype))
    k = jnp.einsum("BTD,DKH->BTKH", x, self.k_weight_dkh[...].astype(self.dtype))
    v = jnp.einsum("BTD,DKH->BTKH", x, self.v_weight_dkh[...].astype(self.dtype))
    if self.q_norm is not None:
      q, k = self.q_norm(q), self.k_norm(k)
    if self.use_rope:
      pos = jnp.arange(x.shape[1]) if segment_ids is None else segment_positions(segment_ids)
      q = rotary_embedding(q, pos, self.rope_base)
      k = rotary_embedding(k, pos, self.rope_base)
    o = dispatch.attention(q, k, v, causal=self.causal, segment_ids=segment_ids, window=self.window,
                           softcap=self.softcap, implementation=self.implementation, interpret=self.interpret,
                           platform=self.platform)
    return jnp.einsum("BTNH,NHD->BTD", o, self.o_weight_nhd[...].astype(self.dtype))
