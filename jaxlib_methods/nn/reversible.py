"""Reversible mobile inverted bottleneck (MBConv) blocks whose backward pass recomputes activations from the outputs
(a `jax.custom_vjp` over the whole stack), so activation memory does not grow with depth.

Paper [42]: Mihir Pendse, Vithursan Thangarasa, Vitaliy Chiley, Ryan Holmdahl, Joel Hestness, Dennis DeCoste,
"Memory Efficient 3D U-Net with Reversible Mobile Inverted Bottlenecks for Brain Tumor Segmentation", BrainLes 2020,
arXiv:2104.09648 (Sec. 3: the channels are split in two halves and each block is the additive coupling of RevNet,

    y1 = x1 + F(x2),   y2 = x2 + G(y1);      inverse: x2 = y2 - G(y1),   x1 = y1 - F(x2),

with F and G MobileNetV2 inverted bottlenecks: a 1x1 expansion by `expansion`, a k x ... x k depthwise convolution,
a linear 1x1 projection. The backward pass rebuilds each block's input from its output instead of storing it).

Our F, G: expansion and depthwise convolution each followed by ReLU6 (MobileNetV2's choice), no normalisation (batch
statistics would break exact invertibility; add a per-example norm inside F/G if needed), any number of spatial axes
(1-d, 2-d or 3-d volumes as in the paper), channels-last.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods.validation import check_floating


def mbconv(params: dict, x: jax.Array) -> jax.Array:
  """The inverted bottleneck F(x) = P relu6(DW relu6(E x)) (MobileNetV2, as used by Pendse et al. 2021,
  arXiv:2104.09648, Sec. 3), channels-last.

  Args:
    params: w_expand [c, c*e], b_expand [c*e], w_dw [k_1, ..., k_d, 1, c*e], b_dw [c*e], w_proj [c*e, c], b_proj [c].
    x: [B, S_1, ..., S_d, c].

  Returns:
    [B, S_1, ..., S_d, c].
  """
  h = jax.nn.relu6(x @ params["w_expand"] + params["b_expand"])
  d = x.ndim - 2
  sp = "DHW"[-d:]
  h = jax.lax.conv_general_dilated(h, params["w_dw"], (1,) * d, "SAME", feature_group_count=h.shape[-1],
                                   dimension_numbers=("N" + sp + "C", sp + "IO", "N" + sp + "C"))
  h = jax.nn.relu6(h + params["b_dw"])
  return h @ params["w_proj"] + params["b_proj"]


def _block(p, x1, x2):
  y1 = x1 + mbconv(p["f"], x2)
  y2 = x2 + mbconv(p["g"], y1)
  return y1, y2


def _split(x):
  c = x.shape[-1]
  if c % 2:
    raise ValueError(f"the channel count must be even (two coupled halves), got {c}")
  return x[..., : c // 2], x[..., c // 2:]


def reversible_forward_autodiff(params: dict, x: jax.Array) -> jax.Array:
  """The same stack differentiated by plain autodiff (stores every block's activations): the reference for the
  custom-vjp gradients and the memory baseline. params: {"f": ..., "g": ...} with a leading block axis L."""
  x1, x2 = _split(x)

  def body(c, p):
    return _block(p, *c), None
  (y1, y2), _ = jax.lax.scan(body, (x1, x2), params)
  return jnp.concatenate([y1, y2], -1)


@jax.custom_vjp
def reversible_mbconv_stack(params: dict, x: jax.Array) -> jax.Array:
  """L reversible MBConv blocks y1 = x1 + F(x2), y2 = x2 + G(y1) (Pendse et al. 2021, arXiv:2104.09648, Sec. 3),
  with a backward pass that recomputes every block's input from its output (only the stack's output is saved).

  Args:
    params: {"f": mbconv params, "g": mbconv params}, every leaf with a leading block axis L.
    x: [B, S_1, ..., S_d, C], C even (the halves x1 = x[..., :C/2], x2 = x[..., C/2:]).

  Returns:
    [B, S_1, ..., S_d, C].
  """
  return reversible_forward_autodiff(params, x)


def reversible_mbconv_inverse(params: dict, y: jax.Array) -> jax.Array:
  """The inverse of `reversible_mbconv_stack`: x2 = y2 - G(y1), x1 = y1 - F(x2), block L down to 1 (Pendse et al.,
  BrainLes 2020, arXiv:2104.09648, Sec. 3, the RevNet additive coupling).

  Args:
    params: as for `reversible_mbconv_stack`.
    y: [B, S_1, ..., S_d, C].

  Returns:
    x, [B, S_1, ..., S_d, C].
  """
  y1, y2 = _split(y)

  def body(c, p):
    y1, y2 = c
    x2 = y2 - mbconv(p["g"], y1)
    return (y1 - mbconv(p["f"], x2), x2), None
  (x1, x2), _ = jax.lax.scan(body, (y1, y2), params, reverse=True)
  return jnp.concatenate([x1, x2], -1)


def _fwd(params, x):
  y = reversible_forward_autodiff(params, x)
  return y, (params, y)


def _bwd(res, dy):
  params, y = res
  y1, y2 = _split(y)
  dy1, dy2 = _split(dy)

  def body(c, p):
    y1, y2, dy1, dy2 = c
    g_out, g_vjp = jax.vjp(mbconv, p["g"], y1)
    dpg, dy1_from_g = g_vjp(dy2)
    dz1 = dy1 + dy1_from_g                       # total gradient of y1 (direct and through G)
    x2 = y2 - g_out
    f_out, f_vjp = jax.vjp(mbconv, p["f"], x2)
    dpf, dx2_from_f = f_vjp(dz1)
    dx2 = dy2 + dx2_from_f
    x1 = y1 - f_out
    return (x1, x2, dz1, dx2), {"f": dpf, "g": dpg}

  (_, _, dx1, dx2), dparams = jax.lax.scan(body, (y1, y2, dy1, dy2), params, reverse=True)
  return dparams, jnp.concatenate([dx1, dx2], -1)


reversible_mbconv_stack.defvjp(_fwd, _bwd)


def init_mbconv_params(key: jax.Array, channels: int, expansion: int, kernel_size: tuple[int, ...],
                       dtype: Any = jnp.float32) -> dict:
  """He-normal MBConv parameters for `mbconv` on `channels` channels (projection scaled by 0.1, so that a deep
  reversible stack starts near the identity)."""
  ke, kd, kp = jax.random.split(key, 3)
  h = channels * expansion
  kvol = 1
  for k in kernel_size:
    kvol *= k
  return {"w_expand": (jax.random.normal(ke, (channels, h)) * jnp.sqrt(2.0 / channels)).astype(dtype),
          "b_expand": jnp.zeros((h,), dtype),
          "w_dw": (jax.random.normal(kd, tuple(kernel_size) + (1, h)) * jnp.sqrt(2.0 / kvol)).astype(dtype),
          "b_dw": jnp.zeros((h,), dtype),
          "w_proj": (0.1 * jax.random.normal(kp, (h, channels)) / jnp.sqrt(h)).astype(dtype),
          "b_proj": jnp.zeros((channels,), dtype)}


class ReversibleMBConv(nnx.Module):
  """A stack of `num_blocks` reversible MBConv blocks with custom-vjp recomputation (Pendse et al. 2021,
  arXiv:2104.09648, Sec. 3). x [B, S_1, ..., S_d, channels] -> same shape; `inverse(y)` recovers x.

  Args:
    channels: C, even (F and G act on C/2 channels each).
    num_blocks: L >= 1.
    expansion: the MBConv expansion ratio e >= 1.
    kernel_size: the depthwise kernel (k_1, ..., k_d), 1 <= d <= 3.
    recompute: True (the paper's memory saving, custom vjp) or False (plain autodiff, same numbers).
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, channels: int, num_blocks: int, *, expansion: int = 4, kernel_size: tuple[int, ...] = (3, 3, 3),
               recompute: bool = True, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    for name, v in (("channels", channels), ("num_blocks", num_blocks), ("expansion", expansion)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
    if channels % 2:
      raise ValueError(f"channels must be even (two coupled halves), got {channels=}")
    kernel_size = tuple(kernel_size)
    if not 1 <= len(kernel_size) <= 3 or any(isinstance(k, bool) or not isinstance(k, int) or k < 1
                                             for k in kernel_size):
      raise ValueError(f"kernel_size must be 1 to 3 ints >= 1, got {kernel_size=}")
    self.channels, self.kernel_size, self.recompute = channels, kernel_size, recompute
    keys = jax.random.split(rngs.params(), 2 * num_blocks).reshape(2, num_blocks)
    mk = jax.vmap(lambda k: init_mbconv_params(k, channels // 2, expansion, kernel_size, param_dtype))
    for branch, k in (("f", keys[0]), ("g", keys[1])):
      for name, v in mk(k).items():
        setattr(self, f"{branch}_{name}", nnx.Param(v))

  def stack_params(self, dtype: Any = None) -> dict:
    """The {"f": ..., "g": ...} dict of stacked parameters that `reversible_mbconv_stack` takes."""
    names = ("w_expand", "b_expand", "w_dw", "b_dw", "w_proj", "b_proj")
    out = {b: {n: getattr(self, f"{b}_{n}")[...] for n in names} for b in ("f", "g")}
    return out if dtype is None else jax.tree.map(lambda a: a.astype(dtype), out)

  def _params(self, dtype):
    return self.stack_params(dtype)

  def _check(self, x, name):
    x = check_floating(x, name)
    if x.ndim != len(self.kernel_size) + 2 or x.shape[-1] != self.channels:
      raise ValueError(f"{name} must be [B, {len(self.kernel_size)} spatial axes, channels={self.channels}], "
                       f"got shape {x.shape}")
    return x

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self._check(x, "x")
    fn = reversible_mbconv_stack if self.recompute else reversible_forward_autodiff
    return fn(self._params(x.dtype), x)

  def inverse(self, y: jax.Array) -> jax.Array:
    """x from y = self(x)."""
    y = self._check(y, "y")
    return reversible_mbconv_inverse(self._params(y.dtype), y)


def grad_temp_bytes(fn, params: dict, x: jax.Array) -> int:
  """Temporary buffer bytes XLA allocates for jax.grad of sum(fn(params, x)^2), from
  `jax.jit(...).lower(...).compile().memory_analysis()` (the activation memory the backward pass keeps alive).

  The memory measure behind Pendse et al., "Memory Efficient 3D U-Net with Reversible Mobile Inverted Bottlenecks
  for Brain Tumor Segmentation", BrainLes 2020, arXiv:2104.09648, Sec. 3 (activation memory flat in depth).
  x: any input of fn, e.g. [B, S_1, ..., S_d, C]; returns a Python int (bytes).
  """
  g = jax.jit(jax.grad(lambda p, x: jnp.sum(fn(p, x) ** 2)))
  m = g.lower(params, x).compile().memory_analysis()
  if m is None:
    raise RuntimeError("this backend reports no memory analysis")
  return int(m.temp_size_in_bytes)
