"""One entry point for softmax attention: `attention(..., implementation=None | "pallas" | "xla" | "cudnn")`.

Paper [85]: Tri Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning", 2023,
arXiv:2307.08691 (the Pallas kernel); the "cudnn" path is `jax.nn.dot_product_attention(implementation="cudnn")`.
"""

from __future__ import annotations

from typing import Literal, Optional

import jax

from jaxlib_methods.kernels.flash_attention import (DEFAULT_BLOCK_K, DEFAULT_BLOCK_Q, Window, _normalize_window,
                                                     flash_attention, flash_attention_reference,
                                                     validate_attention_args)

Implementation = Optional[Literal["pallas", "xla", "cudnn"]]
IMPLEMENTATIONS = (None, "pallas", "xla", "cudnn")


def default_implementation(backend: Optional[str] = None) -> str:
  """The implementation `attention` picks for `backend` (default: jax's default backend).

  GPU: our Pallas FlashAttention-2 kernel. CPU and TPU: the XLA reference (our kernel targets GPU through Triton;
  jax's TPU flash/splash kernels use another layout and are not wired in yet).
  """
  backend = jax.default_backend() if backend is None else backend
  return "pallas" if backend == "gpu" else "xla"


def attention(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False, scale: Optional[float] = None,
              segment_ids: Optional[jax.Array] = None, window: Window | None = None,
              softcap: Optional[float] = None, implementation: Implementation = None,
              block_q: int = DEFAULT_BLOCK_Q, block_k: int = DEFAULT_BLOCK_K,
              interpret: bool = False) -> jax.Array:
  """Softmax attention with the layout of `jax.nn.dot_product_attention`, through one of three implementations.

  Args:
    q: [B, T, N, H]. k: [B, S, K, H]. v: [B, S, K, Hv] (K divides N).
    causal, scale, segment_ids, window, softcap: see `flash_attention_reference`.
    implementation: None (best for the backend: see `default_implementation`), "pallas" (our FlashAttention-2
      kernel; on a non-GPU backend only with interpret=True), "xla" (`flash_attention_reference`), or "cudnn"
      (`jax.nn.dot_product_attention(implementation="cudnn")`, GPU only; no softcap, no segment_ids, Hv == H).
    block_q, block_k, interpret: passed to the Pallas kernel (unused by "xla" and "cudnn").

  Returns:
    [B, T, N, Hv] in q's dtype.

  Raises:
    ValueError: bad shapes or options (checked eagerly), or an option the chosen implementation does not support.

  References: Dao, "FlashAttention-2", 2023, arXiv:2307.08691.
  """
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation=}")
  validate_attention_args(q, k, v, segment_ids=segment_ids, window=window, softcap=softcap, scale=scale)
  backend = jax.default_backend()
  impl = default_implementation(backend) if implementation is None else implementation
  if impl == "pallas":
    if backend != "gpu" and not interpret:
      raise ValueError(f"implementation='pallas' compiles for GPU (Triton) only; on {backend=} pass "
                       f"interpret=True (slow, for tests) or use implementation='xla'")
    return flash_attention(q, k, v, causal=causal, scale=scale, segment_ids=segment_ids, window=window,
                              softcap=softcap, block_q=block_q, block_k=block_k, interpret=interpret)
  if impl == "xla":
    return flash_attention_reference(q, k, v, causal=causal, scale=scale, segment_ids=segment_ids,
                                        window=window, softcap=softcap)
  # cudnn
  if softcap is not None:
    raise ValueError(f"implementation='cudnn' does not support softcap ({softcap=}); use 'pallas' or 'xla'")
  if segment_ids is not None:
    raise ValueError("implementation='cudnn' does not support segment_ids here; use 'pallas' or 'xla'")
  if v.shape[-1] != q.shape[-1]:
    raise ValueError(f"implementation='cudnn' needs the value head_dim to equal the key's: {q.shape=}, {v.shape=}")
  if backend != "gpu":
    raise ValueError(f"implementation='cudnn' needs a GPU, jax's default backend is {backend!r}")
  return jax.nn.dot_product_attention(q, k, v, scale=scale, is_causal=causal,
                                      local_window_size=_normalize_window(window), implementation="cudnn")
