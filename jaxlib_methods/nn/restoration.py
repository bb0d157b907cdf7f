"""Image-restoration layers: the conditional blind-spot convolution of C-BSN and the channel-shuffling layer of
Denoising as Adaptation.

Papers:
  [210] Yeong Il Jang, Keuntek Lee, Gu Yong Park, Seyun Kim, Nam Ik Cho, "Self-supervised Image Denoising with
        Downsampled Invariance Loss and Conditional Blind-Spot Network", ICCV 2023, arXiv:2304.09507 (Sec. 4: the
        conditional blind-spot network selectively controls the blindness of its centre-masked convolutions, so
        one network is blind (J-invariant: the output at a pixel never sees that input pixel) or not on demand).
        Authors' code: github.com/jyicu/CBSN, model.py (`masked_conv` with `make_mask`: the centre tap of the 3x3
        and 5x5 kernels zeroed when `is_masked`) and dataprocess.py (`generate_mask`,
        `make_subimage_from_mask`: the random subsampler). Built here: the layer and the random subsampler (the
        downsampled invariance loss is `jaxlib_methods.losses.downsampled_invariance_loss`); the full network
        needs real-noise data to matter.
  [171] Kang Liao, Zongsheng Yue, Zhouxia Wang, Chen Change Loy, "Denoising as Adaptation: Noise-Space Domain
        Adaptation for Image Restoration", ICLR 2025, arXiv:2406.18516 (Sec. 3.2: a channel-shuffling layer in the
        diffusion model randomly permutes the channel order of its concatenated conditions, the restored synthetic
        and real images, so the model cannot tell them apart by channel index). The diffusion loss is
        `jaxlib_methods.losses.conditioned_diffusion_loss`.

Layouts are channels-last: images [B, H, W, C], kernels [kh, kw, C_in, C_out] (as `flax.nnx.Conv`).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation

__all__ = ["conditional_blind_spot_conv", "ConditionalBlindSpotConv", "random_subsampler", "subsample",
           "channel_shuffle", "channel_unshuffle", "ChannelShuffle"]



def conditional_blind_spot_conv(x: jax.Array, kernel: jax.Array, bias: Optional[jax.Array] = None, *,
                                blind: Any = True, dilation: int = 1) -> jax.Array:
  """A 'SAME' convolution whose centre tap is zeroed when `blind` ("Self-supervised Image Denoising with Downsampled
  Invariance Loss and Conditional Blind-Spot Network" [210], Jang et al. 2023, arXiv:2304.09507, Sec. 4).

  With `blind` true the output at pixel p never depends on the input at p: ∂out[b, p, :] / ∂x[b, p, :] = 0
  exactly (tested), the J-invariance a blind-spot denoiser needs to train on noisy targets. With `blind` false
  it is an ordinary convolution. `blind` may be a Python bool or a traced bool scalar (one compiled function
  serves both modes, the 'conditional' of C-BSN).

  Args:
    x: [B, H, W, C_in] real floating images.
    kernel: [kh, kw, C_in, C_out] with odd kh and kw (the centre tap is [kh // 2, kw // 2]).
    bias: optional [C_out].
    blind: mask the centre tap (bool or bool scalar array).
    dilation: spatial dilation >= 1 (C-BSN's blind-spot branches are dilated).

  Returns:
    [B, H, W, C_out], x's dtype.
  """
  x = validation.check_floating(x, "x")
  kernel = validation.check_floating(kernel, "kernel")
  dilation = validation.check_int(dilation, "dilation", 1, value_error=True)
  if x.ndim != 4:
    raise ValueError(f"x must be [B, H, W, C_in], got x.shape={x.shape}")
  if kernel.ndim != 4 or kernel.shape[2] != x.shape[-1]:
    raise ValueError(f"kernel must be [kh, kw, C_in={x.shape[-1]}, C_out], got kernel.shape={kernel.shape}")
  kh, kw = kernel.shape[:2]
  if kh % 2 == 0 or kw % 2 == 0:
    raise ValueError(f"kernel must have odd spatial sizes (a centre tap), got kernel.shape={kernel.shape}")
  if bias is not None:
    bias = validation.check_floating(bias, "bias")
    if bias.shape != (kernel.shape[3],):
      raise ValueError(f"bias must be [C_out]={(kernel.shape[3],)}, got bias.shape={bias.shape}")
  if isinstance(blind, (bool, np.bool_)):
    blind = bool(blind)
  else:
    blind = validation.check_bool(blind, "blind")
    if blind.shape != ():
      raise ValueError(f"blind must be a bool scalar, got blind.shape={blind.shape}")
  centre = np.zeros((kh, kw, 1, 1), bool)
  centre[kh // 2, kw // 2] = True
  keep = jnp.logical_not(jnp.logical_and(jnp.asarray(centre), blind))
  ct = validation.compute_dtype_for(x.dtype)
  k = jnp.where(keep, kernel.astype(ct), jnp.zeros((), ct))
  out = jax.lax.conv_general_dilated(x.astype(ct), k, window_strides=(1, 1), padding="SAME",
                                     rhs_dilation=(dilation, dilation), dimension_numbers=("NHWC", "HWIO", "NHWC"))
  if bias is not None:
    out = out + bias.astype(ct)
  return out.astype(x.dtype)


class ConditionalBlindSpotConv(nnx.Module):
  """NNX layer of `conditional_blind_spot_conv`: a convolution whose centre tap is switched off by `blind`.

  C-BSN [210] (Jang et al. 2023, arXiv:2304.09507, Sec. 4). Parameters: `kernel` [k, k, C_in, C_out] (LeCun-normal,
  as `nnx.Conv`) and `bias` [C_out] (zeros). The centre weight is kept as a parameter (it is used when not
  blind); in blind mode its gradient is exactly 0.

  Args:
    in_features: C_in >= 1.
    out_features: C_out >= 1.
    kernel_size: odd k >= 1 (k = 1 makes the blind layer output only the bias).
    dilation: spatial dilation >= 1.
    use_bias: learn a bias.
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs` (keyword-only).

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> conv = ConditionalBlindSpotConv(3, 8, rngs=nnx.Rngs(0))
    >>> conv(jnp.ones((2, 16, 16, 3)), blind=True).shape
    (2, 16, 16, 8)
  """

  def __init__(self, in_features: int, out_features: int, *, kernel_size: int = 3, dilation: int = 1,
               use_bias: bool = True, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    self.in_features = validation.check_int(in_features, "in_features", 1, value_error=True)
    self.out_features = validation.check_int(out_features, "out_features", 1, value_error=True)
    k = validation.check_int(kernel_size, "kernel_size", 1, value_error=True)
    if k % 2 == 0:
      raise ValueError(f"kernel_size must be odd (a centre tap), got {kernel_size=}")
    self.dilation = validation.check_int(dilation, "dilation", 1, value_error=True)
    init = nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (k, k, self.in_features, self.out_features), param_dtype))
    self.bias = nnx.Param(jnp.zeros((self.out_features,), param_dtype)) if use_bias else None

  def __call__(self, x: jax.Array, *, blind: Any = True) -> jax.Array:
    """x: [B, H, W, C_in] -> [B, H, W, C_out]; `blind` masks the centre tap (bool or traced bool scalar)."""
    if jnp.shape(x)[-1:] != (self.in_features,):
      raise ValueError(f"x must have in_features={self.in_features} channels last, got x.shape={jnp.shape(x)}")
    bias = None if self.bias is None else self.bias[...]
    return conditional_blind_spot_conv(x, self.kernel[...], bias, blind=blind, dilation=self.dilation)


def subsample(x: jax.Array, index: jax.Array, *, stride: int = 2) -> jax.Array:
  """Pick one pixel of every stride x stride block: out[b, i, j] = x[b, s i + index // s, s j + index % s] (C-BSN [210],
  Jang et al. 2023, arXiv:2304.09507, Sec. 4; the authors' `make_subimage_from_mask`, whose index runs row-major
  over the block as `tf.space_to_depth`). The same index is used for every channel.

  Args:
    x: [B, H, W, C] images, H and W divisible by stride.
    index: [B, H / s, W / s] integers in [0, s²).
    stride: the block size s >= 1.

  Returns:
    [B, H / s, W / s, C], x's dtype.
  """
  s = validation.check_int(stride, "stride", 1, value_error=True)
  x = jnp.asarray(x)
  index = validation.check_integer(index, "index")
  if x.ndim != 4 or x.shape[1] % s or x.shape[2] % s:
    raise ValueError(f"x must be [B, H, W, C] with H and W divisible by stride={s}, got x.shape={x.shape}")
  b, h, w, c = x.shape
  if index.shape != (b, h // s, w // s):
    raise ValueError(f"index must be [B, H / s, W / s]={(b, h // s, w // s)}, got index.shape={index.shape}")
  valid = validation.check_values((index >= 0) & (index < s * s), index, "index", f"in [0, stride**2={s * s})")
  blocks = x.reshape(b, h // s, s, w // s, s, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // s, w // s, s * s, c)
  idx = jnp.clip(index, 0, s * s - 1)[..., None, None]
  out = jnp.take_along_axis(blocks, jnp.broadcast_to(idx, (b, h // s, w // s, 1, c)), axis=3)[..., 0, :]
  if valid is not None and jnp.issubdtype(out.dtype, jnp.floating):  # traced out-of-range index: NaN pixels
    out = validation.nan_where_invalid(out, valid[..., None])
  return out


def random_subsampler(x: jax.Array, key: jax.Array, *, stride: int = 2) -> tuple[jax.Array, jax.Array]:
  """C-BSN's random subsampler: one uniformly random pixel of every stride x stride block ([210], Jang et al. 2023,
  arXiv:2304.09507, Sec. 4; the authors' `generate_mask` + `make_subimage_from_mask`, stride 2 for the invariance
  loss). Subsampling decorrelates spatially correlated real noise while keeping the image content.

  Args:
    x: [B, H, W, C] images, H and W divisible by stride.
    key: a jax PRNG key; index = `jax.random.randint(key, (B, H / s, W / s), 0, s * s)`.
    stride: the block size s >= 1.

  Returns:
    (subimage [B, H / s, W / s, C], index [B, H / s, W / s] int32): apply the same index to another image (the
    unmasked network's output) with `subsample`.
  """
  s = validation.check_int(stride, "stride", 1, value_error=True)
  x = jnp.asarray(x)
  if x.ndim != 4 or x.shape[1] % s or x.shape[2] % s:
    raise ValueError(f"x must be [B, H, W, C] with H and W divisible by stride={s}, got x.shape={x.shape}")
  index = jax.random.randint(key, (x.shape[0], x.shape[1] // s, x.shape[2] // s), 0, s * s, jnp.int32)
  return subsample(x, index, stride=s), index


def _group_perm(key: jax.Array, batch: int, groups: int, size: int) -> jax.Array:
  keys = jax.random.split(key, batch)
  gp = jax.vmap(lambda k: jax.random.permutation(k, groups))(keys)  # [B, groups]
  return (gp[:, :, None] * size + jnp.arange(size)[None, None, :]).reshape(batch, groups * size)


def channel_shuffle(x: jax.Array, key: jax.Array, *, groups: Optional[int] = None) -> tuple[jax.Array, jax.Array]:
  """Randomly permute the channel groups of each example ("Denoising as Adaptation: Noise-Space Domain Adaptation
  for Image Restoration" [171], Liao et al. 2025, arXiv:2406.18516, Sec. 3.2).

  The last axis C is split into `groups` equal, contiguous groups (e.g. groups=2 for the concatenated restored
  synthetic and real RGB images of [B, H, W, 6]) and each example gets its own uniformly random order of the
  groups; `groups=None` permutes single channels. Returns the permutation too, so `channel_unshuffle` restores x.

  Args:
    x: [B, ..., C] any dtype.
    key: a jax PRNG key.
    groups: number of channel groups (C divisible by it); None means C (single channels).

  Returns:
    (shuffled [B, ..., C], perm [B, C] int32) with shuffled[b, ..., j] = x[b, ..., perm[b, j]].
  """
  x = jnp.asarray(x)
  if x.ndim < 2:
    raise ValueError(f"x must be [B, ..., C] (rank >= 2), got x.shape={x.shape}")
  c = x.shape[-1]
  g = c if groups is None else validation.check_int(groups, "groups", 1, value_error=True)
  if c % g:
    raise ValueError(f"the channel axis C={c} must divide into groups={g} equal groups")
  perm = _group_perm(key, x.shape[0], g, c // g).astype(jnp.int32)
  idx = perm.reshape((x.shape[0],) + (1,) * (x.ndim - 2) + (c,))
  return jnp.take_along_axis(x, jnp.broadcast_to(idx, x.shape), axis=-1), perm


def channel_unshuffle(x: jax.Array, perm: jax.Array) -> jax.Array:
  """Inverse of `channel_shuffle`: channel_unshuffle(*channel_shuffle(x, key)) == x exactly (Denoising as
  Adaptation [171], Liao et al. 2025, arXiv:2406.18516, Sec. 3.2).

  Args:
    x: [B, ..., C] shuffled.
    perm: [B, C] integer permutations returned by `channel_shuffle`.

  Returns:
    [B, ..., C] with the original channel order.
  """
  x = jnp.asarray(x)
  perm = validation.check_integer(perm, "perm")
  if x.ndim < 2 or perm.shape != (x.shape[0], x.shape[-1]):
    raise ValueError(f"perm must be [B, C]={(x.shape[0], x.shape[-1]) if x.ndim >= 2 else '?'}, got "
                     f"perm.shape={perm.shape}, x.shape={x.shape}")
  inv = jnp.argsort(perm, axis=-1)
  idx = inv.reshape((x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],))
  return jnp.take_along_axis(x, jnp.broadcast_to(idx, x.shape), axis=-1)


class ChannelShuffle(nnx.Module):
  """NNX channel-shuffling layer (Denoising as Adaptation [171], Liao et al. 2025, arXiv:2406.18516, Sec. 3.2).

  Draws a fresh permutation of the channel groups per example and per call from the `shuffle` stream of its
  `nnx.Rngs` when `deterministic` is False; the identity when True (evaluation). Parameter-free.

  Args:
    groups: number of equal channel groups to permute; None permutes single channels.
    rngs: `nnx.Rngs` with a `shuffle` stream (or a default one).
  """

  def __init__(self, groups: Optional[int] = None, *, rngs: nnx.Rngs):
    self.groups = None if groups is None else validation.check_int(groups, "groups", 1, value_error=True)
    self.rngs = rngs

  def __call__(self, x: jax.Array, *, deterministic: bool = False) -> jax.Array:
    """x: [B, ..., C] -> [B, ..., C] with each example's channel groups in a random order."""
    if deterministic:
      return jnp.asarray(x)
    return channel_shuffle(x, self.rngs.shuffle(), groups=self.groups)[0]
