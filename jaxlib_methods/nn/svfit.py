"""SVFit: parameter-efficient fine-tuning that trains only the top-r singular values of a pretrained weight.

Paper [139]: Chengwei Sun, Jiwei Wei, Yujia Wu, Yiming Shi, Shiyuan He, Zeyu Ma, Ning Xie, Yang Yang, "SVFit:
Parameter-Efficient Fine-Tuning of Large Pre-Trained Models Using Singular Values", 2024, arXiv:2409.05926 (Sec. III,
the method): the pretrained weight is split by its SVD into the best rank-r approximation and a residual,

    W = W_r + W_e,     W_r = U_r diag(sigma_r) V_r^T,     W_e = W - W_r,

U_r, V_r and W_e are frozen and only the r singular values sigma_r are trained (initialised at the pretrained ones, so
the fine-tuned layer starts exactly at the pretrained layer); a fine-tune can only rescale the top-r rank-one
components u_i v_i^T of W: r trainable numbers per matrix against LoRA's r (m + n).

Layout: flax's `kernel [in, out]` (y = x W), so U_r [in, r] spans the input side and V_r [out, r] the output side.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods.nn.low_rank import FrozenWeight
from jaxlib_methods.validation import check_floating


def _check_rank(r: Any, shape: tuple) -> int:
  if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= min(shape):
    raise ValueError(f"r must be an int in [1, min(W.shape) = {min(shape)}], got {r=!r}")
  return r


def svfit_decompose(W: jax.Array, r: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """SVFit's split of a pretrained weight into its top-r singular triplets and a residual, W = U_r diag(s_r) V_r^T +
  W_e (Sun et al. 2024, arXiv:2409.05926, Sec. III).

  Eager or jitted; the SVD runs in float32 at least (float64 for float64 input).

  Args:
    W: the pretrained weight [m, n].
    r: how many of the largest singular values become trainable (static int, 1 <= r <= min(m, n)).

  Returns:
    (U_r [m, r], s_r [r] (descending), V_r [n, r], W_e [m, n]) in W's dtype promoted to at least float32.
  """
  W = check_floating(W, "W")
  if W.ndim != 2:
    raise ValueError(f"W must be a matrix [m, n], got {W.shape=}")
  _check_rank(r, W.shape)
  w = W.astype(jnp.promote_types(W.dtype, jnp.float32))
  u, s, vt = jnp.linalg.svd(w, full_matrices=False)
  u_r, s_r, v_r = u[:, :r], s[:r], vt[:r].T
  return u_r, s_r, v_r, w - (u_r * s_r) @ v_r.T


def svfit_weight(U_r: jax.Array, s_r: jax.Array, V_r: jax.Array, W_e: jax.Array) -> jax.Array:
  """The SVFit weight U_r diag(s_r) V_r^T + W_e (Sun et al. 2024, arXiv:2409.05926, Sec. III).

  Args:
    U_r: [m, r], frozen left singular vectors.
    s_r: [r], the trainable singular values.
    V_r: [n, r], frozen right singular vectors.
    W_e: [m, n], the frozen residual.

  Returns:
    [m, n].
  """
  U_r, s_r, V_r, W_e = (check_floating(a, n) for a, n in ((U_r, "U_r"), (s_r, "s_r"), (V_r, "V_r"), (W_e, "W_e")))
  if U_r.ndim != 2 or V_r.ndim != 2 or s_r.shape != (U_r.shape[1],) or V_r.shape[1] != U_r.shape[1] \
      or W_e.shape != (U_r.shape[0], V_r.shape[0]):
    raise ValueError(f"need U_r [m, r], s_r [r], V_r [n, r], W_e [m, n]; got {U_r.shape=}, {s_r.shape=}, "
                     f"{V_r.shape=}, {W_e.shape=}")
  return (U_r * s_r) @ V_r.T + W_e


class SVFitLinear(nnx.Module):
  """A pretrained linear layer fine-tuned by its top-r singular values only (SVFit, Sun et al. 2024,
  arXiv:2409.05926, Sec. III): y = x (U_r diag(sigma) V_r^T + W_e) + b.

  `sigma` [r] is the only `nnx.Param`; U_r [in, r], V_r [out, r], the residual W_e [in, out] and the bias [out] are
  `FrozenWeight`s, so `nnx.split(model, nnx.Param, ...)` trains exactly r numbers. Build it from pretrained weights
  with `from_weights`; the constructor decomposes a random (fan-in scaled) kernel, for tests and toys.
  x [..., in] -> [..., out].

  Args:
    in_features: input width.
    out_features: output width.
    rank: r, 1 <= r <= min(in, out).
    use_bias: keep a (frozen) bias.
    dtype: computation dtype (default: x's dtype).
    param_dtype: storage dtype of every variable.
    rngs: `nnx.Rngs` with a 'params' stream (the random pretrained kernel).
  """

  def __init__(self, in_features: int, out_features: int, rank: int, *, use_bias: bool = True,
               dtype: Optional[Any] = None, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    for name, v in (("in_features", in_features), ("out_features", out_features)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {name}={v!r}")
    _check_rank(rank, (in_features, out_features))
    kernel = jax.random.normal(rngs.params(), (in_features, out_features)) / math.sqrt(in_features)
    self._set(kernel, jnp.zeros((out_features,)) if use_bias else None, rank, dtype, param_dtype)

  def _set(self, kernel, bias, rank, dtype, param_dtype):
    u_r, s_r, v_r, w_e = svfit_decompose(kernel, rank)
    self.in_features, self.out_features, self.rank = kernel.shape[0], kernel.shape[1], rank
    self.dtype = dtype
    self.u_r = FrozenWeight(u_r.astype(param_dtype))
    self.v_r = FrozenWeight(v_r.astype(param_dtype))
    self.w_e = FrozenWeight(w_e.astype(param_dtype))
    self.sigma = nnx.Param(s_r.astype(param_dtype))
    self.bias = FrozenWeight(jnp.asarray(bias).astype(param_dtype)) if bias is not None else None

  @classmethod
  def from_weights(cls, kernel: jax.Array, rank: int, *, bias: Optional[jax.Array] = None,
                   dtype: Optional[Any] = None, param_dtype: Any = jnp.float32) -> "SVFitLinear":
    """The SVFit layer of a pretrained `kernel [in, out]` (flax layout, y = x kernel + bias).

    Args:
      kernel: the pretrained weight [in, out].
      rank: r, the number of trainable singular values.
      bias: optional pretrained bias [out] (kept frozen).
      dtype: computation dtype (default: x's dtype).
      param_dtype: storage dtype.

    Returns:
      An `SVFitLinear` whose output equals x kernel + bias (up to the SVD's rounding).
    """
    kernel = check_floating(kernel, "kernel")
    if kernel.ndim != 2:
      raise ValueError(f"kernel must be [in, out], got {kernel.shape=}")
    if bias is not None:
      bias = check_floating(bias, "bias")
      if bias.shape != (kernel.shape[1],):
        raise ValueError(f"bias must be [out] = [{kernel.shape[1]}], got {bias.shape=}")
    _check_rank(rank, kernel.shape)
    layer = cls(kernel.shape[0], kernel.shape[1], rank, use_bias=bias is not None, dtype=dtype,
                param_dtype=param_dtype, rngs=nnx.Rngs(0))
    layer._set(kernel, bias, rank, dtype, param_dtype)
    return layer

  def merged_kernel(self) -> jax.Array:
    """U_r diag(sigma) V_r^T + W_e, [in, out], in the storage dtype."""
    return svfit_weight(self.u_r[...], self.sigma[...], self.v_r[...], self.w_e[...])

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [..., in] -> [..., out]."""
    x = check_floating(x, "x")
    if x.ndim < 1 or x.shape[-1] != self.in_features:
      raise ValueError(f"x must be [..., in_features={self.in_features}], got {x.shape=}")
    dt = self.dtype or x.dtype
    y = x.astype(dt) @ self.merged_kernel().astype(dt)
    return y if self.bias is None else y + self.bias[...].astype(dt)


def svfit_num_params(shape: tuple[int, int], r: int) -> dict:
  """Trainable parameters of one [m, n] matrix: SVFit's r against LoRA's r (m + n) at the same rank (Sun et al.
  2024, arXiv:2409.05926, Sec. III).

  Args:
    shape: (m, n).
    r: the rank.

  Returns:
    {"svfit": r, "lora": r (m + n)}.
  """
  if len(shape) != 2 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
    raise ValueError(f"shape must be two positive ints (m, n), got {shape=}")
  _check_rank(r, tuple(shape))
  return {"svfit": r, "lora": r * (shape[0] + shape[1])}


__all__ = ["SVFitLinear", "svfit_decompose", "svfit_num_params", "svfit_weight"]
