"""[186] Zero-terminal-SNR rescaling against a float64 NumPy transcription of Lin et al.'s Algorithm 1, Stable
Diffusion's published terminal SNR, and the One More Step restoring the data mean on an exact Gaussian model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.data.gaussian_mixture import make_gaussian_mixture
from jaxlib_methods.sampling import (ddim_sample, gaussian_mixture_denoiser, oms_step, rescale_zero_terminal_snr,
                                     scaled_linear_betas, terminal_snr)


def _rescale_numpy(betas):
  """Lin et al. 2023 (arXiv:2305.08891) Algorithm 1, line by line, float64."""
  alphas_bar_sqrt = np.sqrt(np.cumprod(1 - betas))
  a0, at = alphas_bar_sqrt[0], alphas_bar_sqrt[-1]
  alphas_bar_sqrt = (alphas_bar_sqrt - at) * a0 / (a0 - at)
  alphas_bar = alphas_bar_sqrt ** 2
  alphas = np.concatenate([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])
  return 1 - alphas


def test_zero_terminal_snr_rescaling():
  betas = scaled_linear_betas()
  b64 = (np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2)
  np.testing.assert_allclose(np.asarray(betas), b64, rtol=1e-5)
  # the published flaw: sqrt(alpha_bar_T) = 0.068, SNR_T = 0.0047 (Lin et al. 2023)
  abar = np.cumprod(1 - b64)
  assert abs(np.sqrt(abar[-1]) - 0.068) < 5e-4
  assert abs(float(terminal_snr(betas)) - 0.0047) < 5e-5
  with jax.enable_x64(True):
    new = np.asarray(rescale_zero_terminal_snr(jnp.asarray(b64)))
  np.testing.assert_allclose(new, _rescale_numpy(b64), rtol=1e-12, atol=1e-15)
  new_abar = np.cumprod(1 - new)
  assert new[-1] == 1.0 and new_abar[-1] == 0.0                       # terminal SNR exactly 0
  np.testing.assert_allclose(new_abar[0], abar[0], rtol=1e-14)          # first alpha_bar unchanged
  snr = new_abar / (1 - new_abar)
  assert np.all(np.diff(snr) < 0)                                       # order of the SNRs kept
  assert float(terminal_snr(jnp.asarray(new, jnp.float32))) == 0.0
  with jax.enable_x64(True):
    np.testing.assert_allclose(np.asarray(jax.jit(rescale_zero_terminal_snr)(jnp.asarray(b64))), _rescale_numpy(b64),
                               rtol=1e-12, atol=1e-15)
  with pytest.raises(ValueError, match="betas"):
    rescale_zero_terminal_snr(jnp.array([0.1, 1.5]))
  with pytest.raises(ValueError, match="num_steps"):
    scaled_linear_betas(1)


def test_one_more_step_restores_the_mean_on_an_exact_gaussian_model():
  """1-D data N(mu, s^2) (mean 'brightness' mu), the pretrained model = the exact denoiser for the flawed schedule,
  DDIM over its steps (VP -> VE: x = x_t / sqrt(abar), sigma = sqrt((1 - abar) / abar)). Started at the noise's mean
  0, the sample lands short of mu (pulled toward zero); after the OMS step with the zero-SNR optimal prediction
  x0_pred = E[x_0] = mu it lands on mu: DDIM is linear on a Gaussian and maps the marginal's mean to mu exactly."""
  mu, s = 2.0, 0.5
  data = make_gaussian_mixture(np.ones(1), np.array([[mu]]), np.array([s]))
  abar = np.cumprod(1 - (np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2))
  steps = abar[::-50][:20]                                  # 20 DDIM steps from t = T down
  sig = jnp.asarray(np.concatenate([np.sqrt((1 - steps) / steps), [0.0]]), jnp.float32)
  den = lambda x, sigma, c: (gaussian_mixture_denoiser(data, x, sigma), c)

  def sample(x_t):   # VP x_T -> VE x = x_T / sqrt(abar_T)
    return ddim_sample(den, x_t / np.sqrt(steps[0]), sig, 0)[0]

  x_noise = jnp.zeros((1, 1), jnp.float32)                  # the noise's mean
  plain = float(sample(x_noise)[0, 0])
  x_oms = oms_step(x_noise, jnp.full((1, 1), mu, jnp.float32), steps[0])
  fixed = float(sample(x_oms)[0, 0])
  np.testing.assert_allclose(np.asarray(jax.jit(oms_step, static_argnums=2)(x_noise, x_noise + mu, float(steps[0]))),
                             np.asarray(x_oms), rtol=1e-6)
  assert abs(fixed - mu) < 1e-4
  # without OMS: x = 0 maps to mu (1 - f), f = prod_i (s^2 + sig_{i+1} sig_i) / (s^2 + sig_i^2) the DDIM contraction
  sg = np.asarray(sig, np.float64)
  f = np.prod([(s * s + b * a) / (s * s + a * a) for a, b in zip(sg[:-1], sg[1:])])
  assert abs(plain - mu * (1 - f)) < 1e-4
  assert mu - plain > 0.02 * mu                             # the flaw: pulled toward average brightness 0
  with pytest.raises(ValueError, match="alpha_bar_T"):
    oms_step(x_noise, x_noise, 1.0)


def test_rescale_zero_terminal_snr_rejects_a_unit_beta_before_the_last_step():
  """A beta of 1 before step T zeroes alpha_bar early: Algorithm 1's ratio alpha_bar_t / alpha_bar_{t-1} was 0 / 0
  (NaN betas returned silently); now a ValueError. beta_T = 1 (already zero terminal SNR) stays valid."""
  b = np.full(10, 0.1, np.float32)
  for i in (0, 4):
    bad = b.copy()
    bad[i] = 1.0
    with pytest.raises(ValueError, match="betas"):
      rescale_zero_terminal_snr(jnp.asarray(bad))
  ok = b.copy()
  ok[-1] = 1.0
  out = np.asarray(rescale_zero_terminal_snr(jnp.asarray(ok)))
  assert np.all(np.isfinite(out)) and out[-1] == 1.0


def test_terminal_snr_of_a_bfloat16_schedule_is_accurate():
  """The 1000-factor product alpha_bar_T was taken in the betas' dtype: 0.00359 instead of 0.00468 (-23%) for Stable
  Diffusion's schedule in bfloat16. It is now taken in at least float32 (as `rescale_zero_terminal_snr` does)."""
  b = scaled_linear_betas()
  b16 = b.astype(jnp.bfloat16)
  abar = np.prod(1.0 - np.asarray(b16, np.float64))
  snr = terminal_snr(b16)
  assert snr.dtype == jnp.float32
  np.testing.assert_allclose(float(snr), abar / (1 - abar), rtol=1e-4)
  np.testing.assert_allclose(float(terminal_snr(b)), 0.004682, rtol=1e-3)


def test_gaussian_mixture_denoiser_keeps_the_input_dtype():
  """A bfloat16 x came back float32 (promoted by the float32 mixture); per-example outputs keep the input dtype
  (docs/conventions.md, Dtypes), computed in float32."""
  mix = make_gaussian_mixture([0.3, 0.7], [[0.0, 0.0], [3.0, 1.0]], [0.5, 2.0])
  x = jnp.array([[1.0, 0.5], [2.0, -1.0]])
  d32 = gaussian_mixture_denoiser(mix, x, 0.7)
  d16 = gaussian_mixture_denoiser(mix, x.astype(jnp.bfloat16), 0.7)
  assert d32.dtype == jnp.float32 and d16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(d16, np.float32), np.asarray(d32), rtol=2e-2, atol=2e-2)
