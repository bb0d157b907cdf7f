"""ADC-GAN [173] (ls19d, issue 19): `adc_discriminator_loss` / `adc_generator_loss` against a float64 NumPy
transcription of the official code (cross-entropies over the 2K interleaved outputs; the generator's as the
difference of two full cross-entropies, so the cancelled normaliser is checked), their gradients against the closed
forms (softmax - one-hot; e_{2y+1} - e_{2y}), the optimal-classifier identity (generator loss = log q/p), masks,
bfloat16 and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses


def _np_log_softmax(z):
  m = z.max(-1, keepdims=True)
  return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def test_adc_losses_vs_numpy_values_gradients_and_optimal_classifier_float64():
  rng = np.random.default_rng(0)
  b, k = 5, 3
  z = rng.normal(size=(b, 2 * k)) * 2
  y = np.array([0, 2, 1, 1, 0])
  ls = _np_log_softmax(z)
  rows = np.arange(b)
  with jax.enable_x64(True):
    def both(z_):
      return (losses.adc_discriminator_loss(z_, y, real=True), losses.adc_discriminator_loss(z_, y, real=False),
              losses.adc_generator_loss(z_, y))
    d_real, d_fake, g = jax.jit(both)(z)
    np.testing.assert_allclose(np.asarray(d_real), -ls[rows, 2 * y], rtol=1e-13)
    np.testing.assert_allclose(np.asarray(d_fake), -ls[rows, 2 * y + 1], rtol=1e-13)
    np.testing.assert_allclose(np.asarray(g), -ls[rows, 2 * y] + ls[rows, 2 * y + 1], rtol=1e-12, atol=1e-13)
    gd, gg = jax.jit(lambda z_: (jax.grad(lambda a: both(a)[0].sum())(z_),
                                 jax.grad(lambda a: both(a)[2].sum())(z_)))(z)
    onehot = np.eye(2 * k)
    np.testing.assert_allclose(np.asarray(gd), np.exp(ls) - onehot[2 * y], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(gg), onehot[2 * y + 1] - onehot[2 * y], atol=1e-14)
    # the optimal classifier of Eq. (8) on a finite joint: C*(2y|x) ~ p(x,y), C*(2y+1|x) ~ q(x,y); the generator
    # loss is then log q(x,y) - log p(x,y), whose q-expectation is KL(q || p)
    p = rng.dirichlet(np.ones(4 * k)).reshape(4, k)
    q = rng.dirichlet(np.ones(4 * k)).reshape(4, k)
    opt_logits = np.log(np.stack([p, q], -1).reshape(4, 2 * k))        # interleaved (real y, fake y)
    xs, ys = np.repeat(np.arange(4), k), np.tile(np.arange(k), 4)
    gl = np.asarray(losses.adc_generator_loss(opt_logits[xs], ys))
    np.testing.assert_allclose(np.sum(q[xs, ys] * gl), np.sum(q * np.log(q / p)), rtol=1e-12)


@pytest.mark.slow  # eager calls compile op by op (default-run budget); the float64 test above stays in the default run
def test_adc_masks_half_precision_and_bad_input():
  z = jnp.asarray(np.random.default_rng(1).normal(size=(4, 6)), jnp.float32)
  y = jnp.array([0, 2, 1, -100])
  w = y >= 0
  out = losses.adc_discriminator_loss(z, y, real=False, where=w)
  assert out.shape == (4,) and float(out[3]) == 0.0 and np.all(np.asarray(out[:3]) > 0)
  half = losses.adc_generator_loss(z.astype(jnp.bfloat16), y, where=w)
  assert half.dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="labels"):
    losses.adc_generator_loss(z, y)
  with pytest.raises(ValueError, match="2K"):
    losses.adc_generator_loss(z[:, :5], jnp.zeros(4, jnp.int32))
  with pytest.raises(TypeError, match="real"):
    losses.adc_discriminator_loss(z, jnp.zeros(4, jnp.int32), real=1)
