"""SGConv: a structured global convolution kernel (multi-scale sub-kernels, upsampled and geometrically decayed) applied
as a causal FFT convolution over the whole sequence.

Paper [204]: Yuhong Li, Tianle Cai, Yi Zhang, Deming Chen, Debadeepta Dey, "What Makes Convolutional Models Great on
Long Sequence Modeling?", ICLR 2023, arXiv:2210.09298 (Eq. 1: the kernel is the concatenation of N sub-kernels
k_0, ..., k_(N-1), each of d parameters per channel, the i-th upsampled by 2^max(i-1, 0) and weighted by alpha^i,

    k = (1 / Z) [k_0, alpha Up_1(k_1), alpha^2 Up_2(k_2), ..., alpha^(N-1) Up_(2^(N-2))(k_(N-1))],

so its length is d 2^(N-1) >= L with N = ceil(log2(L / d)) + 1 scales and O(d log L) parameters per channel (sub-linear
in L: the efficiency principle), and the weights of far positions are smaller (the decay principle)). The kernel is
applied per channel as a causal convolution y_t = sum_(s <= t) k_s u_(t-s) with FFTs of size 2L, plus S4's skip D u.

Choices we state (not checked against the authors' code): `Up` is linear interpolation with half-pixel centres
(`jax.image.resize`, like torch's `interpolate(mode="linear")`); the module's Z is the per-channel norm of the kernel at
initialisation, kept fixed, so the kernel starts at unit norm.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods.validation import check_floating


def sgconv_num_scales(length: int, kernel_dim: int) -> int:
  """N = ceil(log2(L / d)) + 1 (at least 1): the number of sub-kernels SGConv needs to cover L positions
  (Li et al. 2023, arXiv:2210.09298, Eq. 1)."""
  for name, v in (("length", length), ("kernel_dim", kernel_dim)):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
  return 1 if length <= kernel_dim else math.ceil(math.log2(length / kernel_dim)) + 1


def sgconv_kernel(subkernels: jax.Array, length: int, *, alpha: float = 0.5, z: Any = 1.0,
                  upsample: Literal["linear", "nearest"] = "linear") -> jax.Array:
  """The SGConv kernel (Li et al. 2023, arXiv:2210.09298, Eq. 1), truncated to `length`.

  Args:
    subkernels: [N, C, d]: N scales, C channels, d parameters per scale.
    length: L, the kernel length wanted, <= d 2^(N-1).
    alpha: the decay alpha in (0, 1] applied as alpha^i to scale i; may be traced.
    z: the normaliser Z, a scalar or [C] (per channel); may be traced.
    upsample: interpolation of `jax.image.resize` ("linear" or "nearest").

  Returns:
    [C, L].
  """
  k = check_floating(subkernels, "subkernels")
  if k.ndim != 3:
    raise ValueError(f"subkernels must be [N, C, d], got shape {k.shape}")
  n, c, d = k.shape
  if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= d * 2 ** (n - 1):
    raise ValueError(f"length must be an int in [1, d * 2^(N-1) = {d * 2 ** (n - 1)}], got {length=!r}")
  if upsample not in ("linear", "nearest"):
    raise ValueError(f"upsample must be 'linear' or 'nearest', got {upsample=!r}")
  pieces = []
  for i in range(n):
    r = 2 ** max(i - 1, 0)
    up = k[i] if r == 1 else jax.image.resize(k[i], (c, d * r), method=upsample)
    pieces.append(alpha ** i * up)
  kernel = jnp.concatenate(pieces, axis=-1)[:, :length]
  z = jnp.asarray(z, kernel.dtype)
  return kernel / (z[:, None] if z.ndim == 1 else z)


def fft_causal_conv(u: jax.Array, kernel: jax.Array) -> jax.Array:
  """Per-channel causal convolution y_t = sum_(s <= t) k_s u_(t-s) by FFTs of size 2L (Li et al. 2023,
  arXiv:2210.09298, Sec. 3; as in S4).

  Args:
    u: [..., L, C].
    kernel: [C, L_k] with L_k >= L (only the first L taps are used).

  Returns:
    [..., L, C], in u's dtype (computed in at least float32).
  """
  u = check_floating(u, "u")
  kernel = check_floating(kernel, "kernel")
  if u.ndim < 2 or kernel.ndim != 2 or kernel.shape[0] != u.shape[-1] or kernel.shape[1] < u.shape[-2]:
    raise ValueError(f"need u [..., L, C] and kernel [C, >= L], got {u.shape} and {kernel.shape}")
  length = u.shape[-2]
  ct = jnp.promote_types(u.dtype, jnp.float32)
  kf = jnp.fft.rfft(kernel[:, :length].astype(ct), n=2 * length, axis=-1)           # [C, F]
  uf = jnp.fft.rfft(jnp.swapaxes(u.astype(ct), -1, -2), n=2 * length, axis=-1)      # [..., C, F]
  y = jnp.fft.irfft(uf * kf, n=2 * length, axis=-1)[..., :length]
  return jnp.swapaxes(y, -1, -2).astype(u.dtype)


class SGConv(nnx.Module):
  """Structured global convolution layer (Li et al. 2023, arXiv:2210.09298, Eq. 1): y = causal_conv(u, k) + D u
  per channel, with k the SGConv kernel of length `max_length`. u [B, L, C] (L <= max_length) -> [B, L, C].

  The kernel normaliser z (the initial kernel's norm, fixed as in the paper) is state of type `nnx.Variable`, not
  `nnx.Param`: split a model holding this layer with a filter for the rest too, e.g.
  `nnx.split(model, nnx.Param, ...)`, as for BatchNorm's statistics.

  Args:
    channels: C.
    max_length: the longest sequence L the kernel covers.
    kernel_dim: d, parameters per scale and channel.
    alpha: the decay alpha in (0, 1].
    upsample: "linear" or "nearest".
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, channels: int, max_length: int, *, kernel_dim: int = 32, alpha: float = 0.5,
               upsample: Literal["linear", "nearest"] = "linear", param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
      raise ValueError(f"channels must be an int >= 1, got {channels=!r}")
    n = sgconv_num_scales(max_length, kernel_dim)
    if not 0 < alpha <= 1:
      raise ValueError(f"alpha must be in (0, 1], got {alpha=}")
    if upsample not in ("linear", "nearest"):
      raise ValueError(f"upsample must be 'linear' or 'nearest', got {upsample=!r}")
    self.channels, self.max_length, self.alpha, self.upsample = channels, max_length, alpha, upsample
    k = jax.random.normal(rngs.params(), (n, channels, kernel_dim), param_dtype)
    self.subkernels = nnx.Param(k)
    self.d = nnx.Param(jax.random.normal(rngs.params(), (channels,), param_dtype))
    k0 = sgconv_kernel(k.astype(jnp.float32), max_length, alpha=alpha, upsample=upsample)
    self.z = nnx.Variable(jnp.linalg.norm(k0, axis=-1).astype(param_dtype))   # fixed normaliser, not trained

  def kernel(self) -> jax.Array:
    """The current kernel, [C, max_length]."""
    return sgconv_kernel(self.subkernels[...], self.max_length, alpha=self.alpha, z=self.z[...],
                         upsample=self.upsample)

  def __call__(self, u: jax.Array) -> jax.Array:
    u = check_floating(u, "u")
    if u.ndim < 2 or u.shape[-1] != self.channels or u.shape[-2] > self.max_length:
      raise ValueError(f"u must be [..., L <= {self.max_length}, channels={self.channels}], got shape {u.shape}")
    return fft_causal_conv(u, self.kernel().astype(u.dtype)) + self.d[...].astype(u.dtype) * u
