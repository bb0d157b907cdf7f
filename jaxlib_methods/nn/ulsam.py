"""ULSAM: ultra-lightweight subspace attention (one spatial attention map per channel group).

Rajat Saini, Nandan Kumar Jha, Bedanta Das, Sparsh Mittal, C. Krishna Mohan, "ULSAM: Ultra-Lightweight Subspace
Attention Module for Compact Convolutional Neural Networks", WACV 2020, arXiv:2006.15102 (Sec. 3, Eq. (1)-(2), and
the authors' ulsam.py). The C input channels are split into g subspaces F_n of C / g channels; for each,

    A_n = softmax_{spatial}(ReLU(BN(PW(maxpool_3x3(ReLU(BN(DW_1x1(F_n))))))))      (one map [H, W] per subspace)
    F^_n = A_n * F_n + F_n,      F^ = concat(F^_1, ..., F^_g).

Trainable parameters: g (C/g (DW) + C/g (DW bias) + 2 C/g (BN) + C/g + 1 (PW) + 2 (BN)) = 5 C + 3 g
(`ulsam_num_params`), O(C), against 2 C^2 / r for squeeze-and-excitation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import validation


def ulsam_num_params(channels: int, groups: int) -> int:
  """Trainable parameters of `ULSAM(channels, groups)`: 5 C + 3 g (BN running statistics not counted).

  Saini et al., "ULSAM: Ultra-Lightweight Subspace Attention Module for Compact Convolutional Neural Networks", WACV
  2020, arXiv:2006.15102, Sec. 3. channels: C, groups: g (ints, g divides C) -> int.
  """
  return 5 * channels + 3 * groups


class ULSAM(nnx.Module):
  """Ultra-lightweight subspace attention (Saini et al., WACV 2020, arXiv:2006.15102, Sec. 3, Eq. (1)-(2)) on NHWC
  feature maps; see the module docstring. BatchNorm uses batch statistics in training mode and running averages
  after `module.eval()`.

  Args:
    channels: C, divisible by `groups`.
    groups: g subspaces.
    param_dtype: dtype of the parameters.
    rngs: nnx.Rngs.
  """

  def __init__(self, channels: int, groups: int, *, param_dtype=jnp.float32, rngs: nnx.Rngs):
    for name, v in (("channels", channels), ("groups", groups)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
    if channels % groups:
      raise ValueError(f"channels must be divisible by groups, got {channels=}, {groups=}")
    self.channels, self.groups = channels, groups
    c = channels // groups
    self.dw = nnx.Conv(channels, channels, (1, 1), feature_group_count=channels, param_dtype=param_dtype, rngs=rngs)
    self.bn_dw = nnx.BatchNorm(channels, momentum=0.1, epsilon=1e-5, param_dtype=param_dtype, rngs=rngs)
    # one pointwise conv C/g -> 1 per subspace = a grouped 1x1 conv C -> g
    self.pw = nnx.Conv(channels, groups, (1, 1), feature_group_count=groups, param_dtype=param_dtype, rngs=rngs)
    self.bn_pw = nnx.BatchNorm(groups, momentum=0.1, epsilon=1e-5, param_dtype=param_dtype, rngs=rngs)
    del c

  def attention_maps(self, x: jax.Array) -> jax.Array:
    """A_n: [B, H, W, g], each map summing to 1 over H W."""
    x = validation.check_floating(x, "x")
    if x.ndim != 4 or x.shape[-1] != self.channels:
      raise ValueError(f"x must be [B, H, W, C] with C = {self.channels}, got x.shape={x.shape}")
    h = jax.nn.relu(self.bn_dw(self.dw(x)))
    h = nnx.max_pool(h, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    h = jax.nn.relu(self.bn_pw(self.pw(h)))                                  # [B, H, W, g]
    B, H, W, g = h.shape
    return jax.nn.softmax(h.reshape(B, H * W, g).astype(jnp.float32), axis=1).reshape(B, H, W, g).astype(x.dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, H, W, C] -> [B, H, W, C]: A_n * F_n + F_n per subspace, concatenated."""
    a = self.attention_maps(x)
    a = jnp.repeat(a, self.channels // self.groups, axis=-1)                  # subspace n's map on its channels
    return a * x + x
