"""Gated Linear Attention: the recurrent definition and the chunkwise-parallel Pallas kernel (forward and backward).

Paper [206]: Songlin Yang, Bailin Wang, Yikang Shen, Rameswar Panda, Yoon Kim, "Gated Linear Attention Transformers
with Hardware-Efficient Training", 2023, arXiv:2312.06635 (the sections on FLASHLINEARATTENTION and on Gated
Linear Attention: the recurrence, its chunkwise-parallel form, secondary-level chunking for the log-space gates).

Per batch and head, with q_t, k_t, alpha_t in R^{Dk} (alpha_t in (0, 1], given as log_gates = log alpha_t <= 0) and
v_t in R^{Dv}, the state S_t in R^{Dk x Dv} follows

    S_t = diag(alpha_t) S_{t-1} + k_t v_t^T,        o_t = S_t^T (scale * q_t),        S_0 = initial_state.

A packed sequence (`segment_ids`) resets the state at every change of id: S_{t-1} is replaced by 0 at the first token
of a new segment (so the initial state only reaches the first segment).

Chunkwise form (chunk of C tokens, b_t = sum_{r <= t in chunk} log alpha_r, S = state entering the chunk):
    o_t   = (q_t o e^{b_t})^T S + sum_{s <= t} [(q_t o e^{b_t - b_s}) . k_s] v_s
    S_end = diag(e^{b_C}) S + sum_s (k_s o e^{b_C - b_s}) v_s^T
All exponents are <= 0, except inside the [C, C] intra-chunk term: it is split into sub-chunks of c tokens
(secondary-level chunking); sub-chunk pairs (i > j) use matmuls with e^{b_t - b_r} and e^{b_r - b_s} for r the first
token of sub-chunk i (both <= 1), and the diagonal pairs are computed element-wise in fp32 with the mask applied before
the exponential. The backward runs the same structure in reverse over chunks, carrying dL/dS; the gradient of the
log gates follows from d b_t = q_t o dq_t - k_t o dk_t (+ rowsum(dS_end o S_end) at the chunk's last token) and the
reverse cumulative sum that autodiff of the chunk-local cumsum provides.

Kernel layout: one program per (batch, head) walks the chunks in order (forward) or in reverse (backward), carrying
the fp32 state in registers; q/k/v/o tiles are read per sub-chunk, matmuls accumulate in fp32. The forward saves the
state entering every chunk ([B, H, T / C, Dk, Dv] fp32) for the backward instead of recomputing it (FLA recomputes;
this trades memory, T / C states per head, for a simpler backward). Parallelism is B x H programs; splitting Dv
across programs (the state's value columns are independent) is the obvious next step on GPU.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from jaxlib_methods import validation


# ----------------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------------

def validate_gla_args(q, k, v, log_gates, *, initial_state=None, segment_ids=None) -> None:
  """Raise ValueError for inconsistent GLA inputs (ranks, shapes, dtypes)."""
  for name, x in (("q", q), ("k", k), ("v", v), ("log_gates", log_gates)):
    if getattr(x, "ndim", None) != 4:
      raise ValueError(f"{name} must have shape [batch, seq, heads, dim], got {name}.shape="
                       f"{getattr(x, 'shape', None)}")
  if k.shape != q.shape or log_gates.shape != q.shape:
    raise ValueError(f"q, k and log_gates must share a shape: {q.shape=}, {k.shape=}, {log_gates.shape=}")
  if v.shape[:3] != q.shape[:3]:
    raise ValueError(f"v must match q in batch, seq and heads: {q.shape=}, {v.shape=}")
  if min(q.shape) < 1 or v.shape[3] < 1:
    raise ValueError(f"empty inputs: {q.shape=}, {v.shape=}")
  for name, x in (("q", q), ("k", k), ("v", v), ("log_gates", log_gates)):
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f"{name} must be floating point, got {name}.dtype={x.dtype}")
  if q.dtype != k.dtype or q.dtype != v.dtype:
    raise ValueError(f"q, k, v must share a dtype: {q.dtype=}, {k.dtype=}, {v.dtype=}")
  b, _, h, dk = q.shape
  if initial_state is not None:
    want = (b, h, dk, v.shape[3])
    if getattr(initial_state, "shape", None) != want:
      raise ValueError(f"initial_state must have shape [batch, heads, Dk, Dv] = {want}, got "
                       f"initial_state.shape={getattr(initial_state, 'shape', None)}")
  if segment_ids is not None:
    if getattr(segment_ids, "shape", None) != q.shape[:2]:
      raise ValueError(f"segment_ids must have shape [batch, seq] = {q.shape[:2]}, got "
                       f"segment_ids.shape={getattr(segment_ids, 'shape', None)}")
    if not jnp.issubdtype(segment_ids.dtype, jnp.integer):
      raise ValueError(f"segment_ids must be integers, got {segment_ids.dtype=}")


def _segment_resets(segment_ids: jax.Array) -> jax.Array:
  """[B, T] -> [B, T] bool: True where a new segment starts (id differs from the previous token's), False at t = 0."""
  first = jnp.zeros_like(segment_ids[:, :1], dtype=bool)
  return jnp.concatenate([first, segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1)


# ----------------------------------------------------------------------------------------------------------------------
# Reference: the recurrence itself, as a lax.scan over time (fp32).
# ----------------------------------------------------------------------------------------------------------------------

def gated_linear_attention_reference(q: jax.Array, k: jax.Array, v: jax.Array, log_gates: jax.Array, *,
                                     scale: float = 1.0, initial_state: Optional[jax.Array] = None,
                                     segment_ids: Optional[jax.Array] = None) -> Tuple[jax.Array, jax.Array]:
  """The GLA recurrence S_t = diag(alpha_t) S_{t-1} + k_t v_t^T, o_t = S_t^T (scale q_t), scanned token by token.

  Args:
    q, k: [B, T, H, Dk]. v: [B, T, H, Dv]. log_gates: [B, T, H, Dk], log alpha_t (<= 0 for a decaying state).
    scale: query scale (default 1: the recurrence exactly as written).
    initial_state: [B, H, Dk, Dv] or None (zeros).
    segment_ids: [B, T] ints or None; the state is reset to 0 where the id changes.

  Returns:
    (o [B, T, H, Dv] in q's dtype, final_state [B, H, Dk, Dv] fp32; both computed in fp32, or fp64 for fp64 inputs).

  References: Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient Training", 2023,
  arXiv:2312.06635, section "Gated Linear Attention" (the recurrence).
  """
  validate_gla_args(q, k, v, log_gates, initial_state=initial_state, segment_ids=segment_ids)
  b, t, h, dk = q.shape
  dv = v.shape[3]
  f32 = jnp.promote_types(q.dtype, jnp.float32)                    # float32 (float64 for float64 inputs)
  s0 = jnp.zeros((b, h, dk, dv), f32) if initial_state is None else initial_state.astype(f32)
  resets = jnp.zeros((b, t), bool) if segment_ids is None else _segment_resets(segment_ids)
  xs = (jnp.moveaxis(q.astype(f32) * scale, 1, 0), jnp.moveaxis(k.astype(f32), 1, 0),
        jnp.moveaxis(v.astype(f32), 1, 0), jnp.moveaxis(log_gates.astype(f32), 1, 0), jnp.moveaxis(resets, 1, 0))

  def step(s, x):
    qt, kt, vt, gt, rt = x                                          # [B, H, Dk] ... rt [B]
    s = jnp.where(rt[:, None, None, None], 0.0, s)
    s = jnp.exp(gt)[..., None] * s + kt[..., :, None] * vt[..., None, :]
    return s, jnp.einsum("bhkv,bhk->bhv", s, qt)

  s_final, o = lax.scan(step, s0, xs)
  return jnp.moveaxis(o, 0, 1).astype(q.dtype), s_final


# ----------------------------------------------------------------------------------------------------------------------
# Pallas kernels
# ----------------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Static:
  chunk: int
  sub: int
  has_seg: bool
  interpret: bool


def _dot(a, b, *, trans_a=False, trans_b=False):
  ca = (0,) if trans_a else (1,)
  cb = (1,) if trans_b else (0,)
  return lax.dot_general(a, b, ((ca, cb), ((), ())), preferred_element_type=jnp.float32)


def _load(ref, start, size):
  return ref[pl.ds(start, size), :].astype(jnp.float32)


def _diag_decay(b_i, c):
  """[c, c, Dk] e^{b_t - b_s} for s <= t (0 above the diagonal), the mask applied before the exponential."""
  tri = (lax.broadcasted_iota(jnp.int32, (c, c), 0) >= lax.broadcasted_iota(jnp.int32, (c, c), 1))
  diff = b_i[:, None, :] - b_i[None, :, :]
  return jnp.exp(jnp.where(tri[:, :, None], diff, -jnp.inf))


def _chunk_segments(seg_ref, t0, chunk):
  """(segment of the token before the chunk (0 for the first), segment of the chunk's last token)."""
  return seg_ref[jnp.maximum(t0 - 1, 0)], seg_ref[t0 + chunk - 1]


def _fwd_kernel(q_ref, k_ref, v_ref, b_ref, seg_ref, h0_ref, o_ref, states_ref, ht_ref, *, cfg: _Static):
  """One (batch, head): loop over chunks carrying S [Dk, Dv] (fp32); tiles q/k/b [T, Dk], v/o [T, Dv]."""
  C, c = cfg.chunk, cfg.sub
  n_chunks = q_ref.shape[0] // C
  n_sub = C // c
  dk, dv = q_ref.shape[1], v_ref.shape[1]

  def chunk_body(ci, s):
    t0 = ci * C
    states_ref[ci] = s                                               # S entering chunk ci (residual for backward)
    if cfg.has_seg:
      prev_seg, last_seg = _chunk_segments(seg_ref, t0, C)
    b_last = _load(b_ref, t0 + C - 1, 1)                             # [1, Dk]
    for i in range(n_sub):
      ti = t0 + i * c
      q_i, k_i, v_i, b_i = _load(q_ref, ti, c), _load(k_ref, ti, c), _load(v_ref, ti, c), _load(b_ref, ti, c)
      o_i = _dot(q_i * jnp.exp(b_i), s)                              # inter-chunk: (q o e^b) S
      if cfg.has_seg:
        seg_i = seg_ref[pl.ds(ti, c)]
        o_i = jnp.where((seg_i == prev_seg)[:, None], o_i, 0.0)
      b_r = _load(b_ref, ti, 1)                                      # reference point: first token of sub-chunk i
      q_r = q_i * jnp.exp(b_i - b_r)
      for j in range(i):                                             # secondary-level chunking, off-diagonal pairs
        tj = t0 + j * c
        k_j, v_j, b_j = _load(k_ref, tj, c), _load(v_ref, tj, c), _load(b_ref, tj, c)
        a = _dot(q_r, k_j * jnp.exp(b_r - b_j), trans_b=True)       # [c, c]
        if cfg.has_seg:
          a = jnp.where(seg_i[:, None] == seg_ref[pl.ds(tj, c)][None, :], a, 0.0)
        o_i = o_i + _dot(a, v_j)
      a = jnp.sum(q_i[:, None, :] * k_i[None, :, :] * _diag_decay(b_i, c), axis=-1)   # diagonal pair, element-wise
      if cfg.has_seg:
        a = jnp.where(seg_i[:, None] == seg_i[None, :], a, 0.0)
      o_i = o_i + _dot(a, v_i)
      o_ref[pl.ds(ti, c), :] = o_i.astype(o_ref.dtype)
    # State update: S_end = diag(e^{b_C}) S + sum_s (k_s o e^{b_C - b_s}) v_s^T.
    k_c, v_c, b_c = _load(k_ref, t0, C), _load(v_ref, t0, C), _load(b_ref, t0, C)
    k_dec = k_c * jnp.exp(b_last - b_c)
    carry = jnp.transpose(jnp.exp(b_last)) * s                       # diag(e^{b_C}) S
    if cfg.has_seg:
      k_dec = jnp.where((seg_ref[pl.ds(t0, C)] == last_seg)[:, None], k_dec, 0.0)
      carry = jnp.where(prev_seg == last_seg, carry, 0.0)
    return carry + _dot(k_dec, v_c, trans_a=True)

  s0 = jnp.zeros((dk, dv), jnp.float32) if h0_ref is None else h0_ref[...].astype(jnp.float32)
  ht_ref[...] = lax.fori_loop(0, n_chunks, chunk_body, s0)


def _bwd_kernel(q_ref, k_ref, v_ref, b_ref, seg_ref, states_ref, ht_ref, do_ref, dht_ref,
                dq_ref, dk_ref, dv_ref, db_ref, dh0_ref, *, cfg: _Static):
  """One (batch, head): reverse loop over chunks carrying H = dL/dS at the chunk's end (fp32 [Dk, Dv])."""
  C, c = cfg.chunk, cfg.sub
  n_chunks = q_ref.shape[0] // C
  n_sub = C // c
  dk_dim = q_ref.shape[1]

  def chunk_body(step, hcar):
    ci = n_chunks - 1 - step
    t0 = ci * C
    s_prev = states_ref[ci]
    s_end = jnp.where(ci == n_chunks - 1, ht_ref[...], states_ref[jnp.minimum(ci + 1, n_chunks - 1)])
    if cfg.has_seg:
      prev_seg, last_seg = _chunk_segments(seg_ref, t0, C)
    b_last = _load(b_ref, t0 + C - 1, 1)
    q = [_load(q_ref, t0 + i * c, c) for i in range(n_sub)]
    k = [_load(k_ref, t0 + i * c, c) for i in range(n_sub)]
    v = [_load(v_ref, t0 + i * c, c) for i in range(n_sub)]
    b = [_load(b_ref, t0 + i * c, c) for i in range(n_sub)]
    do = [_load(do_ref, t0 + i * c, c) for i in range(n_sub)]
    seg = [seg_ref[pl.ds(t0 + i * c, c)] for i in range(n_sub)] if cfg.has_seg else None
    # Contributions through the state at the chunk's end (H): dk_s, dv_s for tokens of the last segment.
    dks, dvs = [], []
    for j in range(n_sub):
      dec = jnp.exp(b_last - b[j])                                   # [c, Dk]
      dk_j = dec * _dot(v[j], hcar, trans_b=True)                    # e^{b_C - b_s} o (H v_s)
      dv_j = _dot(k[j] * dec, hcar)                                  # H^T (k_s o e^{b_C - b_s})
      if cfg.has_seg:
        keep = (seg[j] == last_seg)[:, None]
        dk_j, dv_j = jnp.where(keep, dk_j, 0.0), jnp.where(keep, dv_j, 0.0)
      dks.append(dk_j)
      dvs.append(dv_j)
    dqs = []
    h_new = jnp.zeros_like(hcar)
    for i in range(n_sub):
      qe = q[i] * jnp.exp(b[i])
      dq_i = jnp.exp(b[i]) * _dot(do[i], s_prev, trans_b=True)       # inter-chunk: e^{b_t} o (S do_t)
      if cfg.has_seg:
        m_q = (seg[i] == prev_seg)[:, None]
        dq_i = jnp.where(m_q, dq_i, 0.0)
        qe = jnp.where(m_q, qe, 0.0)
      h_new = h_new + _dot(qe, do[i], trans_a=True)                  # dS_prev += (q o e^b)^T dO
      b_r = _load(b_ref, t0 + i * c, 1)
      q_r = q[i] * jnp.exp(b[i] - b_r)
      for j in range(i):
        k_r = k[j] * jnp.exp(b_r - b[j])
        a = _dot(q_r, k_r, trans_b=True)                             # A_ij [c, c]
        da = _dot(do[i], v[j], trans_b=True)                         # dA_ij = dO_i V_j^T
        if cfg.has_seg:
          same = seg[i][:, None] == seg[j][None, :]
          a, da = jnp.where(same, a, 0.0), jnp.where(same, da, 0.0)
        dq_i = dq_i + jnp.exp(b[i] - b_r) * _dot(da, k_r)
        dks[j] = dks[j] + jnp.exp(b_r - b[j]) * _dot(da, q_r, trans_a=True)
        dvs[j] = dvs[j] + _dot(a, do[i], trans_a=True)
      decay = _diag_decay(b[i], c)                                   # [c, c, Dk]
      a = jnp.sum(q[i][:, None, :] * k[i][None, :, :] * decay, axis=-1)
      da = _dot(do[i], v[i], trans_b=True)
      if cfg.has_seg:
        same = seg[i][:, None] == seg[i][None, :]
        a, da = jnp.where(same, a, 0.0), jnp.where(same, da, 0.0)
      w = da[:, :, None] * decay                                     # [t, s, Dk]
      dq_i = dq_i + jnp.sum(w * k[i][None, :, :], axis=1)
      dks[i] = dks[i] + jnp.sum(w * q[i][:, None, :], axis=0)
      dvs[i] = dvs[i] + _dot(a, do[i], trans_a=True)
      dqs.append(dq_i)
    for i in range(n_sub):
      ti = t0 + i * c
      dq_ref[pl.ds(ti, c), :] = dqs[i].astype(dq_ref.dtype)
      dk_ref[pl.ds(ti, c), :] = dks[i].astype(dk_ref.dtype)
      dv_ref[pl.ds(ti, c), :] = dvs[i].astype(dv_ref.dtype)
      db_i = q[i] * dqs[i] - k[i] * dks[i]                           # d b_t = q o dq - k o dk
      if i == n_sub - 1:                                             # + rowsum(H o S_end) at the chunk's last token
        last_row = lax.broadcasted_iota(jnp.int32, (c, 1), 0) == c - 1
        db_i = db_i + jnp.where(last_row, jnp.sum(hcar * s_end, axis=1)[None, :], 0.0)
      db_ref[pl.ds(ti, c), :] = db_i
    carry = jnp.transpose(jnp.exp(b_last)) * hcar
    if cfg.has_seg:
      carry = jnp.where(prev_seg == last_seg, carry, 0.0)
    return h_new + carry

  dh0_ref[...] = lax.fori_loop(0, n_chunks, chunk_body, dht_ref[...].astype(jnp.float32))


def _bh_spec(t, d):
  return pl.BlockSpec((None, t, None, d), lambda bi, hi: (bi, 0, hi, 0))


def _forward(q, k, v, b, seg, h0, cfg: _Static):
  bsz, t, h, dk = q.shape
  dv = v.shape[3]
  n_chunks = t // cfg.chunk
  state_spec = pl.BlockSpec((None, None, dk, dv), lambda bi, hi: (bi, hi, 0, 0))
  in_specs = [_bh_spec(t, dk), _bh_spec(t, dk), _bh_spec(t, dv), _bh_spec(t, dk),
              None if seg is None else pl.BlockSpec((None, t), lambda bi, hi: (bi, 0)),
              None if h0 is None else state_spec]
  out_specs = [_bh_spec(t, dv), pl.BlockSpec((None, None, n_chunks, dk, dv), lambda bi, hi: (bi, hi, 0, 0, 0)),
               state_spec]
  out_shape = [jax.ShapeDtypeStruct((bsz, t, h, dv), q.dtype),
               jax.ShapeDtypeStruct((bsz, h, n_chunks, dk, dv), jnp.float32),
               jax.ShapeDtypeStruct((bsz, h, dk, dv), jnp.float32)]
  return pl.pallas_call(functools.partial(_fwd_kernel, cfg=cfg), grid=(bsz, h), in_specs=in_specs,
                        out_specs=out_specs, out_shape=out_shape, interpret=cfg.interpret, name="gla_fwd",
                        )(q, k, v, b, seg, h0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(6,))
def _gla(q, k, v, b, seg, h0, cfg: _Static):
  o, _, ht = _forward(q, k, v, b, seg, h0, cfg)
  return o, ht


def _gla_fwd(q, k, v, b, seg, h0, cfg: _Static):
  o, states, ht = _forward(q, k, v, b, seg, h0, cfg)
  return (o, ht), (q, k, v, b, seg, h0, states, ht)


def _gla_bwd(cfg: _Static, res, cts):
  q, k, v, b, seg, h0, states, ht = res
  do, dht = cts
  bsz, t, h, dk = q.shape
  dv = v.shape[3]
  n_chunks = t // cfg.chunk
  state_spec = pl.BlockSpec((None, None, dk, dv), lambda bi, hi: (bi, hi, 0, 0))
  in_specs = [_bh_spec(t, dk), _bh_spec(t, dk), _bh_spec(t, dv), _bh_spec(t, dk),
              None if seg is None else pl.BlockSpec((None, t), lambda bi, hi: (bi, 0)),
              pl.BlockSpec((None, None, n_chunks, dk, dv), lambda bi, hi: (bi, hi, 0, 0, 0)),
              state_spec, _bh_spec(t, dv), state_spec]
  out_specs = [_bh_spec(t, dk), _bh_spec(t, dk), _bh_spec(t, dv), _bh_spec(t, dk), state_spec]
  out_shape = [jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct(k.shape, k.dtype),
               jax.ShapeDtypeStruct(v.shape, v.dtype), jax.ShapeDtypeStruct(b.shape, jnp.float32),
               jax.ShapeDtypeStruct((bsz, h, dk, dv), jnp.float32)]
  dq, dk_, dv_, db, dh0 = pl.pallas_call(
      functools.partial(_bwd_kernel, cfg=cfg), grid=(bsz, h), in_specs=in_specs, out_specs=out_specs,
      out_shape=out_shape, interpret=cfg.interpret, name="gla_bwd",
  )(q, k, v, b, seg, states, ht, do, dht)
  return dq, dk_, dv_, db.astype(b.dtype), None, None if h0 is None else dh0.astype(h0.dtype)


_gla.defvjp(_gla_fwd, _gla_bwd)


def gated_linear_attention(q: jax.Array, k: jax.Array, v: jax.Array, log_gates: jax.Array, *, scale: float = 1.0,
                           initial_state: Optional[jax.Array] = None, segment_ids: Optional[jax.Array] = None,
                           chunk_size: int = 64, sub_chunk_size: int = 16,
                           interpret: bool = False) -> Tuple[jax.Array, jax.Array]:
  """GLA in its chunkwise-parallel form with secondary-level chunking (Pallas kernels, custom_vjp).

  Equals `gated_linear_attention_reference` (the recurrence; see there for the arguments) up to float rounding, for
  any length (the sequence is zero-padded to a multiple of `chunk_size`: padded tokens have k = v = 0 and gate 1,
  which leaves the state unchanged) and any head dims (zero-padded to powers of two). Differentiable in q, k, v,
  log_gates and initial_state; final_state included.

  Args:
    q, k: [B, T, H, Dk]. v: [B, T, H, Dv]. log_gates: [B, T, H, Dk] (log alpha_t <= 0).
    scale: query scale (default 1). initial_state: [B, H, Dk, Dv] or None. segment_ids: [B, T] ints or None.
    chunk_size: tokens per chunk C (positive, a multiple of sub_chunk_size).
    sub_chunk_size: tokens per secondary chunk c (positive, divides chunk_size).
    interpret: run the kernels in the Pallas interpreter (CPU tests).

  Returns:
    (o [B, T, H, Dv] in q's dtype, final_state [B, H, Dk, Dv] fp32).

  References: Yang, Wang, Shen, Panda, Kim, "Gated Linear Attention Transformers with Hardware-Efficient Training",
  2023, arXiv:2312.06635, section "Gated Linear Attention" (chunkwise form,
  secondary-level chunking).
  """
  validate_gla_args(q, k, v, log_gates, initial_state=initial_state, segment_ids=segment_ids)
  for name, x in (("chunk_size", chunk_size), ("sub_chunk_size", sub_chunk_size)):
    if not isinstance(x, int) or isinstance(x, bool) or x <= 0:
      raise ValueError(f"{name} must be a positive int, got {name}={x!r}")
  if chunk_size % sub_chunk_size:
    raise ValueError(f"sub_chunk_size must divide chunk_size, got {chunk_size=}, {sub_chunk_size=}")
  if not validation.is_concrete_number(scale):
    raise ValueError(f"scale must be a Python number, got {scale=}")
  validation.check_positive(scale, "scale")
  bsz, t, h, dk = q.shape
  dv = v.shape[3]
  t_pad = pl.cdiv(t, chunk_size) * chunk_size
  # Zero padding: to a whole number of chunks (k = v = 0, gate 1: the state is unchanged), and head dims to powers of
  # two (zero key/query columns and zero value columns contribute nothing and are sliced off).
  dk_pad, dv_pad = pl.next_power_of_2(dk), pl.next_power_of_2(dv)
  pad_k = ((0, 0), (0, t_pad - t), (0, 0), (0, dk_pad - dk))
  pad_v = ((0, 0), (0, t_pad - t), (0, 0), (0, dv_pad - dv))
  qs = q * jnp.asarray(scale, q.dtype) if scale != 1.0 else q
  qp, kp, vp = jnp.pad(qs, pad_k), jnp.pad(k, pad_k), jnp.pad(v, pad_v)
  g = jnp.pad(log_gates.astype(jnp.float32), pad_k)
  # Chunk-local cumulative log gates b (fp32); autodiff turns the cumsum into the reverse cumsum for d log_gates.
  b = jnp.cumsum(g.reshape(bsz, t_pad // chunk_size, chunk_size, h, dk_pad), axis=2).reshape(bsz, t_pad, h, dk_pad)
  seg = None
  if segment_ids is not None:
    seg = jnp.cumsum(_segment_resets(segment_ids).astype(jnp.int32), axis=1)   # 0, 0, 1, 1, 2 ...: monotone ids
    seg = jnp.pad(seg, ((0, 0), (0, t_pad - t)), mode="edge")
  cfg = _Static(chunk=chunk_size, sub=sub_chunk_size, has_seg=seg is not None, interpret=bool(interpret))
  h0 = None if initial_state is None else jnp.pad(initial_state.astype(jnp.float32),
                                                  ((0, 0), (0, 0), (0, dk_pad - dk), (0, dv_pad - dv)))
  o, ht = _gla(qp, kp, vp, b, seg, h0, cfg)
  return o[:, :t, :, :dv], ht[:, :, :dk, :dv]


def gla_attention(q: jax.Array, k: jax.Array, v: jax.Array, log_gates: jax.Array, *, scale: float = 1.0,
                  initial_state: Optional[jax.Array] = None, segment_ids: Optional[jax.Array] = None,
                  chunk_size: int = 64, implementation: Optional[str] = None,
                  interpret: bool = False) -> Tuple[jax.Array, jax.Array]:
  """Dispatch for gated linear attention: `implementation` None (Pallas on GPU, the recurrence elsewhere),
  "pallas" (the chunked kernel; on CPU it needs interpret=True) or "xla" (the recurrent reference as a lax.scan).

  Same arguments and returns as `gated_linear_attention`. References: Yang et al., 2023, arXiv:2312.06635.
  """
  if implementation not in (None, "pallas", "xla"):
    raise ValueError(f"implementation must be None, 'pallas' or 'xla' for gated linear attention, got "
                     f"{implementation=}")
  backend = jax.default_backend()
  if implementation is None:
    implementation = "pallas" if backend == "gpu" or interpret else "xla"
  if implementation == "pallas":
    if backend != "gpu" and not interpret:
      raise ValueError(f"implementation='pallas' compiles for GPU only; on {backend=} pass interpret=True "
                       f"or use implementation='xla'")
    return gated_linear_attention(q, k, v, log_gates, scale=scale, initial_state=initial_state,
                                  segment_ids=segment_ids, chunk_size=chunk_size, interpret=interpret)
  return gated_linear_attention_reference(q, k, v, log_gates, scale=scale, initial_state=initial_state,
                                          segment_ids=segment_ids)
