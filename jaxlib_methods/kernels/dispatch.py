"""One entry point for softmax attention: `attention(..., implementation=None | "pallas" | "xla" | "cudnn" | "splash")`.

Paper [85]: Tri Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning", 2023,
arXiv:2307.08691 (the Pallas kernels: Triton on GPU, Mosaic on TPU); "cudnn" is
`jax.nn.dot_product_attention(implementation="cudnn")`; "splash" is jax's TPU splash attention
(`jax.experimental.pallas.ops.tpu.splash_attention`).
"""

from __future__ import annotations

from typing import Literal, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.kernels.flash_attention import (BlockSizes, Platform, Precision, Window, _normalize_window,
                                                     flash_attention, flash_attention_reference,
                                                     nonfinite_query_rows_to_nan, normalize_precision,
                                                     validate_attention_args)

Implementation = Optional[Literal["pallas", "xla", "cudnn", "splash"]]
IMPLEMENTATIONS = (None, "pallas", "xla", "cudnn", "splash")
_PLATFORMS = (None, "gpu", "cuda", "rocm", "tpu", "cpu")


def _platform(platform: Optional[str]) -> str:
  if platform not in _PLATFORMS:
    raise ValueError(f"platform must be one of {_PLATFORMS}, got {platform=}")
  p = jax.default_backend() if platform is None else platform
  return "gpu" if p in ("gpu", "cuda", "rocm") else p


def default_implementation(backend: Optional[str] = None) -> str:
  """The implementation `attention` picks for `backend` (default: jax's default backend).

  GPU: our Pallas FlashAttention-2 kernels (Triton). TPU: our Pallas FlashAttention-2 kernels (Mosaic). CPU (and
  anything else): the XLA reference.

  Measured on one H200 (docs/benchmarks.md, 2026-11-30, bf16 forward + backward): ours with the sm_90 tiles runs at
  0.59-0.86x cuDNN's speed and 1.7-2.5x jax's Pallas `mha`. Where cuDNN supports the call (2-byte inputs, no softcap
  or segment ids), `implementation="cudnn"` is the faster choice on that GPU; the default stays ours, which covers
  every option and dtype with one code path.
  """
  backend = _platform(backend)
  return "pallas" if backend in ("gpu", "tpu") else "xla"


def _rows_with_keys(t: int, s_len: int, causal: bool, window) -> Optional[np.ndarray]:
  """[T] bool: query rows that see at least one key under the causal/window mask (top-left aligned), or None when
  every row does. Only T > S with a window empties rows (segment ids need T == S, and row t then sees key t)."""
  rows = np.arange(t)
  lo = np.zeros(t, np.int64) if window is None else np.maximum(rows - window[0], 0)
  hi = np.full(t, s_len - 1) if not causal else np.minimum(rows, s_len - 1)
  if window is not None:
    hi = np.minimum(hi, rows + window[1])
  visible = lo <= hi
  return None if visible.all() else visible


def _splash(q, k, v, *, causal, scale, segment_ids, window, softcap, interpret):
  """jax's TPU splash attention in our [B, T, N, H] layout: one MQA kernel per kv head (the G query heads of a group
  share it), vmapped over batch and kv heads; the logit scale is applied to q."""
  # pylint: disable=C0415
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm
  b, t, n, h = q.shape
  s_len, kv_heads = k.shape[1], k.shape[2]
  g = n // kv_heads
  for name, length in (("query", t), ("key", s_len)):
    if length % 128:
      raise ValueError(f"implementation='splash' needs {name} lengths that are multiples of 128, got {q.shape=}, "
                       f"{k.shape=}; use implementation='pallas'")
  block = min(512, t, s_len)
  while t % block or s_len % block:
    block //= 2
  mask = sm.FullMask((t, s_len))
  if causal:
    mask = sm.CausalMask((t, s_len))
  if window is not None:
    local = sm.LocalMask((t, s_len), window_size=window, offset=0)
    mask = local if not causal else sm.LogicalAnd(mask, local)
  blocks = sk.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block, block_q_dkv=block,
                         block_kv_dkv=block, block_kv_dkv_compute=block, block_q_dq=block, block_kv_dq=block)
  kernel = sk.make_splash_mqa(sm.MultiHeadMask([mask] * g), block_sizes=blocks, head_shards=1, q_seq_shards=1,
                              attn_logits_soft_cap=softcap, interpret=interpret)
  qs = (q.astype(jnp.float32) * scale).astype(q.dtype).reshape(b, t, kv_heads, g, h).transpose(0, 2, 3, 1, 4)
  ks, vs = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)            # [B, K, S, H]
  if segment_ids is None:
    out = jax.vmap(jax.vmap(kernel))(qs, ks, vs)
  else:
    seg = sk.SegmentIds(q=segment_ids.astype(jnp.int32), kv=segment_ids.astype(jnp.int32))
    per_batch = lambda q1, k1, v1, s1: jax.vmap(lambda q2, k2, v2: kernel(q2, k2, v2, segment_ids=s1))(q1, k1, v1)
    out = jax.vmap(per_batch)(qs, ks, vs, seg)
  out = out.transpose(0, 3, 1, 2, 4).reshape(b, t, n, v.shape[-1])    # [B, K, G, T, Hv] -> [B, T, N, Hv]
  # Splash leaves a row with no visible key undefined (NaN when its blocks are skipped, the mean of v when its block
  # is partly visible to other rows); the convention (flash_attention_reference) is 0.
  rows = _rows_with_keys(t, s_len, causal, window)
  return out if rows is None else jnp.where(rows[None, :, None, None], out, jnp.zeros((), out.dtype))


