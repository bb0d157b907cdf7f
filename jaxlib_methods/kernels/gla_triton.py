"""Gated Linear Attention on GPU: chunkwise Pallas kernels lowered through Triton (forward and backward).

Paper [206]: Songlin Yang, Bailin Wang, Yikang Shen, Rameswar Panda, Yoon Kim, "Gated Linear Attention Transformers
with Hardware-Efficient Training", 2023, arXiv:2312.06635 (FLASHLINEARATTENTION; the chunkwise form of GLA with
secondary-level chunking). The split into kernels follows flash-linear-attention (`fla/ops/gla/chunk.py`,
`fla/ops/common/chunk_h.py`): a sequential inter-chunk *state pass* whose [Dk, Dv] state is tiled into
[block_k, block_v] <= 64 x 64 tiles over the grid, and *intra-chunk passes* that are parallel over chunks.

This module is the GPU half of `kernels.gla` and works on the *stream layout* that `kernels.gla` prepares:

  q, k [TT, H, Kp] (input dtype), v [TT, H, Vp], b [TT, H, Kp] fp32 (chunk-local cumulative log gates),
  z [TT] int32 or None (chunk-local count of segment resets), chunk_offsets [N + 1] int32 (sequence n owns chunks
  chunk_offsets[n] .. chunk_offsets[n + 1] - 1), h0 [N, H, Kp, Vp] fp32 or None,

where TT = NT * C tokens form NT chunks of C tokens, every chunk belongs to one sequence, and Kp, Vp are powers of
two >= 16. With S the state entering a chunk, b_t the chunk-local cumulative log gate, L the chunk's last token and
z_t the number of segment resets in the chunk up to t:

  o_t = [z_t = 0] scale (q_t o e^{b_t})^T S + sum_{s <= t, z_s = z_t} A_ts v_s,
  A_ts = scale sum_k q_tk k_sk e^{b_tk - b_sk},
  S_next = [z_L = 0] diag(e^{b_L}) S + sum_{s: z_s = z_L} (k_s o e^{b_L - b_s}) v_s^T.

Kernels (grid; what one program computes):
  forward   _state_fwd   (N, H, Kp/BK, Vp/BV)  walks its sequence's chunks carrying one fp32 [BK, BV] state tile,
                                               writing the state entering every chunk (h) and the final state
            _scores      (NT, H, C/c)          one [c, C] row block of A (secondary chunking, see _scores_kernel)
            _output      (NT, H, Vp/BV)        o = (q o scale e^b) h + A v
  backward  _state_fwd   (again, fp32 h: recomputed rather than stored by the forward)
            _state_bwd   (N, H, Kp/BK, Vp/BV)  reverse walk carrying dS = dL/dS, writing dh (dL/d state leaving the
                                               chunk) and dh0
            _score_grad  (NT, H)               dA = scale * do v^T (masked)
            _dv          (NT, H, Vp/BV)        dv = A^T do + (k o e^{b_L - b}) dh
            _dqk_intra   (NT, H, Kp/BK, C/c)   the intra-chunk part of dq, dk for one sub-chunk
            _dqk_inter   (NT, H, Kp/BK)        the inter-chunk part of dq, dk; d b = q o dq - k o dk (+ the chunk
                                               end's term)

Numerics: matmul operands of the large products (state, output, dv, inter-chunk dq/dk) are in the input dtype
(bf16 tensor cores for bf16 inputs), all accumulation is fp32, the scale and every gate factor are applied in fp32;
the two state recurrences (S and dS, carried across chunks) split their gated fp32 operand into bf16 hi + lo parts
(`_dot_split`), so the carried state keeps ~16 mantissa bits (as accurate as an fp32 update to ~1e-5);
the intra-chunk score products keep fp32 operands (TF32 under the default `precision`, as in fla). Every exponent is
<= 0 except where masked before the exponential, so no factor overflows.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

f32 = jnp.float32
DQK_INTER_BLOCK_K = 32                                             # K tile of _dqk_inter (register pressure on sm_80)

# (num_warps, num_stages) per kernel. Chosen from the offline compile for sm_80 / sm_90a (see `lowering_cases` in
# kernels/gla.py and benchmarks/kernel_resources.py): every kernel's tiles are at most [64, 64], so one setting per
# kernel fits every head dim.
TRITON_PARAMS = {
    "gla_state_fwd": (8, 2),
    "gla_scores": (4, 2),
    "gla_output": (4, 2),
    "gla_state_bwd": (8, 2),
    "gla_score_grad": (4, 2),
    "gla_dv": (4, 2),
    "gla_dqk_intra": (4, 2),
    "gla_dqk_inter": (4, 2),
}


@dataclasses.dataclass(frozen=True)
class Config:
  """Static configuration of one GLA call (hashable: it is a nondiff argument of the custom_vjp).

  chunk C, sub c (c divides C), block_k / block_v state tiles (divide Kp / Vp), scale, has_seg (z given),
  precision of the fp32 dots, interpret (Pallas interpreter).
  """
  chunk: int
  sub: int
  block_k: int
  block_v: int
  scale: float
  has_seg: bool
  precision: Optional[lax.Precision]
  interpret: bool


def _params(name):
  num_warps, num_stages = TRITON_PARAMS[name]
  return pltriton.CompilerParams(num_warps=num_warps, num_stages=num_stages)


def _call(kernel, name, cfg: Config, **kw):
  return pl.pallas_call(kernel, name=name, compiler_params=_params(name), interpret=cfg.interpret, **kw)


def _dot(a, b, cfg: Config, *, trans_a=False, trans_b=False):
  """a @ b (optionally transposed operands) with fp32 accumulation."""
  ca = (0,) if trans_a else (1,)
  cb = (1,) if trans_b else (0,)
  return lax.dot_general(a, b, ((ca, cb), ((), ())), precision=cfg.precision, preferred_element_type=f32)


def _dot_split(x, y, cfg: Config, *, trans_a=False):
  """x @ y (x fp32, y in the input dtype) on y's dtype's tensor cores without losing x's precision: for a 16-bit
  dtype, x = hi + lo with hi = x rounded to it and lo the rounded remainder (two matmuls, ~16 mantissa bits of x).
  Used for the state updates, whose rounding would otherwise be carried through every later chunk."""
  dt = y.dtype
  if dt == f32:
    return _dot(x, y, cfg, trans_a=trans_a)
  hi = x.astype(dt)
  lo = (x - hi.astype(f32)).astype(dt)
  return _dot(hi, y, cfg, trans_a=trans_a) + _dot(lo, y, cfg, trans_a=trans_a)


def _row(x):
  """[n] -> [1, n]."""
  return x.reshape(1, x.shape[0])


def _col(x):
  """[n] -> [n, 1]."""
  return x.reshape(x.shape[0], 1)


# ----------------------------------------------------------------------------------------------------------------------
# Inter-chunk state passes
# ----------------------------------------------------------------------------------------------------------------------

def _state_fwd_kernel(off_ref, k_ref, v_ref, b_ref, z_ref, h0_ref, h_ref, ht_ref, *, cfg: Config):
  """One (sequence n, head, K tile, V tile): S_{i+1} = [z_L = 0] e^{b_L} S_i + (k o e^{b_L - b})^T v, chunk by chunk.

  Refs: k_ref, b_ref [TT, BK]; v_ref [TT, BV]; z_ref [TT]; h0_ref, ht_ref [BK, BV]; h_ref [NT, BK, BV].
  """
  C = cfg.chunk
  n = pl.program_id(0)
  s0 = jnp.zeros(ht_ref.shape, f32) if h0_ref is None else h0_ref[...].astype(f32)

  def body(i, s):
    t0 = pl.multiple_of(i * C, C)
    h_ref[i] = s.astype(h_ref.dtype)                                   # state entering chunk i
    b = b_ref[pl.ds(t0, C), :]                                         # [C, BK] fp32
    b_last = b_ref[pl.ds(t0 + C - 1, 1), :]                            # [1, BK]
    v = v_ref[pl.ds(t0, C), :]                                         # [C, BV]
    k_dec = k_ref[pl.ds(t0, C), :].astype(f32) * jnp.exp(b_last - b)   # k_s o e^{b_L - b_s} (exponent <= 0)
    carry = jnp.transpose(jnp.exp(b_last)) * s                         # diag(e^{b_L}) S
    if cfg.has_seg:
      z_last = z_ref[t0 + C - 1]
      k_dec = jnp.where(_col(z_ref[pl.ds(t0, C)] == z_last), k_dec, 0.0)
      carry = jnp.where(z_last == 0, carry, 0.0)
    return carry + _dot_split(k_dec, v, cfg, trans_a=True)

  ht_ref[...] = lax.fori_loop(off_ref[n], off_ref[n + 1], body, s0)


def state_fwd(k, v, b, z, off, h0, cfg: Config, *, h_dtype):
  """The states entering every chunk, h [NT, H, Kp, Vp] (h_dtype), and the final states ht [N, H, Kp, Vp] fp32."""
  tt, nh, kp = k.shape
  vp = v.shape[2]
  nt, n = tt // cfg.chunk, off.shape[0] - 1
  bk, bv = cfg.block_k, cfg.block_v
  kspec = pl.BlockSpec((tt, None, bk), lambda s, h, i, j: (0, h, i))
  vspec = pl.BlockSpec((tt, None, bv), lambda s, h, i, j: (0, h, j))
  sspec = pl.BlockSpec((None, None, bk, bv), lambda s, h, i, j: (s, h, i, j))
  in_specs = [pl.BlockSpec((n + 1,), lambda s, h, i, j: (0,)), kspec, vspec, kspec,
              None if z is None else pl.BlockSpec((tt,), lambda s, h, i, j: (0,)),
              None if h0 is None else sspec]
  out_specs = [pl.BlockSpec((nt, None, bk, bv), lambda s, h, i, j: (0, h, i, j)), sspec]
  out_shape = [jax.ShapeDtypeStruct((nt, nh, kp, vp), h_dtype), jax.ShapeDtypeStruct((n, nh, kp, vp), f32)]
  return _call(functools.partial(_state_fwd_kernel, cfg=cfg), "gla_state_fwd", cfg,
               grid=(n, nh, kp // bk, vp // bv), in_specs=in_specs, out_specs=out_specs,
               out_shape=out_shape)(off, k, v, b, z, h0)


def _state_bwd_kernel(off_ref, q_ref, do_ref, b_ref, z_ref, dht_ref, dh_ref, dh0_ref, *, cfg: Config):
  """Reverse walk: dS_i = [z_L = 0] e^{b_L} dS_{i+1} + ([z = 0] q o scale e^b)^T do, storing dh_i = dS_{i+1}.

  Refs: q_ref, b_ref [TT, BK]; do_ref [TT, BV]; z_ref [TT]; dht_ref, dh0_ref [BK, BV]; dh_ref [NT, BK, BV] fp32.
  """
  C = cfg.chunk
  n = pl.program_id(0)
  lo, hi = off_ref[n], off_ref[n + 1]

  def body(step, ds):
    i = hi - 1 - step
    t0 = pl.multiple_of(i * C, C)
    dh_ref[i] = ds                                                     # dL / d(state leaving chunk i)
    b = b_ref[pl.ds(t0, C), :]
    b_last = b_ref[pl.ds(t0 + C - 1, 1), :]
    do = do_ref[pl.ds(t0, C), :]
    qg = q_ref[pl.ds(t0, C), :].astype(f32) * jnp.exp(b) * cfg.scale
    carry = jnp.transpose(jnp.exp(b_last)) * ds
    if cfg.has_seg:
      z = z_ref[pl.ds(t0, C)]
      z_last = z_ref[t0 + C - 1]
      qg = jnp.where(_col(z == 0), qg, 0.0)
      carry = jnp.where(z_last == 0, carry, 0.0)
    return carry + _dot_split(qg, do, cfg, trans_a=True)

  dh0_ref[...] = lax.fori_loop(0, hi - lo, body, dht_ref[...].astype(f32))


def state_bwd(q, do, b, z, off, dht, cfg: Config):
  """dh [NT, H, Kp, Vp] fp32 (gradient of the state leaving each chunk) and dh0 [N, H, Kp, Vp] fp32."""
  tt, nh, kp = q.shape
  vp = do.shape[2]
  nt, n = tt // cfg.chunk, off.shape[0] - 1
  bk, bv = cfg.block_k, cfg.block_v
  kspec = pl.BlockSpec((tt, None, bk), lambda s, h, i, j: (0, h, i))
  vspec = pl.BlockSpec((tt, None, bv), lambda s, h, i, j: (0, h, j))
  sspec = pl.BlockSpec((None, None, bk, bv), lambda s, h, i, j: (s, h, i, j))
  in_specs = [pl.BlockSpec((n + 1,), lambda s, h, i, j: (0,)), kspec, vspec, kspec,
              None if z is None else pl.BlockSpec((tt,), lambda s, h, i, j: (0,)), sspec]
  out_specs = [pl.BlockSpec((nt, None, bk, bv), lambda s, h, i, j: (0, h, i, j)), sspec]
  out_shape = [jax.ShapeDtypeStruct((nt, nh, kp, vp), f32), jax.ShapeDtypeStruct((n, nh, kp, vp), f32)]
  return _call(functools.partial(_state_bwd_kernel, cfg=cfg), "gla_state_bwd", cfg,
               grid=(n, nh, kp // bk, vp // bv), in_specs=in_specs, out_specs=out_specs,
               out_shape=out_shape)(off, q, do, b, z, dht)


# ----------------------------------------------------------------------------------------------------------------------
# Intra-chunk passes (parallel over chunks)
# ----------------------------------------------------------------------------------------------------------------------

def _pair_mask(z_ref, r, c):
  """[c, C] bool: z_t == z_s for t in rows r .. r + c of the chunk and every s."""
  return _col(z_ref[pl.ds(r, c)]) == _row(z_ref[...])


def _scores_kernel(q_ref, k_ref, b_ref, z_ref, a_ref, *, cfg: Config):
  """Rows r .. r + c (sub-chunk i) of the chunk's score matrix A [C, C] (fp32, lower triangular, scale included).

  Secondary-level chunking: for columns s in earlier sub-chunks, A_ts = (q_t o e^{b_t - b_r}) . (k_s o e^{b_r - b_s})
  with r the sub-chunk's first token (both exponents <= 0), one [c, BK] x [BK, C] matmul per K tile; the diagonal
  block is element-wise, one column s = r + j at a time, with the mask applied to the exponent before exp.
  Refs: q_ref, k_ref, b_ref [C, Kp]; z_ref [C]; a_ref [c, C].
  """
  C, c, bk = cfg.chunk, cfg.sub, cfg.block_k
  r = pl.multiple_of(pl.program_id(2) * c, c)
  t_in_sub = lax.broadcasted_iota(jnp.int32, (c, 1), 0)
  col = lax.broadcasted_iota(jnp.int32, (1, C), 1)
  before = lax.broadcasted_iota(jnp.int32, (C, 1), 0) < r              # tokens of earlier sub-chunks

  def k_tile(kt, a):
    ks = pl.ds(pl.multiple_of(kt * bk, bk), bk)
    q_i = q_ref[pl.ds(r, c), ks].astype(f32)
    b_i = b_ref[pl.ds(r, c), ks]
    b_r = b_ref[pl.ds(r, 1), ks]
    k_g = k_ref[:, ks].astype(f32) * jnp.exp(jnp.where(before, b_r - b_ref[:, ks], -jnp.inf))
    a = a + _dot(q_i * jnp.exp(b_i - b_r), k_g, cfg, trans_b=True)    # off-diagonal blocks, [c, C]

    def diag_col(j, a):
      k_j = k_ref[pl.ds(r + j, 1), ks].astype(f32)
      b_j = b_ref[pl.ds(r + j, 1), ks]
      decay = jnp.exp(jnp.where(t_in_sub >= j, b_i - b_j, -jnp.inf))  # [c, BK], e^{b_t - b_s} for t >= s
      a_col = jnp.sum(q_i * k_j * decay, axis=1, keepdims=True)        # [c, 1]
      return a + jnp.where(col == r + j, a_col, 0.0)

    return lax.fori_loop(0, c, diag_col, a)

  a = lax.fori_loop(0, q_ref.shape[1] // bk, k_tile, jnp.zeros((c, C), f32)) * cfg.scale
  if cfg.has_seg:
    a = jnp.where(_pair_mask(z_ref, r, c), a, 0.0)
  a_ref[...] = a


def scores(q, k, b, z, cfg: Config):
  """A [TT, H, C] fp32: row t holds A_ts for s in t's chunk (0 for s > t or across a segment reset)."""
  tt, nh, kp = q.shape
  C, c = cfg.chunk, cfg.sub
  nc = C // c
  kspec = pl.BlockSpec((C, None, kp), lambda i, h, j: (i, h, 0))
  in_specs = [kspec, kspec, kspec, None if z is None else pl.BlockSpec((C,), lambda i, h, j: (i,))]
  return _call(functools.partial(_scores_kernel, cfg=cfg), "gla_scores", cfg, grid=(tt // C, nh, nc),
               in_specs=in_specs, out_specs=pl.BlockSpec((c, None, C), lambda i, h, j: (i * nc + j, h, 0)),
               out_shape=jax.ShapeDtypeStruct((tt, nh, C), f32))(q, k, b, z)


def _output_kernel(q_ref, v_ref, b_ref, z_ref, h_ref, a_ref, o_ref, *, cfg: Config):
  """o [C, BV] = ([z = 0] q o scale e^b) h + A v. Refs: q_ref, b_ref [C, Kp]; v_ref [C, BV]; h_ref [Kp, BV]."""
  bk = cfg.block_k
  v = v_ref[...]
  dt = v.dtype

  def k_tile(kt, o):
    ks = pl.ds(pl.multiple_of(kt * bk, bk), bk)
    qg = q_ref[:, ks].astype(f32) * jnp.exp(b_ref[:, ks]) * cfg.scale
    if cfg.has_seg:
      qg = jnp.where(_col(z_ref[...] == 0), qg, 0.0)
    return o + _dot(qg.astype(dt), h_ref[ks, :].astype(dt), cfg)

  o = lax.fori_loop(0, q_ref.shape[1] // bk, k_tile, jnp.zeros(o_ref.shape, f32))
  o_ref[...] = (o + _dot(a_ref[...].astype(dt), v, cfg)).astype(o_ref.dtype)


def output(q, v, b, z, h, a, cfg: Config):
  """o [TT, H, Vp] in v's dtype."""
  tt, nh, kp = q.shape
  vp = v.shape[2]
  C, bv = cfg.chunk, cfg.block_v
  kspec = pl.BlockSpec((C, None, kp), lambda i, h, j: (i, h, 0))
  vspec = pl.BlockSpec((C, None, bv), lambda i, h, j: (i, h, j))
  in_specs = [kspec, vspec, kspec, None if z is None else pl.BlockSpec((C,), lambda i, h, j: (i,)),
              pl.BlockSpec((None, None, kp, bv), lambda i, h, j: (i, h, 0, j)),
              pl.BlockSpec((C, None, C), lambda i, h, j: (i, h, 0))]
  return _call(functools.partial(_output_kernel, cfg=cfg), "gla_output", cfg, grid=(tt // C, nh, vp // bv),
               in_specs=in_specs, out_specs=vspec, out_shape=jax.ShapeDtypeStruct((tt, nh, vp), v.dtype),
               )(q, v, b, z, h, a)


def _score_grad_kernel(do_ref, v_ref, z_ref, da_ref, *, cfg: Config):
  """dA [C, C] = scale * do v^T on the causal, same-segment pairs. Refs: do_ref, v_ref [C, Vp]; da_ref [C, C]."""
  C, bv = cfg.chunk, cfg.block_v

  def v_tile(vt, da):
    vs = pl.ds(pl.multiple_of(vt * bv, bv), bv)
    return da + _dot(do_ref[:, vs], v_ref[:, vs], cfg, trans_b=True)

  da = lax.fori_loop(0, v_ref.shape[1] // bv, v_tile, jnp.zeros((C, C), f32)) * cfg.scale
  keep = lax.broadcasted_iota(jnp.int32, (C, C), 0) >= lax.broadcasted_iota(jnp.int32, (C, C), 1)
  if cfg.has_seg:
    z = z_ref[...]
    keep = keep & (_col(z) == _row(z))
  da_ref[...] = jnp.where(keep, da, 0.0)


def score_grad(do, v, z, cfg: Config):
  """dA [TT, H, C] fp32 from do, v [TT, H, Vp]: row t holds scale * do_t . v_s for s <= t in t's chunk and segment."""
  tt, nh, vp = v.shape
  C = cfg.chunk
  vspec = pl.BlockSpec((C, None, vp), lambda i, h: (i, h, 0))
  in_specs = [vspec, vspec, None if z is None else pl.BlockSpec((C,), lambda i, h: (i,))]
  return _call(functools.partial(_score_grad_kernel, cfg=cfg), "gla_score_grad", cfg, grid=(tt // C, nh),
               in_specs=in_specs, out_specs=pl.BlockSpec((C, None, C), lambda i, h: (i, h, 0)),
               out_shape=jax.ShapeDtypeStruct((tt, nh, C), f32))(do, v, z)


def _dv_kernel(k_ref, b_ref, z_ref, a_ref, do_ref, dh_ref, dv_ref, *, cfg: Config):
  """dv [C, BV] = A^T do + ([z = z_L] k o e^{b_L - b}) dh.

  Refs: k_ref, b_ref [C, Kp]; do_ref [C, BV]; dh_ref [Kp, BV].
  """
  C, bk = cfg.chunk, cfg.block_k
  do = do_ref[...]
  dt = do.dtype

  def k_tile(kt, dv):
    ks = pl.ds(pl.multiple_of(kt * bk, bk), bk)
    b_last = b_ref[pl.ds(C - 1, 1), ks]
    k_dec = k_ref[:, ks].astype(f32) * jnp.exp(b_last - b_ref[:, ks])
    if cfg.has_seg:
      z = z_ref[...]
      k_dec = jnp.where(_col(z == z_ref[C - 1]), k_dec, 0.0)
    return dv + _dot(k_dec.astype(dt), dh_ref[ks, :].astype(dt), cfg)

  dv = lax.fori_loop(0, k_ref.shape[1] // bk, k_tile, _dot(a_ref[...].astype(dt), do, cfg, trans_a=True))
  dv_ref[...] = dv.astype(dv_ref.dtype)


def dv_pass(k, b, z, a, do, dh, cfg: Config):
  """dv [TT, H, Vp] (do's dtype) from k, b [TT, H, Kp], A [TT, H, C], do [TT, H, Vp], dh [NT, H, Kp, Vp] fp32."""
  tt, nh, kp = k.shape
  vp = do.shape[2]
  C, bv = cfg.chunk, cfg.block_v
  kspec = pl.BlockSpec((C, None, kp), lambda i, h, j: (i, h, 0))
  vspec = pl.BlockSpec((C, None, bv), lambda i, h, j: (i, h, j))
  in_specs = [kspec, kspec, None if z is None else pl.BlockSpec((C,), lambda i, h, j: (i,)),
              pl.BlockSpec((C, None, C), lambda i, h, j: (i, h, 0)), vspec,
              pl.BlockSpec((None, None, kp, bv), lambda i, h, j: (i, h, 0, j))]
  return _call(functools.partial(_dv_kernel, cfg=cfg), "gla_dv", cfg, grid=(tt // C, nh, vp // bv),
               in_specs=in_specs, out_specs=vspec, out_shape=jax.ShapeDtypeStruct((tt, nh, vp), do.dtype),
               )(k, b, z, a, do, dh)


def _dqk_intra_kernel(q_ref, k_ref, b_ref, da_ref, dq_ref, dk_ref, *, cfg: Config):
  """Intra-chunk dq, dk for sub-chunk i (rows r .. r + c) and one K tile, from dA (fp32).

  dq_t = sum_{s <= t} dA_ts k_s o e^{b_t - b_s}: earlier sub-chunks through the reference r (first token of i);
  dk_s = sum_{t >= s} dA_ts q_t o e^{b_t - b_s}: later sub-chunks through the reference m (last token of i); the
  diagonal block element-wise, one token j at a time. Refs: q_ref, k_ref, b_ref [C, BK]; da_ref [C, C]; out [c, BK].
  """
  C, c = cfg.chunk, cfg.sub
  r = pl.multiple_of(pl.program_id(3) * c, c)
  m = r + c - 1
  pos = lax.broadcasted_iota(jnp.int32, (C, 1), 0)
  t_in_sub = lax.broadcasted_iota(jnp.int32, (c, 1), 0)
  b = b_ref[...]
  b_i, q_i = b_ref[pl.ds(r, c), :], q_ref[pl.ds(r, c), :].astype(f32)
  b_r, b_m = b_ref[pl.ds(r, 1), :], b_ref[pl.ds(m, 1), :]
  k_g = k_ref[...].astype(f32) * jnp.exp(jnp.where(pos < r, b_r - b, -jnp.inf))
  dq = _dot(da_ref[pl.ds(r, c), :], k_g, cfg) * jnp.exp(b_i - b_r)
  q_g = q_ref[...].astype(f32) * jnp.exp(jnp.where(pos > m, b - b_m, -jnp.inf))
  dk = _dot(da_ref[:, pl.ds(r, c)], q_g, cfg, trans_a=True) * jnp.exp(b_m - b_i)

  def diag(j, carry):
    dq, dk = carry
    da_col = da_ref[pl.ds(r, c), pl.ds(r + j, 1)]                      # [c, 1]: dA_tj, t in the sub-chunk
    b_j = b_ref[pl.ds(r + j, 1), :]
    decay = jnp.exp(jnp.where(t_in_sub >= j, b_i - b_j, -jnp.inf))    # [c, BK]
    dq = dq + da_col * k_ref[pl.ds(r + j, 1), :].astype(f32) * decay
    dk_j = jnp.sum(da_col * q_i * decay, axis=0, keepdims=True)       # [1, BK]
    return dq, dk + jnp.where(t_in_sub == j, dk_j, 0.0)

  dq, dk = lax.fori_loop(0, c, diag, (dq, dk))
  dq_ref[...] = dq
  dk_ref[...] = dk


def dqk_intra(q, k, b, da, cfg: Config):
  """The intra-chunk parts of dq, dk ([TT, H, Kp] fp32 each) from q, k, b [TT, H, Kp] and dA [TT, H, C]."""
  tt, nh, kp = q.shape
  C, c, bk = cfg.chunk, cfg.sub, cfg.block_k
  nc = C // c
  kspec = pl.BlockSpec((C, None, bk), lambda i, h, kt, j: (i, h, kt))
  ospec = pl.BlockSpec((c, None, bk), lambda i, h, kt, j: (i * nc + j, h, kt))
  out_shape = [jax.ShapeDtypeStruct((tt, nh, kp), f32)] * 2
  return _call(functools.partial(_dqk_intra_kernel, cfg=cfg), "gla_dqk_intra", cfg,
               grid=(tt // C, nh, kp // bk, nc),
               in_specs=[kspec, kspec, kspec, pl.BlockSpec((C, None, C), lambda i, h, kt, j: (i, h, 0))],
               out_specs=[ospec, ospec], out_shape=out_shape)(q, k, b, da)


def _dqk_inter_kernel(q_ref, k_ref, v_ref, b_ref, z_ref, do_ref, h_ref, dh_ref, dqi_ref, dki_ref,
                      dq_ref, dk_ref, db_ref, *, cfg: Config):
  """Inter-chunk dq, dk and the log-gate gradient for one chunk and K tile.

  dq = [z = 0] scale e^b o (do h^T) + dq_intra, dk = [z = z_L] e^{b_L - b} o (v dh^T) + dk_intra, and
  d b = q o dq - k o dk, plus at the chunk's last token rowsum(dh o S_next), written as
  [z_L = 0] e^{b_L} rowsum(h o dh) + sum_s k_s o dk_inter_s (fla's form: no state of the next chunk needed).
  Refs: q_ref, k_ref, b_ref, dqi_ref, dki_ref [C, BK]; v_ref, do_ref [C, Vp]; h_ref, dh_ref [BK, Vp] (fp32).
  """
  C, bv = cfg.chunk, cfg.block_v
  bk = q_ref.shape[1]
  dt = do_ref.dtype
  n_v = v_ref.shape[1] // bv
  b = b_ref[...]
  b_last = b_ref[pl.ds(C - 1, 1), :]
  if cfg.has_seg:
    z = z_ref[...]
    z_last = z_ref[C - 1]

  # dq first (and the state term of d b_L), then dk: one [C, BK] accumulator live at a time keeps sm_80 from spilling.
  def dq_tile(vt, carry):
    dq, dg = carry
    vs = pl.ds(pl.multiple_of(vt * bv, bv), bv)
    h = h_ref[:, vs]                                                   # [BK, BV] fp32
    dq = dq + _dot(do_ref[:, vs], h.astype(dt), cfg, trans_b=True)
    return dq, dg + _row(jnp.sum(h * dh_ref[:, vs], axis=1))

  dq, dg = lax.fori_loop(0, n_v, dq_tile, (jnp.zeros((C, bk), f32), jnp.zeros((1, bk), f32)))
  dq = dq * (cfg.scale * jnp.exp(b))
  dg = dg * jnp.exp(b_last)
  if cfg.has_seg:
    dq = jnp.where(_col(z == 0), dq, 0.0)
    dg = jnp.where(z_last == 0, dg, 0.0)
  dq = dq + dqi_ref[...]
  dq_ref[...] = dq.astype(dq_ref.dtype)
  db = q_ref[...].astype(f32) * dq

  def dk_tile(vt, dk):
    vs = pl.ds(pl.multiple_of(vt * bv, bv), bv)
    return dk + _dot(v_ref[:, vs], dh_ref[:, vs].astype(dt), cfg, trans_b=True)

  dk = lax.fori_loop(0, n_v, dk_tile, jnp.zeros((C, bk), f32)) * jnp.exp(b_last - b)
  if cfg.has_seg:
    dk = jnp.where(_col(z == z_last), dk, 0.0)
  k = k_ref[...].astype(f32)
  dg = dg + jnp.sum(k * dk, axis=0, keepdims=True)
  dk = dk + dki_ref[...]
  dk_ref[...] = dk.astype(dk_ref.dtype)
  last = lax.broadcasted_iota(jnp.int32, (C, 1), 0) == C - 1
  db_ref[...] = db - k * dk + jnp.where(last, dg, 0.0)


def dqk_inter(q, k, v, b, z, do, h, dh, dq_intra, dk_intra, cfg: Config):
  """(dq, dk [TT, H, Kp] in q's dtype, d b [TT, H, Kp] fp32): adds the inter-chunk parts (h, dh [NT, H, Kp, Vp] fp32)
  to the intra-chunk ones and forms the gradient of the chunk-local cumulative log gates."""
  tt, nh, kp = q.shape
  vp = v.shape[2]
  C, bk = cfg.chunk, min(DQK_INTER_BLOCK_K, cfg.block_k)
  kspec = pl.BlockSpec((C, None, bk), lambda i, h, kt: (i, h, kt))
  vspec = pl.BlockSpec((C, None, vp), lambda i, h, kt: (i, h, 0))
  sspec = pl.BlockSpec((None, None, bk, vp), lambda i, h, kt: (i, h, kt, 0))
  in_specs = [kspec, kspec, vspec, kspec, None if z is None else pl.BlockSpec((C,), lambda i, h, kt: (i,)),
              vspec, sspec, sspec, kspec, kspec]
  out_shape = [jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct(k.shape, k.dtype),
               jax.ShapeDtypeStruct(q.shape, f32)]
  return _call(functools.partial(_dqk_inter_kernel, cfg=cfg), "gla_dqk_inter", cfg, grid=(tt // C, nh, kp // bk),
               in_specs=in_specs, out_specs=[kspec] * 3, out_shape=out_shape,
               )(q, k, v, b, z, do, h, dh, dq_intra, dk_intra)


# ----------------------------------------------------------------------------------------------------------------------
# Forward and backward on the stream layout
# ----------------------------------------------------------------------------------------------------------------------

def forward(q, k, v, b, z, off, h0, cfg: Config):
  """(o [TT, H, Vp], ht [N, H, Kp, Vp] fp32, residual A [TT, H, C] fp32)."""
  h, ht = state_fwd(k, v, b, z, off, h0, cfg, h_dtype=v.dtype)
  a = scores(q, k, b, z, cfg)
  return output(q, v, b, z, h, a, cfg), ht, a


def backward(q, k, v, b, z, off, h0, a, do, dht, cfg: Config):
  """(dq, dk, dv, db, dh0): the gradients of forward's (o, ht) for cotangents (do, dht)."""
  h, _ = state_fwd(k, v, b, z, off, h0, cfg, h_dtype=f32)             # recomputed in fp32, not stored
  dh, dh0 = state_bwd(q, do, b, z, off, dht, cfg)
  da = score_grad(do, v, z, cfg)
  dv = dv_pass(k, b, z, a, do, dh, cfg)
  dq_intra, dk_intra = dqk_intra(q, k, b, da, cfg)
  dq, dk, db = dqk_inter(q, k, v, b, z, do, h, dh, dq_intra, dk_intra, cfg)
  return dq, dk, dv, db, dh0
