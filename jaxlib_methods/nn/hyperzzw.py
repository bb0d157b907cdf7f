"""HyperZ·Z·W: a slow coordinate network generates a hyper-kernel W as long as the input; the fast path convolves the
hidden activations Z with the context-dependent kernel W ⊙ Z (full context at every layer, no residuals).

Paper [13]: Harvie Zhang, "HyperZ·Z·W Operator Connects Slow-Fast Networks for Full Context Interaction", 2024,
arXiv:2401.17948 (Sec. 3): a coordinate-based implicit MLP (the slow net) maps the positions c in [-1, 1] to a
hyper-kernel W [L, C]; the HyperZ·Z·W operator multiplies it elementwise with the hidden activations Z [L, C] and
convolves Z with the result,

    HyperZZW(Z) = Z (*) (W ⊙ Z),

and the Terminator architecture stacks multi-branch slow-fast blocks with a bottleneck and no residual connections.

Our reading, stated because the paper's 2-D code and text differ in details: the convolution is circular over the
sequence (computed with an FFT), so every output position sees every input position (the paper's "full context
interaction"); the slow net is a multiplicative filter network (each layer a linear map times a sinusoidal filter of
the coordinates, as the paper's implicit MLP); `TerminatorBlock` keeps three of the paper's nine branches (global
HyperZ·Z·W with a sigmoid-gated output, a local convolution whose kernel the slow net also generates, and a channel
mixer), each instance-standardised over the sequence, concatenated and compressed by a bottleneck; the slow neural
loss (local feedback for the slow net) is not implemented.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods.validation import check_floating


def hyperzzw_conv(z: jax.Array, w: jax.Array) -> jax.Array:
  """The global HyperZ·Z·W operator Y = Z (*) (W ⊙ Z), a circular convolution along the sequence, per channel
  (Zhang 2024, arXiv:2401.17948, Sec. 3):

      Y[t, c] = sum_s K[s, c] Z[(t - s) mod L, c],     K = W ⊙ Z.

  Args:
    z: the hidden activations Z [..., L, C].
    w: the hyper-kernel W [L, C] (or broadcastable to z).

  Returns:
    [..., L, C], computed with a real FFT in z's dtype promoted to at least float32.
  """
  z, w = check_floating(z, "z"), check_floating(w, "w")
  if z.ndim < 2:
    raise ValueError(f"z must be [..., L, C], got {z.shape=}")
  if w.ndim < 2 or w.shape[-2:] != z.shape[-2:]:
    raise ValueError(f"w must end in z's [L, C] = {z.shape[-2:]}, got {w.shape=}")
  dt = jnp.promote_types(jnp.promote_types(z.dtype, w.dtype), jnp.float32)
  z32 = z.astype(dt)
  k = w.astype(dt) * z32
  L = z.shape[-2]
  y = jnp.fft.irfft(jnp.fft.rfft(z32, axis=-2) * jnp.fft.rfft(k, axis=-2), n=L, axis=-2)
  return y.astype(jnp.result_type(z.dtype, w.dtype))


def kernel_coordinates(length: int) -> jax.Array:
  """The slow net's input: `length` positions evenly spaced in [-1, 1], [length, 1] (length 1 gives [[0]]).

  The coordinates c in [-1, 1] of the hyper-kernel generator (Zhang 2024, arXiv:2401.17948, Sec. 3).
  """
  if isinstance(length, bool) or not isinstance(length, int) or length < 1:
    raise ValueError(f"length must be a positive int, got {length=!r}")
  return jnp.linspace(-1.0, 1.0, length)[:, None] if length > 1 else jnp.zeros((1, 1))


class HyperKernelMLP(nnx.Module):
  """The slow net: a coordinate-based implicit MLP (a multiplicative filter network) c [L, 1] -> W [L, C]
  (Zhang 2024, arXiv:2401.17948, Sec. 3, the hyper-kernel generator):

      h_1 = sin(omega c A_1 + phi_1),   h_(l+1) = (h_l B_l + b_l) ⊙ sin(omega c A_(l+1) + phi_(l+1)),   W = h_n V + v.

  Args:
    channels: C, the kernel's channels.
    hidden: the MLP's width.
    layers: n, the number of filters (>= 1).
    omega: the filters' base frequency.
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, channels: int, hidden: int = 32, layers: int = 2, *, omega: float = 8.0,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    for name, v in (("channels", channels), ("hidden", hidden), ("layers", layers)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {name}={v!r}")
    if not omega > 0:
      raise ValueError(f"omega must be > 0, got {omega=}")
    self.omega = float(omega)
    key = rngs.params()
    ks = jax.random.split(key, 2 * layers + 1)
    self.filter_a = nnx.Param((jax.random.normal(ks[0], (layers, 1, hidden)) / math.sqrt(layers)).astype(param_dtype))
    self.filter_phi = nnx.Param(jax.random.uniform(ks[1], (layers, hidden), minval=-math.pi, maxval=math.pi)
                                .astype(param_dtype))
    self.mix = nnx.Param((jax.random.normal(ks[2], (max(layers - 1, 1), hidden, hidden)) / math.sqrt(hidden))
                         .astype(param_dtype))
    self.mix_bias = nnx.Param(jnp.zeros((max(layers - 1, 1), hidden), param_dtype))
    self.out = nnx.Param((jax.random.normal(ks[3], (hidden, channels)) / math.sqrt(hidden)).astype(param_dtype))
    self.out_bias = nnx.Param(jnp.zeros((channels,), param_dtype))
    self.layers, self.channels = layers, channels

  def __call__(self, c: jax.Array) -> jax.Array:
    """c [L, 1] coordinates in [-1, 1] -> W [L, C]."""
    c = check_floating(c, "c")
    if c.ndim != 2 or c.shape[1] != 1:
      raise ValueError(f"c must be [L, 1], got {c.shape=}")
    dt = jnp.promote_types(c.dtype, self.out[...].dtype)
    filt = lambda l: jnp.sin(self.omega * (c.astype(dt) @ self.filter_a[...][l].astype(dt))
                             + self.filter_phi[...][l].astype(dt))
    h = filt(0)
    for l in range(1, self.layers):
      h = (h @ self.mix[...][l - 1].astype(dt) + self.mix_bias[...][l - 1].astype(dt)) * filt(l)
    return h @ self.out[...].astype(dt) + self.out_bias[...].astype(dt)


def instance_standardize(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  """Zero mean, unit variance over the sequence axis, per example and channel (the paper's instance
  standardisation: Zhang, "HyperZ·Z·W Operator Connects Slow-Fast Networks for Full Context Interaction", 2024,
  arXiv:2401.17948, Sec. 3), x [..., L, C] -> [..., L, C]."""
  x = check_floating(x, "x")
  mean = jnp.mean(x, axis=-2, keepdims=True)
  var = jnp.var(x, axis=-2, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


class HyperZZW(nnx.Module):
  """The global HyperZ·Z·W layer: the slow net generates W [L, C] from the coordinates of a length-L input and
  Y = Z (*) (W ⊙ Z) (`hyperzzw_conv`; Zhang 2024, arXiv:2401.17948, Sec. 3). z [B, L, C] -> [B, L, C]; any L.

  Args:
    channels: C.
    hidden: the slow net's width.
    layers: the slow net's number of filters.
    omega: the slow net's base frequency.
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, channels: int, *, hidden: int = 32, layers: int = 2, omega: float = 8.0,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    self.channels = channels
    self.slow_net = HyperKernelMLP(channels, hidden, layers, omega=omega, param_dtype=param_dtype, rngs=rngs)

  def hyper_kernel(self, length: int) -> jax.Array:
    """W [length, C] (divided by length so the global sum stays O(1) in L)."""
    return self.slow_net(kernel_coordinates(length)) / length

  def __call__(self, z: jax.Array) -> jax.Array:
    """z [..., L, C] -> [..., L, C]."""
    z = check_floating(z, "z")
    if z.ndim < 2 or z.shape[-1] != self.channels:
      raise ValueError(f"z must be [..., L, channels={self.channels}], got {z.shape=}")
    return hyperzzw_conv(z, self.hyper_kernel(z.shape[-2]).astype(z.dtype))


class TerminatorBlock(nnx.Module):
  """A residual-free slow-fast block (a reduced Terminator SFNE block, Zhang 2024, arXiv:2401.17948, Sec. 3 and
  Fig. 3): three branches, each instance-standardised over the sequence,

    global: g = HyperZZW(z), then g * sigmoid(g) (si-GLU);
    local:  a depthwise circular convolution of z with a `local_size` kernel generated by a second slow net;
    mixer:  a pointwise channel mixer z M;

  concatenated [..., L, 3C] and compressed by a bottleneck to `out_channels`, then GELU. No residual connection.

  Args:
    channels: C, the input channels.
    out_channels: the block's output channels.
    local_size: the local kernel's length (odd).
    hidden: the slow nets' width.
    global_branch: keep the global HyperZ·Z·W branch (False: an ablation whose global branch outputs zeros;
      positions then interact only through the local kernel and the standardisation's per-sequence statistics).
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, channels: int, out_channels: int, *, local_size: int = 3, hidden: int = 32,
               global_branch: bool = True, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    for name, v in (("channels", channels), ("out_channels", out_channels), ("local_size", local_size)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {name}={v!r}")
    if local_size % 2 != 1:
      raise ValueError(f"local_size must be odd, got {local_size=}")
    self.channels, self.out_channels, self.local_size = channels, out_channels, local_size
    self.use_global = bool(global_branch)
    self.global_branch = HyperZZW(channels, hidden=hidden, param_dtype=param_dtype, rngs=rngs)
    self.local_slow_net = HyperKernelMLP(channels, hidden, 2, param_dtype=param_dtype, rngs=rngs)
    self.mixer = nnx.Linear(channels, channels, param_dtype=param_dtype, rngs=rngs)
    self.bottleneck = nnx.Linear(3 * channels, out_channels, param_dtype=param_dtype, rngs=rngs)

  def local_kernel(self) -> jax.Array:
    """The local hyper-kernel [local_size, C]."""
    return self.local_slow_net(kernel_coordinates(self.local_size)) / self.local_size

  def __call__(self, z: jax.Array) -> jax.Array:
    """z [..., L, C] -> [..., L, out_channels]."""
    z = check_floating(z, "z")
    if z.ndim < 2 or z.shape[-1] != self.channels:
      raise ValueError(f"z must be [..., L, channels={self.channels}], got {z.shape=}")
    if self.use_global:
      g = self.global_branch(z)
      g = g * jax.nn.sigmoid(g)
    else:
      g = jnp.zeros_like(z)
    k = self.local_kernel().astype(z.dtype)
    half = self.local_size // 2
    loc = sum(k[i] * jnp.roll(z, i - half, axis=-2) for i in range(self.local_size))
    mix = self.mixer(z)
    h = jnp.concatenate([instance_standardize(b) for b in (g, loc, mix)], axis=-1)
    return jax.nn.gelu(self.bottleneck(h))


__all__ = ["HyperKernelMLP", "HyperZZW", "TerminatorBlock", "hyperzzw_conv", "instance_standardize",
           "kernel_coordinates"]
