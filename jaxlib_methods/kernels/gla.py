"""Gated Linear Attention: the recurrent definition and the chunkwise-parallel Pallas kernels (GPU and TPU).

Paper [206]: Songlin Yang, Bailin Wang, Yikang Shen, Rameswar Panda, Yoon Kim, "Gated Linear Attention Transformers
with Hardware-Efficient Training", 2023, arXiv:2312.06635 (the sections on FLASHLINEARATTENTION and on Gated
Linear Attention: the recurrence, its chunkwise-parallel form, secondary-level chunking for the log-space gates).

Per batch and head, with q_t, k_t, alpha_t in R^{Dk} (alpha_t in (0, 1], given as log_gates = log alpha_t <= 0) and
v_t in R^{Dv}, the state S_t in R^{Dk x Dv} follows

    S_t = diag(alpha_t) S_{t-1} + k_t v_t^T,        o_t = S_t^T (scale * q_t),        S_0 = initial_state.

Variable lengths, two ways:
  * `segment_ids` [B, T]: S_{t-1} is replaced by 0 at every change of id (the initial state reaches only the first
    segment of a row; the final state is the last segment's);
  * `cu_seqlens` [N + 1] (flash-linear-attention's packing, batch 1): sequence n is tokens cu_seqlens[n] ..
    cu_seqlens[n + 1] - 1, starts from initial_state[n] and ends in final_state[n].

Chunkwise form (chunk of C tokens, b_t = sum_{r <= t in chunk} log alpha_r, S = state entering the chunk):
    o_t   = (q_t o e^{b_t})^T S + sum_{s <= t} [(q_t o e^{b_t - b_s}) . k_s] v_s
    S_end = diag(e^{b_C}) S + sum_s (k_s o e^{b_C - b_s}) v_s^T
Every exponent is <= 0 except inside the [C, C] intra-chunk term, which is split into sub-chunks of c tokens
(secondary-level chunking): pairs of sub-chunks go through a reference token between them (both factors <= 1), the
diagonal sub-chunk blocks are element-wise with the mask applied before the exponential.

Implementations (`gated_linear_attention(platform=...)`):
  * "gpu": `kernels.gla_triton`, Pallas lowered through Triton (explicit num_warps / num_stages on every kernel):
    a sequential inter-chunk state pass tiled into <= 64 x 64 state blocks over the grid, and intra-chunk passes
    parallel over chunks (flash-linear-attention's structure); the backward recomputes the per-chunk states.
  * "tpu": `kernels.gla_tpu`, Pallas TPU (Mosaic): one program per head walks the chunks with the state in VMEM.
Both run on CPU in Pallas' interpreters (`interpret=True`), which is how the tests check them.

Numerics: log gates below LOG_GATE_MIN = -30 (alpha < 1e-13) are raised to it before the chunk-local cumulative sum,
so -inf or -1e30 gates give the reference's answer (to within e^{-30} of the state) and never NaN; their gradient
is 0, as the reference's (e^{log alpha} = 0) is.
"""

from __future__ import annotations

import functools
import itertools
from typing import Literal, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from jaxlib_methods import validation
from jaxlib_methods.kernels import gla_tpu, gla_triton
from jaxlib_methods.kernels.lowering import LoweringCase

LOG_GATE_MIN = -30.0
PLATFORMS = ("gpu", "tpu")
Platform = Optional[Literal["gpu", "tpu"]]
DEFAULT_CHUNK = 64
DEFAULT_SUB_CHUNK = 16
MAX_BLOCK = 64                                                      # state tile bound: [block_k, block_v] <= 64 x 64


# ----------------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------------

def _concrete(x) -> Optional[np.ndarray]:
  """x as a NumPy array when its values are known outside tracing, else None."""
  if isinstance(x, jax.core.Tracer):
    return None
  try:
    return np.asarray(x)
  except Exception:                                                # noqa: BLE001  (e.g. abstract values)
    return None


