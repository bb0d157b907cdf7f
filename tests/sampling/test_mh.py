"""[138] MH-GAN selection: with the optimal discriminator the independence chain's stationary law is the data law
(exact transition matrix, float64), and sampled chains follow it (chi-square, fixed seed)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxlib_methods.sampling import mh_gan_acceptance, mh_gan_select


def _toy():
  p_data = np.array([0.05, 0.3, 0.25, 0.15, 0.25])
  p_gen = np.array([0.2, 0.2, 0.2, 0.2, 0.2])
  logit = np.log(p_data / (p_data + p_gen)) - np.log(p_gen / (p_data + p_gen))   # logit of D* = p_D/(p_D+p_G)
  return p_data, p_gen, logit


def test_stationary_distribution_is_the_data_distribution():
  p_data, p_gen, logit = _toy()
  v = len(p_data)
  with jax.enable_x64(True):
    a = np.asarray(mh_gan_acceptance(jnp.asarray(logit)[:, None], jnp.asarray(logit)[None, :]))   # [from, to]
  t = p_gen[None, :] * a
  np.fill_diagonal(t, 0.0)
  t[np.arange(v), np.arange(v)] = 1.0 - t.sum(1)
  w, vecs = np.linalg.eig(t.T)
  pi = np.real(vecs[:, np.argmin(np.abs(w - 1))])
  pi /= pi.sum()
  np.testing.assert_allclose(pi, p_data, atol=1e-10)
  # detailed balance, the property that makes p_data stationary
  flux = p_data[:, None] * t
  np.testing.assert_allclose(flux, flux.T, atol=1e-12)
  # a wrong ratio (D itself instead of D / (1 - D)) is not stationary for p_data
  d = 1 / (1 + np.exp(-logit))
  t_bad = p_gen[None, :] * np.minimum(1, d[None, :] / d[:, None])
  np.fill_diagonal(t_bad, 0.0)
  t_bad[np.arange(v), np.arange(v)] = 1.0 - t_bad.sum(1)
  assert np.abs(p_data @ t_bad - p_data).max() > 1e-3


def test_sampled_chains_follow_the_data_distribution():
  p_data, p_gen, logit = _toy()
  n, k = 20_000, 40                      # TV after k steps <= (1 - min p_gen / p_data)^k = 0.33^40: negligible
  key = jax.random.key(0)
  k0, k1, k2 = jax.random.split(key, 3)
  lg = jnp.asarray(logit, jnp.float32)
  start = jax.random.categorical(k0, jnp.log(jnp.asarray(p_gen)), shape=(n,))    # start from the generator
  cands = jax.random.categorical(k1, jnp.log(jnp.asarray(p_gen)), shape=(n, k))
  idx, final = jax.jit(mh_gan_select)(k2, lg[start], lg[cands])
  state = np.where(np.asarray(idx) >= 0, np.take_along_axis(np.asarray(cands), np.maximum(np.asarray(idx), 0)[:, None],
                                                            1)[:, 0], np.asarray(start))
  np.testing.assert_allclose(np.asarray(final), np.asarray(lg)[state], rtol=1e-6)
  counts = np.bincount(state, minlength=5)
  assert stats.chisquare(counts, n * p_data).pvalue > 1e-4    # rejects a correct sampler with probability 1e-4
  # the raw generator is far from the data: the same test rejects it
  assert stats.chisquare(np.bincount(np.asarray(start), minlength=5), n * p_data).pvalue < 1e-10
  with pytest.raises(ValueError, match="batch shape"):
    mh_gan_select(k2, lg[:3], lg[None, :])
  with pytest.raises(TypeError, match="logits"):
    mh_gan_select(k2, lg[:1], jnp.zeros((1, 4), jnp.int32))


def test_mh_gan_select_acceptance_is_exact_for_bfloat16_logits():
  """The uniforms were drawn in the logits' dtype: bfloat16 uniforms lie on a 1/128 grid, so a move with acceptance
  exp(-6) = 0.0025 was taken with probability 1/128 = 0.0078 (3x). They are now float32."""
  m = 200_000
  for dt in (jnp.float32, jnp.bfloat16):
    idx, _ = mh_gan_select(jax.random.key(1), jnp.zeros((m,), dt), jnp.full((m, 1), -6.0, dt))
    rate = float(np.mean(np.asarray(idx) == 0))
    assert abs(rate - np.exp(-6.0)) < 6 * np.sqrt(np.exp(-6.0) / m), (dt, rate)
