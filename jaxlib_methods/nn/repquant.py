"""RepQuant / RepQ-ViT scale reparameterisation of post-LayerNorm activations ([33]).

Zhikai Li, Xuewen Liu, Jing Zhang, Qingyi Gu, "RepQuant: Towards Accurate Post-Training Quantization of Large
Transformer Models via Scale Reparameterization", 2024, arXiv:2402.05628 (the LayerNorm reparameterisation of
RepQ-ViT, Li et al., ICCV 2023, arXiv:2212.08254, Sec. 4.2): post-LayerNorm activations, whose channels differ
wildly in range, are calibrated with channel-wise quantisers (s_c, z_c) and then turned into one layer-wise
quantiser (s~ = mean(s_c), z~ = round(mean(z_c))) by folding r1 = s_c / s~ and r2 = z_c - z~ into the LayerNorm's
affine parameters and the next linear layer:

  beta~ = (beta + s_c r2) / r1,   gamma~ = gamma / r1,   W~ = r1[:, None] W,   b~ = b - (s_c r2) W.

Then X~/s~ + z~ = X/s_c + z_c for the LayerNorm output X (so the integer codes are identical, before and after
rounding), and the next layer's output is unchanged exactly in real arithmetic (`channelwise_to_layerwise_reparam`).

Softmax activations (the paper's second component, after RepQ-ViT Sec. 4.3): a log-sqrt(2) quantiser,
q = clamp(round(-2 log2(A / delta)), 0, 2^b - 1) (values with round(-2 log2(A / delta)) >= 2^b dequantise to 0),
A^ = delta 2^(-ceil(q / 2)) (1 + (sqrt(2) - 1) [q odd]) = delta sqrt(2)^(-q), whose grid is twice as fine as a log2
quantiser's; for inference the scale is reparameterised so that only power-of-two (bit-shift) dequantisation is
left: A^ V = delta (A_even V + sqrt(2) A_odd V) with A_even, A_odd the bit-shift values 2^(-ceil(q / 2)) of the
even and odd codes (`log_sqrt2_quantize`, `log_sqrt2_dequantize`, `log_sqrt2_matmul`). The quantiser follows the
authors' RepQ-ViT code (github.com/zkkli/RepQ-ViT, `LogSqrt2Quantizer.quantize`).
NOTE: the learnable per-channel dual clipping of RepQuant is not implemented.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


class LayerwiseReparam(NamedTuple):
  """The reparameterised quantiser and layers: scalar `scale` and `zero_point`, LayerNorm `gamma` and `beta` [C],
  next-layer `w` [C, D] and `b` [D].

  Li et al., "RepQuant", 2024, arXiv:2402.05628 (the LayerNorm reparameterisation of RepQ-ViT, Li et al., ICCV 2023,
  arXiv:2212.08254, Sec. 4.2): s~ = mean(s_c), z~ = round(mean(z_c)), gamma~, beta~, W~, b~.
  """
  scale: jax.Array
  zero_point: jax.Array
  gamma: jax.Array
  beta: jax.Array
  w: jax.Array
  b: jax.Array


def channelwise_to_layerwise_reparam(s_c: jax.Array, z_c: jax.Array, ln_gamma: jax.Array, ln_beta: jax.Array,
                                     w_next: jax.Array, b_next: jax.Array) -> LayerwiseReparam:
  """Folds channel-wise quantisers of a LayerNorm output into its affine parameters and the next linear layer.

  Li et al., "RepQuant: Towards Accurate Post-Training Quantization of Large Transformer Models via Scale
  Reparameterization", 2024, arXiv:2402.05628 (after RepQ-ViT, arXiv:2212.08254, Sec. 4.2, Eqs. 9-11): with
  s~ = mean(s_c), z~ = round(mean(z_c)), r1 = s_c / s~, r2 = z_c - z~: gamma~ = gamma / r1,
  beta~ = (beta + s_c r2) / r1, W~ = r1[:, None] W, b~ = b - (s_c r2) W. Zero points must be integers (r2 then is
  one, which makes the integer codes identical also after rounding).

  Args:
    s_c: [C] positive channel-wise scales.
    z_c: [C] integer-valued channel-wise zero points (any real dtype holding integers, or an integer dtype).
    ln_gamma: [C] LayerNorm scale.
    ln_beta: [C] LayerNorm shift.
    w_next: [C, D] weight of the linear layer that consumes the LayerNorm output (y = x W + b).
    b_next: [D] its bias.

  Returns:
    `LayerwiseReparam` (scale and zero_point scalars; the rest in the promoted floating dtype).
  """
  s = validation.check_floating(s_c, "s_c")
  g = validation.check_floating(ln_gamma, "ln_gamma")
  bt = validation.check_floating(ln_beta, "ln_beta")
  w = validation.check_floating(w_next, "w_next")
  b = validation.check_floating(b_next, "b_next")
  z = jnp.asarray(z_c)
  c = s.shape[0] if s.ndim == 1 else -1
  if s.ndim != 1 or z.shape != s.shape or g.shape != s.shape or bt.shape != s.shape:
    raise ValueError(f"s_c, z_c, ln_gamma, ln_beta must all be [C], got s_c.shape={s.shape}, z_c.shape={z.shape}, "
                     f"ln_gamma.shape={g.shape}, ln_beta.shape={bt.shape}")
  if w.ndim != 2 or w.shape[0] != c or b.shape != (w.shape[1],):
    raise ValueError(f"w_next must be [C={c}, D] and b_next [D], got w_next.shape={w.shape}, b_next.shape={b.shape}")
  validation.check_positive_values(s, "s_c")
  dt = jnp.result_type(s, g, bt, w, b)
  s, g, bt, w, b, z = (a.astype(dt) for a in (s, g, bt, w, b, z))
  s_t, z_t = jnp.mean(s), jnp.round(jnp.mean(z))
  r1, r2 = s / s_t, z - z_t
  return LayerwiseReparam(scale=s_t, zero_point=z_t, gamma=g / r1, beta=(bt + s * r2) / r1, w=r1[:, None] * w,
                          b=b - (s * r2) @ w)


class LogSqrt2Codes(NamedTuple):
  """Codes of the log-sqrt(2) quantiser: `codes` [...] int32 in [0, 2^bits - 1] and `nonzero` [...] bool (False
  where A / delta underflows the grid and dequantises to 0), with the scalar `delta`.

  Li et al., "RepQuant", 2024, arXiv:2402.05628 (the log-sqrt(2) quantiser of RepQ-ViT, arXiv:2212.08254, Sec. 4.3).
  """
  codes: jax.Array
  nonzero: jax.Array
  delta: jax.Array


def log_sqrt2_quantize(a: jax.Array, delta: jax.Array, bits: int) -> LogSqrt2Codes:
  """Quantises non-negative activations (post-Softmax attention) on the log-sqrt(2) grid delta sqrt(2)^(-q).

  Li et al., "RepQuant: Towards Accurate Post-Training Quantization of Large Transformer Models via Scale
  Reparameterization", 2024, arXiv:2402.05628 (RepQ-ViT, arXiv:2212.08254, Sec. 4.3, and the authors'
  `LogSqrt2Quantizer`): q = clamp(round(-2 log2(a / delta)), 0, 2^bits - 1); entries with round(-2 log2(a / delta))
  >= 2^bits (and a = 0) dequantise to 0.

  Args:
    a: [...] float activations >= 0 (e.g. softmax probabilities).
    delta: positive scalar, the quantiser's largest level (calibrated, e.g. a high quantile of a).
    bits: code width, a Python int in [2, 16].

  Returns:
    `LogSqrt2Codes` (codes and mask shaped like a). Concrete invalid input raises ValueError; traced invalid input
    (negative a, delta <= 0) makes `delta` NaN, hence every dequantised value NaN.
  """
  x = validation.check_floating(a, "a")
  d = validation.check_floating(delta, "delta")
  if d.ndim != 0:
    raise ValueError(f"delta must be a scalar, got delta.shape={d.shape}")
  if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
    raise ValueError(f"bits must be a Python int in [2, 16], got {bits=}")
  vd = validation.check_positive_values(d, "delta")
  va = validation.check_values(x >= 0, x, "a", ">= 0")
  dt = jnp.result_type(x, d)
  x, d = x.astype(dt), d.astype(dt)
  levels = 2 ** bits
  raw = jnp.round(-2.0 * jnp.log2(jnp.maximum(x, jnp.finfo(dt).tiny) / d))
  nonzero = (raw < levels) & (x > 0)
  codes = jnp.clip(raw, 0, levels - 1).astype(jnp.int32)
  for v in (vd, va):   # traced invalid input: the scale is NaN, so every dequantised value and product is NaN
    if v is not None:
      d = validation.nan_where_invalid(d, jnp.all(v))
  return LogSqrt2Codes(codes=codes, nonzero=nonzero, delta=d)


def _shift_values(codes: jax.Array, nonzero: jax.Array, dtype) -> jax.Array:
  """2^(-ceil(q / 2)) where nonzero, else 0: the bit-shift part of the log-sqrt(2) dequantisation."""
  return jnp.where(nonzero, jnp.exp2(-jnp.ceil(codes.astype(dtype) / 2)), jnp.zeros((), dtype))


def log_sqrt2_dequantize(q: LogSqrt2Codes) -> jax.Array:
  """delta 2^(-ceil(q / 2)) (1 + (sqrt(2) - 1) [q odd]) = delta sqrt(2)^(-q), 0 where the code underflowed.

  Li et al., "RepQuant", 2024, arXiv:2402.05628 (RepQ-ViT, arXiv:2212.08254, Sec. 4.3; the authors' `quantize`).

  Args:
    q: `LogSqrt2Codes` from `log_sqrt2_quantize`.

  Returns:
    [...] dequantised activations in delta's dtype.
  """
  dt = q.delta.dtype
  odd = (q.codes % 2).astype(dt)
  return q.delta * _shift_values(q.codes, q.nonzero, dt) * (1 + (jnp.sqrt(jnp.asarray(2.0, dt)) - 1) * odd)


def log_sqrt2_matmul(q: LogSqrt2Codes, v: jax.Array) -> jax.Array:
  """A^ V computed the reparameterised way, with power-of-two dequantisation only: delta (A_even V + sqrt(2) A_odd V).

  Li et al., "RepQuant: Towards Accurate Post-Training Quantization of Large Transformer Models via Scale
  Reparameterization", 2024, arXiv:2402.05628 (the softmax scale reparameterisation to log2 quantisation for
  inference): the sqrt(2) of the odd codes moves out of the activation into the product's scale, so each half is a
  log2-quantised (bit-shift) matrix. Equals `log_sqrt2_dequantize(q) @ v` in exact arithmetic.

  Args:
    q: `LogSqrt2Codes` of A, [..., N, M].
    v: [..., M, D] float values.

  Returns:
    [..., N, D].
  """
  v = validation.check_floating(v, "v")
  if q.codes.ndim < 2 or v.ndim < 2 or q.codes.shape[-1] != v.shape[-2]:
    raise ValueError(f"A [..., N, M] and v [..., M, D] must share M, got A.shape={q.codes.shape}, v.shape={v.shape}")
  dt = jnp.result_type(q.delta, v)
  shifts = _shift_values(q.codes, q.nonzero, dt)
  odd = (q.codes % 2) == 1
  a_even = jnp.where(odd, jnp.zeros((), dt), shifts)
  a_odd = jnp.where(odd, shifts, jnp.zeros((), dt))
  v = v.astype(dt)
  return q.delta.astype(dt) * (a_even @ v + jnp.sqrt(jnp.asarray(2.0, dt)) * (a_odd @ v))
