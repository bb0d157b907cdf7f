"""CVIB [11] (ls19d, issue 19): `self_pruning_contrastive_loss` against a float64 NumPy transcription of the official
`SdConLoss` (values, and gradients by central differences), `vib_mask_kl` against NumPy with its closed-form
gradient and its zero at mu = 0, and `nn.VIBMask`: the official evaluation mask, sampled masks whose mean and
variance match N(mu, sigma^2) (fixed seed, 6-sigma bounds), and nnx.jit / split / merge."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods import losses, nn


def _np_sdcon(a, p, tau):
  an = a / np.linalg.norm(a, axis=1, keepdims=True)
  pn = p / np.linalg.norm(p, axis=1, keepdims=True)
  s = an @ pn.T / tau
  m = s.max(1, keepdims=True)
  return -(np.diag(s) - (m[:, 0] + np.log(np.exp(s - m).sum(1))))


def test_self_pruning_contrastive_and_vib_kl_vs_numpy_float64():
  rng = np.random.default_rng(0)
  a, p = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
  mu, lv = rng.normal(size=5), rng.normal(size=5)
  with jax.enable_x64(True):
    f = jax.jit(lambda a_, p_: losses.self_pruning_contrastive_loss(a_, p_, temperature=0.3))
    np.testing.assert_allclose(np.asarray(f(a, p)), _np_sdcon(a, p, 0.3), rtol=1e-12)
    ga = np.asarray(jax.jit(jax.grad(lambda a_: f(a_, p).sum()))(a))
    fd = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
      ap, am = a.copy(), a.copy()
      ap[idx] += 1e-6
      am[idx] -= 1e-6
      fd[idx] = (_np_sdcon(ap, p, 0.3).sum() - _np_sdcon(am, p, 0.3).sum()) / 2e-6
    np.testing.assert_allclose(ga, fd, rtol=1e-6, atol=1e-9)
    kl = jax.jit(nn.vib_mask_kl)
    var = np.exp(lv) + 1e-8
    np.testing.assert_allclose(float(kl(mu, lv)), 0.5 * np.sum(np.log(1 + mu ** 2 / var)), rtol=1e-13)
    g_mu = np.asarray(jax.jit(jax.grad(nn.vib_mask_kl))(mu, lv))
    np.testing.assert_allclose(g_mu, mu / (var + mu ** 2), rtol=1e-12)
    assert float(kl(np.zeros(5), lv)) == 0.0
  with pytest.raises(ValueError, match="positive"):
    losses.self_pruning_contrastive_loss(a, p[:3])
  with pytest.raises(ValueError, match="temperature"):
    losses.self_pruning_contrastive_loss(a, p, temperature=0.0)


@pytest.mark.slow  # sampling statistics and nnx.jit compile several programs (default-run budget)
def test_vib_mask_module_sampling_eval_mask_and_nnx_jit():
  m = nn.VIBMask(6, init_log_sigma2=-2.0, init_std=0.5, threshold=0.0, rngs=nnx.Rngs(0))
  mu, lv = np.asarray(m.mu[...]), np.asarray(m.log_sigma2[...])
  log_alpha = lv - np.log(mu ** 2 + 1e-8)
  x = jnp.ones((20000, 6))
  np.testing.assert_allclose(np.asarray(m(x)), np.broadcast_to(np.where(log_alpha < 0, mu, 0.0), (20000, 6)))
  z = np.asarray(nnx.jit(lambda mod, x_, k: mod(x_, key=k, per_example=True))(m, x, jax.random.key(1)))
  sd = np.exp(0.5 * lv)
  assert np.all(np.abs(z.mean(0) - mu) < 6 * sd / np.sqrt(20000))         # P(fail) < 1e-8 per coordinate
  assert np.all(np.abs(z.var(0) / sd ** 2 - 1) < 6 * np.sqrt(2 / 20000))
  graph, state = nnx.split(m)
  m2 = nnx.merge(graph, state)
  np.testing.assert_allclose(float(m2.kl()), 2 * float(nn.vib_mask_kl(m.mu[...], m.log_sigma2[...])), rtol=1e-5)
  seq = m(jnp.ones((3, 5, 6)), key=jax.random.key(2), per_example=True)   # one z per example, shared over tokens
  assert np.allclose(np.asarray(seq[:, 0]), np.asarray(seq[:, 4]))
  with pytest.raises(ValueError, match="features"):
    m(jnp.ones((2, 5)))