def validate_gla_args(q, k, v, log_gates, *, initial_state=None, segment_ids=None, cu_seqlens=None) -> None:
  """Raise ValueError for inconsistent GLA inputs (ranks, shapes, cu_seqlens values when concrete) and TypeError for
  wrong dtypes (non-floating or mixed q, k, v; non-integer segment ids or cu_seqlens).

  Shapes as in `gated_linear_attention`: q, k, log_gates [B, T, H, Dk], v [B, T, H, Dv], initial_state [B, H, Dk, Dv]
  ([N, H, Dk, Dv] with cu_seqlens [N + 1], B = 1), segment_ids [B, T]. References: Yang et al., "Gated Linear
  Attention Transformers with Hardware-Efficient Training", 2023, arXiv:2312.06635.
  """
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
      raise TypeError(f"{name} must be floating point, got {name}.dtype={x.dtype}")
  if q.dtype != k.dtype or q.dtype != v.dtype:
    raise TypeError(f"q, k, v must share a dtype: {q.dtype=}, {k.dtype=}, {v.dtype=}")
  b, t, h, dk = q.shape
  n_states = b
  if cu_seqlens is not None:
    if segment_ids is not None:
      raise ValueError("pass either segment_ids or cu_seqlens, not both")
    if getattr(cu_seqlens, "ndim", None) != 1 or cu_seqlens.shape[0] < 2:
      raise ValueError(f"cu_seqlens must have shape [num_sequences + 1] with at least one sequence, got "
                       f"cu_seqlens.shape={getattr(cu_seqlens, 'shape', None)}")
    if not jnp.issubdtype(cu_seqlens.dtype, jnp.integer):
      raise TypeError(f"cu_seqlens must be integers, got {cu_seqlens.dtype=}")
    if b != 1:
      raise ValueError(f"with cu_seqlens the sequences are packed along the time axis of a batch of 1, got {q.shape=}")
    n_states = cu_seqlens.shape[0] - 1
    cu = _concrete(cu_seqlens)
    if cu is not None and (cu[0] != 0 or cu[-1] != t or np.any(np.diff(cu) < 0)):
      raise ValueError(f"cu_seqlens must start at 0, be non-decreasing and end at seq = {t}, got {cu_seqlens=}")
  if initial_state is not None:
    want = (n_states, h, dk, v.shape[3])
    if getattr(initial_state, "shape", None) != want:
      what = "[num_sequences, heads, Dk, Dv]" if cu_seqlens is not None else "[batch, heads, Dk, Dv]"
      raise ValueError(f"initial_state must have shape {what} = {want}, got "
                       f"initial_state.shape={getattr(initial_state, 'shape', None)}")
    if not jnp.issubdtype(initial_state.dtype, jnp.floating):
      raise TypeError(f"initial_state must be floating point, got {initial_state.dtype=}")
  if segment_ids is not None:
    if getattr(segment_ids, "shape", None) != q.shape[:2]:
      raise ValueError(f"segment_ids must have shape [batch, seq] = {q.shape[:2]}, got "
                       f"segment_ids.shape={getattr(segment_ids, 'shape', None)}")
    if not jnp.issubdtype(segment_ids.dtype, jnp.integer):
      raise TypeError(f"segment_ids must be integers, got {segment_ids.dtype=}")


