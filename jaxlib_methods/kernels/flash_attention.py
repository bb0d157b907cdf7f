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
Backward (Algorithm 2), with D = rowsum(dO o o):  p = exp(s - L);  dV += p^T dO;  dP = dO V^T;
  dS = p o (dP - D);  dK += scale dS^T Q;  dQ += scale dS K  (dQ in its own kernel instead of atomic adds).

The causal and sliding-window masks let each loop skip the key (or query) blocks that are fully masked. Rows with no
visible key (possible with segment ids or windows) return 0 and get zero gradients.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional, Tuple, Union

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from jaxlib_methods import validation

Window = Union[int, Tuple[int, int]]

DEFAULT_BLOCK_Q = 128
DEFAULT_BLOCK_K = 128
_MIN_BLOCK = 16  # smallest tile the GPU (Triton) dot accepts


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


def validate_attention_args(q, k, v, *, segment_ids=None, window=None, softcap=None, scale=None) -> None:
  """Raise ValueError for inconsistent attention inputs (ranks, batch, heads, head dims, segment ids, options)."""
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
  if q.dtype != k.dtype or q.dtype != v.dtype:
    raise ValueError(f"q, k, v must share a dtype: {q.dtype=}, {k.dtype=}, {v.dtype=}")
  if not jnp.issubdtype(q.dtype, jnp.floating):
    raise ValueError(f"q, k, v must be floating point, got {q.dtype=}")
  if segment_ids is not None:
    if getattr(segment_ids, "shape", None) != (b, t):
      raise ValueError(f"segment_ids must have shape [batch, seq] = {(b, t)}, got "
                       f"segment_ids.shape={getattr(segment_ids, 'shape', None)}")
    if t != k.shape[1]:
      raise ValueError(f"segment_ids needs equal query and key lengths (self-attention): {q.shape=}, {k.shape=}")
    if not jnp.issubdtype(segment_ids.dtype, jnp.integer):
      raise ValueError(f"segment_ids must be integers, got {segment_ids.dtype=}")
  _normalize_window(window)
  if softcap is not None:
    validation.check_positive(softcap, "softcap")
  if scale is not None:
    validation.check_positive(scale, "scale")


# ----------------------------------------------------------------------------------------------------------------------
# Reference (pure jnp): the definition, the CPU path and the test oracle.
# ----------------------------------------------------------------------------------------------------------------------

def _mask(q_pos, k_pos, *, causal, window, q_seg=None, k_seg=None, kv_len=None):
  """Boolean visibility mask broadcast from q_pos[..., :, None] and k_pos[..., None, :]."""
  qp = q_pos[..., :, None]
  kp = k_pos[..., None, :]
  mask = jnp.ones(jnp.broadcast_shapes(qp.shape, kp.shape), dtype=bool)
  if causal:
    mask = mask & (qp >= kp)
  if window is not None:
    mask = mask & (qp <= kp + window[0]) & (qp >= kp - window[1])
  if kv_len is not None:
    mask = mask & (kp < kv_len)
  if q_seg is not None:
    mask = mask & (q_seg[..., :, None] == k_seg[..., None, :])
  return mask


