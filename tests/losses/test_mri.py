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

  @jax.jit  # one compilation: l1 (and its gradient in the network parameter a), l2, sigma = 0
  def run(y, a):
    l1 = lambda a: losses.noise2recon_consistency_loss(lambda k: recon(k, a), y, jnp.asarray(mask), key,
                                                       jnp.asarray(sigma))
    l2 = losses.noise2recon_consistency_loss(recon, y, jnp.asarray(mask), key, jnp.asarray(sigma), metric="l2")
    zero = losses.noise2recon_consistency_loss(recon, y, jnp.asarray(mask), key, 0.0)
    eps = jax.random.normal(key, (2, b, h, w), jnp.float32)  # the documented draw, for the NumPy reference
    return l1(a), jax.grad(lambda a: l1(a).sum())(a), l2, zero, eps

  got, g, l2, zero, eps = (np.asarray(v) for v in run(jnp.asarray(y), scale))
  eps = eps.astype(np.float64)
  y_aug = y + mask * sigma[:, None, None] * (eps[0] + 1j * eps[1])
  u, v = np.fft.ifft2(y_aug, norm="ortho"), np.fft.ifft2(y, norm="ortho")
  np.testing.assert_allclose(got, np.mean(np.abs(scale * u - scale * v), (1, 2)), rtol=1e-5)
  np.testing.assert_allclose(l2, np.mean(np.abs(scale * (u - v)) ** 2, (1, 2)), rtol=1e-5)
  assert np.all(zero == 0)
  # The gradient in a flows through the augmented branch only (the base a v is a constant):
  # d/da mean|a u - a0 v| at a = a0 is mean( Re(conj(a0 (u - v)) u) / |a0 (u - v)| ); differentiating the base too
  # would give mean|u - v| instead.
  r = scale * (u - v)
  np.testing.assert_allclose(g, np.sum(np.mean(np.real(np.conj(r) * u) / np.abs(r), (1, 2))), rtol=1e-4)
  with pytest.raises(ValueError, match="metric"):
    losses.noise2recon_consistency_loss(recon, jnp.asarray(y), jnp.asarray(mask), key, 0.1, metric="ssim")
  with pytest.raises(TypeError, match="recon_fn"):
    losses.noise2recon_consistency_loss(None, jnp.asarray(y), jnp.asarray(mask), key, 0.1)
