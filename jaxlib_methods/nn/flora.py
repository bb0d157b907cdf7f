"""FLoRA: low-rank adapters in Tucker form for N-dimensional weights (linear, convolution kernels of any rank).

Paper [161]: Chongjie Si, Xuehui Wang, Xue Yang, Zhengqin Xu, Qingyun Li, Jifeng Dai, Yu Qiao, Xiaokang Yang, Wei Shen,
"FLoRA: Low-Rank Core Space for N-dimension", 2024, arXiv:2405.14739 (Sec. 3, the change of an N-dimensional weight
is a low-rank core space with the same topology as the weight, mapped back by one factor per mode (a Tucker
decomposition):

    Delta W = s * G x_1 U_1 x_2 U_2 ... x_N U_N,     G [r_1, ..., r_N],  U_n [I_n, r_n],

so for N = 2 it is s * U_1 G U_2^T, LoRA's B A with an r x r core between (G = I gives LoRA exactly), and for a
convolution kernel [k_1, ..., k_d, C_in, C_out] the spatial modes keep their neighbourhoods instead of being flattened
into a matrix as reshape-LoRA does).

Initialisation (our choice, stated because the adapter must start at Delta W = 0 like LoRA): the factors are drawn
from a scaled normal, the core is zero.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods.validation import check_floating, check_int



def flora_delta(core: jax.Array, factors: Sequence[jax.Array], *, scale: float = 1.0) -> jax.Array:
  """The FLoRA weight change Delta W = s * G x_1 U_1 ... x_N U_N (Si et al. 2024, arXiv:2405.14739, Sec. 3).

  Args:
    core: G, [r_1, ..., r_N], the low-rank core space.
    factors: N matrices U_n, each [I_n, r_n].
    scale: s, a scalar multiplier (may be traced).

  Returns:
    [I_1, ..., I_N], in the result dtype of the core and factors.
  """
  core = check_floating(core, "core")
  factors = [check_floating(u, f"factors[{n}]") for n, u in enumerate(factors)]
  if len(factors) != core.ndim or core.ndim < 1:
    raise ValueError(f"need one factor per core mode: core.ndim={core.ndim}, len(factors)={len(factors)}")
  for n, u in enumerate(factors):
    if u.ndim != 2 or u.shape[1] != core.shape[n]:
      raise ValueError(f"factors[{n}] must be [I_{n + 1}, r_{n + 1}={core.shape[n]}], got shape {u.shape}")
  out = core
  for n, u in enumerate(factors):
    # mode-n product: contract core mode n with U_n's second axis; the new axis goes back to position n
    out = jnp.moveaxis(jnp.tensordot(out, u, axes=([n], [1])), -1, n)
  return scale * out


def flora_num_params(shape: Sequence[int], ranks: Sequence[int]) -> int:
  """Trainable parameters of a FLoRA adapter: prod(r_n) + sum(I_n r_n) (Si et al. 2024, arXiv:2405.14739, Sec. 3).

  Args:
    shape: the weight's shape (I_1, ..., I_N).
    ranks: the core's shape (r_1, ..., r_N).

  Returns:
    the count, an int.
  """
  if len(shape) != len(ranks) or not shape:
    raise ValueError(f"shape and ranks must have the same length >= 1, got {shape=}, {ranks=}")
  core = 1
  for r in ranks:
    core *= check_int(r, "ranks[i]", 1, value_error=True)
  return core + sum(check_int(i, "shape[i]", 1, value_error=True) * r for i, r in zip(shape, ranks))


class _FLoRAAdapter(nnx.Module):
  """Core and factors (nnx.LoRAParam) of a weight of `shape` with core `ranks`; `delta()` gives Delta W."""

  def __init__(self, shape: Sequence[int], ranks: Sequence[int], scale: float, param_dtype: Any, rngs: nnx.Rngs):
    if len(shape) != len(ranks):
      raise ValueError(f"ranks must have one entry per weight mode ({len(shape)}), got ranks={tuple(ranks)}")
    for i, r in zip(shape, ranks):
      check_int(r, "rank", 1, value_error=True)
      if r > i:
        raise ValueError(f"each rank must be <= its mode size, got ranks={tuple(ranks)} for weight shape {tuple(shape)}")
    self.scale = float(scale)
    self.core = nnx.LoRAParam(jnp.zeros(tuple(ranks), param_dtype))
    self.factors = nnx.List([nnx.LoRAParam(jax.random.normal(rngs.params(), (i, r), param_dtype) / jnp.sqrt(i).astype(param_dtype))
                             for i, r in zip(shape, ranks)])

  def delta(self) -> jax.Array:
    return flora_delta(self.core[...], [u[...] for u in self.factors], scale=self.scale)


class FLoRALinear(nnx.Module):
  """A frozen linear map plus a FLoRA adapter, N = 2 (Si et al. 2024, arXiv:2405.14739, Sec. 3):
  y = x (W + s U_in G U_out^T) + b, W [in, out], U_in [in, r], G [r, r], U_out [out, r].

  With G = I this is LoRA (A = U_in, B = U_out^T). W and b are `nnx.Param`; the adapter is `nnx.LoRAParam`, so train
  it alone with `nnx.DiffState(0, nnx.LoRAParam)`. x [..., in] -> [..., out].

  Args:
    in_features: input width.
    out_features: output width.
    rank: r, the core size r x r, 1 <= r <= min(in, out).
    alpha: scale numerator, s = alpha / r (default alpha = r, s = 1).
    use_bias: base bias.
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, in_features: int, out_features: int, rank: int, *, alpha: float | None = None,
               use_bias: bool = True, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    check_int(in_features, "in_features", 1, value_error=True)
    check_int(out_features, "out_features", 1, value_error=True)
    check_int(rank, "rank", 1, value_error=True)
    if rank > min(in_features, out_features):
      raise ValueError(f"rank must be <= min(in_features, out_features), got {rank=}")
    self.in_features, self.out_features = in_features, out_features
    init = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal")
    self.kernel = nnx.Param(init(rngs.params(), (in_features, out_features), param_dtype))
    self.bias = nnx.Param(jnp.zeros((out_features,), param_dtype)) if use_bias else None
    s = (float(rank) if alpha is None else float(alpha)) / rank
    self.adapter = _FLoRAAdapter((in_features, out_features), (rank, rank), s, param_dtype, rngs)

  def merged_kernel(self) -> jax.Array:
    """W + Delta W, [in, out]."""
    return self.kernel[...] + self.adapter.delta().astype(self.kernel[...].dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = check_floating(x, "x")
    if x.ndim < 1 or x.shape[-1] != self.in_features:
      raise ValueError(f"x must be [..., in_features={self.in_features}], got shape {x.shape}")
    y = x @ self.merged_kernel().astype(x.dtype)
    return y if self.bias is None else y + self.bias[...].astype(y.dtype)


class FLoRAConv(nnx.Module):
  """A frozen N-d convolution plus a FLoRA adapter on its kernel (Si et al. 2024, arXiv:2405.14739, Sec. 3, the
  convolution case): kernel W [k_1, ..., k_d, C_in, C_out] (flax's layout), Delta W = s G x_1 U_1 ... x_(d+2) U_(d+2)
  with G [r_1, ..., r_d, r_in, r_out].

  x [B, S_1, ..., S_d, C_in] -> [B, S'_1, ..., S'_d, C_out] (stride 1, `padding` as in `jax.lax.conv_general_dilated`).

  Args:
    in_features: C_in.
    out_features: C_out.
    kernel_size: (k_1, ..., k_d), d >= 1.
    rank: r_in = r_out, the channel ranks of the core.
    spatial_rank: r_1 = ... = r_d (default: the full kernel size, the paper's choice for small kernels).
    alpha: scale numerator, s = alpha / rank (default s = 1).
    padding: "SAME" or "VALID".
    use_bias: base bias.
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: Sequence[int], rank: int, *,
               spatial_rank: int | None = None, alpha: float | None = None, padding: str = "SAME",
               use_bias: bool = True, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    check_int(in_features, "in_features", 1, value_error=True)
    check_int(out_features, "out_features", 1, value_error=True)
    check_int(rank, "rank", 1, value_error=True)
    kernel_size = tuple(kernel_size)
    if not kernel_size:
      raise ValueError(f"kernel_size must have >= 1 spatial entry, got {kernel_size=}")
    for k in kernel_size:
      check_int(k, "kernel_size[i]", 1, value_error=True)
    if padding not in ("SAME", "VALID"):
      raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding=!r}")
    if spatial_rank is not None:
      check_int(spatial_rank, "spatial_rank", 1, value_error=True)
    if len(kernel_size) > 3:
      raise ValueError(f"at most 3 spatial axes are supported, got {kernel_size=}")
    spatial = [min(k, spatial_rank) if spatial_rank is not None else k for k in kernel_size]
    self.kernel_size, self.padding = kernel_size, padding
    self.in_features, self.out_features = in_features, out_features
    shape = kernel_size + (in_features, out_features)
    init = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=-2, out_axis=-1)
    self.kernel = nnx.Param(init(rngs.params(), shape, param_dtype))
    self.bias = nnx.Param(jnp.zeros((out_features,), param_dtype)) if use_bias else None
    s = (float(rank) if alpha is None else float(alpha)) / rank
    self.adapter = _FLoRAAdapter(shape, tuple(spatial) + (rank, rank), s, param_dtype, rngs)

  def merged_kernel(self) -> jax.Array:
    """W + Delta W, [k_1, ..., k_d, C_in, C_out]."""
    return self.kernel[...] + self.adapter.delta().astype(self.kernel[...].dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = check_floating(x, "x")
    d = len(self.kernel_size)
    if x.ndim != d + 2 or x.shape[-1] != self.in_features:
      raise ValueError(f"x must be [B, {d} spatial axes, in_features={self.in_features}], got shape {x.shape}")
    spatial = "DHW"[-d:]
    dn = ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")
    y = jax.lax.conv_general_dilated(x, self.merged_kernel().astype(x.dtype), (1,) * d, self.padding,
                                     dimension_numbers=dn)
    return y if self.bias is None else y + self.bias[...].astype(y.dtype)
