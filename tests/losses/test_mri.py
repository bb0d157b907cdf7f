"""Noise2Recon's consistency loss [174] vs a float64 NumPy transcription (zero-filled reconstruction through the
orthonormal FFT, the same noise), and its stop-gradient on the base branch (autodiff)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses, signal

RNG = np.random.default_rng(0)


def test_noise2recon_consistency_loss_matches_numpy_and_stops_base_gradient():
  b, h, w = 3, 6, 4
  mask = RNG.random((b, h, w)) < 0.5
  y = np.where(mask, RNG.normal(size=(b, h, w)) + 1j * RNG.normal(size=(b, h, w)), 0).astype(np.complex64)
  sigma = np.array([0.1, 0.5, 1.0], np.float32)
  key = jax.random.key(7)
  scale = 1.3

  def recon(k, a=scale):  # a "network": scaled zero-filled reconstruction, per example
    return a * signal.ifft2c(k)

  fn = jax.jit(lambda y, a: losses.noise2recon_consistency_loss(lambda k: recon(k, a), y, jnp.asarray(mask), key,
                                                               jnp.asarray(sigma)))
  got = np.asarray(fn(jnp.asarray(y), scale))
  eps = np.asarray(jax.random.normal(key, (2, b, h, w), jnp.float32), np.float64)
  y_aug = y + mask * sigma[:, None, None] * (eps[0] + 1j * eps[1])
  ref = np.mean(np.abs(scale * np.fft.ifft2(y_aug, norm="ortho") - scale * np.fft.ifft2(y, norm="ortho")), (1, 2))
  np.testing.assert_allclose(got, ref, rtol=1e-5)
  # l2 variant, and sigma = 0 gives exactly 0.
  l2 = losses.noise2recon_consistency_loss(recon, jnp.asarray(y), jnp.asarray(mask), key, jnp.asarray(sigma),
                                           metric="l2")
  ref2 = np.mean(np.abs(scale * np.fft.ifft2(y_aug - y, norm="ortho")) ** 2, (1, 2))
  np.testing.assert_allclose(np.asarray(l2), ref2, rtol=1e-5)
  assert np.all(np.asarray(losses.noise2recon_consistency_loss(recon, jnp.asarray(y), jnp.asarray(mask), key,
                                                               0.0)) == 0)
  # Gradient w.r.t. the network parameter a flows through the augmented branch only: d/da mean|a (u - v)| where the
  # base a v is a constant -> mean( Re(conj(a u - a0 v) u) / |a u - a0 v| ) at a = a0; compare to the NumPy formula.
  g = float(jax.grad(lambda a: fn(jnp.asarray(y), a).sum())(scale))
  u, v = np.fft.ifft2(y_aug, norm="ortho"), np.fft.ifft2(y, norm="ortho")
  r = scale * u - scale * v
  ref_g = np.sum(np.mean(np.real(np.conj(r) * u) / np.abs(r), (1, 2)))
  np.testing.assert_allclose(g, ref_g, rtol=1e-4)
  with pytest.raises(ValueError, match="metric"):
    losses.noise2recon_consistency_loss(recon, jnp.asarray(y), jnp.asarray(mask), key, 0.1, metric="ssim")
  with pytest.raises(TypeError, match="recon_fn"):
    losses.noise2recon_consistency_loss(None, jnp.asarray(y), jnp.asarray(mask), key, 0.1)