def _segment_resets(segment_ids: jax.Array) -> jax.Array:
  """[B, T] -> [B, T] bool: True where a new segment starts (id differs from the previous token's), False at t = 0."""
  first = jnp.zeros_like(segment_ids[:, :1], dtype=bool)
  return jnp.concatenate([first, segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1)


def _sequence_of_token(cu_seqlens: jax.Array, t: int) -> jax.Array:
  """[T] int32: the sequence each packed token belongs to (empty sequences own no token)."""
  return jnp.searchsorted(cu_seqlens[1:], jnp.arange(t), side="right").astype(jnp.int32)


# ----------------------------------------------------------------------------------------------------------------------
# Reference: the recurrence itself, as a lax.scan over time (fp32).
# ----------------------------------------------------------------------------------------------------------------------

def gated_linear_attention_reference(q: jax.Array, k: jax.Array, v: jax.Array, log_gates: jax.Array, *,
                                     scale: float = 1.0, initial_state: Optional[jax.Array] = None,
                                     segment_ids: Optional[jax.Array] = None,
                                     cu_seqlens: Optional[jax.Array] = None) -> Tuple[jax.Array, jax.Array]:
  """The GLA recurrence S_t = diag(alpha_t) S_{t-1} + k_t v_t^T, o_t = S_t^T (scale q_t), scanned token by token.

  Args:
    q, k: [B, T, H, Dk]. v: [B, T, H, Dv]. log_gates: [B, T, H, Dk], log alpha_t (<= 0 for a decaying state).
    scale: query scale (default 1: the recurrence exactly as written).
    initial_state: [B, H, Dk, Dv] ([N, H, Dk, Dv] with cu_seqlens) or None (zeros).
    segment_ids: [B, T] ints or None; the state is reset to 0 where the id changes.
    cu_seqlens: [N + 1] ints or None (B must be 1): sequence n is tokens cu_seqlens[n] .. cu_seqlens[n + 1] - 1,
      starting from initial_state[n].

  Returns:
    (o [B, T, H, Dv] in q's dtype, final_state [B, H, Dk, Dv] ([N, H, Dk, Dv] with cu_seqlens) fp32; both computed
    in fp32, or fp64 for fp64 inputs).

  References: Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient Training", 2023,
  arXiv:2312.06635, section "Gated Linear Attention" (the recurrence).
  """
  validate_gla_args(q, k, v, log_gates, initial_state=initial_state, segment_ids=segment_ids,
                    cu_seqlens=cu_seqlens)
  return _recurrence(q, k, v, log_gates, scale, initial_state, segment_ids, cu_seqlens)


@jax.jit
def _recurrence(q, k, v, log_gates, scale, initial_state, segment_ids, cu_seqlens):
  """The scan behind `gated_linear_attention_reference` (jitted: eager calls reuse the compiled scan)."""
  b, t, h, dk = q.shape
  dv = v.shape[3]
  f32 = jnp.promote_types(q.dtype, jnp.float32)                    # float32 (float64 for float64 inputs)
  xs = [jnp.moveaxis(q.astype(f32) * scale, 1, 0), jnp.moveaxis(k.astype(f32), 1, 0),
        jnp.moveaxis(v.astype(f32), 1, 0), jnp.moveaxis(log_gates.astype(f32), 1, 0)]

  def decay_and_read(s, qt, kt, vt, gt):
    s = jnp.exp(gt)[..., None] * s + kt[..., :, None] * vt[..., None, :]
    return s, jnp.einsum("...kv,...k->...v", s, qt)

  if cu_seqlens is None:
    s0 = jnp.zeros((b, h, dk, dv), f32) if initial_state is None else initial_state.astype(f32)
    resets = jnp.zeros((b, t), bool) if segment_ids is None else _segment_resets(segment_ids)

    def step(s, x):
      qt, kt, vt, gt, rt = x                                        # [B, H, Dk] ... rt [B]
      s = jnp.where(rt[:, None, None, None], 0.0, s)
      return decay_and_read(s, qt, kt, vt, gt)

    s_final, o = lax.scan(step, s0, (*xs, jnp.moveaxis(resets, 1, 0)))
    return jnp.moveaxis(o, 0, 1).astype(q.dtype), s_final

  n = cu_seqlens.shape[0] - 1
  h0 = jnp.zeros((n, h, dk, dv), f32) if initial_state is None else initial_state.astype(f32)
  seq = _sequence_of_token(cu_seqlens, t)
  starts = jnp.arange(t) == cu_seqlens[seq]

  def step_packed(carry, x):
    s, finals = carry
    qt, kt, vt, gt, st, nt = x                                      # [1, H, Dk] ...; st, nt scalars
    s = jnp.where(st, h0[nt][None], s)
    s, ot = decay_and_read(s, qt, kt, vt, gt)
    return (s, finals.at[nt].set(s[0])), ot

  (_, finals), o = lax.scan(step_packed, (jnp.zeros((1, h, dk, dv), f32), h0), (*xs, starts, seq))
  return jnp.moveaxis(o, 0, 1).astype(q.dtype), finals


# ----------------------------------------------------------------------------------------------------------------------
# The chunked kernels: stream layout, custom_vjp
# ----------------------------------------------------------------------------------------------------------------------

def _impl(platform: str):
  return gla_tpu if platform == "tpu" else gla_triton


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8))
def _gla_stream(q, k, v, b, h0, z, off, cfg: gla_triton.Config, platform: str):
  o, ht, _ = _impl(platform).forward(q, k, v, b, z, off, h0, cfg)
  return o, ht


