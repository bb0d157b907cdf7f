"""Closed forms of helpers that live inside theory experiments ([22] contrastive gradient, [178] DAE loss)."""

import jax
import jax.numpy as jnp
import numpy as np

from experiments.contrastive_temperature import negative_gradient_weights
from experiments.dae_score import dae_loss


def test_negative_gradient_weights_equal_autodiff_of_infonce():
  """Wang & Liu (2021): dL_i/ds_ij = P_ij / tau (j != i), dL_i/ds_ii = -(1/tau) sum_{k != i} P_ik."""
  s = jax.random.uniform(jax.random.PRNGKey(0), (6, 6), minval=-1.0, maxval=1.0)
  for tau in (0.07, 0.5, 2.0):
    def total(s):  # sum over anchors of L_i = -log softmax(s_i. / tau)_i; row i only depends on s_i.
      return jnp.sum(-jnp.diagonal(jax.nn.log_softmax(s / tau, axis=-1)))
    np.testing.assert_allclose(np.asarray(negative_gradient_weights(s, tau)), np.asarray(jax.grad(total)(s)),
                               rtol=2e-5, atol=2e-6)


def test_dae_loss_matches_numpy():
  rng = np.random.default_rng(0)
  x, noise = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
  r_fn = lambda z: 0.5 * z
  expected = np.sum((0.5 * (x + 0.3 * noise) - x) ** 2, axis=-1)
  np.testing.assert_allclose(np.asarray(dae_loss(r_fn, jnp.asarray(x), jnp.asarray(noise), 0.3)), expected,
                             rtol=1e-5)
