"""FlashAttention-2: exact softmax attention computed blockwise, forward and backward, as Pallas kernels.

Paper [85]: Tri Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning", 2023,
arXiv:2307.08691 (Algorithm 1: forward with online softmax and the log-sum-exp saved; Algorithm 2: backward that
recomputes the attention blockwise from the saved log-sum-exp). Builds on Dao et al., "FlashAttention", 2022,
arXiv:2205.14135.

Layout: the one of `jax.nn.dot_product_attention`, `q: [B, T, N, H]`, `k: [B, S, K, H]`, `v: [B, S, K, Hv]`, with
N query heads, K key/value heads (K divides N; query head n reads key/value head n // (N // K): grouped-query and
multi-query attention without copying K/V), and a value head dim Hv that may differ from H.

Per query block i (FA-2 Algorithm 1):  m = -inf, l = 0, acc = 0;  for each key block j:
    s = scale * q_i k_j^T   (optional softcap: s = c * tanh(s / c));  masked entries -> -inf
    m' = max(m, rowmax(s));  p = exp(s - m');  l = exp(m - m') l + rowsum(p);  acc = exp(m - m') acc + p v_j
  o_i = acc / l  (the single deferred rescale);  L_i = m + log l.
Backward (Algorithm 2), with D = rowsum(dO o O):  p = exp(s - L);  dV += p^T dO;  dP = dO V^T;
  dS = p o (dP - D);  dK += scale dS^T Q;  dQ += scale dS K  (dQ in its own kernel instead of atomic adds).
The kernels work in base 2 (exp2, with log2(e) folded into the logit scale; L is kept as log2 internally).

This module is the GPU (Triton) kernel; `flash_attention_tpu` holds the TPU (Mosaic) one, and `flash_attention`
below picks between them with its `platform` argument. Design points of the GPU kernels:
  * Every `pallas_call` passes `jax.experimental.pallas.triton.CompilerParams` (num_warps, num_stages from
    `BlockSizes.get_default`, chosen per head dim, dtype and GPU: on sm_90 (H100/H200) tiles measured fastest on an
    H200 by `benchmarks/fa2_tune.py`, elsewhere tiles checked offline to fit sm_80 / sm_90a shared memory without
    spills by `benchmarks/kernel_resources.py`), so the Triton route does not depend on jax's default (Mosaic GPU).
  * No copies of the inputs: ragged lengths and head dims that are not powers of two (96, 192) are handled by masked
    loads and stores inside the kernels (tiles are padded to powers of two in registers/shared memory only).
  * Each loop over key (or query) blocks is split into blocks that need the causal/window/length mask and blocks
    that are fully visible, which run a body with no mask arithmetic.
  * GQA/MQA: the forward and dQ grids run over query heads and read key/value head n // G through the index maps;
    the dK/dV grid runs over key/value heads and one loop walks (query block, group member) pairs, so dK/dV are
    summed in registers with no per-group copy and no Python loop over groups.
  * Arrays whose byte size exceeds 2^32 are indexed with 64-bit offsets (jax's Triton lowering switches on that
    size; a lowering test checks it), so there is no 2^31-element limit.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import List, Literal, Optional, Tuple, Union

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from jaxlib_methods import validation

Window = Union[int, Tuple[int, int]]
Precision = Optional[Union[str, lax.Precision]]
Platform = Optional[Literal["gpu", "cuda", "rocm", "tpu"]]

DEFAULT_BLOCK_Q = 128
DEFAULT_BLOCK_K = 64
_MIN_BLOCK = 16            # smallest tile the GPU (Triton) dot accepts, in every dimension
_LOG2E = math.log2(math.e)
_LN2 = math.log(2.0)
KERNEL_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16), jnp.dtype(jnp.float32))
PRECISIONS = ("default", "high", "highest")
MAX_HEAD_DIM = 256         # largest head dim whose default tiles fit sm_80 / sm_90a shared memory


# ----------------------------------------------------------------------------------------------------------------------
# Validation (eager, before tracing)
# ----------------------------------------------------------------------------------------------------------------------

def _normalize_window(window: Optional[Window]) -> Optional[Tuple[int, int]]:
  if window is None:
    return None
  if isinstance(window, int) and not isinstance(window, bool):
    window = (window, window)
  if (not isinstance(window, (tuple, list)) or len(window) != 2
      or not all(isinstance(w, int) and not isinstance(w, bool) for w in window)):
    raise ValueError(f"window must be an int or a (left, right) pair of ints, got {window=}")
  if window[0] < 0 or window[1] < 0:
    raise ValueError(f"window sizes must be >= 0, got {window=}")
  return (int(window[0]), int(window[1]))


def normalize_precision(precision: Precision) -> str:
  """None / "default" / "high" / "highest" or a `jax.lax.Precision` -> one of `PRECISIONS`."""
  if precision is None:
    return "default"
  if isinstance(precision, lax.Precision):
    return {lax.Precision.DEFAULT: "default", lax.Precision.HIGH: "high", lax.Precision.HIGHEST: "highest"}[precision]
  if isinstance(precision, str) and precision.lower() in PRECISIONS:
    return precision.lower()
  raise ValueError(f"precision must be None, one of {PRECISIONS} or a jax.lax.Precision, got {precision=}")


def normalize_platform(platform: Platform, interpret: bool = False) -> str:
  """The kernel family to use: "gpu" (Triton) or "tpu" (Mosaic). None: from `jax.default_backend()`."""
  if platform is None:
    backend = jax.default_backend()
    if backend in ("gpu", "cuda", "rocm"):
      return "gpu"
    if backend == "tpu":
      return "tpu"
    if interpret:
      return "gpu"    # the Triton kernels in Pallas' interpreter (what the CPU tests run)
    raise ValueError(f"the Pallas kernels compile for GPU or TPU; jax's default backend is {backend!r}: pass "
                     f"interpret=True (slow, for tests), or platform='gpu'/'tpu' to lower for another platform "
                     f"(jax.export), or use the XLA reference")
  if platform in ("gpu", "cuda", "rocm"):
    return "gpu"
  if platform == "tpu":
    return "tpu"
  raise ValueError(f"platform must be None, 'gpu' (or 'cuda', 'rocm') or 'tpu', got {platform=}")


def nonfinite_query_rows_to_nan(q: jax.Array, out: jax.Array) -> jax.Array:
  """out [B, T, N, Hv] with NaN in the rows whose query q [B, T, N, H] holds a NaN or an infinity.

  A NaN query already gives a NaN row, but an infinite one gives logits of +-inf that the masked-row convention (a
  row with every logit -inf outputs 0) would turn into a plausible finite row; the rule is NaN propagation
  (docs/conventions.md). One elementwise pass over q and out, negligible beside the attention itself.
  """
  finite = jnp.all(jnp.isfinite(q), axis=-1, keepdims=True)
  return jnp.where(finite, out, jnp.asarray(jnp.nan, out.dtype))


def validate_attention_args(q, k, v, *, segment_ids=None, window=None, softcap=None, scale=None) -> None:
  """Raise ValueError for inconsistent attention inputs (ranks, batch, heads, head dims, segment ids, options) and
  TypeError for wrong dtypes (q, k, v not floating point or not one dtype; integer-free segment ids)."""
  for name, x in (("q", q), ("k", k), ("v", v)):
    if getattr(x, "ndim", None) != 4:
      raise ValueError(f"{name} must have shape [batch, seq, heads, head_dim], got {name}.shape="
                       f"{getattr(x, 'shape', None)}")
  b, t, n, h = q.shape
  if k.shape[0] != b or v.shape[0] != b:
    raise ValueError(f"batch sizes differ: {q.shape=}, {k.shape=}, {v.shape=}")
  if k.shape[1] != v.shape[1]:
    raise ValueError(f"k and v must have the same sequence length: {k.shape=}, {v.shape=}")
  if k.shape[2] != v.shape[2]:
    raise ValueError(f"k and v must have the same number of heads: {k.shape=}, {v.shape=}")
  if k.shape[3] != h:
    raise ValueError(f"q and k must have the same head_dim: {q.shape=}, {k.shape=}")
  kv_heads = k.shape[2]
  if kv_heads < 1 or n % kv_heads != 0:
    raise ValueError(f"the number of key/value heads must divide the number of query heads: {q.shape=}, {k.shape=}")
  if min(t, k.shape[1], h, v.shape[3]) < 1:
    raise ValueError(f"empty inputs: {q.shape=}, {k.shape=}, {v.shape=}")
  for name, x in (("q", q), ("k", k), ("v", v)):
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(f"{name} must be floating point, got {name}.dtype={x.dtype}")
  if q.dtype != k.dtype or q.dtype != v.dtype:
    raise TypeError(f"q, k, v must share a dtype: {q.dtype=}, {k.dtype=}, {v.dtype=}")
  if segment_ids is not None:
    if getattr(segment_ids, "shape", None) != (b, t):
      raise ValueError(f"segment_ids must have shape [batch, seq] = {(b, t)}, got "
                       f"segment_ids.shape={getattr(segment_ids, 'shape', None)}")
    if t != k.shape[1]:
      raise ValueError(f"segment_ids needs equal query and key lengths (self-attention): {q.shape=}, {k.shape=}")
    if not jnp.issubdtype(segment_ids.dtype, jnp.integer):
      raise TypeError(f"segment_ids must be integers, got {segment_ids.dtype=}")
  _normalize_window(window)
  if softcap is not None:
    validation.check_positive(softcap, "softcap")
  if scale is not None:
    validation.check_positive(scale, "scale")


def _check_static_number(x, name):
  if x is not None and not validation.is_concrete_number(x):
    raise ValueError(f"{name} must be a Python number (a static kernel constant), got {name}={x!r}")


def _check_kernel_dtype(q):
  if jnp.dtype(q.dtype) not in KERNEL_DTYPES:
    raise TypeError(f"the Pallas attention kernels take bfloat16, float16 or float32 inputs, got {q.dtype=} "
                     f"(use the XLA reference for other dtypes)")


# ----------------------------------------------------------------------------------------------------------------------
# Reference (pure jnp): the definition, the CPU path and the test oracle.
# ----------------------------------------------------------------------------------------------------------------------

def _mask(q_pos, k_pos, *, causal, window, q_seg=None, k_seg=None, kv_len=None):
  """Boolean visibility mask broadcast from q_pos[..., :, None] and k_pos[..., None, :] (None: everything visible)."""
  qp = q_pos[..., :, None]
  kp = k_pos[..., None, :]
  mask = None

  def conj(a, b):
    return b if a is None else a & b

  if causal:
    mask = conj(mask, qp >= kp)
  if window is not None:
    mask = conj(mask, (qp <= kp + window[0]) & (qp >= kp - window[1]))
  if kv_len is not None:
    mask = conj(mask, kp < kv_len)
  if q_seg is not None:
    mask = conj(mask, q_seg[..., :, None] == k_seg[..., None, :])
  return mask


def _xla_precision(precision: str):
  return {"default": None, "high": lax.Precision.HIGH, "highest": lax.Precision.HIGHEST}[precision]


def flash_attention_reference(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
                              scale: Optional[float] = None, segment_ids: Optional[jax.Array] = None,
                              window: Optional[Window] = None, softcap: Optional[float] = None,
                              precision: Precision = None) -> jax.Array:
  """Plain softmax attention in jnp (fp32 logits and accumulation): what `flash_attention` computes.

  out[b, t, n] = sum_s softmax_s(logits[b, n, t, :]) v[b, s, n // G],  logits = scale q.k (softcapped: c tanh(./c)),
  with masked logits at -inf and rows with no visible key set to 0.

  Args:
    q: [B, T, N, H] queries. k: [B, S, K, H] keys. v: [B, S, K, Hv] values; K divides N (G = N // K).
    causal: query t sees keys s <= t (top-left aligned, as `jax.nn.dot_product_attention`).
    scale: logit scale, default 1/sqrt(H).
    segment_ids: [B, T] int (needs S == T): attention only within equal ids (packed sequences).
    window: int or (left, right): query t sees keys with t - left <= s <= t + right.
    softcap: c > 0 for logits c * tanh(logits / c) (Gemma-2 style), or None.
    precision: matmul precision of the two einsums (None/"default", "high", "highest"); XLA's meaning.

  Returns:
    [B, T, N, Hv] in q's dtype.

  References: Dao, "FlashAttention-2", 2023, arXiv:2307.08691 (background section: standard attention).
  """
  validate_attention_args(q, k, v, segment_ids=segment_ids, window=window, softcap=softcap, scale=scale)
  window = _normalize_window(window)
  prec = _xla_precision(normalize_precision(precision))
  b, t, n, h = q.shape
  s_len, kv_heads = k.shape[1], k.shape[2]
  g = n // kv_heads
  scale = 1.0 / math.sqrt(h) if scale is None else scale
  qg = q.reshape(b, t, kv_heads, g, h)
  logits = jnp.einsum("btkgh,bskh->bkgts", qg, k, preferred_element_type=jnp.float32, precision=prec) * scale
  if softcap is not None:
    logits = softcap * jnp.tanh(logits / softcap)
  seg = None if segment_ids is None else segment_ids[:, None, None, :]
  mask = _mask(jnp.arange(t), jnp.arange(s_len), causal=causal, window=window, q_seg=seg, k_seg=seg)
  if mask is not None:
    logits = jnp.where(mask, logits, -jnp.inf)
  m = jnp.max(logits, axis=-1, keepdims=True)
  m = jnp.where(jnp.isfinite(m), m, 0.0)
  p = jnp.exp(logits - m)
  l = jnp.sum(p, axis=-1, keepdims=True)
  p = p / jnp.where(l > 0, l, 1.0)
  out = jnp.einsum("bkgts,bskh->btkgh", p, v.astype(jnp.float32), precision=prec)
  return nonfinite_query_rows_to_nan(q, out.reshape(b, t, n, v.shape[-1]).astype(q.dtype))


# ----------------------------------------------------------------------------------------------------------------------
# Block sizes and Triton launch parameters
# ----------------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BlockSizes:
  """Tile sizes and Triton launch parameters of the three GPU kernels (forward, dK/dV, dQ).

  Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning", 2023, arXiv:2307.08691
  (Algorithm 1: the forward tiles; Algorithm 2: the backward tiles).

  Attributes:
    block_q, block_k: query / key tile of the forward kernel.
    block_q_dkv, block_k_dkv: tiles of the dK/dV kernel (one program per key block).
    block_q_dq, block_k_dq: tiles of the dQ kernel (one program per query block).
    num_warps_*, num_stages_*: Triton `CompilerParams` of each kernel.
  All tiles are powers of two >= 16 (Triton's dot); they shrink to the sequence length for short sequences.
  All fields are Python ints (scalars). A query tile covers block_q rows of q [B, T, N, H]; a key tile block_k rows
  of k [B, S, K, H] and v [B, S, K, Hv].
  """
  block_q: int = DEFAULT_BLOCK_Q
  block_k: int = DEFAULT_BLOCK_K
  block_q_dkv: int = 64
  block_k_dkv: int = 64
  block_q_dq: int = 64
  block_k_dq: int = 64
  num_warps_fwd: int = 4
  num_stages_fwd: int = 2
  num_warps_dkv: int = 4
  num_stages_dkv: int = 2
  num_warps_dq: int = 4
  num_stages_dq: int = 2

  def __post_init__(self):
    for f in dataclasses.fields(self):
      val = getattr(self, f.name)
      if not isinstance(val, int) or isinstance(val, bool) or val <= 0:
        raise ValueError(f"BlockSizes.{f.name} must be a positive int, got {f.name}={val!r}")
      if f.name.startswith("block_") and val & (val - 1):
        raise ValueError(f"BlockSizes.{f.name} must be a power of two, got {f.name}={val}")
      if f.name.startswith("num_warps") and val not in (1, 2, 4, 8, 16):
        raise ValueError(f"BlockSizes.{f.name} must be 1, 2, 4, 8 or 16, got {f.name}={val}")

  @classmethod
  def get_default(cls, head_dim: int, dtype=jnp.bfloat16, head_dim_v: Optional[int] = None,
                  arch: Optional[int] = None) -> "BlockSizes":
    """Defaults per (padded) head dim, dtype and GPU architecture.

    On sm_90 (H100/H200) with 2-byte inputs and head dims <= 128: tiles measured fastest on an H200
    (`benchmarks/fa2_tune.py`). Everywhere else: tiles checked offline to fit sm_80 and sm_90a shared memory with
    zero register spills up to head_dim 128 (`benchmarks/kernel_resources.py`; docs/benchmarks.md has both tables).

    Args:
      head_dim: H (query/key head dim). dtype: input dtype. head_dim_v: Hv (default H).
      arch: compute capability x 10 (90, 80, ...) the kernels compile for; None: the GPU jax runs on (`gpu_arch()`),
        or the architecture-independent tiles when there is none (interpret mode, `jax.export` from a CPU host).
    """
    if arch is not None and (not isinstance(arch, int) or isinstance(arch, bool) or arch <= 0):
      raise ValueError(f"arch must be None or a compute capability x 10 such as 80 or 90, got {arch=!r}")
    hp = _pow2_dim(max(head_dim, head_dim if head_dim_v is None else head_dim_v))
    wide = jnp.dtype(dtype).itemsize >= 4
    key = (min(max(hp, 64), 256), wide)
    if (gpu_arch() if arch is None else arch) == 90 and key in _HOPPER_DEFAULTS:
      return _HOPPER_DEFAULTS[key]
    return _DEFAULTS[key]

  def with_blocks(self, block_q: Optional[int] = None, block_k: Optional[int] = None) -> "BlockSizes":
    """Overrides every kernel's query tile with block_q and key tile with block_k (None: keep)."""
    upd = {}
    if block_q is not None:
      upd.update(block_q=block_q, block_q_dkv=block_q, block_q_dq=block_q)
    if block_k is not None:
      upd.update(block_k=block_k, block_k_dkv=block_k, block_k_dq=block_k)
    return dataclasses.replace(self, **upd)


def _bs(fwd, dkv, dq):
  (bq, bk, w, s), (bq2, bk2, w2, s2), (bq3, bk3, w3, s3) = fwd, dkv, dq
  return BlockSizes(block_q=bq, block_k=bk, num_warps_fwd=w, num_stages_fwd=s, block_q_dkv=bq2, block_k_dkv=bk2,
                    num_warps_dkv=w2, num_stages_dkv=s2, block_q_dq=bq3, block_k_dq=bk3, num_warps_dq=w3,
                    num_stages_dq=s3)


# (padded head dim, 4-byte inputs) -> per kernel (block_q, block_k, num_warps, num_stages) of (forward, dK/dV, dQ).
# Chosen with the offline Triton compile of benchmarks/kernel_resources.py: the largest tiles that fit sm_80 and
# sm_90a shared memory without register spills (docs/benchmarks.md has the table). Head dims <= 64 use the 64 row,
# 96 the 128 row and 192 the 256 row (tiles are padded to powers of two in shared memory / registers only).
_DEFAULTS = {
    (64, False): _bs((128, 64, 8, 3), (32, 32, 4, 2), (128, 64, 8, 2)),
    (128, False): _bs((64, 64, 8, 3), (32, 32, 8, 2), (64, 64, 8, 2)),
    (256, False): _bs((64, 32, 8, 2), (32, 32, 8, 1), (64, 32, 8, 2)),
    (64, True): _bs((128, 64, 8, 2), (32, 64, 8, 2), (128, 32, 8, 2)),
    (128, True): _bs((128, 32, 8, 2), (32, 32, 8, 2), (64, 32, 8, 2)),
    (256, True): _bs((32, 32, 8, 2), (16, 32, 8, 1), (32, 32, 8, 1)),
}


# Hopper (sm_90: H100, H200), 2-byte inputs: tiles measured on an H200 (benchmarks/fa2_tune.py, docs/benchmarks.md,
# 2026-11-30): forward + backward 1.5-4x faster than the zero-spill rows above (whose 32-row dK/dV tiles cannot use
# wgmma). They spill a few KB of registers in the dK/dV kernel and need up to 230,400 B of shared memory in the
# forward at head dim 128 (limit 232,448), so they are used on sm_90 only. Other rows fall back to `_DEFAULTS`.
_HOPPER_DEFAULTS = {
    (64, False): _bs((128, 64, 4, 3), (64, 64, 4, 2), (128, 64, 8, 2)),
    (128, False): _bs((128, 128, 8, 3), (64, 64, 4, 2), (64, 32, 4, 2)),
}


def gpu_arch() -> Optional[int]:
  """Compute capability x 10 of the GPU jax runs on (90 for an H100/H200, 80 for an A100), or None without one."""
  if jax.default_backend() != "gpu":
    return None
  cc = getattr(jax.devices()[0], "compute_capability", None)
  try:
    major, minor = str(cc).split(".")[:2]
    return 10 * int(major) + int(minor)
  except (TypeError, ValueError):
    return None


def _pow2_dim(d: int) -> int:
  return max(_MIN_BLOCK, pl.next_power_of_2(d))


def _pick_block(block: int, length: int) -> int:
  """The block actually used: the requested one, shrunk (to a power of two >= 16) for short sequences."""
  return min(block, max(_MIN_BLOCK, pl.next_power_of_2(length)))


# ----------------------------------------------------------------------------------------------------------------------
# Pallas (Triton) kernels
# ----------------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Static:
  """Hashable static configuration of one kernel call."""
  scale: float
  causal: bool
  window: Optional[Tuple[int, int]]
  softcap: Optional[float]
  q_len: int         # T
  kv_len: int        # S
  head_dim: int      # H (true)
  head_dim_v: int    # Hv (true)
  groups: int        # G = N // K
  blocks: BlockSizes
  precision: str
  interpret: bool


def _dot(a, b, cfg: _Static, *, trans_a=False, trans_b=False):
  """fp32-accumulating matmul of 2-D tiles. fp32 inputs: "default" is TF32 on GPU (Triton's rule), "high" 3-pass TF32,
  "highest" IEEE fp32; bf16/fp16 inputs always run on the tensor cores in their own dtype."""
  ca = (0,) if trans_a else (1,)
  cb = (1,) if trans_b else (0,)
  prec = None
  if a.dtype == jnp.float32:
    if cfg.interpret:
      prec = lax.Precision.HIGHEST          # the CPU interpreter computes fp32 dots in fp32 whatever is asked
    elif cfg.precision == "high":
      prec = lax.DotAlgorithmPreset.TF32_TF32_F32_X3
    elif cfg.precision == "highest":
      prec = lax.Precision.HIGHEST
  return lax.dot_general(a, b, ((ca, cb), ((), ())), precision=prec, preferred_element_type=jnp.float32)


def _logits2(q, k, cfg: _Static):
  """s2 = log2(e) * s, s = scale q k^T (softcapped: c tanh(scale q k^T / c)); returns (s2, tanh or None)."""
  qk = _dot(q, k, cfg, trans_b=True)
  if cfg.softcap is None:
    return qk * (cfg.scale * _LOG2E), None
  th = jnp.tanh(qk * (cfg.scale / cfg.softcap))
  return th * (cfg.softcap * _LOG2E), th


def _iota(n):
  return lax.broadcasted_iota(jnp.int32, (n,), 0)


def _and(a, b):
  if a is None:
    return b
  return a if b is None else a & b


def _col_mask(padded: int, true: int):
  """[padded] bool, True on the real head-dim columns; None when the head dim is already a power of two."""
  return None if padded == true else _iota(padded) < true


def _load(ref, rows=None, cols=None, other=0):
  """Load a 2-D tile (or a 1-D vector with `rows`) with out-of-range rows/columns read as `other`."""
  if len(ref.shape) == 1:
    mask = rows
  elif rows is None:
    mask = None if cols is None else cols[None, :]
  else:
    mask = rows[:, None] if cols is None else rows[:, None] & cols[None, :]
  if mask is None:
    return ref[...]
  return plgpu.load(ref, mask=mask, other=other)


def _store(ref, val, rows=None, cols=None):
  if len(ref.shape) == 1:
    mask = rows
  elif rows is None:
    mask = None if cols is None else cols[None, :]
  else:
    mask = rows[:, None] if cols is None else rows[:, None] & cols[None, :]
  if mask is None:
    ref[...] = val
  else:
    plgpu.store(ref, val, mask=mask)


def _kv_ranges(q_first, bq, bk, cfg: _Static):
  """For a query block starting at q_first: key blocks [lo, hi) it can see, and [f_lo, f_hi) within them that are
  fully visible (no causal/window/length mask needed). Blocks in [lo, f_lo) and [f_hi, hi) need the mask."""
  nk = pl.cdiv(cfg.kv_len, bk)
  q_last = q_first + (bq - 1)
  lo, hi = jnp.int32(0), jnp.int32(nk)
  f_lo, f_hi = lo, jnp.int32(cfg.kv_len // bk)           # a ragged last key block is masked
  if cfg.causal:
    hi = jnp.minimum(hi, lax.div(q_last, bk) + 1)
    f_hi = jnp.minimum(f_hi, lax.div(q_first + 1, bk))   # (j + 1) bk - 1 <= q_first
  if cfg.window is not None:
    left, right = cfg.window
    lo = lax.div(jnp.maximum(q_first - left, 0), bk)
    hi = jnp.minimum(hi, lax.div(q_last + right, bk) + 1)
    f_lo = lax.div(jnp.maximum(q_last - left, 0) + (bk - 1), bk)     # j bk >= q_last - left
    f_hi = jnp.minimum(f_hi, lax.div(q_first + right + 1, bk))      # (j + 1) bk - 1 <= q_first + right
  f_lo = jnp.minimum(jnp.maximum(f_lo, lo), hi)
  f_hi = jnp.minimum(jnp.maximum(f_hi, f_lo), hi)
  return lo, f_lo, f_hi, hi


def _q_ranges(k_first, bq, bk, cfg: _Static):
  """For a key block starting at k_first: query blocks [lo, hi) that see it and [f_lo, f_hi) that see all of it."""
  nq = pl.cdiv(cfg.q_len, bq)
  k_last = k_first + (bk - 1)
  lo, hi = jnp.int32(0), jnp.int32(nq)
  f_lo, f_hi = lo, jnp.int32(cfg.q_len // bq)             # a ragged last query block is masked
  if cfg.causal:
    lo = lax.div(k_first, bq)
    f_lo = lax.div(k_last + (bq - 1), bq)                 # q_first >= k_last
  if cfg.window is not None:
    left, right = cfg.window
    lo = jnp.maximum(lo, lax.div(jnp.maximum(k_first - right, 0), bq))
    hi = jnp.minimum(hi, lax.div(k_last + left, bq) + 1)
    f_lo = jnp.maximum(f_lo, lax.div(jnp.maximum(k_last - right, 0) + (bq - 1), bq))
    f_hi = jnp.minimum(f_hi, lax.div(k_first + left + 1, bq))     # q_last <= k_first + left
  f_lo = jnp.minimum(jnp.maximum(f_lo, lo), hi)
  f_hi = jnp.minimum(jnp.maximum(f_hi, f_lo), hi)
  return lo, f_lo, f_hi, hi


def _tile_mask(q_pos, k_pos, cfg: _Static, positional: bool, q_seg, k_seg):
  """Visibility of a tile: the segment mask always (when given), the causal/window/length mask when `positional`."""
  if positional:
    ragged_k = cfg.kv_len % k_pos.shape[0] != 0
    return _mask(q_pos, k_pos, causal=cfg.causal, window=cfg.window, q_seg=q_seg, k_seg=k_seg,
                 kv_len=cfg.kv_len if ragged_k else None)
  return None if q_seg is None else q_seg[:, None] == k_seg[None, :]


def _fwd_kernel(q_ref, k_ref, v_ref, qseg_ref, kseg_ref, o_ref, lse_ref, *, cfg: _Static):
  """One (batch, query head, query block): FA-2 Algorithm 1, inner loops over key blocks.

  Refs: q [bq, Hp], k [Sp, Hp], v [Sp, Hvp] (the whole sequence of kv head n // G), o [bq, Hvp], lse [bq];
  Hp/Hvp are the head dims padded to powers of two, Sp the key length padded to the block (masked loads).
  """
  bq, bk = cfg.blocks.block_q, cfg.blocks.block_k
  hp, hvp = q_ref.shape[-1], v_ref.shape[-1]
  q_first = pl.program_id(2) * bq
  q_pos = q_first + _iota(bq)
  q_rows = (q_pos < cfg.q_len) if cfg.q_len % bq else None
  hmask, hvmask = _col_mask(hp, cfg.head_dim), _col_mask(hvp, cfg.head_dim_v)
  q = _load(q_ref, q_rows, hmask)
  q_seg = None if qseg_ref is None else _load(qseg_ref, q_rows, other=-1)
  ragged_k = cfg.kv_len % bk != 0

  def body(kj, carry, positional):
    acc, m, l = carry
    k_pos = kj * bk + _iota(bk)
    k_rows = (k_pos < cfg.kv_len) if (positional and ragged_k) else None
    ks = pl.ds(kj * bk, bk)
    k = _load(k_ref.at[ks, :], k_rows, hmask)
    v = _load(v_ref.at[ks, :], k_rows, hvmask)
    k_seg = None if kseg_ref is None else _load(kseg_ref.at[ks], k_rows, other=-2)
    s, _ = _logits2(q, k, cfg)                                       # S = Q K^T (log2 units)
    mask = _tile_mask(q_pos, k_pos, cfg, positional, q_seg, k_seg)
    if mask is not None:
      s = jnp.where(mask, s, -jnp.inf)
    m_new = jnp.maximum(m, jnp.max(s, axis=-1))                      # running max (Alg. 1 line 8)
    m_safe = jnp.where(m_new == -jnp.inf, 0.0, m_new)               # fully masked so far: keep exp2() finite
    p = jnp.exp2(s - m_safe[:, None])
    alpha = jnp.exp2(m - m_safe)
    l = alpha * l + jnp.sum(p, axis=-1)
    acc = alpha[:, None] * acc + _dot(p.astype(v.dtype), v, cfg)     # unnormalised output (line 9)
    return acc, m_new, l

  lo, f_lo, f_hi, hi = _kv_ranges(q_first, bq, bk, cfg)
  carry = (jnp.zeros((bq, hvp), jnp.float32), jnp.full((bq,), -jnp.inf, jnp.float32), jnp.zeros((bq,), jnp.float32))
  if cfg.window is not None:                                        # loops whose range is provably empty are
    carry = lax.fori_loop(lo, f_lo, functools.partial(body, positional=True), carry)     # not emitted
  carry = lax.fori_loop(f_lo, f_hi, functools.partial(body, positional=False), carry)
  if cfg.causal or cfg.window is not None or ragged_k:
    carry = lax.fori_loop(f_hi, hi, functools.partial(body, positional=True), carry)
  acc, m, l = carry
  empty = l == 0.0
  l_safe = jnp.where(empty, 1.0, l)
  _store(o_ref, (acc / l_safe[:, None]).astype(o_ref.dtype), q_rows, hvmask)   # one rescale at the end (line 12)
  _store(lse_ref, jnp.where(empty, 0.0, m + jnp.log2(l_safe)), q_rows)        # L = m + log l (line 13), base 2


def _dkdv_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, qseg_ref, kseg_ref, dk_ref, dv_ref, *,
                 cfg: _Static):
  """One (batch, kv head, key block): FA-2 Algorithm 2 (dK, dV part), summed over the G query heads of this kv head.

  Refs: q [Tp, G, Hp], do [Tp, G, Hvp], lse/delta [G, Tp] (whole sequence, read in [bq] slices), k [bk, Hp],
  v [bk, Hvp]. One loop walks the (query block, group member) pairs, group member fastest (adjacent in memory).
  """
  bq, bk = cfg.blocks.block_q_dkv, cfg.blocks.block_k_dkv
  g_count = cfg.groups
  hp, hvp = k_ref.shape[-1], v_ref.shape[-1]
  k_first = pl.program_id(2) * bk
  k_pos = k_first + _iota(bk)
  k_rows = (k_pos < cfg.kv_len) if cfg.kv_len % bk else None
  hmask, hvmask = _col_mask(hp, cfg.head_dim), _col_mask(hvp, cfg.head_dim_v)
  k = _load(k_ref, k_rows, hmask)
  v = _load(v_ref, k_rows, hvmask)
  k_seg = None if kseg_ref is None else _load(kseg_ref, k_rows, other=-2)
  ragged_q = cfg.q_len % bq != 0

  def body(i, carry, start, positional):
    dk, dv = carry
    qj = start + lax.div(i, g_count)
    g = lax.rem(i, g_count)
    q_pos = qj * bq + _iota(bq)
    q_rows = (q_pos < cfg.q_len) if (positional and ragged_q) else None
    qs = pl.ds(qj * bq, bq)
    q = _load(q_ref.at[qs, g, :], q_rows, hmask)
    do = _load(do_ref.at[qs, g, :], q_rows, hvmask)
    lse = _load(lse_ref.at[g, qs], q_rows)
    delta = _load(delta_ref.at[g, qs], q_rows)
    q_seg = None if qseg_ref is None else _load(qseg_ref.at[qs], q_rows, other=-1)
    s, th = _logits2(q, k, cfg)
    mask = _tile_mask(q_pos, k_pos, cfg, positional, q_seg, k_seg)
    if mask is not None:
      s = jnp.where(mask, s, -jnp.inf)
    p = jnp.exp2(s - lse[:, None])                                   # P = exp(S - L)
    dv = dv + _dot(p.astype(do.dtype), do, cfg, trans_a=True)        # dV += P^T dO
    dp = _dot(do, v, cfg, trans_b=True)                              # dP = dO V^T
    ds = p * (dp - delta[:, None])                                   # dS = P o (dP - D)
    if th is not None:
      ds = ds * (1.0 - th * th)                                      # softcap chain rule
    ds = ds * cfg.scale
    dk = dk + _dot(ds.astype(q.dtype), q, cfg, trans_a=True)         # dK += dS^T Q
    return dk, dv

  def run(a, b, carry, positional):
    return lax.fori_loop(0, (b - a) * g_count, functools.partial(body, start=a, positional=positional), carry)

  lo, f_lo, f_hi, hi = _q_ranges(k_first, bq, bk, cfg)
  carry = (jnp.zeros((bk, hp), jnp.float32), jnp.zeros((bk, hvp), jnp.float32))
  if cfg.causal or cfg.window is not None:                          # provably empty loops are not emitted
    carry = run(lo, f_lo, carry, True)
  carry = run(f_lo, f_hi, carry, False)
  if cfg.window is not None or ragged_q:
    carry = run(f_hi, hi, carry, True)
  dk, dv = carry
  _store(dk_ref, dk.astype(dk_ref.dtype), k_rows, hmask)
  _store(dv_ref, dv.astype(dv_ref.dtype), k_rows, hvmask)


def _dq_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, qseg_ref, kseg_ref, dq_ref, *, cfg: _Static):
  """One (batch, query head, query block): dQ = scale sum_j dS_j K_j (FA-2 Algorithm 2, dQ part, without atomics)."""
  bq, bk = cfg.blocks.block_q_dq, cfg.blocks.block_k_dq
  hp, hvp = q_ref.shape[-1], v_ref.shape[-1]
  q_first = pl.program_id(2) * bq
  q_pos = q_first + _iota(bq)
  q_rows = (q_pos < cfg.q_len) if cfg.q_len % bq else None
  hmask, hvmask = _col_mask(hp, cfg.head_dim), _col_mask(hvp, cfg.head_dim_v)
  q = _load(q_ref, q_rows, hmask)
  do = _load(do_ref, q_rows, hvmask)
  lse = _load(lse_ref, q_rows)
  delta = _load(delta_ref, q_rows)
  q_seg = None if qseg_ref is None else _load(qseg_ref, q_rows, other=-1)
  ragged_k = cfg.kv_len % bk != 0

  def body(kj, dq, positional):
    k_pos = kj * bk + _iota(bk)
    k_rows = (k_pos < cfg.kv_len) if (positional and ragged_k) else None
    ks = pl.ds(kj * bk, bk)
    k = _load(k_ref.at[ks, :], k_rows, hmask)
    v = _load(v_ref.at[ks, :], k_rows, hvmask)
    k_seg = None if kseg_ref is None else _load(kseg_ref.at[ks], k_rows, other=-2)
    s, th = _logits2(q, k, cfg)
    mask = _tile_mask(q_pos, k_pos, cfg, positional, q_seg, k_seg)
    if mask is not None:
      s = jnp.where(mask, s, -jnp.inf)
    p = jnp.exp2(s - lse[:, None])
    ds = p * (_dot(do, v, cfg, trans_b=True) - delta[:, None])
    if th is not None:
      ds = ds * (1.0 - th * th)
    return dq + _dot((ds * cfg.scale).astype(k.dtype), k, cfg)

  lo, f_lo, f_hi, hi = _kv_ranges(q_first, bq, bk, cfg)
  dq = jnp.zeros((bq, hp), jnp.float32)
  if cfg.window is not None:                                        # provably empty loops are not emitted
    dq = lax.fori_loop(lo, f_lo, functools.partial(body, positional=True), dq)
  dq = lax.fori_loop(f_lo, f_hi, functools.partial(body, positional=False), dq)
  if cfg.causal or cfg.window is not None or ragged_k:
    dq = lax.fori_loop(f_hi, hi, functools.partial(body, positional=True), dq)
  _store(dq_ref, dq.astype(dq_ref.dtype), q_rows, hmask)


def _params(cfg: _Static, kernel: str):
  b = cfg.blocks
  return plgpu.CompilerParams(num_warps=getattr(b, f"num_warps_{kernel}"),
                              num_stages=getattr(b, f"num_stages_{kernel}"))


def _padded(length: int, block: int) -> int:
  return pl.cdiv(length, block) * block


def _forward(q, k, v, seg, cfg: _Static):
  """q [B, T, N, H], k [B, S, K, H], v [B, S, K, Hv] -> (o [B, T, N, Hv], lse2 [B, N, T] fp32, base 2)."""
  b, t, n, h = q.shape
  s_len, hv = k.shape[1], v.shape[-1]
  bq, bk, g = cfg.blocks.block_q, cfg.blocks.block_k, cfg.groups
  hp, hvp, sp = _pow2_dim(h), _pow2_dim(hv), _padded(s_len, bk)
  in_specs = [
      pl.BlockSpec((None, bq, None, hp), lambda bi, ni, qi: (bi, qi, ni, 0)),
      pl.BlockSpec((None, sp, None, hp), lambda bi, ni, qi: (bi, 0, ni // g, 0)),
      pl.BlockSpec((None, sp, None, hvp), lambda bi, ni, qi: (bi, 0, ni // g, 0)),
  ]
  in_specs += [None, None] if seg is None else [pl.BlockSpec((None, bq), lambda bi, ni, qi: (bi, qi)),
                                                pl.BlockSpec((None, sp), lambda bi, ni, qi: (bi, 0))]
  out_specs = [
      pl.BlockSpec((None, bq, None, hvp), lambda bi, ni, qi: (bi, qi, ni, 0)),
      pl.BlockSpec((None, None, bq), lambda bi, ni, qi: (bi, ni, qi)),
  ]
  out_shape = [jax.ShapeDtypeStruct((b, t, n, hv), q.dtype), jax.ShapeDtypeStruct((b, n, t), jnp.float32)]
  return pl.pallas_call(
      functools.partial(_fwd_kernel, cfg=cfg), grid=(b, n, pl.cdiv(t, bq)), in_specs=in_specs,
      out_specs=out_specs, out_shape=out_shape, compiler_params=_params(cfg, "fwd"), interpret=cfg.interpret,
      name="flash_attention_fwd",
  )(q, k, v, seg, seg)


def _backward(q, k, v, seg, o, lse, do, cfg: _Static):
  b, t, n, h = q.shape
  s_len, kv_heads, hv = k.shape[1], k.shape[2], v.shape[-1]
  g = cfg.groups
  hp, hvp = _pow2_dim(h), _pow2_dim(hv)
  # D = rowsum(dO o O) (FA-2 Algorithm 2 line 4), fp32, [B, N, T]: one fused XLA pass over dO and O.
  delta = jnp.einsum("btnh,btnh->bnt", do.astype(jnp.float32), o.astype(jnp.float32))

  # dK, dV: grid over key blocks of each kv head; the G query heads of kv head k are q viewed as [B, T, K, G, H]
  # (a free reshape), read in [bq, H] tiles by the in-kernel loop.
  bq, bk = cfg.blocks.block_q_dkv, cfg.blocks.block_k_dkv
  tp = _padded(t, bq)
  q5 = q.reshape(b, t, kv_heads, g, h)
  do5 = do.reshape(b, t, kv_heads, g, hv)
  lse4 = lse.reshape(b, kv_heads, g, t)
  delta4 = delta.reshape(b, kv_heads, g, t)
  in_specs = [
      pl.BlockSpec((None, tp, None, g, hp), lambda bi, ki, kj: (bi, 0, ki, 0, 0)),
      pl.BlockSpec((None, bk, None, hp), lambda bi, ki, kj: (bi, kj, ki, 0)),
      pl.BlockSpec((None, bk, None, hvp), lambda bi, ki, kj: (bi, kj, ki, 0)),
      pl.BlockSpec((None, tp, None, g, hvp), lambda bi, ki, kj: (bi, 0, ki, 0, 0)),
      pl.BlockSpec((None, None, g, tp), lambda bi, ki, kj: (bi, ki, 0, 0)),
      pl.BlockSpec((None, None, g, tp), lambda bi, ki, kj: (bi, ki, 0, 0)),
  ]
  in_specs += [None, None] if seg is None else [pl.BlockSpec((None, tp), lambda bi, ki, kj: (bi, 0)),
                                                pl.BlockSpec((None, bk), lambda bi, ki, kj: (bi, kj))]
  dk, dv = pl.pallas_call(
      functools.partial(_dkdv_kernel, cfg=cfg), grid=(b, kv_heads, pl.cdiv(s_len, bk)), in_specs=in_specs,
      out_specs=[pl.BlockSpec((None, bk, None, hp), lambda bi, ki, kj: (bi, kj, ki, 0)),
                 pl.BlockSpec((None, bk, None, hvp), lambda bi, ki, kj: (bi, kj, ki, 0))],
      out_shape=[jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)],
      compiler_params=_params(cfg, "dkv"), interpret=cfg.interpret, name="flash_attention_bwd_dkdv",
  )(q5, k, v, do5, lse4, delta4, seg, seg)

  bq, bk = cfg.blocks.block_q_dq, cfg.blocks.block_k_dq
  sp = _padded(s_len, bk)
  in_specs = [
      pl.BlockSpec((None, bq, None, hp), lambda bi, ni, qi: (bi, qi, ni, 0)),
      pl.BlockSpec((None, sp, None, hp), lambda bi, ni, qi: (bi, 0, ni // g, 0)),
      pl.BlockSpec((None, sp, None, hvp), lambda bi, ni, qi: (bi, 0, ni // g, 0)),
      pl.BlockSpec((None, bq, None, hvp), lambda bi, ni, qi: (bi, qi, ni, 0)),
      pl.BlockSpec((None, None, bq), lambda bi, ni, qi: (bi, ni, qi)),
      pl.BlockSpec((None, None, bq), lambda bi, ni, qi: (bi, ni, qi)),
  ]
  in_specs += [None, None] if seg is None else [pl.BlockSpec((None, bq), lambda bi, ni, qi: (bi, qi)),
                                                pl.BlockSpec((None, sp), lambda bi, ni, qi: (bi, 0))]
  dq = pl.pallas_call(
      functools.partial(_dq_kernel, cfg=cfg), grid=(b, n, pl.cdiv(t, bq)), in_specs=in_specs,
      out_specs=pl.BlockSpec((None, bq, None, hp), lambda bi, ni, qi: (bi, qi, ni, 0)),
      out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype), compiler_params=_params(cfg, "dq"),
      interpret=cfg.interpret, name="flash_attention_bwd_dq",
  )(q, k, v, do, lse, delta, seg, seg)
  return dq, dk, dv


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _flash(q, k, v, seg, cfg: _Static):
  return _forward(q, k, v, seg, cfg)[0]


def _flash_fwd(q, k, v, seg, cfg: _Static):
  o, lse = _forward(q, k, v, seg, cfg)
  return o, (q, k, v, seg, o, lse)   # FA-2 saves only O and the log-sum-exp L (no T x S matrix)


def _flash_bwd(cfg: _Static, res, do):
  q, k, v, seg, o, lse = res
  dq, dk, dv = _backward(q, k, v, seg, o, lse, do, cfg)
  return dq, dk, dv, None


_flash.defvjp(_flash_fwd, _flash_bwd)


def _check_blocks(block_q, block_k):
  for name, blk in (("block_q", block_q), ("block_k", block_k)):
    if blk is not None and (not isinstance(blk, int) or isinstance(blk, bool) or blk <= 0):
      raise ValueError(f"{name} must be a positive int or None, got {name}={blk!r}")


def _resolve_blocks(q, v, t, s_len, block_sizes, block_q, block_k) -> BlockSizes:
  for name, blk in (("block_q", block_q), ("block_k", block_k)):
    if blk is not None and blk & (blk - 1):
      raise ValueError(f"{name} must be a power of two (Triton tiles), got {name}={blk}")
  if block_sizes is None:
    block_sizes = BlockSizes.get_default(q.shape[-1], q.dtype, v.shape[-1])
  elif not isinstance(block_sizes, BlockSizes):
    raise ValueError(f"block_sizes must be a BlockSizes or None, got {type(block_sizes).__name__}")
  bs = block_sizes.with_blocks(block_q, block_k)
  return dataclasses.replace(
      bs, block_q=_pick_block(bs.block_q, t), block_k=_pick_block(bs.block_k, s_len),
      block_q_dkv=_pick_block(bs.block_q_dkv, t), block_k_dkv=_pick_block(bs.block_k_dkv, s_len),
      block_q_dq=_pick_block(bs.block_q_dq, t), block_k_dq=_pick_block(bs.block_k_dq, s_len))


def flash_attention(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
                    scale: Optional[float] = None, segment_ids: Optional[jax.Array] = None,
                    window: Optional[Window] = None, softcap: Optional[float] = None,
                    precision: Precision = None, block_sizes: Optional[BlockSizes] = None,
                    block_q: Optional[int] = None, block_k: Optional[int] = None,
                    platform: Platform = None, interpret: bool = False) -> jax.Array:
  """FlashAttention-2 (Pallas forward and backward kernels, differentiable through a custom_vjp).

  Computes exactly `flash_attention_reference` (see there for the masks and options) without materialising the
  [T, S] attention matrix: the forward saves only the output and the per-row log-sum-exp (FA-2 Algorithm 1), the
  backward recomputes the attention blockwise (Algorithm 2). Lengths need not be multiples of the blocks and head
  dims need not be powers of two (both are masked inside the kernels; nothing is padded in memory).

  What each dtype gets (GPU): bf16/fp16 inputs multiply on the tensor cores in their dtype with fp32 accumulation and
  an fp32 softmax; fp32 inputs follow `precision`: "default" (None) = TF32 (10-bit mantissa: Triton's rule for
  default-precision fp32 dots, like XLA's default on Ampere+; under `jax.default_matmul_precision("float32")`, as
  `python -m experiments` runs by default, "default" is IEEE like every other jax dot), "high" = 3-pass TF32 (about
  fp32 accuracy, ~3x the dot cost), "highest" = IEEE fp32 (no tensor cores). TPU (Mosaic): see
  `flash_attention_tpu`. In interpret mode fp32 dots are exact fp32 whatever `precision` says.

  Args:
    q: [B, T, N, H]. k: [B, S, K, H]. v: [B, S, K, Hv] (K divides N; Hv may differ from H); bf16, fp16 or fp32.
    causal, scale, segment_ids, window, softcap: as in `flash_attention_reference`.
    precision: None/"default", "high", "highest" (or a `jax.lax.Precision`): fp32 matmul precision, see above.
    block_sizes: GPU tiles and Triton launch parameters (default `BlockSizes.get_default(H, dtype, Hv)`).
    block_q, block_k: shorthand overriding every kernel's query / key tile (powers of two); shrunk for short
      sequences.
    platform: "gpu" (Triton kernels; "cuda"/"rocm" are aliases) or "tpu" (Mosaic kernels of `flash_attention_tpu`),
      known at trace time so `jax.export` can lower for either from any machine. None: from `jax.default_backend()`
      (on CPU only with interpret=True, which then runs the GPU kernels in Pallas' interpreter).
    interpret: run the kernels in the Pallas interpreter (CPU tests); for "tpu", the TPU interpret mode.

  Returns:
    [B, T, N, Hv] in q's dtype.

  Raises:
    ValueError: bad shapes or options; TypeError: unsupported or mixed dtypes (both checked eagerly, before
      tracing).

  References: Tri Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning", 2023,
  arXiv:2307.08691, Algorithms 1 and 2.
  """
  validate_attention_args(q, k, v, segment_ids=segment_ids, window=window, softcap=softcap, scale=scale)
  _check_kernel_dtype(q)
  _check_static_number(softcap, "softcap")
  _check_static_number(scale, "scale")
  prec = normalize_precision(precision)
  _check_blocks(block_q, block_k)
  plat = normalize_platform(platform, interpret)
  if q.shape[0] == 0:  # an empty batch: nothing to launch (a grid of size 0); the empty output, as the reference
    return jnp.zeros(q.shape[:3] + v.shape[3:], q.dtype)
  if plat == "tpu":
    if block_sizes is not None:
      raise ValueError("block_sizes configures the GPU kernels; for platform='tpu' use block_q / block_k")
    from jaxlib_methods.kernels.flash_attention_tpu import flash_attention_tpu  # pylint: disable=C0415
    return nonfinite_query_rows_to_nan(q, flash_attention_tpu(
        q, k, v, causal=causal, scale=scale, segment_ids=segment_ids, window=window, softcap=softcap,
        precision=prec, block_q=block_q, block_k=block_k, interpret=interpret))
  window_t = _normalize_window(window)
  b, t, n, h = q.shape
  s_len, kv_heads, hv = k.shape[1], k.shape[2], v.shape[3]
  if max(h, hv) > MAX_HEAD_DIM and not interpret:
    raise ValueError(f"the GPU kernels support head dims up to {MAX_HEAD_DIM} (shared memory), got {q.shape=}, "
                     f"{v.shape=}; use the XLA reference (attention(..., implementation='xla'))")
  blocks = _resolve_blocks(q, v, t, s_len, block_sizes, block_q, block_k)
  cfg = _Static(scale=float(1.0 / math.sqrt(h) if scale is None else scale), causal=bool(causal), window=window_t,
                softcap=None if softcap is None else float(softcap), q_len=t, kv_len=s_len, head_dim=h,
                head_dim_v=hv, groups=n // kv_heads, blocks=blocks, precision=prec, interpret=bool(interpret))
  seg = None if segment_ids is None else segment_ids.astype(jnp.int32)
  return nonfinite_query_rows_to_nan(q, _flash(q, k, v, seg, cfg))


# ----------------------------------------------------------------------------------------------------------------------
# Lowering cases: the configs the tests lower for `cuda` and benchmarks/kernel_resources.py compiles offline.
# ----------------------------------------------------------------------------------------------------------------------

_DT_NAMES = {"bf16": jnp.bfloat16, "fp16": jnp.float16, "fp32": jnp.float32}


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
  """One config of the lowering matrix (sizes are small: lowering cost hardly depends on T)."""
  head_dim: int = 128
  dtype: str = "bf16"
  causal: bool = False
  heads: int = 4
  kv_heads: int = 4
  t: int = 256
  s: Optional[int] = None
  head_dim_v: Optional[int] = None
  window: Optional[Tuple[int, int]] = None
  segments: bool = False
  softcap: Optional[float] = None
  precision: Optional[str] = None
  batch: int = 1
  arch: Optional[int] = None        # the tiles of `BlockSizes.get_default(..., arch=arch)`; None: the generic ones

  @property
  def name(self) -> str:
    parts = [f"B{self.batch}", f"T{self.t}"] + ([f"S{self.s}"] if self.s else []) + [
        f"N{self.heads}", f"K{self.kv_heads}", f"H{self.head_dim}"]
    parts += [f"Hv{self.head_dim_v}"] if self.head_dim_v else []
    parts += [self.dtype] + (["causal"] if self.causal else [])
    parts += [f"win{self.window[0]}-{self.window[1]}"] if self.window else []
    parts += ["seg"] if self.segments else []
    parts += [f"cap{self.softcap:g}"] if self.softcap else []
    parts += [f"prec-{self.precision}"] if self.precision else []
    parts += [f"sm{self.arch}"] if self.arch else []
    return "-".join(parts)

  def args(self) -> List[jax.ShapeDtypeStruct]:
    dt = _DT_NAMES[self.dtype]
    s = self.s or self.t
    hv = self.head_dim_v or self.head_dim
    out = [jax.ShapeDtypeStruct((self.batch, self.t, self.heads, self.head_dim), dt),
           jax.ShapeDtypeStruct((self.batch, s, self.kv_heads, self.head_dim), dt),
           jax.ShapeDtypeStruct((self.batch, s, self.kv_heads, hv), dt)]
    if self.segments:
      out.append(jax.ShapeDtypeStruct((self.batch, self.t), jnp.int32))
    return out

  def fns(self, platform: str, **kernel_kwargs):
    """(forward, vjp) functions of the abstract args, calling `flash_attention` for `platform`."""
    kw = dict(causal=self.causal, window=self.window, softcap=self.softcap, precision=self.precision,
              platform=platform, **kernel_kwargs)
    if self.arch is not None and "block_sizes" not in kw:
      kw["block_sizes"] = BlockSizes.get_default(self.head_dim, _DT_NAMES[self.dtype], self.head_dim_v,
                                                 arch=self.arch)

    def call(q, k, v, *seg):
      return flash_attention(q, k, v, segment_ids=seg[0] if seg else None, **kw)

    def vjp(q, k, v, *seg):
      o, pullback = jax.vjp(lambda q, k, v: call(q, k, v, *seg), q, k, v)
      return pullback(o)
    return call, vjp


def lowering_matrix() -> List[AttentionConfig]:
  """A covering design of the FA2 config space: every head dim (64/96/128/192/256), dtype (bf16/fp16/fp32),
  causal or not, MHA/GQA/MQA, window, segment ids, softcap, ragged T and the fp32 precisions appears, plus the risky
  combinations (big head dims in fp32, non-power-of-two head dims with GQA and ragged lengths, Hv != H)."""
  c = AttentionConfig
  return [
      # every head dim, bf16, causal and not
      *[c(head_dim=h, causal=causal) for h in (64, 96, 128, 192, 256) for causal in (False, True)],
      # every head dim in fp32 (twice the shared memory) and fp16
      *[c(head_dim=h, dtype="fp32", causal=True) for h in (64, 96, 128, 192, 256)],
      *[c(head_dim=h, dtype="fp16", causal=h % 2 == 0) for h in (64, 128, 256)],
      # GQA / MQA, with non-power-of-two head dims and ragged lengths
      c(head_dim=128, heads=8, kv_heads=2, causal=True),
      c(head_dim=96, heads=8, kv_heads=1, causal=True, t=200),
      c(head_dim=192, heads=8, kv_heads=2, t=200, s=136, head_dim_v=128),
      c(head_dim=64, heads=8, kv_heads=1, dtype="fp32"),
      # window, segment ids, softcap (alone and together), ragged T
      c(head_dim=128, causal=True, window=(64, 0)),
      c(head_dim=64, window=(32, 16), t=200),
      c(head_dim=128, causal=True, segments=True),
      c(head_dim=256, causal=True, softcap=30.0, dtype="fp32"),
      c(head_dim=128, heads=8, kv_heads=2, causal=True, window=(128, 0), segments=True, softcap=50.0, t=250),
      c(head_dim=64, t=77, s=203),
      # fp32 precisions
      c(head_dim=128, dtype="fp32", precision="high"),
      c(head_dim=64, dtype="fp32", causal=True, precision="highest"),
      # the Hopper tiles (sm_90 only: they must fit sm_90a; see _HOPPER_DEFAULTS)
      *[c(head_dim=h, causal=causal, arch=90) for h in (64, 128) for causal in (False, True)],
      c(head_dim=96, heads=8, kv_heads=1, causal=True, t=200, arch=90),
      c(head_dim=128, dtype="fp16", causal=True, arch=90),
      c(head_dim=128, heads=8, kv_heads=2, causal=True, window=(128, 0), segments=True, softcap=50.0, t=250,
        arch=90),
  ]


def lowering_cases(platform: str):
  """`LoweringCase`s (forward and vjp of every `lowering_matrix()` config) for `platform` ("cuda" or "tpu").

  The TPU cases come from `flash_attention_tpu.lowering_cases`.
  """
  from jaxlib_methods.kernels.lowering import LoweringCase   # pylint: disable=import-outside-toplevel
  if platform == "tpu":
    from jaxlib_methods.kernels.flash_attention_tpu import lowering_cases as tpu_cases  # pylint: disable=C0415
    return tpu_cases(platform)
  if platform != "cuda":
    raise ValueError(f"platform must be 'cuda' or 'tpu', got {platform!r}")
  cases = []
  for i, cfg in enumerate(lowering_matrix()):
    fwd, vjp = cfg.fns("gpu")
    args = tuple(cfg.args())
    # The vjp lowers the forward kernel too (it runs the custom_vjp forward rule, the same pallas_call as the
    # primal); a standalone forward case is kept for the first configs (every head dim, causal and not).
    archs = (cfg.arch,) if cfg.arch else (80, 90)
    if i < 10:
      cases.append(LoweringCase(f"fa2-fwd-{cfg.name}", fwd, args, platform, default=cfg.precision is None,
                                archs=archs))
    cases.append(LoweringCase(f"fa2-vjp-{cfg.name}", vjp, args, platform, default=cfg.precision is None,
                              archs=archs))
  return cases