def _gla_stream_fwd(q, k, v, b, h0, z, off, cfg, platform):
  o, ht, res = _impl(platform).forward(q, k, v, b, z, off, h0, cfg)
  return (o, ht), (q, k, v, b, h0, z, off, res)


def _gla_stream_bwd(cfg, platform, residuals, cotangents):
  q, k, v, b, h0, z, off, res = residuals
  do, dht = cotangents
  dq, dk, dv, db, dh0 = _impl(platform).backward(q, k, v, b, z, off, h0, res, do.astype(v.dtype),
                                                 dht.astype(jnp.float32), cfg)
  return dq, dk, dv, db, None if h0 is None else dh0.astype(h0.dtype), None, None


_gla_stream.defvjp(_gla_stream_fwd, _gla_stream_bwd)


def _pad_last(x, size):
  return x if x.shape[-1] == size else jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, size - x.shape[-1])])


def _head_dim(d: int) -> int:
  return max(16, pl.next_power_of_2(d))


def _check_blocks(chunk_size, sub_chunk_size, *, compiled: bool) -> None:
  for name, x in (("chunk_size", chunk_size), ("sub_chunk_size", sub_chunk_size)):
    if not isinstance(x, int) or isinstance(x, bool) or x <= 0:
      raise ValueError(f"{name} must be a positive int, got {name}={x!r}")
  if chunk_size % sub_chunk_size:
    raise ValueError(f"sub_chunk_size must divide chunk_size, got {chunk_size=}, {sub_chunk_size=}")
  if compiled:
    for name, x in (("chunk_size", chunk_size), ("sub_chunk_size", sub_chunk_size)):
      if x < 16 or x & (x - 1):
        raise ValueError(f"compiled kernels need {name} a power of two >= 16 (Triton / Mosaic tiles), got "
                         f"{name}={x}; other sizes run only with interpret=True")


def resolve_platform(platform: Platform) -> str:
  """`platform` or, for None, the kernel family for jax's default backend ("tpu" on TPU, else "gpu").

  The GLA kernels (Yang et al., 2023, arXiv:2312.06635) come as Triton ("gpu") and Mosaic ("tpu") Pallas kernels.
  """
  if platform is None:
    return "tpu" if jax.default_backend() == "tpu" else "gpu"
  if platform not in PLATFORMS:
    raise ValueError(f"platform must be None, 'gpu' or 'tpu', got {platform=}")
  return platform


