"""Signal and imaging transforms of the application papers: MRI operators, wavelet packets, Fourier subnet masks.

Papers:
  [15]  Dimitrios Karkalousos, Samuel Noteboom, Hanneke E. Hulst, Frans M. Vos, Matthan W. A. Caan, "Assessment
        of Data Consistency through Cascades of Independently Recurrent Inference Machines for fast and robust
        accelerated MRI reconstruction" (CIRIM), Phys. Med. Biol. 2022, arXiv:2111.15498 (Sec. 2: the RIM takes
        the gradient of the log-likelihood, Fᴴ M (M F x − y) for a single coil; hard data consistency replaces the
        sampled k-space entries by the measurements).
  [174] Arjun D. Desai, Batu M. Ozturkler, Christopher M. Sandino et al., "Noise2Recon: Enabling Joint MRI
        Reconstruction and Denoising with Semi-Supervised and Self-Supervised Learning", 2021/2023,
        arXiv:2110.00075 (the noise augmentation y + M ε of the consistency branch; the loss is
        `jaxlib_methods.losses.noise2recon_consistency_loss`).
  [211] Dan Jacobellis, Neeraja J. Yadwadkar, "Learned Compression for Compressed Learning" (WaLLoC), 2024,
        arXiv:2412.09405 (a wavelet packet transform is the invertible first stage of the codec, around the shallow
        asymmetric autoencoder and noise bottleneck of `jaxlib_methods.nn.WaLLoCAutoencoder`; the Haar and db2
        filters here are orthogonal choices of ours, not necessarily the wavelet of the authors' released codec).
  [214] Haeyong Kang, Jaehong Yoon, DaHyun Kim, Sung Ju Hwang, Chang D. Yoo, "Progressive Fourier Neural
        Representation for Sequential Video Compilation" (PFNR), ICLR 2024, arXiv:2306.11305 (Sec. 3: the Fourier
        Subneural Operator masks the real and imaginary parts of the spectral weights with binary top-c% masks of
        learned scores, WSN-style; weights used by earlier sessions are frozen, so earlier videos decode losslessly).

Conventions. Images and k-space are the last two axes [..., H, W]; F is the orthonormal 2-D DFT
(`norm="ortho"`, so Fᴴ = F⁻¹ and ‖F x‖ = ‖x‖), optionally centred (`centered=True`: fftshift ∘ F ∘ ifftshift,
the fastMRI / DIRECT convention, still unitary). Undersampling masks M are boolean, broadcastable to [..., H, W].
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation

__all__ = [
    "fft2c", "ifft2c", "mri_forward", "mri_adjoint", "mri_dc_grad", "hard_dc", "noise2recon_augment",
    "wavelet_filters", "wavelet_packet_transform", "inverse_wavelet_packet_transform",
    "fourier_subnet_mask", "fourier_subnet_spectral_conv",
]


# ---------------------------------------------------------------------------------------------- MRI operators [15]
def _check_image(x: Any, name: str) -> jax.Array:
  """A complex (or real floating, promoted to complex) array of rank >= 2; TypeError / ValueError otherwise."""
  dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
  if not (jnp.issubdtype(dtype, jnp.complexfloating) or jnp.issubdtype(dtype, jnp.floating)):
    raise TypeError(f"{name} must be a complex (or real floating) array, got {name}.dtype={np.dtype(dtype).name}")
  x = jnp.asarray(x)
  if x.ndim < 2:
    raise ValueError(f"{name} must have the image axes last, [..., H, W] (rank >= 2), got {name}.shape={x.shape}")
  if not jnp.issubdtype(x.dtype, jnp.complexfloating):
    x = x.astype(jnp.result_type(validation.compute_dtype_for(x.dtype), jnp.complex64))
  return x


def _check_mask(mask: Any, shape: tuple, name: str = "mask") -> jax.Array:
  mask = validation.check_bool(mask, name)
  try:
    np.broadcast_shapes(mask.shape, shape)
  except ValueError:
    raise ValueError(f"{name} must broadcast to the k-space shape {shape}, got {name}.shape={mask.shape}") from None
  if mask.ndim > len(shape) or np.broadcast_shapes(mask.shape, shape) != tuple(shape):
    raise ValueError(f"{name} must broadcast to the k-space shape {shape} without enlarging it, got "
                     f"{name}.shape={mask.shape}")
  return mask


def _check_centered(centered: Any) -> None:
  if not isinstance(centered, (bool, np.bool_)):
    raise TypeError(f"centered must be a Python bool, got {centered=!r}")


def fft2c(x: jax.Array, *, centered: bool = False) -> jax.Array:
  """Orthonormal 2-D DFT over the last two axes (unitary: ‖F x‖ = ‖x‖, Fᴴ = F⁻¹), the F of CIRIM's forward model.

  CIRIM [15]: Karkalousos et al. 2022, "Assessment of Data Consistency through Cascades of Independently Recurrent
  Inference Machines ...", arXiv:2111.15498, Sec. 2.

  Args:
    x: [..., H, W] complex image (a real floating one is promoted to complex).
    centered: apply ifftshift before and fftshift after (k-space centre in the middle of the array).

  Returns:
    [..., H, W] complex k-space.
  """
  _check_centered(centered)
  x = _check_image(x, "x")
  if centered:
    x = jnp.fft.ifftshift(x, axes=(-2, -1))
  k = jnp.fft.fft2(x, norm="ortho")
  return jnp.fft.fftshift(k, axes=(-2, -1)) if centered else k


def ifft2c(k: jax.Array, *, centered: bool = False) -> jax.Array:
  """Inverse of `fft2c` (= its adjoint): [..., H, W] complex k-space -> [..., H, W] complex image (CIRIM [15],
  arXiv:2111.15498, Sec. 2).

  Args:
    k: [..., H, W] complex k-space.
    centered: the k-space centre is in the middle of the array (as `fft2c(..., centered=True)` returns it).

  Returns:
    [..., H, W] complex image.
  """
  _check_centered(centered)
  k = _check_image(k, "k")
  if centered:
    k = jnp.fft.ifftshift(k, axes=(-2, -1))
  x = jnp.fft.ifft2(k, norm="ortho")
  return jnp.fft.fftshift(x, axes=(-2, -1)) if centered else x


def mri_forward(x: jax.Array, mask: jax.Array, *, centered: bool = False) -> jax.Array:
  """Single-coil undersampled MRI forward operator A x = M F x (CIRIM [15], Sec. 2; arXiv:2111.15498).

  Args:
    x: [..., H, W] complex image.
    mask: bool, broadcastable to [..., H, W]; True where k-space is sampled.
    centered: centred FFT convention (see `fft2c`).

  Returns:
    [..., H, W] complex k-space, zero where not sampled.
  """
  x = _check_image(x, "x")
  mask = _check_mask(mask, x.shape)
  k = fft2c(x, centered=centered)
  return jnp.where(mask, k, jnp.zeros((), k.dtype))


def mri_adjoint(y: jax.Array, mask: jax.Array, *, centered: bool = False) -> jax.Array:
  """Adjoint of `mri_forward`: Aᴴ y = Fᴴ M y (the zero-filled reconstruction of measured k-space y).

  Karkalousos et al., "Assessment of Data Consistency through Cascades of Independently Recurrent Inference Machines
  for fast and robust accelerated MRI reconstruction" (CIRIM), 2022, arXiv:2111.15498 (Sec. 2).

  ⟨A x, y⟩ = ⟨x, Aᴴ y⟩ for every x and y (tested); Aᴴ A is the orthogonal projection Fᴴ M F.

  Args:
    y: [..., H, W] complex k-space measurements.
    mask: bool, broadcastable to [..., H, W]; True where k-space is sampled.
    centered: centred FFT convention (see `fft2c`).

  Returns:
    [..., H, W] complex image.
  """
  y = _check_image(y, "y")
  mask = _check_mask(mask, y.shape)
  return ifft2c(jnp.where(mask, y, jnp.zeros((), y.dtype)), centered=centered)


def mri_dc_grad(x: jax.Array, y: jax.Array, mask: jax.Array, *, centered: bool = False) -> jax.Array:
  """The data-consistency gradient Fᴴ M (M F x − y) that CIRIM's recurrent inference machines take as input.

  It is the gradient of f(x) = ½ ‖M F x − y‖² in the steepest-ascent (Wirtinger) convention
  ∇f = 2 ∂f/∂x̄ = ∂f/∂Re x + i ∂f/∂Im x, i.e. the gradient of f over the real pair (Re x, Im x) packed as one
  complex number. `jax.grad` of a real function of a complex argument returns the conjugate of this:
  `mri_dc_grad(x, y, mask) == jnp.conj(jax.grad(f)(x))` (tested both ways). Karkalousos et al. 2022 (CIRIM),
  arXiv:2111.15498, Sec. 2 (single coil: the coil sensitivity maps are 1).

  Args:
    x: [..., H, W] complex image estimate.
    y: [..., H, W] complex measured k-space (entries outside the mask are ignored: M y is used).
    mask: bool, broadcastable to [..., H, W]; True where k-space is sampled.
    centered: centred FFT convention (see `fft2c`).

  Returns:
    [..., H, W] complex gradient, same shape as x.
  """
  x = _check_image(x, "x")
  y = _check_image(y, "y")
  if x.shape != y.shape:
    raise ValueError(f"x and y must have the same shape, got x.shape={x.shape}, y.shape={y.shape}")
  mask = _check_mask(mask, x.shape)
  dtype = jnp.result_type(x.dtype, y.dtype)
  x, y = x.astype(dtype), y.astype(dtype)
  residual = jnp.where(mask, fft2c(x, centered=centered) - y, jnp.zeros((), dtype))
  return ifft2c(residual, centered=centered)


def hard_dc(x: jax.Array, y: jax.Array, mask: jax.Array, *, centered: bool = False) -> jax.Array:
  """Hard data consistency: Fᴴ ((1 − M) F x + M y), the projection onto {x : M F x = M y} (CIRIM [15]).

  The sampled k-space of the result equals y exactly; the unsampled entries keep the estimate's. Karkalousos et al.,
  "Assessment of Data Consistency through Cascades of Independently Recurrent Inference Machines for fast and robust
  accelerated MRI reconstruction", Phys. Med. Biol. 2022, arXiv:2111.15498 (Sec. 2).

  Args:
    x: [..., H, W] complex image estimate.
    y: [..., H, W] complex measured k-space.
    mask: bool, broadcastable to [..., H, W]; True where k-space is sampled.
    centered: centred FFT convention (see `fft2c`).

  Returns:
    [..., H, W] complex image.
  """
  x = _check_image(x, "x")
  y = _check_image(y, "y")
  if x.shape != y.shape:
    raise ValueError(f"x and y must have the same shape, got x.shape={x.shape}, y.shape={y.shape}")
  mask = _check_mask(mask, x.shape)
  dtype = jnp.result_type(x.dtype, y.dtype)
  k = fft2c(x.astype(dtype), centered=centered)
  return ifft2c(jnp.where(mask, y.astype(dtype), k), centered=centered)


def noise2recon_augment(y: jax.Array, mask: jax.Array, key: jax.Array, sigma: Any) -> jax.Array:
  """Noise2Recon's augmentation of measured k-space: y + M σ (ε_re + i ε_im), ε_re, ε_im ~ N(0, I) independent.

  Only sampled entries are perturbed (the noise model of an acquisition: unsampled entries stay exactly 0 / as
  given). As in the authors' code (meddlr `NoiseModel`), σ is the standard deviation of EACH of the real and the
  imaginary part. Desai et al. 2021, arXiv:2110.00075, Sec. 3 (consistency branch).

  Args:
    y: [B, ..., H, W] complex k-space (B examples).
    mask: bool, broadcastable to y's shape; True where sampled.
    key: a jax PRNG key. The noise is `sigma * jax.random.normal(key, (2,) + y.shape)` (real part first).
    sigma: noise level >= 0: a number or one per example, shape [B].

  Returns:
    [B, ..., H, W] complex noisy k-space, y's dtype.
  """
  y = _check_image(y, "y")
  mask = _check_mask(mask, y.shape)
  valid = validation.check_positive_values(sigma, "sigma", shape=(y.shape[0],), allow_zero=True)
  real = jnp.real(y).dtype
  sigma = jnp.asarray(sigma, real)
  sigma = sigma.reshape(sigma.shape + (1,) * (y.ndim - sigma.ndim)) if sigma.ndim else sigma
  eps = jax.random.normal(key, (2,) + y.shape, real)
  noise = (sigma * eps[0] + 1j * (sigma * eps[1])).astype(y.dtype)
  out = y + jnp.where(mask, noise, jnp.zeros((), y.dtype))
  if valid is not None:
    bad = jnp.where(valid, 1.0, jnp.nan).astype(real)
    out = out * bad.reshape(bad.shape + (1,) * (y.ndim - bad.ndim))
  return out


# ------------------------------------------------------------------------------------ wavelet packets [211]
def wavelet_filters(wavelet: Literal["haar", "db2"] = "haar") -> tuple[np.ndarray, np.ndarray]:
  """Orthonormal analysis filters (lowpass h, highpass g) of a Daubechies wavelet, float64 NumPy; the filters of
  `wavelet_packet_transform` (WaLLoC [211], "Learned Compression for Compressed Learning", 2024, arXiv:2412.09405).

  h is the scaling filter with Σ h = √2 and Σ h² = 1; g[k] = (−1)^k h[K − 1 − k] (quadrature mirror).
  Haar: h = [1, 1] / √2. db2 (Daubechies 1988, 4 taps): h = [1 + √3, 3 + √3, 3 − √3, 1 − √3] / (4 √2).

  Args:
    wavelet: "haar" or "db2".

  Returns:
    (h, g), each [K] float64.
  """
  if wavelet == "haar":
    h = np.array([1.0, 1.0]) / math.sqrt(2.0)
  elif wavelet == "db2":
    s3 = math.sqrt(3.0)
    h = np.array([1 + s3, 3 + s3, 3 - s3, 1 - s3]) / (4 * math.sqrt(2.0))
  else:
    raise ValueError(f"wavelet must be 'haar' or 'db2', got {wavelet=!r}")
  g = np.array([(-1) ** k * h[len(h) - 1 - k] for k in range(len(h))])
  return h, g


def _analysis(x: jax.Array, h: np.ndarray, g: np.ndarray, axis: int) -> tuple[jax.Array, jax.Array]:
  """One periodic two-channel analysis step along `axis`: a[n] = Σ_k h[k] x[(2n + k) mod N] (same with g)."""
  x = jnp.moveaxis(x, axis, -1)
  n = x.shape[-1]
  idx = (2 * np.arange(n // 2)[:, None] + np.arange(len(h))[None, :]) % n  # [N/2, K]
  xs = x[..., idx]
  a = jnp.einsum("...nk,k->...n", xs, jnp.asarray(h, x.dtype))
  d = jnp.einsum("...nk,k->...n", xs, jnp.asarray(g, x.dtype))
  return jnp.moveaxis(a, -1, axis), jnp.moveaxis(d, -1, axis)


def _synthesis(a: jax.Array, d: jax.Array, h: np.ndarray, g: np.ndarray, axis: int) -> jax.Array:
  """The transpose of `_analysis` (its inverse, the filter bank being orthonormal)."""
  a, d = jnp.moveaxis(a, axis, -1), jnp.moveaxis(d, axis, -1)
  half = a.shape[-1]
  n = 2 * half
  idx = (2 * np.arange(half)[:, None] + np.arange(len(h))[None, :]) % n
  contrib = a[..., :, None] * jnp.asarray(h, a.dtype) + d[..., :, None] * jnp.asarray(g, a.dtype)  # [..., N/2, K]
  out = jnp.zeros(a.shape[:-1] + (n,), a.dtype).at[..., idx].add(contrib)
  return jnp.moveaxis(out, -1, axis)


def _check_wpt_args(wavelet: Any, levels: Any, ndim: Any) -> tuple[np.ndarray, np.ndarray]:
  if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
    raise ValueError(f"levels must be an int >= 1, got {levels=!r}")
  if isinstance(ndim, bool) or not isinstance(ndim, (int, np.integer)) or ndim not in (1, 2):
    raise ValueError(f"ndim must be 1 (signals [..., N]) or 2 (images [..., H, W]), got {ndim=!r}")
  return wavelet_filters(wavelet)


def wavelet_packet_transform(x: jax.Array, *, wavelet: Literal["haar", "db2"] = "haar", levels: int = 1,
                             ndim: Literal[1, 2] = 2) -> jax.Array:
  """Full wavelet packet transform (every subband split again at every level), periodic boundary, orthonormal.

  WaLLoC [211] (Jacobellis et al. 2024, arXiv:2412.09405, Sec. 3) uses the wavelet packet transform as the
  invertible, energy-preserving first stage of its codec, turning each 2^L x 2^L block of pixels into 4^L channels.
  With an orthogonal wavelet and periodic extension the transform is an orthogonal matrix: it preserves energy
  (Parseval, ‖WPT x‖ = ‖x‖) and `inverse_wavelet_packet_transform` inverts it exactly (tested to 1e-6 in float32).

  Channel order: at each level every channel c becomes channels 4c + (0: LL, 1: LH, 2: HL, 3: HH) for images (first
  letter: the filter along H) and 2c + (0: L, 1: H) for signals.

  Args:
    x: [..., H, W] (ndim=2) or [..., N] (ndim=1) real floating; H, W (or N) divisible by 2**levels.
    wavelet: "haar" or "db2" (see `wavelet_filters`).
    levels: number of levels L >= 1.
    ndim: 2 for images, 1 for signals.

  Returns:
    [..., 4**L, H / 2**L, W / 2**L] (ndim=2) or [..., 2**L, N / 2**L] (ndim=1), x's dtype (float16/bfloat16
    computed in float32).
  """
  h, g = _check_wpt_args(wavelet, levels, ndim)
  x = validation.check_floating(x, "x")
  if x.ndim < ndim:
    raise ValueError(f"x must have rank >= {ndim} for ndim={ndim}, got x.shape={x.shape}")
  for size in x.shape[x.ndim - ndim:]:
    if size % (2 ** levels) or size == 0:
      raise ValueError(f"the transformed axes of x must be positive multiples of 2**levels={2 ** levels}, got "
                       f"x.shape={x.shape}")
  dtype = x.dtype
  c = x.astype(validation.compute_dtype_for(dtype))[..., None, :] if ndim == 1 else \
      x.astype(validation.compute_dtype_for(dtype))[..., None, :, :]
  for _ in range(levels):
    if ndim == 1:
      a, d = _analysis(c, h, g, axis=-1)
      c = jnp.stack([a, d], axis=-2)  # [..., C, 2, N/2]
      c = c.reshape(c.shape[:-3] + (c.shape[-3] * 2, c.shape[-1]))
    else:
      lo, hi = _analysis(c, h, g, axis=-2)
      bands = []
      for part in (lo, hi):
        a, d = _analysis(part, h, g, axis=-1)
        bands += [a, d]
      c = jnp.stack(bands, axis=-3)  # [..., C, 4, H/2, W/2]
      c = c.reshape(c.shape[:-4] + (c.shape[-4] * 4,) + c.shape[-2:])
  return c.astype(dtype)


def inverse_wavelet_packet_transform(coeffs: jax.Array, *, wavelet: Literal["haar", "db2"] = "haar",
                                     levels: int = 1, ndim: Literal[1, 2] = 2) -> jax.Array:
  """Inverse of `wavelet_packet_transform` (its transpose): coefficients -> signal or image, the last stage of
  WaLLoC's decoder ([211], "Learned Compression for Compressed Learning", 2024, arXiv:2412.09405).

  Args:
    coeffs: [..., 4**L, h, w] (ndim=2) or [..., 2**L, n] (ndim=1) real floating, as the forward transform returns.
    wavelet: "haar" or "db2"; the one used forward.
    levels: L, the one used forward.
    ndim: 2 for images, 1 for signals.

  Returns:
    [..., h * 2**L, w * 2**L] or [..., n * 2**L], coeffs' dtype.
  """
  h, g = _check_wpt_args(wavelet, levels, ndim)
  coeffs = validation.check_floating(coeffs, "coeffs")
  per = 2 ** (ndim * levels)
  if coeffs.ndim < ndim + 1 or coeffs.shape[-ndim - 1] != per:
    raise ValueError(f"coeffs must have {per} channels on axis {-ndim - 1} for ndim={ndim}, levels={levels}, got "
                     f"coeffs.shape={coeffs.shape}")
  dtype = coeffs.dtype
  c = coeffs.astype(validation.compute_dtype_for(dtype))
  for _ in range(levels):
    if ndim == 1:
      c = c.reshape(c.shape[:-2] + (c.shape[-2] // 2, 2, c.shape[-1]))
      c = _synthesis(c[..., 0, :], c[..., 1, :], h, g, axis=-1)
    else:
      c = c.reshape(c.shape[:-3] + (c.shape[-3] // 4, 4) + c.shape[-2:])
      lo = _synthesis(c[..., 0, :, :], c[..., 1, :, :], h, g, axis=-1)
      hi = _synthesis(c[..., 2, :, :], c[..., 3, :, :], h, g, axis=-1)
      c = _synthesis(lo, hi, h, g, axis=-2)
  return c.reshape(c.shape[:-ndim - 1] + c.shape[-ndim:]).astype(dtype)


# ------------------------------------------------------------------------------- Fourier subnet masks [214]
def fourier_subnet_mask(scores: jax.Array, keep: float) -> jax.Array:
  """WSN-style binary subnetwork mask of the top-c% scores, with a straight-through gradient (PFNR [214]).

  The mask is 1 where `scores >= s_(k)`, the k-th smallest score with k = 1 + round((1 − keep)(n − 1)) (the
  authors' `percentile` rule, github.com/ihaeyong/PFNR, neuralop/spectral_convolution.py), so
  round((1 − keep)(n − 1)) entries are zeroed when the scores are distinct. The backward pass is the identity
  (d mask / d scores = 1, as the authors' `GetSubnetFaster.backward`), so scores can be learnt. PFNR applies it to
  scores of the real and of the imaginary part of every spectral weight separately (Kang et al. 2024,
  arXiv:2306.11305, Sec. 3.2, the Fourier Subneural Operator).

  Args:
    scores: any shape, real floating learnable scores (the ranking is over all entries).
    keep: c, the fraction kept, in (0, 1].

  Returns:
    mask of scores' shape and dtype, entries exactly 0 or 1.
  """
  scores = validation.check_floating(scores, "scores")
  validation.check_in_interval(keep, "keep", 0.0, 1.0, closed_low=False)
  if scores.size == 0:
    raise ValueError(f"scores must have at least one entry, got scores.shape={scores.shape}")
  n = scores.size
  k = 1 + int(round((1.0 - float(keep)) * (n - 1)))
  threshold = jnp.sort(scores.reshape(-1))[k - 1]
  hard = (scores >= threshold).astype(scores.dtype)
  return hard + (scores - jax.lax.stop_gradient(scores))


def fourier_subnet_spectral_conv(x: jax.Array, weight_real: jax.Array, weight_imag: jax.Array,
                                 mask_real: jax.Array, mask_imag: jax.Array) -> jax.Array:
  """The Fourier Subneural Operator's spectral convolution with masked complex weights (PFNR [214]).

  out = irfft2( P( rfft2(x) ) ) where, on the two retained corners of the rfft2 spectrum (rows [:m1] and [−m1:],
  columns [:m2]), P multiplies by W = W_re ⊙ M_re + i W_im ⊙ M_im contracted over input channels, and every other
  frequency is set to 0 (FNO-style truncation). FFT normalisation "backward" (numpy's default), as the authors'
  neuralop-based layer. Kang et al. 2024, arXiv:2306.11305, Sec. 3.2.

  Args:
    x: [B, C_in, H, W] real floating.
    weight_real: [2, C_in, C_out, m1, m2] real parts (corner 0: rows [:m1], corner 1: rows [−m1:]);
      2 m1 <= H and m2 <= W // 2 + 1.
    weight_imag: imaginary parts, same shape as weight_real.
    mask_real: binary mask of weight_real's shape (e.g. from `fourier_subnet_mask`).
    mask_imag: binary mask of weight_imag's shape.

  Returns:
    [B, C_out, H, W] real, x's dtype.
  """
  x = validation.check_floating(x, "x")
  names = ("weight_real", "weight_imag", "mask_real", "mask_imag")
  arrs = [validation.check_floating(a, n) for a, n in zip((weight_real, weight_imag, mask_real, mask_imag), names)]
  if x.ndim != 4:
    raise ValueError(f"x must be [B, C_in, H, W], got x.shape={x.shape}")
  shape = arrs[0].shape
  for a, n in zip(arrs, names):
    if a.ndim != 5 or a.shape != shape:
      raise ValueError(f"{n} must be [2, C_in, C_out, m1, m2] with the shape of weight_real, got {n}.shape={a.shape}")
  _, c_in, _, m1, m2 = shape
  if shape[0] != 2 or c_in != x.shape[1]:
    raise ValueError(f"weight_real must be [2, C_in={x.shape[1]}, C_out, m1, m2], got weight_real.shape={shape}")
  h, w = x.shape[-2:]
  if 2 * m1 > h or m2 > w // 2 + 1 or m1 < 1 or m2 < 1:
    raise ValueError(f"modes (m1, m2)=({m1}, {m2}) need 1 <= 2 m1 <= H={h} and 1 <= m2 <= W // 2 + 1={w // 2 + 1}")
  ct = validation.compute_dtype_for(x.dtype)
  wr, wi, mr, mi = (a.astype(ct) for a in arrs)
  weight = (wr * mr) + 1j * (wi * mi)  # [2, C_in, C_out, m1, m2]
  xf = jnp.fft.rfft2(x.astype(ct))  # [B, C_in, H, W//2+1]
  out = jnp.zeros((x.shape[0], shape[2], h, w // 2 + 1), xf.dtype)
  out = out.at[:, :, :m1, :m2].set(jnp.einsum("bixy,ioxy->boxy", xf[:, :, :m1, :m2], weight[0]))
  out = out.at[:, :, h - m1:, :m2].set(jnp.einsum("bixy,ioxy->boxy", xf[:, :, h - m1:, :m2], weight[1]))
  return jnp.fft.irfft2(out, s=(h, w)).astype(x.dtype)
