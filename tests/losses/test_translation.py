"""DDC [8] (Eqs. 3-4) and AU-GAN's uncertainty-aware cycle loss [80] vs float64 NumPy transcriptions, the DDC's exact
zero set, and the cycle loss's closed-form optimal uncertainty s* = log(2 λ |r|)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses

RNG = np.random.default_rng(0)


def test_ddc_loss_matches_numpy_and_vanishes_on_translated_source():
  src_set, tgt_set = RNG.normal(size=(20, 6)), RNG.normal(loc=2.0, size=(5, 6))
  w = losses.ddc_direction(jnp.asarray(src_set, jnp.float32), jnp.asarray(tgt_set, jnp.float32))
  np.testing.assert_allclose(np.asarray(w), tgt_set.mean(0) - src_set.mean(0), rtol=1e-5, atol=1e-6)
  src, gen = RNG.normal(size=(4, 6)).astype(np.float32), RNG.normal(size=(4, 6)).astype(np.float32)
  got = jax.jit(losses.directional_distribution_consistency_loss)(src, gen, w)
  ref = np.sum((src.astype(np.float64) + np.asarray(w, np.float64) - gen) ** 2, -1)
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5)
  exact = losses.directional_distribution_consistency_loss(src, src + np.asarray(w), w)
  np.testing.assert_allclose(np.asarray(exact), 0.0, atol=1e-10)
  with pytest.raises(ValueError, match="direction"):
    losses.directional_distribution_consistency_loss(src, gen, jnp.zeros(5))
  with pytest.raises(ValueError, match="target_features"):
    losses.ddc_direction(jnp.zeros((3, 6)), jnp.zeros((0, 6)))


def test_uncertainty_cycle_loss_matches_numpy_and_its_closed_form_minimiser():
  x, x_rec = RNG.normal(size=(3, 4, 4, 2)).astype(np.float32), RNG.normal(size=(3, 4, 4, 2)).astype(np.float32)
  s = RNG.normal(size=(3, 4, 4, 1)).astype(np.float32)  # one uncertainty map for both channels
  s_star = np.log(2 * np.abs(x - x_rec))  # the optimal per-pixel uncertainty log(2 |r|)
  loss = lambda c, lam=1.0: losses.uncertainty_cycle_loss(x, x_rec, c, residual_weight=lam)
  run = jax.jit(lambda s, s_star: (loss(s), loss(s, 5.0), jax.grad(lambda c: loss(c).sum())(s_star), loss(s_star)))
  l1, l5, g, at_star = (np.asarray(v) for v in run(s, s_star))
  for lam, got in ((1.0, l1), (5.0, l5)):
    per = lam * np.exp(-s.astype(np.float64)) * np.abs(x.astype(np.float64) - x_rec) + s / 2
    np.testing.assert_allclose(got, per.mean(axis=(1, 2, 3)), rtol=1e-5)
  # At s* the gradient is 0 and the loss value is (1 + log(2|r|)) / 2 per pixel.
  np.testing.assert_allclose(g, 0.0, atol=1e-6)
  np.testing.assert_allclose(at_star, ((1 + s_star.astype(np.float64)) / 2).mean(axis=(1, 2, 3)), rtol=1e-5)
  with pytest.raises(ValueError, match="log_sigma"):
    losses.uncertainty_cycle_loss(x, x_rec, s[:, :2])
  with pytest.raises(ValueError, match="residual_weight"):
    losses.uncertainty_cycle_loss(x, x_rec, s, residual_weight=0.0)