def gated_linear_attention(q: jax.Array, k: jax.Array, v: jax.Array, log_gates: jax.Array, *, scale: float = 1.0,
                           initial_state: Optional[jax.Array] = None, segment_ids: Optional[jax.Array] = None,
                           cu_seqlens: Optional[jax.Array] = None, chunk_size: int = DEFAULT_CHUNK,
                           sub_chunk_size: int = DEFAULT_SUB_CHUNK, platform: Platform = None,
                           precision: Optional[lax.Precision] = None,
                           interpret: bool = False) -> Tuple[jax.Array, jax.Array]:
  """GLA in its chunkwise-parallel form with secondary-level chunking (Pallas kernels, custom_vjp).

  Equals `gated_linear_attention_reference` (the recurrence; see there for the arguments) up to float rounding, for
  any length (each sequence is zero-padded to whole chunks: padded tokens have k = v = 0 and gate 1, which leaves the
  state unchanged) and any head dims (zero-padded to powers of two >= 16). Differentiable in q, k, v, log_gates and
  initial_state; final_state included.

  Args:
    q, k: [B, T, H, Dk]. v: [B, T, H, Dv]. log_gates: [B, T, H, Dk] (log alpha_t <= 0; below LOG_GATE_MIN = -30
      they are raised to it, see the module docstring).
    scale: query scale (default 1), applied in fp32 inside the kernels.
    initial_state: [B, H, Dk, Dv] ([N, H, Dk, Dv] with cu_seqlens) or None.
    segment_ids: [B, T] ints or None: the state resets where the id changes.
    cu_seqlens: [N + 1] ints or None (B must be 1): packed sequences with per-sequence initial and final states.
      Traced values are fine (jit); concrete ones are checked (start 0, non-decreasing, end T).
    chunk_size: tokens per chunk C; sub_chunk_size: tokens per secondary chunk c (divides C). Compiled kernels need
      both powers of two >= 16.
    platform: "gpu" (Triton kernels), "tpu" (Mosaic kernels) or None (jax's default backend: "tpu" on TPU, else
      "gpu"). Pass it explicitly when lowering for another platform (e.g. `jax.export` on a CPU host).
    precision: of the GPU kernels' dots with fp32 operands: None / DEFAULT lets Triton use TF32 (fp32 inputs, and
      the intra-chunk score products of every dtype, as in fla); `lax.Precision.HIGHEST` asks for IEEE fp32.
      bf16 inputs run their large products on bf16 tensor cores either way, accumulating in fp32 (the state
      recurrences with a hi + lo split of their fp32 operand, see kernels/gla_triton.py); fp16 inputs run the
      kernels in fp32 (the state can exceed fp16's range while the output does not). The TPU kernels use
      Mosaic's default matmul precision and ignore this argument.
    interpret: run the kernels in Pallas' interpreter (CPU tests; TPU kernels in the TPU interpret mode).

  Returns:
    (o [B, T, H, Dv] in q's dtype, final_state [B, H, Dk, Dv] ([N, H, Dk, Dv] with cu_seqlens) fp32).

  References: Yang, Wang, Shen, Panda, Kim, "Gated Linear Attention Transformers with Hardware-Efficient Training",
  2023, arXiv:2312.06635, section "Gated Linear Attention" (chunkwise form, secondary-level chunking); the kernel
  split and the varlen packing follow flash-linear-attention (`fla/ops/gla/chunk.py`).
  """
  validate_gla_args(q, k, v, log_gates, initial_state=initial_state, segment_ids=segment_ids,
                    cu_seqlens=cu_seqlens)
  if platform is None and not interpret and jax.default_backend() not in ("gpu", "tpu"):
    raise ValueError(f"the GLA kernels compile for GPU or TPU, jax's default backend is {jax.default_backend()!r}: "
                     f"pass interpret=True (tests), platform='gpu' / 'tpu' (e.g. for jax.export), or use "
                     f"gated_linear_attention_reference")
  platform = resolve_platform(platform)
  _check_blocks(chunk_size, sub_chunk_size, compiled=not interpret)
  if not validation.is_concrete_number(scale):
    raise ValueError(f"scale must be a Python number, got {scale=}")
  validation.check_positive(scale, "scale")
  if precision is not None and not isinstance(precision, lax.Precision):
    raise ValueError(f"precision must be None or a jax.lax.Precision, got {precision=}")
  cfg = gla_triton.Config(chunk=chunk_size, sub=sub_chunk_size, block_k=min(MAX_BLOCK, _head_dim(q.shape[3])),
                          block_v=min(MAX_BLOCK, _head_dim(v.shape[3])), scale=float(scale),
                          has_seg=segment_ids is not None, precision=precision, interpret=bool(interpret))
  return _chunked(q, k, v, log_gates, initial_state, segment_ids, cu_seqlens, cfg=cfg, platform=platform)


