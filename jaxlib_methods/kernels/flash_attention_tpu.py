"""FlashAttention-2 for TPU: Pallas Mosaic forward and backward kernels with the same math and options as the GPU ones.

Paper [85]: Tri Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning", 2023,
arXiv:2307.08691, Algorithms 1 (forward, online softmax, log-sum-exp saved) and 2 (backward by recomputation).

On TPU the loop over key blocks is the innermost grid axis (Mosaic pipelines the HBM->VMEM copies of the next block
while the current one computes): grid (B, N, query blocks, key blocks) with the running max m, sum l and output
accumulator in VMEM scratch, initialised at the first key block and written out at the last. Blocks obey Mosaic's
(8, 128) tiling: query/key tiles are multiples of 128 rows, the head dim is the full array dim; m, l and the saved
log-sum-exp are kept lane-replicated as [rows, 128] (as jax's TPU flash attention does).
  * Causal / window block skipping: key blocks a query block cannot see are skipped with `pl.when`, and the k/v
    index maps clamp to the visible range so a skipped step issues no copy.
  * Blocks that are fully visible run a body with no mask arithmetic; edge blocks run the masked one.
  * GQA/MQA through the index maps: query head n reads key/value head n // G; the dK/dV grid runs over key/value
    heads with the innermost axis walking (group member, query block) pairs, accumulating in VMEM scratch.
  * Inputs are transposed to [B, N, T, H] (Mosaic tiles the last two dims) and lengths padded to the blocks; padded
    keys are masked by position.

Precision (fp32 inputs): "default" is Mosaic's default contraction precision (on TPU fp32 matmuls may run as bf16
MXU passes, as XLA's TPU default does); "high" and "highest" ask for fp32 contraction precision
(`#tpu.contract_precision<fp32>`; Mosaic has no 3-pass mode). bf16 inputs multiply in bf16 with fp32 accumulation.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import List, Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from jaxlib_methods.kernels.flash_attention import (AttentionConfig, Precision, Window, _check_kernel_dtype,
                                                     _check_static_number, _kv_ranges, _normalize_window, _q_ranges,
                                                     normalize_precision, validate_attention_args)

LANES = 128
SUBLANES = 8
DEFAULT_BLOCK = 128


@dataclasses.dataclass(frozen=True)
class _Static:
  """Static configuration (field names shared with flash_attention._Static: the block range helpers take either)."""
  scale: float
  causal: bool
  window: Optional[Tuple[int, int]]
  softcap: Optional[float]
  q_len: int
  kv_len: int
  groups: int
  block_q: int
  block_k: int
  precision: str
  interpret: bool


def _dot(a, b, cfg: _Static, trans_b=False):
  prec = lax.Precision.HIGHEST if (a.dtype == jnp.float32 and cfg.precision != "default") else None
  dims = (((1,), (1,)), ((), ())) if trans_b else (((1,), (0,)), ((), ()))
  return lax.dot_general(a, b, dims, precision=prec, preferred_element_type=jnp.float32)


def _lanes(x, width):
  """[rows, 128] lane-replicated -> [rows, width] (tile, then slice when width is not a multiple of 128)."""
  reps = pl.cdiv(width, LANES)
  y = x if reps == 1 else jnp.tile(x, (1, reps))
  return y if y.shape[1] == width else y[:, :width]


def _logits(q, k, cfg: _Static):
  """s = scale q k^T (softcapped), fp32 [bq, bk]; also returns tanh (None without softcap) for the backward."""
  s = _dot(q, k, cfg, trans_b=True) * cfg.scale
  if cfg.softcap is None:
    return s, None
  th = jnp.tanh(s / cfg.softcap)
  return cfg.softcap * th, th


def _block_mask(qi, kj, cfg: _Static, positional, qseg_ref, kseg_ref):
  bq, bk = cfg.block_q, cfg.block_k
  mask = None
  if positional:
    q_pos = qi * bq + lax.broadcasted_iota(jnp.int32, (bq, bk), 0)
    k_pos = kj * bk + lax.broadcasted_iota(jnp.int32, (bq, bk), 1)
    mask = _pos_mask(q_pos, k_pos, cfg)
  if qseg_ref is not None:
    q_seg = _lanes(qseg_ref[...], bk)                # [bq, bk] (lane-replicated ids)
    k_seg = kseg_ref[:1, :]                          # [1, bk]
    seg = q_seg == k_seg
    mask = seg if mask is None else mask & seg
  return mask


def _pos_mask(q_pos, k_pos, cfg: _Static):
  mask = k_pos < cfg.kv_len
  if cfg.causal:
    mask = mask & (q_pos >= k_pos)
  if cfg.window is not None:
    left, right = cfg.window
    mask = mask & (q_pos <= k_pos + left) & (q_pos >= k_pos - right)
  return mask


def _clamp(x, lo, hi):
  """x clamped to [lo, hi - 1] (hi > lo), else lo: the block index maps fetch only blocks that are used."""
  return jnp.maximum(jnp.minimum(x, hi - 1), lo)


def _fwd_kernel(q_ref, k_ref, v_ref, qseg_ref, kseg_ref, o_ref, lse_ref, m_sc, l_sc, acc_sc, *, cfg: _Static):
  """Grid (b, n, qi, kj); kj innermost. FA-2 Algorithm 1 for one (query block, key block) pair per step."""
  qi, kj = pl.program_id(2), pl.program_id(3)
  bk = cfg.block_k
  hv = acc_sc.shape[-1]

  @pl.when(kj == 0)
  def _init():
    m_sc[...] = jnp.full(m_sc.shape, -jnp.inf, jnp.float32)
    l_sc[...] = jnp.zeros(l_sc.shape, jnp.float32)
    acc_sc[...] = jnp.zeros(acc_sc.shape, jnp.float32)

  def step(positional):
    s, _ = _logits(q_ref[...], k_ref[...], cfg)
    mask = _block_mask(qi, kj, cfg, positional, qseg_ref, kseg_ref)
    if mask is not None:
      s = jnp.where(mask, s, -jnp.inf)
    m_prev = m_sc[...]                                               # [bq, 128]
    m_next = jnp.maximum(m_prev, jnp.max(s, axis=1)[:, None])       # running max (Alg. 1 line 8)
    m_safe = jnp.where(m_next == -jnp.inf, 0.0, m_next)
    p = jnp.exp(s - _lanes(m_safe, bk))
    alpha = jnp.exp(m_prev - m_safe)
    l_sc[...] = alpha * l_sc[...] + jnp.sum(p, axis=1)[:, None]
    m_sc[...] = m_next
    v = v_ref[...]
    acc_sc[...] = _lanes(alpha, hv) * acc_sc[...] + _dot(p.astype(v.dtype), v, cfg)   # line 9

  lo, f_lo, f_hi, hi = _kv_ranges(qi * cfg.block_q, cfg.block_q, bk, cfg)
  visible = (kj >= lo) & (kj < hi)
  full = (kj >= f_lo) & (kj < f_hi)
  pl.when(visible & full)(lambda: step(False))
  pl.when(visible & jnp.logical_not(full))(lambda: step(True))

  @pl.when(kj == pl.num_programs(3) - 1)
  def _finish():
    l = l_sc[...]
    empty = l == 0.0
    l_safe = jnp.where(empty, 1.0, l)
    o_ref[...] = (acc_sc[...] / _lanes(l_safe, hv)).astype(o_ref.dtype)          # line 12
    lse_ref[...] = jnp.where(empty, 0.0, m_sc[...] + jnp.log(l_safe))            # line 13


def _dkdv_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, qseg_ref, kseg_ref, dk_ref, dv_ref, dk_sc, dv_sc,
                 *, cfg: _Static, nq: int):
  """Grid (b, kv head, kj, i) with i = g * nq + qj innermost: dK, dV of one key block summed over the G query heads
  of its kv head and all query blocks (FA-2 Algorithm 2, dK/dV part)."""
  kj, i = pl.program_id(2), pl.program_id(3)
  qj = lax.rem(i, nq)
  bk = cfg.block_k

  @pl.when(i == 0)
  def _init():
    dk_sc[...] = jnp.zeros(dk_sc.shape, jnp.float32)
    dv_sc[...] = jnp.zeros(dv_sc.shape, jnp.float32)

  def step(positional):
    q, k, v, do = q_ref[...], k_ref[...], v_ref[...], do_ref[...]
    s, th = _logits(q, k, cfg)
    mask = _block_mask(qj, kj, cfg, positional, qseg_ref, kseg_ref)
    if mask is not None:
      s = jnp.where(mask, s, -jnp.inf)
    p = jnp.exp(s - _lanes(lse_ref[...], bk))                        # P = exp(S - L)
    dv_sc[...] += _dot(p.astype(do.dtype).T, do, cfg)                # dV += P^T dO
    dp = _dot(do, v, cfg, trans_b=True)                              # dP = dO V^T
    ds = p * (dp - _lanes(delta_ref[...], bk))                       # dS = P o (dP - D)
    if th is not None:
      ds = ds * (1.0 - th * th)
    ds = ds * cfg.scale
    dk_sc[...] += _dot(ds.astype(q.dtype).T, q, cfg)                 # dK += dS^T Q

  lo, f_lo, f_hi, hi = _q_ranges(kj * bk, cfg.block_q, bk, cfg)
  visible = (qj >= lo) & (qj < hi)
  full = (qj >= f_lo) & (qj < f_hi)
  pl.when(visible & full)(lambda: step(False))
  pl.when(visible & jnp.logical_not(full))(lambda: step(True))

  @pl.when(i == pl.num_programs(3) - 1)
  def _finish():
    dk_ref[...] = dk_sc[...].astype(dk_ref.dtype)
    dv_ref[...] = dv_sc[...].astype(dv_ref.dtype)


def _dq_kernel(q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, qseg_ref, kseg_ref, dq_ref, dq_sc, *, cfg: _Static):
  """Grid (b, n, qi, kj), kj innermost: dQ = scale sum_j dS_j K_j (FA-2 Algorithm 2, dQ part)."""
  qi, kj = pl.program_id(2), pl.program_id(3)
  bk = cfg.block_k

  @pl.when(kj == 0)
  def _init():
    dq_sc[...] = jnp.zeros(dq_sc.shape, jnp.float32)

  def step(positional):
    q, k, v, do = q_ref[...], k_ref[...], v_ref[...], do_ref[...]
    s, th = _logits(q, k, cfg)
    mask = _block_mask(qi, kj, cfg, positional, qseg_ref, kseg_ref)
    if mask is not None:
      s = jnp.where(mask, s, -jnp.inf)
    p = jnp.exp(s - _lanes(lse_ref[...], bk))
    ds = p * (_dot(do, v, cfg, trans_b=True) - _lanes(delta_ref[...], bk))
    if th is not None:
      ds = ds * (1.0 - th * th)
    dq_sc[...] += _dot((ds * cfg.scale).astype(k.dtype), k, cfg)

  lo, f_lo, f_hi, hi = _kv_ranges(qi * cfg.block_q, cfg.block_q, bk, cfg)
  visible = (kj >= lo) & (kj < hi)
  full = (kj >= f_lo) & (kj < f_hi)
  pl.when(visible & full)(lambda: step(False))
  pl.when(visible & jnp.logical_not(full))(lambda: step(True))

  @pl.when(kj == pl.num_programs(3) - 1)
  def _finish():
    dq_ref[...] = dq_sc[...].astype(dq_ref.dtype)


def _params(cfg: _Static, semantics):
  return pltpu.CompilerParams(dimension_semantics=semantics)


def _interpret(cfg: _Static):
  return pltpu.InterpretParams() if cfg.interpret else False


def _kv_block(cfg: _Static, qi, kj):
  """Key block actually fetched at grid step (qi, kj): kj clamped to the blocks query block qi can see."""
  lo, _, _, hi = _kv_ranges(qi * cfg.block_q, cfg.block_q, cfg.block_k, cfg)
  return _clamp(kj, lo, hi)


def _seg_inputs(seg, tp, sp):
  """segment ids [B, T] -> ([B, Tp, 128] lane-replicated for queries, [B, 8, Sp] sublane-replicated for keys)."""
  if seg is None:
    return None, None
  b, t = seg.shape
  q_seg = jnp.pad(seg, ((0, 0), (0, tp - t)), constant_values=-1)
  k_seg = jnp.pad(seg, ((0, 0), (0, sp - t)), constant_values=-2)
  return (lax.broadcast_in_dim(q_seg, (b, tp, LANES), (0, 1)),
          lax.broadcast_in_dim(k_seg, (b, SUBLANES, sp), (0, 2)))


def _forward(q, k, v, q_seg, k_seg, cfg: _Static):
  """q [B, N, Tp, H], k [B, K, Sp, H], v [B, K, Sp, Hv] -> (o [B, N, Tp, Hv], lse [B, N, Tp, 128] fp32)."""
  b, n, tp, h = q.shape
  sp, hv = k.shape[2], v.shape[-1]
  bq, bk, g = cfg.block_q, cfg.block_k, cfg.groups
  kv_map = lambda bi, ni, qi, kj: (bi, lax.div(ni, g), _kv_block(cfg, qi, kj), 0)
  in_specs = [
      pl.BlockSpec((None, None, bq, h), lambda bi, ni, qi, kj: (bi, ni, qi, 0)),
      pl.BlockSpec((None, None, bk, h), kv_map),
      pl.BlockSpec((None, None, bk, hv), kv_map),
  ]
  in_specs += [None, None] if q_seg is None else [
      pl.BlockSpec((None, bq, LANES), lambda bi, ni, qi, kj: (bi, qi, 0)),
      pl.BlockSpec((None, SUBLANES, bk), lambda bi, ni, qi, kj: (bi, 0, _kv_block(cfg, qi, kj)))]
  out_specs = [pl.BlockSpec((None, None, bq, hv), lambda bi, ni, qi, kj: (bi, ni, qi, 0)),
               pl.BlockSpec((None, None, bq, LANES), lambda bi, ni, qi, kj: (bi, ni, qi, 0))]
  out_shape = [jax.ShapeDtypeStruct((b, n, tp, hv), q.dtype), jax.ShapeDtypeStruct((b, n, tp, LANES), jnp.float32)]
  return pl.pallas_call(
      functools.partial(_fwd_kernel, cfg=cfg), grid=(b, n, tp // bq, sp // bk), in_specs=in_specs,
      out_specs=out_specs, out_shape=out_shape,
      scratch_shapes=[pltpu.VMEM((bq, LANES), jnp.float32), pltpu.VMEM((bq, LANES), jnp.float32),
                      pltpu.VMEM((bq, hv), jnp.float32)],
      compiler_params=_params(cfg, ("parallel", "parallel", "parallel", "arbitrary")),
      interpret=_interpret(cfg), name="flash_attention_tpu_fwd",
  )(q, k, v, q_seg, k_seg)


def _backward(q, k, v, q_seg, k_seg, o, lse, do, cfg: _Static):
  b, n, tp, h = q.shape
  kv_heads, sp, hv = k.shape[1], k.shape[2], v.shape[-1]
  bq, bk, g = cfg.block_q, cfg.block_k, cfg.groups
  nq, nk = tp // bq, sp // bk
  # D = rowsum(dO o O) (Algorithm 2 line 4), lane-replicated like the log-sum-exp.
  delta = jnp.sum(do.astype(jnp.float32) * o.astype(jnp.float32), axis=-1)
  delta = lax.broadcast_in_dim(delta, (b, n, tp, LANES), (0, 1, 2))

  def q_block(kj, i):
    lo, _, _, hi = _q_ranges(kj * bk, bq, bk, cfg)
    return _clamp(lax.rem(i, nq), lo, hi)

  q_map = lambda bi, ki, kj, i: (bi, ki * g + lax.div(i, nq), q_block(kj, i), 0)
  kv_map = lambda bi, ki, kj, i: (bi, ki, kj, 0)
  in_specs = [pl.BlockSpec((None, None, bq, h), q_map), pl.BlockSpec((None, None, bk, h), kv_map),
              pl.BlockSpec((None, None, bk, hv), kv_map), pl.BlockSpec((None, None, bq, hv), q_map),
              pl.BlockSpec((None, None, bq, LANES), q_map), pl.BlockSpec((None, None, bq, LANES), q_map)]
  in_specs += [None, None] if q_seg is None else [
      pl.BlockSpec((None, bq, LANES), lambda bi, ki, kj, i: (bi, q_block(kj, i), 0)),
      pl.BlockSpec((None, SUBLANES, bk), lambda bi, ki, kj, i: (bi, 0, kj))]
  dk, dv = pl.pallas_call(
      functools.partial(_dkdv_kernel, cfg=cfg, nq=nq), grid=(b, kv_heads, nk, g * nq), in_specs=in_specs,
      out_specs=[pl.BlockSpec((None, None, bk, h), kv_map), pl.BlockSpec((None, None, bk, hv), kv_map)],
      out_shape=[jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)],
      scratch_shapes=[pltpu.VMEM((bk, h), jnp.float32), pltpu.VMEM((bk, hv), jnp.float32)],
      compiler_params=_params(cfg, ("parallel", "parallel", "parallel", "arbitrary")),
      interpret=_interpret(cfg), name="flash_attention_tpu_bwd_dkdv",
  )(q, k, v, do, lse, delta, q_seg, k_seg)

  kv_map = lambda bi, ni, qi, kj: (bi, lax.div(ni, g), _kv_block(cfg, qi, kj), 0)
  row_map = lambda bi, ni, qi, kj: (bi, ni, qi, 0)
  in_specs = [pl.BlockSpec((None, None, bq, h), row_map), pl.BlockSpec((None, None, bk, h), kv_map),
              pl.BlockSpec((None, None, bk, hv), kv_map), pl.BlockSpec((None, None, bq, hv), row_map),
              pl.BlockSpec((None, None, bq, LANES), row_map), pl.BlockSpec((None, None, bq, LANES), row_map)]
  in_specs += [None, None] if q_seg is None else [
      pl.BlockSpec((None, bq, LANES), lambda bi, ni, qi, kj: (bi, qi, 0)),
      pl.BlockSpec((None, SUBLANES, bk), lambda bi, ni, qi, kj: (bi, 0, _kv_block(cfg, qi, kj)))]
  dq = pl.pallas_call(
      functools.partial(_dq_kernel, cfg=cfg), grid=(b, n, nq, nk), in_specs=in_specs,
      out_specs=pl.BlockSpec((None, None, bq, h), row_map), out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
      scratch_shapes=[pltpu.VMEM((bq, h), jnp.float32)],
      compiler_params=_params(cfg, ("parallel", "parallel", "parallel", "arbitrary")),
      interpret=_interpret(cfg), name="flash_attention_tpu_bwd_dq",
  )(q, k, v, do, lse, delta, q_seg, k_seg)
  return dq, dk, dv


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _flash(q, k, v, q_seg, k_seg, cfg: _Static):
  return _forward(q, k, v, q_seg, k_seg, cfg)[0]


def _flash_fwd(q, k, v, q_seg, k_seg, cfg: _Static):
  o, lse = _forward(q, k, v, q_seg, k_seg, cfg)
  return o, (q, k, v, q_seg, k_seg, o, lse)


def _flash_bwd(cfg: _Static, res, do):
  q, k, v, q_seg, k_seg, o, lse = res
  dq, dk, dv = _backward(q, k, v, q_seg, k_seg, o, lse, do, cfg)
  return dq, dk, dv, None, None


_flash.defvjp(_flash_fwd, _flash_bwd)


def _tpu_block(block, length, name):
  if block is None:
    block = DEFAULT_BLOCK
  if not isinstance(block, int) or isinstance(block, bool) or block <= 0 or block % LANES:
    raise ValueError(f"{name} must be a positive multiple of {LANES} on TPU (Mosaic's (8, 128) tiling), "
                     f"got {name}={block!r}")
  return min(block, pl.cdiv(length, LANES) * LANES)


def flash_attention_tpu(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
                        scale: Optional[float] = None, segment_ids: Optional[jax.Array] = None,
                        window: Optional[Window] = None, softcap: Optional[float] = None,
                        precision: Precision = None, block_q: Optional[int] = None,
                        block_k: Optional[int] = None, interpret: bool = False) -> jax.Array:
  """FlashAttention-2 with Pallas TPU (Mosaic) kernels, forward and backward (custom_vjp).

  Computes `flash_attention_reference` with the same options as the GPU kernel (see the module docstring for the
  TPU layout, block skipping and precision). Usually reached through `flash_attention(..., platform="tpu")` or
  `attention(...)` on a TPU backend.

  Args:
    q: [B, T, N, H]. k: [B, S, K, H]. v: [B, S, K, Hv] (K divides N); bf16, fp16 or fp32.
    causal, scale, segment_ids, window, softcap: as in `flash_attention_reference`.
    precision: None/"default", "high", "highest": fp32 contraction precision (see the module docstring).
    block_q, block_k: query / key tiles, positive multiples of 128 (default 128; shrunk for short sequences).
    interpret: run in the TPU interpret mode (`pltpu.InterpretParams()`) on CPU.

  Returns:
    [B, T, N, Hv] in q's dtype.

  References: Tri Dao, "FlashAttention-2", 2023, arXiv:2307.08691, Algorithms 1 and 2.
  """
  validate_attention_args(q, k, v, segment_ids=segment_ids, window=window, softcap=softcap, scale=scale)
  _check_kernel_dtype(q)
  _check_static_number(softcap, "softcap")
  _check_static_number(scale, "scale")
  prec = normalize_precision(precision)
  b, t, n, h = q.shape
  s_len, kv_heads, hv = k.shape[1], k.shape[2], v.shape[3]
  bq = _tpu_block(block_q, t, "block_q")
  bk = _tpu_block(block_k, s_len, "block_k")
  cfg = _Static(scale=float(1.0 / math.sqrt(h) if scale is None else scale), causal=bool(causal),
                window=_normalize_window(window), softcap=None if softcap is None else float(softcap), q_len=t,
                kv_len=s_len, groups=n // kv_heads, block_q=bq, block_k=bk, precision=prec,
                interpret=bool(interpret))
  tp, sp = pl.cdiv(t, bq) * bq, pl.cdiv(s_len, bk) * bk

  def to_bnth(x, length):
    x = jnp.swapaxes(x, 1, 2)
    return x if x.shape[2] == length else jnp.pad(x, ((0, 0), (0, 0), (0, length - x.shape[2]), (0, 0)))

  q_seg, k_seg = _seg_inputs(None if segment_ids is None else segment_ids.astype(jnp.int32), tp, sp)
  out = _flash(to_bnth(q, tp), to_bnth(k, sp), to_bnth(v, sp), q_seg, k_seg, cfg)
  return jnp.swapaxes(out[:, :, :t], 1, 2)


# ----------------------------------------------------------------------------------------------------------------------
# Lowering cases for `tpu`
# ----------------------------------------------------------------------------------------------------------------------

def lowering_matrix() -> List[AttentionConfig]:
  """TPU covering design: head dims 64..256 (incl. 96 and 192), bf16/fp32, causal or not, GQA/MQA, window, segment
  ids, softcap, ragged T, Hv != H."""
  c = AttentionConfig
  return [
      *[c(head_dim=h, causal=causal) for h in (64, 96, 128, 192, 256) for causal in (False, True)],
      c(head_dim=128, dtype="fp32", causal=True),
      c(head_dim=128, dtype="fp32", precision="highest"),
      c(head_dim=128, heads=8, kv_heads=2, causal=True, t=200),
      c(head_dim=64, heads=8, kv_heads=1, t=300, s=136, head_dim_v=128),
      c(head_dim=128, causal=True, window=(128, 0), segments=True, softcap=30.0, t=384),
      c(head_dim=128, window=(64, 64), t=384),
  ]


def lowering_cases(platform: str = "tpu"):
  """`LoweringCase`s (forward and vjp) of every `lowering_matrix()` config for `tpu`."""
  from jaxlib_methods.kernels.lowering import LoweringCase   # pylint: disable=import-outside-toplevel
  if platform != "tpu":
    return []
  cases = []
  for i, cfg in enumerate(lowering_matrix()):
    fwd, vjp = cfg.fns("tpu")
    args = tuple(cfg.args())
    if i < 10:   # the vjp lowers the forward kernel too; standalone forwards for every head dim, causal and not
      cases.append(LoweringCase(f"fa2tpu-fwd-{cfg.name}", fwd, args, platform, default=cfg.precision is None))
    cases.append(LoweringCase(f"fa2tpu-vjp-{cfg.name}", vjp, args, platform, default=cfg.precision is None))
  return cases
