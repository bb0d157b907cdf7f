"""Gated Linear Attention on TPU: chunkwise Pallas TPU (Mosaic) kernels, forward and backward.

Paper [206]: Songlin Yang, Bailin Wang, Yikang Shen, Rameswar Panda, Yoon Kim, "Gated Linear Attention Transformers
with Hardware-Efficient Training", 2023, arXiv:2312.06635 (the chunkwise form of GLA with secondary-level chunking).
The math is that of `kernels.gla_triton` (see its docstring for the stream layout and the masks); what differs is
the schedule, shaped by a TPU core: one program per head walks the chunks in order (grid (H, NT), the chunk axis
"arbitrary"), the state S [Kp, Vp] fp32 lives in VMEM scratch, and Pallas' pipeline streams the chunk tiles.

Block shapes obey Mosaic's (8, 128) tiling: every block's last two dims are either whole array dims or (C, Kp),
(C, Vp), (Kp, Vp) with C a multiple of 16; arrays are head-major ([H, TT, D]). Per-chunk scalars (the sequence a chunk
belongs to, and whether it is the sequence's first / last chunk) are scalar-prefetched and drive the index maps of
the per-sequence initial / final state blocks and the state resets. The diagonal sub-chunk blocks of the [C, C]
score matrix (and of its gradient) are formed one column at a time with masked lane reductions and selects, so no
op needs a sublane gather (TPU v4 has none); checked by ahead-of-time compiles through libtpu for v4, v5e, v5p, v6e.

  forward   _fwd_kernel     o = ([z = 0] q o scale e^b) S + A v, S <- [z_L = 0] e^{b_L} S + (k o e^{b_L - b})^T v
  backward  _states_kernel  the state entering every chunk, recomputed in fp32 ([H, NT, Kp, Vp])
            _bwd_kernel     reverse walk carrying dS: dq, dk, dv, d b per chunk, dh0 per sequence
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from jaxlib_methods.kernels.gla_triton import Config

f32 = jnp.float32
_EXACT = lax.Precision.HIGHEST


def _dot(a, b, *, trans_a=False, trans_b=False, precision=None):
  ca = (0,) if trans_a else (1,)
  cb = (1,) if trans_b else (0,)
  return lax.dot_general(a, b, ((ca, cb), ((), ())), precision=precision, preferred_element_type=f32)


def _dot_split(x, y, *, trans_a=False):
  """x (fp32) @ y (input dtype) as bf16 hi + lo parts of x for 16-bit y (see gla_triton._dot_split)."""
  if y.dtype == f32:
    return _dot(x, y, trans_a=trans_a)
  hi = x.astype(y.dtype)
  lo = (x - hi.astype(f32)).astype(y.dtype)
  return _dot(hi, y, trans_a=trans_a) + _dot(lo, y, trans_a=trans_a)


def _iota(shape, dim):
  return lax.broadcasted_iota(jnp.int32, shape, dim)


def _diag_decay(b_i, j):
  """[c, Kp] e^{b_t - b_j} for tokens t >= j of the sub-chunk, 0 for t < j (masked before the exponential)."""
  t = _iota((b_i.shape[0], 1), 0)
  return jnp.exp(jnp.where(t >= j, b_i - b_i[j:j + 1], -jnp.inf))


def _scores(q, k, b, cfg: Config):
  """A [C, C] fp32 (lower triangular, scale included, no segment mask) from q, k, b [C, Kp] fp32 values."""
  C, c = cfg.chunk, cfg.sub
  pos = _iota((C, 1), 0)
  col = _iota((1, C), 1)
  rows = []
  for i in range(C // c):
    r = i * c
    q_i, k_i, b_i, b_r = q[r:r + c], k[r:r + c], b[r:r + c], b[r:r + 1]
    k_g = k * jnp.exp(jnp.where(pos < r, b_r - b, -jnp.inf))         # earlier sub-chunks, through token r
    a_i = _dot(q_i * jnp.exp(b_i - b_r), k_g, trans_b=True)           # [c, C]
    for j in range(c):                                                # diagonal block, one column at a time
      a_col = jnp.sum(q_i * k_i[j:j + 1] * _diag_decay(b_i, j), axis=1, keepdims=True)     # [c, 1]
      a_i = a_i + jnp.where(col == r + j, a_col, 0.0)
    rows.append(a_i)
  return jnp.concatenate(rows, axis=0) * cfg.scale


def _masks(zc_ref, zr_ref, C):
  """(first-segment rows [C, 1], last-segment rows [C, 1], carry kept [1, 1], pair mask [C, C]) or Nones."""
  if zc_ref is None:
    return None, None, None, None
  zc, zr = zc_ref[...], zr_ref[...]                                  # [C, 1], [1, C]
  z_last = zc[C - 1:C, :]
  return zc == 0, zc == z_last, z_last == 0, zc == zr


def _where(mask, x):
  return x if mask is None else jnp.where(mask, x, 0.0)


def _fwd_kernel(seq_ref, first_ref, q_ref, k_ref, v_ref, b_ref, bl_ref, zc_ref, zr_ref, h0_ref,
                o_ref, ht_ref, s_scr, *, cfg: Config):
  """One (head, chunk): o for the chunk and the state update. Blocks: q, k, b [C, Kp]; v, o [C, Vp];
  bl [Kp, 1] (b at the chunk's last token, as a column); zc [C, 1], zr [1, C]; h0, ht [Kp, Vp]."""
  del seq_ref
  C = cfg.chunk
  i = pl.program_id(1)

  @pl.when(first_ref[i] == 1)
  def _():
    s_scr[...] = jnp.zeros(s_scr.shape, f32) if h0_ref is None else h0_ref[...].astype(f32)

  s = s_scr[...]
  q, k, b = q_ref[...].astype(f32), k_ref[...].astype(f32), b_ref[...]
  v = v_ref[...]
  dt = v.dtype
  first_seg, last_seg, keep_carry, pair = _masks(zc_ref, zr_ref, C)
  qg = _where(first_seg, q * jnp.exp(b) * cfg.scale)
  a = _where(pair, _scores(q, k, b, cfg))
  o_ref[...] = (_dot(qg.astype(dt), s.astype(dt)) + _dot(a.astype(dt), v)).astype(o_ref.dtype)
  k_dec = _where(last_seg, k * jnp.exp(b[C - 1:C, :] - b))
  s = _where(keep_carry, jnp.exp(bl_ref[...]) * s) + _dot_split(k_dec, v, trans_a=True)
  s_scr[...] = s
  ht_ref[...] = s


def _states_kernel(seq_ref, first_ref, k_ref, v_ref, b_ref, bl_ref, zc_ref, zr_ref, h0_ref, h_ref, s_scr, *,
                   cfg: Config):
  """One (head, chunk): write the state entering the chunk (fp32), then update it."""
  del seq_ref
  C = cfg.chunk
  i = pl.program_id(1)

  @pl.when(first_ref[i] == 1)
  def _():
    s_scr[...] = jnp.zeros(s_scr.shape, f32) if h0_ref is None else h0_ref[...].astype(f32)

  s = s_scr[...]
  h_ref[...] = s
  k, b, v = k_ref[...].astype(f32), b_ref[...], v_ref[...]
  _, last_seg, keep_carry, _ = _masks(zc_ref, zr_ref, C)
  k_dec = _where(last_seg, k * jnp.exp(b[C - 1:C, :] - b))
  s_scr[...] = _where(keep_carry, jnp.exp(bl_ref[...]) * s) + _dot_split(k_dec, v, trans_a=True)


def _bwd_kernel(seq_ref, last_ref, first_ref, q_ref, k_ref, v_ref, b_ref, bl_ref, zc_ref, zr_ref, h_ref, do_ref,
                dht_ref, dq_ref, dk_ref, dv_ref, db_ref, dh0_ref, ds_scr, *, cfg: Config):
  """One (head, chunk j = NT - 1 - step): every gradient of the chunk, and dS <- dL/d(state entering the chunk)."""
  del seq_ref
  C, c = cfg.chunk, cfg.sub
  j = pl.num_programs(1) - 1 - pl.program_id(1)

  @pl.when(last_ref[j] == 1)
  def _():
    ds_scr[...] = dht_ref[...].astype(f32)

  ds, s = ds_scr[...], h_ref[...]                                     # dL/d(state leaving), state entering
  q, k, b = q_ref[...].astype(f32), k_ref[...].astype(f32), b_ref[...]
  v, do = v_ref[...], do_ref[...]
  dt = v.dtype
  first_seg, last_seg, keep_carry, pair = _masks(zc_ref, zr_ref, C)
  b_last = b[C - 1:C, :]
  causal = _iota((C, C), 0) >= _iota((C, C), 1)
  pair = causal if pair is None else causal & pair
  a = jnp.where(pair, _scores(q, k, b, cfg), 0.0)
  da = jnp.where(pair, _dot(do, v, trans_b=True) * cfg.scale, 0.0)     # dL/dA
  dec_last = jnp.exp(b_last - b)
  k_dec = _where(last_seg, k * dec_last)
  dv_ref[...] = (_dot(a.astype(dt), do, trans_a=True) + _dot(k_dec.astype(dt), ds.astype(dt))).astype(dv_ref.dtype)
  eb = jnp.exp(b)
  dq_inter = _where(first_seg, _dot(do, s.astype(dt), trans_b=True) * (cfg.scale * eb))
  dk_inter = _where(last_seg, _dot(v, ds.astype(dt), trans_b=True) * dec_last)
  # d b at the chunk's last token: rowsum(dS o S_next) = [carry] e^{b_L} rowsum(S o dS) + sum_s k_s o dk_inter_s.
  dg = _dot(jnp.ones((1, s.shape[1]), f32), s * ds, trans_b=True, precision=_EXACT) * jnp.exp(b_last)
  dg = _where(keep_carry, dg) + jnp.sum(k * dk_inter, axis=0, keepdims=True)
  pos = _iota((C, 1), 0)
  col = _iota((1, C), 1)
  t_in_sub = _iota((c, 1), 0)
  n_sub = C // c
  for i in range(n_sub):
    r, m = i * c, i * c + c - 1
    q_i, k_i, b_i = q[r:r + c], k[r:r + c], b[r:r + c]
    b_r, b_m = b[r:r + 1], b[m:m + 1]
    da_rows = da[r:r + c]                                             # [c, C]
    k_g = k * jnp.exp(jnp.where(pos < r, b_r - b, -jnp.inf))
    dq_i = _dot(da_rows, k_g) * jnp.exp(b_i - b_r)                   # earlier sub-chunks
    q_g = q * jnp.exp(jnp.where(pos > m, b - b_m, -jnp.inf))
    dk_i = _dot(da, q_g, trans_a=True)[r:r + c] * jnp.exp(b_m - b_i)  # later sub-chunks
    for jj in range(c):                                               # diagonal block, one token jj at a time
      da_col = jnp.sum(jnp.where(col == r + jj, da_rows, 0.0), axis=1, keepdims=True)   # [c, 1]: dA_{t, jj}
      w = da_col * _diag_decay(b_i, jj)                               # [c, Kp]
      dq_i = dq_i + w * k_i[jj:jj + 1]
      dk_i = dk_i + jnp.where(t_in_sub == jj, jnp.sum(w * q_i, axis=0, keepdims=True), 0.0)
    dq_i = dq_i + dq_inter[r:r + c]
    dk_i = dk_i + dk_inter[r:r + c]
    db_i = q_i * dq_i - k_i * dk_i
    if i == n_sub - 1:
      db_i = db_i + jnp.where(_iota((c, 1), 0) == c - 1, dg, 0.0)
    dq_ref[r:r + c, :] = dq_i.astype(dq_ref.dtype)
    dk_ref[r:r + c, :] = dk_i.astype(dk_ref.dtype)
    db_ref[r:r + c, :] = db_i
  qg = _where(first_seg, q * eb * cfg.scale)
  ds = _where(keep_carry, jnp.exp(bl_ref[...]) * ds) + _dot_split(qg, do, trans_a=True)
  ds_scr[...] = ds

  @pl.when(first_ref[j] == 1)
  def _():
    dh0_ref[...] = ds


# ----------------------------------------------------------------------------------------------------------------------
# Wrappers on the stream layout
# ----------------------------------------------------------------------------------------------------------------------

def _chunk_meta(off, nt):
  """Per chunk: its sequence, and 0/1 flags for the sequence's first and last chunk (int32 [NT] each)."""
  n = off.shape[0] - 1
  chunk = jnp.arange(nt, dtype=jnp.int32)
  seq = jnp.clip(jnp.searchsorted(off[:n], chunk, side="right") - 1, 0, n - 1).astype(jnp.int32)
  first = (chunk == off[seq]).astype(jnp.int32)
  last = (chunk == off[seq + 1] - 1).astype(jnp.int32)
  return seq, first, last


def _head_major(cfg: Config, q, k, v, b, z):
  """[TT, H, D] -> [H, TT, D]; b at each chunk's last token as columns [H, NT, Kp, 1]; z as [NT, C, 1], [NT, 1, C]."""
  C = cfg.chunk
  tt, nh, kp = q.shape
  nt = tt // C
  t = lambda x: jnp.swapaxes(x, 0, 1)
  bl = t(b.reshape(nt, C, nh, kp)[:, C - 1])[..., None]
  zc = zr = None
  if z is not None:
    zc, zr = z.reshape(nt, C, 1), z.reshape(nt, 1, C)
  return t(q), t(k), t(v), t(b), bl, zc, zr


def _interpret(cfg: Config):
  return pltpu.InterpretParams() if cfg.interpret else False


def forward(q, k, v, b, z, off, h0, cfg: Config):
  """(o [TT, H, Vp], ht [N, H, Kp, Vp] fp32, None): the TPU forward on the stream layout."""
  C = cfg.chunk
  tt, nh, kp = q.shape
  vp = v.shape[2]
  nt, n = tt // C, off.shape[0] - 1
  seq, first, _ = _chunk_meta(off, nt)
  qh, kh, vh, bh, bl, zc, zr = _head_major(cfg, q, k, v, b, z)
  kspec = pl.BlockSpec((None, C, kp), lambda h, i, sq, fs: (h, i, 0))
  vspec = pl.BlockSpec((None, C, vp), lambda h, i, sq, fs: (h, i, 0))
  sspec = pl.BlockSpec((None, None, kp, vp), lambda h, i, sq, fs: (sq[i], h, 0, 0))
  in_specs = [kspec, kspec, vspec, kspec, pl.BlockSpec((None, None, kp, 1), lambda h, i, sq, fs: (h, i, 0, 0)),
              None if zc is None else pl.BlockSpec((None, C, 1), lambda h, i, sq, fs: (i, 0, 0)),
              None if zr is None else pl.BlockSpec((None, 1, C), lambda h, i, sq, fs: (i, 0, 0)),
              None if h0 is None else sspec]
  grid_spec = pltpu.PrefetchScalarGridSpec(num_scalar_prefetch=2, grid=(nh, nt), in_specs=in_specs,
                                           out_specs=[vspec, sspec], scratch_shapes=[pltpu.VMEM((kp, vp), f32)])
  o, ht = pl.pallas_call(
      functools.partial(_fwd_kernel, cfg=cfg), grid_spec=grid_spec, name="gla_tpu_fwd",
      out_shape=[jax.ShapeDtypeStruct((nh, tt, vp), v.dtype), jax.ShapeDtypeStruct((n, nh, kp, vp), f32)],
      compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary")),
      interpret=_interpret(cfg))(seq, first, qh, kh, vh, bh, bl, zc, zr, h0)
  empty = (off[1:] == off[:-1])[:, None, None, None]                  # sequences with no token keep h0
  ht = jnp.where(empty, jnp.zeros_like(ht) if h0 is None else h0, ht)
  return jnp.swapaxes(o, 0, 1), ht, None


def _states(cfg: Config, kh, vh, bh, bl, zc, zr, h0, seq, first):
  C = cfg.chunk
  nh, tt, kp = kh.shape
  vp = vh.shape[2]
  nt = tt // C
  kspec = pl.BlockSpec((None, C, kp), lambda h, i, sq, fs: (h, i, 0))
  vspec = pl.BlockSpec((None, C, vp), lambda h, i, sq, fs: (h, i, 0))
  in_specs = [kspec, vspec, kspec, pl.BlockSpec((None, None, kp, 1), lambda h, i, sq, fs: (h, i, 0, 0)),
              None if zc is None else pl.BlockSpec((None, C, 1), lambda h, i, sq, fs: (i, 0, 0)),
              None if zr is None else pl.BlockSpec((None, 1, C), lambda h, i, sq, fs: (i, 0, 0)),
              None if h0 is None else pl.BlockSpec((None, None, kp, vp), lambda h, i, sq, fs: (sq[i], h, 0, 0))]
  out_spec = pl.BlockSpec((None, None, kp, vp), lambda h, i, sq, fs: (h, i, 0, 0))
  grid_spec = pltpu.PrefetchScalarGridSpec(num_scalar_prefetch=2, grid=(nh, nt), in_specs=in_specs,
                                           out_specs=out_spec, scratch_shapes=[pltpu.VMEM((kp, vp), f32)])
  return pl.pallas_call(
      functools.partial(_states_kernel, cfg=cfg), grid_spec=grid_spec, name="gla_tpu_states",
      out_shape=jax.ShapeDtypeStruct((nh, nt, kp, vp), f32),
      compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary")),
      interpret=_interpret(cfg))(seq, first, kh, vh, bh, bl, zc, zr, h0)


def backward(q, k, v, b, z, off, h0, res, do, dht, cfg: Config):
  """(dq, dk, dv, db, dh0) on the stream layout (res is unused: the states are recomputed in fp32)."""
  del res
  C = cfg.chunk
  tt, nh, kp = q.shape
  vp = v.shape[2]
  nt, n = tt // C, off.shape[0] - 1
  seq, first, last = _chunk_meta(off, nt)
  qh, kh, vh, bh, bl, zc, zr = _head_major(cfg, q, k, v, b, z)
  h = _states(cfg, kh, vh, bh, bl, zc, zr, h0, seq, first)
  doh = jnp.swapaxes(do, 0, 1)
  rev = lambda i: nt - 1 - i
  kspec = pl.BlockSpec((None, C, kp), lambda hh, i, sq, ls, fs: (hh, rev(i), 0))
  vspec = pl.BlockSpec((None, C, vp), lambda hh, i, sq, ls, fs: (hh, rev(i), 0))
  sspec = pl.BlockSpec((None, None, kp, vp), lambda hh, i, sq, ls, fs: (sq[rev(i)], hh, 0, 0))
  in_specs = [kspec, kspec, vspec, kspec,
              pl.BlockSpec((None, None, kp, 1), lambda hh, i, sq, ls, fs: (hh, rev(i), 0, 0)),
              None if zc is None else pl.BlockSpec((None, C, 1), lambda hh, i, sq, ls, fs: (rev(i), 0, 0)),
              None if zr is None else pl.BlockSpec((None, 1, C), lambda hh, i, sq, ls, fs: (rev(i), 0, 0)),
              pl.BlockSpec((None, None, kp, vp), lambda hh, i, sq, ls, fs: (hh, rev(i), 0, 0)), vspec, sspec]
  out_specs = [kspec, kspec, vspec, kspec, sspec]
  out_shape = [jax.ShapeDtypeStruct((nh, tt, kp), q.dtype), jax.ShapeDtypeStruct((nh, tt, kp), k.dtype),
               jax.ShapeDtypeStruct((nh, tt, vp), v.dtype), jax.ShapeDtypeStruct((nh, tt, kp), f32),
               jax.ShapeDtypeStruct((n, nh, kp, vp), f32)]
  grid_spec = pltpu.PrefetchScalarGridSpec(num_scalar_prefetch=3, grid=(nh, nt), in_specs=in_specs,
                                           out_specs=out_specs, scratch_shapes=[pltpu.VMEM((kp, vp), f32)])
  dq, dk, dv, db, dh0 = pl.pallas_call(
      functools.partial(_bwd_kernel, cfg=cfg), grid_spec=grid_spec, name="gla_tpu_bwd", out_shape=out_shape,
      compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary")),
      interpret=_interpret(cfg))(seq, last, first, qh, kh, vh, bh, bl, zc, zr, h, doh, dht)
  empty = (off[1:] == off[:-1])[:, None, None, None]                  # sequences with no token: dh0 = dht
  dh0 = jnp.where(empty, dht, dh0)
  t = lambda x: jnp.swapaxes(x, 0, 1)
  return t(dq), t(dk), t(dv), t(db), dh0