@functools.partial(jax.jit, static_argnames=("cfg", "platform"))
def _chunked(q, k, v, log_gates, initial_state, segment_ids, cu_seqlens, *, cfg: gla_triton.Config, platform: str):
  """Stream layout in, kernels, stream layout out (jitted: eager calls reuse the compiled kernels)."""
  bsz, t, h, dk = q.shape
  dv = v.shape[3]
  C = cfg.chunk
  kp, vp = _head_dim(dk), _head_dim(dv)
  out_dtype = q.dtype
  if q.dtype == jnp.float16:   # the kernels multiply the fp32 state in the input dtype: a state beyond float16's
    q, k, v = (x.astype(jnp.float32) for x in (q, k, v))   # range (65504) would be inf while o is not
  g = jnp.maximum(log_gates.astype(jnp.float32), LOG_GATE_MIN)
  q, k, g = (_pad_last(x, kp) for x in (q, k, g))
  v = _pad_last(v, vp)

  if cu_seqlens is None:
    nt_row = pl.cdiv(t, C)
    t_pad = nt_row * C
    n_seq, nt = bsz, bsz * nt_row
    to_stream = lambda x: jnp.pad(x, ((0, 0), (0, t_pad - t)) + ((0, 0),) * (x.ndim - 2)).reshape(
        (bsz * t_pad,) + x.shape[2:])
    from_stream = lambda x: x.reshape((bsz, t_pad) + x.shape[1:])[:, :t]
    off = jnp.arange(bsz + 1, dtype=jnp.int32) * nt_row
  else:
    # Each sequence starts on a chunk boundary: token t of sequence n goes to stream position off[n] * C + t - cu[n].
    n_seq = cu_seqlens.shape[0] - 1
    nt = pl.cdiv(t, C) + n_seq                                       # static bound on sum_n ceil(len_n / C)
    cu = cu_seqlens.astype(jnp.int32)
    chunks = (cu[1:] - cu[:-1] + C - 1) // C
    off = jnp.concatenate([jnp.zeros((1,), jnp.int32), jnp.cumsum(chunks).astype(jnp.int32)])
    off = off.at[n_seq].set(nt)                                       # the last sequence owns the spare chunks
    pos = jnp.arange(nt * C, dtype=jnp.int32)
    seq_of_pos = jnp.clip(jnp.searchsorted(off[:n_seq], pos // C, side="right") - 1, 0, n_seq - 1)
    src = cu[seq_of_pos] + pos - off[seq_of_pos] * C
    valid = src < cu[seq_of_pos + 1]
    src = jnp.clip(src, 0, t - 1)
    seq_of_tok = _sequence_of_token(cu, t)
    dst = off[seq_of_tok] * C + jnp.arange(t, dtype=jnp.int32) - cu[seq_of_tok]

    def to_stream(x):
      x = x[0][src]
      return jnp.where(valid.reshape((-1,) + (1,) * (x.ndim - 1)), x, jnp.zeros((), x.dtype))

    from_stream = lambda x: x[dst][None]

  qs, ks, vs, gs = (to_stream(x) for x in (q, k, v, g))
  # Chunk-local cumulative log gates b (fp32); autodiff turns the cumsum into the reverse cumsum for d log_gates.
  b = jnp.cumsum(gs.reshape(nt, C, h, kp), axis=1).reshape(nt * C, h, kp)
  z = None
  if segment_ids is not None:
    resets = to_stream(_segment_resets(segment_ids)).astype(jnp.int32)
    z = jnp.cumsum(resets.reshape(nt, C), axis=1).reshape(nt * C)   # resets so far in the chunk (0: none)
  h0 = None
  if initial_state is not None:
    h0 = jnp.pad(initial_state.astype(jnp.float32), ((0, 0), (0, 0), (0, kp - dk), (0, vp - dv)))
  o, ht = _gla_stream(qs, ks, vs, b, h0, z, off, cfg, platform)
  return from_stream(o)[..., :dv].astype(out_dtype), ht[:, :, :dk, :dv]


Implementation = Optional[Literal["pallas", "xla"]]


def gla_attention(q: jax.Array, k: jax.Array, v: jax.Array, log_gates: jax.Array, *, scale: float = 1.0,
                  initial_state: Optional[jax.Array] = None, segment_ids: Optional[jax.Array] = None,
                  cu_seqlens: Optional[jax.Array] = None, chunk_size: int = DEFAULT_CHUNK,
                  implementation: Implementation = None, platform: Platform = None,
                  interpret: bool = False) -> Tuple[jax.Array, jax.Array]:
  """Dispatch for gated linear attention.

  `implementation`: None (our Pallas kernels on GPU and TPU, the recurrence elsewhere), "pallas" (the chunked
  kernels for `platform`; on a CPU backend only with interpret=True) or "xla" (the recurrent reference, a lax.scan).
  `platform`: "gpu" (Triton), "tpu" (Mosaic) or None (jax's default backend). Same arguments and returns as
  `gated_linear_attention`. References: Yang et al., 2023, arXiv:2312.06635.
  """
  if implementation not in (None, "pallas", "xla"):
    raise ValueError(f"implementation must be None, 'pallas' or 'xla' for gated linear attention, got "
                     f"{implementation=}")
  backend = jax.default_backend()
  if implementation is None:
    implementation = "pallas" if backend in ("gpu", "tpu") or interpret or platform is not None else "xla"
  if implementation == "pallas":
    if backend not in ("gpu", "tpu") and not interpret and platform is None:
      raise ValueError(f"implementation='pallas' compiles for GPU or TPU; on {backend=} pass interpret=True, an "
                       f"explicit platform= (for jax.export), or use implementation='xla'")
    return gated_linear_attention(q, k, v, log_gates, scale=scale, initial_state=initial_state,
                                  segment_ids=segment_ids, cu_seqlens=cu_seqlens, chunk_size=chunk_size,
                                  platform=platform, interpret=interpret)
  return gated_linear_attention_reference(q, k, v, log_gates, scale=scale, initial_state=initial_state,
                                          segment_ids=segment_ids, cu_seqlens=cu_seqlens)


# ----------------------------------------------------------------------------------------------------------------------
# Lowering cases (jax.export for cuda / tpu; see kernels/lowering.py and benchmarks/kernel_resources.py)
# ----------------------------------------------------------------------------------------------------------------------

_DTYPES = {"bf16": jnp.bfloat16, "fp32": jnp.float32}


def _case(name, platform, *, b, t, h, dk, dv, dtype, variant, vjp, chunk=DEFAULT_CHUNK, default=True):
  """One LoweringCase: variant in ("plain", "h0", "seg", "seg+h0", "varlen", "varlen+h0")."""
  sds = jax.ShapeDtypeStruct
  dt = _DTYPES[dtype]
  n_seq = 4 if variant.startswith("varlen") else b
  if variant.startswith("varlen"):
    b = 1
  args = [sds((b, t, h, dk), dt), sds((b, t, h, dk), dt), sds((b, t, h, dv), dt), sds((b, t, h, dk), jnp.float32)]
  extra = []
  if "seg" in variant:
    extra.append(("segment_ids", sds((b, t), jnp.int32)))
  if variant.startswith("varlen"):
    extra.append(("cu_seqlens", sds((n_seq + 1,), jnp.int32)))
  if "h0" in variant:
    extra.append(("initial_state", sds((n_seq, h, dk, dv), jnp.float32)))
  names = [n for n, _ in extra]
  args += [a for _, a in extra]
  kernel_platform = "tpu" if platform == "tpu" else "gpu"

  def call(q, k, v, g, *rest):
    return gated_linear_attention(q, k, v, g, chunk_size=chunk, platform=kernel_platform, **dict(zip(names, rest)))

  if vjp:
    def fn(q, k, v, g, *rest):
      diff = (q, k, v, g) + ((rest[-1],) if "h0" in variant else ())
      fixed = rest[:-1] if "h0" in variant else rest

      def f(q, k, v, g, *h0):
        return call(q, k, v, g, *fixed, *h0)

      out, pullback = jax.vjp(f, *diff)
      return pullback(out)
  else:
    fn = call
  mode = "vjp" if vjp else "fwd"
  return LoweringCase(name=f"gla-{mode}-{name}", fn=fn, args=tuple(args), platform=platform, default=default)


def lowering_cases(platform: str) -> list[LoweringCase]:
  """The GLA kernel configs to lower for `platform` ("cuda" or "tpu"), forward and vjp.

  cuda: every (Dk, Dv) in {64, 128, 256}^2 in bf16, and fp32 at Dk = Dv and (64, 256) (the kernels' tiles are the
  same for every head dim, which only changes loop trip counts), plain; at Dk = Dv = 128
  also initial state, segment ids, segment ids + initial state, cu_seqlens (+ per-sequence initial states); all at
  the default chunk 64 / sub-chunk 16, so all `default=True` (what users get), plus a chunk-128 variant
  (default=False). tpu: the Mosaic kernels, Dk = Dv in {64, 128}, plain / segment ids + initial state / cu_seqlens.
  Names like `gla-vjp-B2-T1024-H4-K128-V128-bf16-seg+h0`; vjp cases pull back the outputs as cotangents.

  References: Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient Training", 2023,
  arXiv:2312.06635 (the kernels being lowered).
  """
  if platform not in ("cuda", "tpu"):
    raise ValueError(f"platform must be 'cuda' or 'tpu', got {platform=}")
  b, t, h = 2, 1024, 4
  specs = []
  if platform == "cuda":
    for dk, dv in itertools.product((64, 128, 256), repeat=2):
      for dtype in ("bf16", "fp32") if dk == dv or (dk, dv) == (64, 256) else ("bf16",):
        specs.append(dict(dk=dk, dv=dv, dtype=dtype, variant="plain"))
    for variant in ("h0", "seg", "seg+h0", "varlen", "varlen+h0"):
      specs.append(dict(dk=128, dv=128, dtype="bf16", variant=variant))
    specs.append(dict(dk=256, dv=256, dtype="fp32", variant="seg+h0"))
    specs.append(dict(dk=128, dv=128, dtype="bf16", variant="plain", chunk=128, default=False))
  else:
    for dk in (64, 128):
      for variant in ("plain", "seg+h0", "varlen+h0"):
        specs.append(dict(dk=dk, dv=dk, dtype="bf16", variant=variant))
    specs.append(dict(dk=128, dv=128, dtype="fp32", variant="plain"))
  cases = []
  for s in specs:
    chunk = s.pop("chunk", DEFAULT_CHUNK)
    default = s.pop("default", True)
    name = (f"B{1 if s['variant'].startswith('varlen') else b}-T{t}-H{h}-K{s['dk']}-V{s['dv']}-{s['dtype']}-"
            f"{s['variant']}" + ("" if chunk == DEFAULT_CHUNK else f"-C{chunk}"))
    for vjp in (False, True):
      cases.append(_case(name, platform, b=b, t=t, h=h, vjp=vjp, chunk=chunk, default=default, **s))
  return cases