def attention(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False, scale: Optional[float] = None,
              segment_ids: Optional[jax.Array] = None, window: Window | None = None,
              softcap: Optional[float] = None, implementation: Implementation = None,
              precision: Precision = None, platform: Platform | Literal["cpu"] = None,
              block_q: Optional[int] = None, block_k: Optional[int] = None,
              block_sizes: Optional[BlockSizes] = None, interpret: bool = False) -> jax.Array:
  """Softmax attention with the layout of `jax.nn.dot_product_attention`, through one of four implementations.

  Args:
    q: [B, T, N, H]. k: [B, S, K, H]. v: [B, S, K, Hv] (K divides N).
    causal, scale, segment_ids, window, softcap: see `flash_attention_reference`.
    implementation: None (best for the platform: see `default_implementation`), "pallas" (our FlashAttention-2
      kernels: Triton on GPU, Mosaic on TPU; on CPU only with interpret=True), "xla" (`flash_attention_reference`),
      "cudnn" (`jax.nn.dot_product_attention(implementation="cudnn")`, GPU only; no softcap, no segment_ids,
      Hv == H) or "splash" (jax's TPU splash attention; lengths multiples of 128, Hv == H).
    precision: fp32 matmul precision (None/"default", "high", "highest"); see `flash_attention`.
    platform: the platform to build for: None (`jax.default_backend()`), "gpu"/"cuda"/"rocm", "tpu" or "cpu".
      Known at trace time, so `jax.export(..., platforms=["cuda"])` of a function calling `attention(...,
      platform="gpu")` lowers the GPU kernels from a CPU-only machine.
    block_q, block_k, block_sizes, interpret: passed to the Pallas kernels (unused by the other implementations;
      interpret also runs splash in Pallas' interpreter).

  Returns:
    [B, T, N, Hv] in q's dtype.

  Raises:
    ValueError: bad shapes or options (checked eagerly), or an option the chosen implementation does not support.

  References: Dao, "FlashAttention-2", 2023, arXiv:2307.08691.
  """
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation=}")
  validate_attention_args(q, k, v, segment_ids=segment_ids, window=window, softcap=softcap, scale=scale)
  normalize_precision(precision)
  plat = _platform(platform)
  impl = default_implementation(plat) if implementation is None else implementation
  if impl == "pallas":
    if plat not in ("gpu", "tpu") and not interpret:
      raise ValueError(f"implementation='pallas' compiles for GPU (Triton) or TPU (Mosaic); on platform {plat!r} "
                       f"pass interpret=True (slow, for tests), platform='gpu'/'tpu', or use implementation='xla'")
    return flash_attention(q, k, v, causal=causal, scale=scale, segment_ids=segment_ids, window=window,
                           softcap=softcap, precision=precision, block_sizes=block_sizes, block_q=block_q,
                           block_k=block_k, platform=plat if plat in ("gpu", "tpu") else "gpu",
                           interpret=interpret)
  if impl == "xla":
    return flash_attention_reference(q, k, v, causal=causal, scale=scale, segment_ids=segment_ids,
                                     window=window, softcap=softcap, precision=precision)
  if v.shape[-1] != q.shape[-1]:
    raise ValueError(f"implementation={impl!r} needs the value head_dim to equal the key's: {q.shape=}, {v.shape=}")
  scale = float(q.shape[-1] ** -0.5) if scale is None else scale
  if impl == "splash":
    if plat != "tpu" and not interpret:
      raise ValueError(f"implementation='splash' is a TPU kernel; platform is {plat!r} (pass interpret=True to run "
                       f"it in Pallas' interpreter)")
    return nonfinite_query_rows_to_nan(q, _splash(q, k, v, causal=causal, scale=scale, segment_ids=segment_ids,
                                                   window=_normalize_window(window), softcap=softcap,
                                                   interpret=interpret))
  # cudnn
  if softcap is not None:
    raise ValueError(f"implementation='cudnn' does not support softcap ({softcap=}); use 'pallas' or 'xla'")
  if segment_ids is not None:
    raise ValueError("implementation='cudnn' does not support segment_ids here; use 'pallas' or 'xla'")
  if plat != "gpu":
    raise ValueError(f"implementation='cudnn' needs a GPU, the platform is {plat!r}")
  return nonfinite_query_rows_to_nan(q, jax.nn.dot_product_attention(
      q, k, v, scale=scale, is_causal=causal, local_window_size=_normalize_window(window), implementation="cudnn"))
