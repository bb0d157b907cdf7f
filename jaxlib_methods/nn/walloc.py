"""WaLLoC's shallow asymmetric autoencoder in the wavelet packet domain (issue 22, paper [211]).

Paper [211]: Dan Jacobellis, Neeraja J. Yadwadkar, "Learned Compression for Compressed Learning" (WaLLoC), 2024,
arXiv:2412.09405. The codec is: a wavelet packet transform (WPT, `jaxlib_methods.signal.wavelet_packet_transform`)
that turns every 2^J x 2^J block of each of the C channels into 4^J coefficients; an encoder that is a *single linear
layer* applied at every position to the C 4^J coefficients (the asymmetry: "this allows us to replace the encoding
DNN with a single linear layer", the authors' README, github.com/danjacobellis/walloc; `lightweight_encode=True`,
`Ne=None` in their training notebook), giving `latent_dim` channels, i.e. a dimensionality reduction of
C 4^J / latent_dim; additive uniform noise on the latents during training as the entropy bottleneck (rounding at
inference); a heavier decoder back to the C 4^J coefficients; and the inverse WPT.

What is built here is the structure, not the released networks: the encoder is exactly one linear map per position
(as in the paper); the decoder is a pointwise MLP of width `decoder_hidden` (the released decoder is a deeper
network of width `Nd = 768`; its layers could not be read here, the package source is not in the repository), or a
single linear map with `decoder_hidden=None`. The wavelet is the Haar or db2 filter of `signal` (the released codec's
wavelet may differ). The entropy coder itself is out of scope.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import signal
from jaxlib_methods.validation import check_floating


class WaLLoCAutoencoder(nnx.Module):
  """WaLLoC's codec structure: WPT, one linear encoder layer, noise bottleneck, decoder, inverse WPT (Jacobellis &
  Yadwadkar, "Learned Compression for Compressed Learning", 2024, arXiv:2412.09405, Sec. 3).

  Shapes: images x [B, C, H, W] (H, W divisible by 2^J) -> latents [B, latent_dim, H / 2^J, W / 2^J] ->
  reconstruction [B, C, H, W]. The encoder is linear, so `encode(a x + b y) = a encode(x) + b encode(y)` exactly;
  with `decoder_hidden=None` the whole codec (without the bottleneck) is the linear map WPT^-1 D E WPT, which
  reconstructs exactly every input whose coefficient vectors lie in the range of D when E D = I.

  Args:
    channels: C, input channels.
    levels: J >= 1, WPT levels (the authors' `J`, 3 for RGB images).
    latent_dim: latent channels (the authors' `latent_dim`, 16 for RGB at J = 3: a 12x reduction).
    decoder_hidden: width of the decoder's hidden layer (GELU), or None for a linear decoder.
    wavelet: "haar" or "db2".
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, channels: int, *, levels: int = 3, latent_dim: int = 16, decoder_hidden: Optional[int] = 256,
               wavelet: Literal["haar", "db2"] = "haar", param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    for name, v in (("channels", channels), ("levels", levels), ("latent_dim", latent_dim)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
    if decoder_hidden is not None and (isinstance(decoder_hidden, bool) or not isinstance(decoder_hidden, int)
                                       or decoder_hidden < 1):
      raise ValueError(f"decoder_hidden must be None or an int >= 1, got {decoder_hidden=!r}")
    if wavelet not in ("haar", "db2"):
      raise ValueError(f"wavelet must be 'haar' or 'db2', got {wavelet=!r}")
    self.channels, self.levels, self.latent_dim, self.wavelet = channels, levels, latent_dim, wavelet
    coeffs = channels * 4 ** levels
    if latent_dim > coeffs:
      raise ValueError(f"latent_dim must be <= channels * 4**levels = {coeffs} (a reduction), got {latent_dim=}")
    self.encoder = nnx.Linear(coeffs, latent_dim, param_dtype=param_dtype, rngs=rngs)
    if decoder_hidden is None:
      self.decoder_in, self.decoder_out = None, nnx.Linear(latent_dim, coeffs, param_dtype=param_dtype, rngs=rngs)
    else:
      self.decoder_in = nnx.Linear(latent_dim, decoder_hidden, param_dtype=param_dtype, rngs=rngs)
      self.decoder_out = nnx.Linear(decoder_hidden, coeffs, param_dtype=param_dtype, rngs=rngs)

  @property
  def reduction_ratio(self) -> float:
    """Dimensionality reduction C 4^J / latent_dim (numbers per pixel block in over numbers out)."""
    return self.channels * 4 ** self.levels / self.latent_dim

  def encode(self, x: jax.Array) -> jax.Array:
    """x [B, C, H, W] -> latents [B, latent_dim, H / 2^J, W / 2^J] (WPT, then the one linear layer)."""
    x = check_floating(x, "x")
    if x.ndim != 4 or x.shape[1] != self.channels:
      raise ValueError(f"x must be [B, {self.channels}, H, W], got x.shape={x.shape}")
    c = signal.wavelet_packet_transform(x, wavelet=self.wavelet, levels=self.levels)   # [B, C, 4^J, h, w]
    b, _, _, h, w = c.shape
    c = c.reshape(b, -1, h, w)
    return jnp.moveaxis(self.encoder(jnp.moveaxis(c, 1, -1)), -1, 1)

  def decode(self, latents: jax.Array) -> jax.Array:
    """latents [B, latent_dim, h, w] -> reconstruction [B, C, h 2^J, w 2^J] (decoder, then the inverse WPT)."""
    z = check_floating(latents, "latents")
    if z.ndim != 4 or z.shape[1] != self.latent_dim:
      raise ValueError(f"latents must be [B, {self.latent_dim}, h, w], got latents.shape={z.shape}")
    u = jnp.moveaxis(z, 1, -1)
    if self.decoder_in is not None:
      u = jax.nn.gelu(self.decoder_in(u))
    c = jnp.moveaxis(self.decoder_out(u), -1, 1)                                   # [B, C 4^J, h, w]
    b, _, h, w = c.shape
    c = c.reshape(b, self.channels, 4 ** self.levels, h, w)
    return signal.inverse_wavelet_packet_transform(c, wavelet=self.wavelet, levels=self.levels)

  def __call__(self, x: jax.Array, *, key: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array]:
    """x [B, C, H, W] -> (reconstruction [B, C, H, W], bottlenecked latents). With `key` (training) the latents get
    additive U(-1/2, 1/2) noise, the entropy bottleneck's differentiable proxy for quantisation; without it
    (inference) they are rounded."""
    z = self.encode(x)
    if key is None:
      z = jnp.round(z)
    else:
      z = z + jax.random.uniform(key, z.shape, z.dtype, -0.5, 0.5)
    return self.decode(z), z


__all__ = ["WaLLoCAutoencoder"]