def flash_attention_reference(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
                              scale: Optional[float] = None, segment_ids: Optional[jax.Array] = None,
                              window: Optional[Window] = None, softcap: Optional[float] = None) -> jax.Array:
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

  Returns:
    [B, T, N, Hv] in q's dtype.

  References: Dao, "FlashAttention-2", 2023, arXiv:2307.08691 (background section: standard attention).
  """
  validate_attention_args(q, k, v, segment_ids=segment_ids, window=window, softcap=softcap, scale=scale)
  window = _normalize_window(window)
  b, t, n, h = q.shape
  s_len, kv_heads = k.shape[1], k.shape[2]
  g = n // kv_heads
  scale = 1.0 / math.sqrt(h) if scale is None else scale
  qg = q.reshape(b, t, kv_heads, g, h)
  logits = jnp.einsum("btkgh,bskh->bkgts", qg, k, preferred_element_type=jnp.float32) * scale
  if softcap is not None:
    logits = softcap * jnp.tanh(logits / softcap)
  seg = None if segment_ids is None else segment_ids[:, None, None, :]
  mask = _mask(jnp.arange(t), jnp.arange(s_len), causal=causal, window=window, q_seg=seg, k_seg=seg)
  logits = jnp.where(mask, logits, -jnp.inf)
  m = jnp.max(logits, axis=-1, keepdims=True)
  m = jnp.where(jnp.isfinite(m), m, 0.0)
  p = jnp.exp(logits - m)
  l = jnp.sum(p, axis=-1, keepdims=True)
  p = p / jnp.where(l > 0, l, 1.0)
  out = jnp.einsum("bkgts,bskh->btkgh", p, v.astype(jnp.float32))
  return out.reshape(b, t, n, v.shape[-1]).astype(q.dtype)


# ----------------------------------------------------------------------------------------------------------------------
# Pallas kernels
# ----------------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Static:
  """Hashable static configuration of one kernel call (padded sizes included)."""
  scale: float
  causal: bool
  window: Optional[Tuple[int, int]]
  softcap: Optional[float]
  block_q: int
  block_k: int
  q_len: int         # true query length
  kv_len: int        # true key length (keys at or after it are padding)
  groups: int        # N // K
  interpret: bool


def _dot(a, b, *, trans_a=False, trans_b=False):
  """fp32-accumulating matmul of 2-D tiles."""
  ca = (0,) if trans_a else (1,)
  cb = (1,) if trans_b else (0,)
  return lax.dot_general(a, b, ((ca, cb), ((), ())), preferred_element_type=jnp.float32)


def _logits(q, k, cfg: _Static):
  """s = scale q k^T with the optional softcap; returns (s, tanh) with tanh None when no softcap."""
  s = _dot(q, k, trans_b=True) * cfg.scale
  if cfg.softcap is None:
    return s, None
  th = jnp.tanh(s / cfg.softcap)
  return cfg.softcap * th, th


def _block_mask(q_start, k_start, cfg: _Static, q_seg, k_seg):
  """Visibility of a [block_q, block_k] tile, or None when every entry is visible (no mask needed)."""
  need_len = (cfg.kv_len % cfg.block_k) != 0
  if not (cfg.causal or cfg.window is not None or need_len or q_seg is not None):
    return None
  q_pos = q_start + lax.broadcasted_iota(jnp.int32, (cfg.block_q,), 0)
  k_pos = k_start + lax.broadcasted_iota(jnp.int32, (cfg.block_k,), 0)
  return _mask(q_pos, k_pos, causal=cfg.causal, window=cfg.window, q_seg=q_seg, k_seg=k_seg,
               kv_len=cfg.kv_len if need_len else None)


def _kv_range(qi, cfg: _Static, num_k_blocks):
  """Key blocks [lo, hi) that query block qi can see (causal / window block skipping)."""
  lo = jnp.int32(0)
  hi = jnp.int32(num_k_blocks)
  q_first = qi * cfg.block_q
  q_last = q_first + cfg.block_q - 1
  if cfg.causal:
    hi = jnp.minimum(hi, q_last // cfg.block_k + 1)
  if cfg.window is not None:
    left, right = cfg.window
    lo = jnp.maximum(lo, jnp.maximum(q_first - left, 0) // cfg.block_k)
    hi = jnp.minimum(hi, (q_last + right) // cfg.block_k + 1)
  return lo, hi


def _q_range(ki, cfg: _Static, num_q_blocks):
  """Query blocks [lo, hi) that see key block ki (the transpose of `_kv_range`)."""
  lo = jnp.int32(0)
  hi = jnp.int32(num_q_blocks)
  k_first = ki * cfg.block_k
  k_last = k_first + cfg.block_k - 1
  if cfg.causal:
    lo = jnp.maximum(lo, k_first // cfg.block_q)
  if cfg.window is not None:
    left, right = cfg.window
    lo = jnp.maximum(lo, jnp.maximum(k_first - right, 0) // cfg.block_q)
    hi = jnp.minimum(hi, (k_last + left) // cfg.block_q + 1)
  return lo, hi


def _fwd_kernel(q_ref, k_ref, v_ref, qseg_ref, kseg_ref, o_ref, lse_ref, *, cfg: _Static):
  """One (batch, query head, query block): FA-2 Algorithm 1, inner loop over key blocks.

  Tiles: q [bq, H], k [bk, H], v [bk, Hv] (k, v read per block from the whole [S, H] sequence of this kv head).
  """
  qi = pl.program_id(2)
  bq, bk = cfg.block_q, cfg.block_k
  num_k_blocks = k_ref.shape[0] // bk
  q = q_ref[...]
  q_seg = None if qseg_ref is None else qseg_ref[...]
  hv = v_ref.shape[-1]

  def body(kj, carry):
    acc, m, l = carry
    ks = pl.ds(kj * bk, bk)
    k = k_ref[ks, :]
    v = v_ref[ks, :]
    s, _ = _logits(q, k, cfg)                                        # S = Q K^T
    mask = _block_mask(qi * bq, kj * bk, cfg, q_seg, None if kseg_ref is None else kseg_ref[ks])
    if mask is not None:
      s = jnp.where(mask, s, -jnp.inf)
    m_new = jnp.maximum(m, jnp.max(s, axis=-1))                      # running max
    m_safe = jnp.where(m_new == -jnp.inf, 0.0, m_new)               # fully masked so far: keep exp() finite
    p = jnp.exp(s - m_safe[:, None])
    alpha = jnp.exp(m - m_safe)
    l = alpha * l + jnp.sum(p, axis=-1)
    acc = alpha[:, None] * acc + _dot(p.astype(v.dtype), v)          # unnormalised output
    return acc, m_new, l

  lo, hi = _kv_range(qi, cfg, num_k_blocks)
  init = (jnp.zeros((bq, hv), jnp.float32), jnp.full((bq,), -jnp.inf, jnp.float32), jnp.zeros((bq,), jnp.float32))
  acc, m, l = lax.fori_loop(lo, hi, body, init)
  empty = l == 0.0
  o_ref[...] = (acc / jnp.where(empty, 1.0, l)[:, None]).astype(o_ref.dtype)   # one rescale at the end
  lse_ref[...] = jnp.where(empty, 0.0, m + jnp.log(jnp.where(empty, 1.0, l)))  # L = m + log l


def _dkdv_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, qseg_ref, kseg_ref, dk_ref, dv_ref, *,
                 cfg: _Static):
  """One (batch, kv head, key block): FA-2 Algorithm 2 (dK, dV part) summed over the G query heads sharing this kv head.

  Tiles: q [Tq, G, H], do [Tq, G, Hv], lse/delta [G, Tq] (whole sequence, read in [bq] slices), k [bk, H], v [bk, Hv].
  """
  ki = pl.program_id(2)
  bq, bk = cfg.block_q, cfg.block_k
  num_q_blocks = q_ref.shape[0] // bq
  k = k_ref[...]
  v = v_ref[...]
  k_seg = None if kseg_ref is None else kseg_ref[...]
  dk = jnp.zeros(k.shape, jnp.float32)
  dv = jnp.zeros(v.shape, jnp.float32)
  lo, hi = _q_range(ki, cfg, num_q_blocks)
  for g in range(cfg.groups):
    def body(qj, carry, g=g):
      dk, dv = carry
      qs = pl.ds(qj * bq, bq)
      q = q_ref[qs, g, :]
      do = do_ref[qs, g, :]
      lse = lse_ref[g, qs]
      delta = delta_ref[g, qs]
      s, th = _logits(q, k, cfg)
      mask = _block_mask(qj * bq, ki * bk, cfg, None if qseg_ref is None else qseg_ref[qs], k_seg)
      if mask is not None:
        s = jnp.where(mask, s, -jnp.inf)
      p = jnp.exp(s - lse[:, None])                                  # P = exp(S - L)
      dv = dv + _dot(p.astype(do.dtype), do, trans_a=True)           # dV += P^T dO
      dp = _dot(do, v, trans_b=True)                                 # dP = dO V^T
      ds = p * (dp - delta[:, None])                                 # dS = P o (dP - D)
      if th is not None:
        ds = ds * (1.0 - th * th)                                    # softcap chain rule
      ds = ds * cfg.scale
      dk = dk + _dot(ds.astype(q.dtype), q, trans_a=True)            # dK += dS^T Q
      return dk, dv
    dk, dv = lax.fori_loop(lo, hi, body, (dk, dv))
  dk_ref[...] = dk.astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)


def _dq_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, qseg_ref, kseg_ref, dq_ref, *, cfg: _Static):
  """One (batch, query head, query block): dQ = scale sum_j dS_j K_j (FA-2 Algorithm 2, dQ part, without atomics)."""
  qi = pl.program_id(2)
  bq, bk = cfg.block_q, cfg.block_k
  num_k_blocks = k_ref.shape[0] // bk
  q = q_ref[...]
  do = do_ref[...]
  lse = lse_ref[...]
  delta = delta_ref[...]
  q_seg = None if qseg_ref is None else qseg_ref[...]

  def body(kj, dq):
    ks = pl.ds(kj * bk, bk)
    k = k_ref[ks, :]
    v = v_ref[ks, :]
    s, th = _logits(q, k, cfg)
    mask = _block_mask(qi * bq, kj * bk, cfg, q_seg, None if kseg_ref is None else kseg_ref[ks])
    if mask is not None:
      s = jnp.where(mask, s, -jnp.inf)
    p = jnp.exp(s - lse[:, None])
    ds = p * (_dot(do, v, trans_b=True) - delta[:, None])
    if th is not None:
      ds = ds * (1.0 - th * th)
    return dq + _dot((ds * cfg.scale).astype(k.dtype), k)

  lo, hi = _kv_range(qi, cfg, num_k_blocks)
  dq = lax.fori_loop(lo, hi, body, jnp.zeros(q.shape, jnp.float32))
  dq_ref[...] = dq.astype(dq_ref.dtype)


def _seg_specs(q_seg, k_seg, q_spec, k_spec):
  if q_seg is None:
    return [None, None]
  return [q_spec, k_spec]


def _forward(q, k, v, q_seg, k_seg, cfg: _Static):
  """q [B, Tq, N, H], k [B, Tk, K, H], v [B, Tk, K, Hv], all padded to block multiples -> (o, lse [B, N, Tq])."""
  b, tq, n, h = q.shape
  tk, hv = k.shape[1], v.shape[-1]
  bq, g = cfg.block_q, cfg.groups
  grid = (b, n, tq // bq)
  in_specs = [
      pl.BlockSpec((None, bq, None, h), lambda bi, ni, qi: (bi, qi, ni, 0)),
      pl.BlockSpec((None, tk, None, h), lambda bi, ni, qi: (bi, 0, ni // g, 0)),
      pl.BlockSpec((None, tk, None, hv), lambda bi, ni, qi: (bi, 0, ni // g, 0)),
  ] + _seg_specs(q_seg, k_seg, pl.BlockSpec((None, bq), lambda bi, ni, qi: (bi, qi)),
                 pl.BlockSpec((None, tk), lambda bi, ni, qi: (bi, 0)))
  out_specs = [
      pl.BlockSpec((None, bq, None, hv), lambda bi, ni, qi: (bi, qi, ni, 0)),
      pl.BlockSpec((None, None, bq), lambda bi, ni, qi: (bi, ni, qi)),
  ]
  out_shape = [jax.ShapeDtypeStruct((b, tq, n, hv), q.dtype), jax.ShapeDtypeStruct((b, n, tq), jnp.float32)]
  return pl.pallas_call(
      functools.partial(_fwd_kernel, cfg=cfg), grid=grid, in_specs=in_specs, out_specs=out_specs,
      out_shape=out_shape, interpret=cfg.interpret, name="flash_attention_fwd",
  )(q, k, v, q_seg, k_seg)


def _backward(q, k, v, q_seg, k_seg, o, lse, do, cfg: _Static):
  b, tq, n, h = q.shape
  tk, kv_heads, hv = k.shape[1], k.shape[2], v.shape[-1]
  bq, bk, g = cfg.block_q, cfg.block_k, cfg.groups
  # D = rowsum(dO o O) (FA-2 Algorithm 2), fp32, [B, N, Tq].
  delta = jnp.einsum("btnh,btnh->bnt", do.astype(jnp.float32), o.astype(jnp.float32))

  # dK, dV: grid over key blocks; the G query heads of one kv head are read as a [Tq, G, H] tile of q viewed as
  # [B, Tq, K, G, H] (a free reshape), so dK/dV are summed in-kernel with no per-query-head copy.
  q5 = q.reshape(b, tq, kv_heads, g, h)
  do5 = do.reshape(b, tq, kv_heads, g, hv)
  lse4 = lse.reshape(b, kv_heads, g, tq)
  delta4 = delta.reshape(b, kv_heads, g, tq)
  in_specs = [
      pl.BlockSpec((None, tq, None, g, h), lambda bi, ki, kj: (bi, 0, ki, 0, 0)),
      pl.BlockSpec((None, bk, None, h), lambda bi, ki, kj: (bi, kj, ki, 0)),
      pl.BlockSpec((None, bk, None, hv), lambda bi, ki, kj: (bi, kj, ki, 0)),
      pl.BlockSpec((None, tq, None, g, hv), lambda bi, ki, kj: (bi, 0, ki, 0, 0)),
      pl.BlockSpec((None, None, g, tq), lambda bi, ki, kj: (bi, ki, 0, 0)),
      pl.BlockSpec((None, None, g, tq), lambda bi, ki, kj: (bi, ki, 0, 0)),
  ] + _seg_specs(q_seg, k_seg, pl.BlockSpec((None, tq), lambda bi, ki, kj: (bi, 0)),
                 pl.BlockSpec((None, bk), lambda bi, ki, kj: (bi, kj)))
  dk, dv = pl.pallas_call(
      functools.partial(_dkdv_kernel, cfg=cfg), grid=(b, kv_heads, tk // bk), in_specs=in_specs,
      out_specs=[pl.BlockSpec((None, bk, None, h), lambda bi, ki, kj: (bi, kj, ki, 0)),
                 pl.BlockSpec((None, bk, None, hv), lambda bi, ki, kj: (bi, kj, ki, 0))],
      out_shape=[jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)],
      interpret=cfg.interpret, name="flash_attention_bwd_dkdv",
  )(q5, k, v, do5, lse4, delta4, q_seg, k_seg)

  in_specs = [
      pl.BlockSpec((None, bq, None, h), lambda bi, ni, qi: (bi, qi, ni, 0)),
      pl.BlockSpec((None, tk, None, h), lambda bi, ni, qi: (bi, 0, ni // g, 0)),
      pl.BlockSpec((None, tk, None, hv), lambda bi, ni, qi: (bi, 0, ni // g, 0)),
      pl.BlockSpec((None, bq, None, hv), lambda bi, ni, qi: (bi, qi, ni, 0)),
      pl.BlockSpec((None, None, bq), lambda bi, ni, qi: (bi, ni, qi)),
      pl.BlockSpec((None, None, bq), lambda bi, ni, qi: (bi, ni, qi)),
  ] + _seg_specs(q_seg, k_seg, pl.BlockSpec((None, bq), lambda bi, ni, qi: (bi, qi)),
                 pl.BlockSpec((None, tk), lambda bi, ni, qi: (bi, 0)))
  dq = pl.pallas_call(
      functools.partial(_dq_kernel, cfg=cfg), grid=(b, n, tq // bq), in_specs=in_specs,
      out_specs=pl.BlockSpec((None, bq, None, h), lambda bi, ni, qi: (bi, qi, ni, 0)),
      out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype), interpret=cfg.interpret, name="flash_attention_bwd_dq",
  )(q, k, v, do, lse, delta, q_seg, k_seg)
  return dq, dk, dv


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _flash(q, k, v, q_seg, k_seg, cfg: _Static):
  return _forward(q, k, v, q_seg, k_seg, cfg)[0]


def _flash_fwd(q, k, v, q_seg, k_seg, cfg: _Static):
  o, lse = _forward(q, k, v, q_seg, k_seg, cfg)
  return o, (q, k, v, q_seg, k_seg, o, lse)   # FA-2 saves only O and the log-sum-exp L (no T x S matrix)


def _flash_bwd(cfg: _Static, res, do):
  q, k, v, q_seg, k_seg, o, lse = res
  dq, dk, dv = _backward(q, k, v, q_seg, k_seg, o, lse, do, cfg)
  return dq, dk, dv, None, None


_flash.defvjp(_flash_fwd, _flash_bwd)


def _pick_block(block: int, length: int) -> int:
  """The block actually used: the requested one, shrunk (to a power of two >= 16) for short sequences."""
  return min(block, max(_MIN_BLOCK, pl.next_power_of_2(length)))


def _pad_axis(x, axis, new, value=0):
  if x.shape[axis] == new:
    return x
  pad = [(0, 0)] * x.ndim
  pad[axis] = (0, new - x.shape[axis])
  return jnp.pad(x, pad, constant_values=value)


def flash_attention(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
                    scale: Optional[float] = None, segment_ids: Optional[jax.Array] = None,
                    window: Optional[Window] = None, softcap: Optional[float] = None,
                    block_q: int = DEFAULT_BLOCK_Q, block_k: int = DEFAULT_BLOCK_K,
                    interpret: bool = False) -> jax.Array:
  """FlashAttention-2 (Pallas forward and backward kernels, differentiable through a custom_vjp).

  Computes exactly `flash_attention_reference` (see there for the masks and options) without materialising the
  [T, S] attention matrix: the forward saves only the output and the per-row log-sum-exp (FA-2 Algorithm 1), the
  backward recomputes the attention blockwise (Algorithm 2). Inputs in bf16 or fp32; matmuls accumulate in fp32.

  Lengths need not be multiples of the blocks (inputs are zero-padded and padded keys masked); head dims that are not
  powers of two (e.g. 96, 192) are zero-padded to the next power of two, which leaves q.k and the output unchanged.

  Args:
    q: [B, T, N, H]. k: [B, S, K, H]. v: [B, S, K, Hv] (K divides N; Hv may differ from H).
    causal, scale, segment_ids, window, softcap: as in `flash_attention_reference`.
    block_q, block_k: query/key tile sizes (positive; powers of two on GPU), shrunk for short sequences.
    interpret: run the kernels in the Pallas interpreter (CPU tests).

  Returns:
    [B, T, N, Hv] in q's dtype.

  References: Tri Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning", 2023,
  arXiv:2307.08691, Algorithms 1 and 2.
  """
  validate_attention_args(q, k, v, segment_ids=segment_ids, window=window, softcap=softcap, scale=scale)
  for name, blk in (("block_q", block_q), ("block_k", block_k)):
    if not isinstance(blk, int) or isinstance(blk, bool) or blk <= 0:
      raise ValueError(f"{name} must be a positive int, got {name}={blk!r}")
    if not interpret and blk & (blk - 1):
      raise ValueError(f"{name} must be a power of two for the compiled (GPU) kernel, got {name}={blk}")
  if softcap is not None and not validation.is_concrete_number(softcap):
    raise ValueError(f"softcap must be a Python number (a static kernel constant), got {softcap=}")
  if scale is not None and not validation.is_concrete_number(scale):
    raise ValueError(f"scale must be a Python number (a static kernel constant), got {scale=}")
  window_t = _normalize_window(window)
  b, t, n, h = q.shape
  s_len, kv_heads, hv = k.shape[1], k.shape[2], v.shape[3]
  bq = _pick_block(block_q, t)
  bk = _pick_block(block_k, s_len)
  tq_pad = pl.cdiv(t, bq) * bq
  tk_pad = pl.cdiv(s_len, bk) * bk
  h_pad, hv_pad = pl.next_power_of_2(h), pl.next_power_of_2(hv)
  cfg = _Static(scale=float(1.0 / math.sqrt(h) if scale is None else scale), causal=bool(causal), window=window_t,
                softcap=None if softcap is None else float(softcap), block_q=bq, block_k=bk, q_len=t, kv_len=s_len,
                groups=n // kv_heads, interpret=bool(interpret))
  qp = _pad_axis(_pad_axis(q, 1, tq_pad), 3, h_pad)
  kp = _pad_axis(_pad_axis(k, 1, tk_pad), 3, h_pad)
  vp = _pad_axis(_pad_axis(v, 1, tk_pad), 3, hv_pad)
  q_seg = k_seg = None
  if segment_ids is not None:
    seg = segment_ids.astype(jnp.int32)
    q_seg = _pad_axis(seg, 1, tq_pad, value=-1)   # padded query rows see nothing (and are sliced off)
    k_seg = _pad_axis(seg, 1, tk_pad, value=-2)   # padded keys are masked by position as well
  out = _flash(qp, kp, vp, q_seg, k_seg, cfg)
  return out[:, :t, :, :hv]
