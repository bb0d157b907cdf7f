"""Metrix [200] mixed contrastive loss vs a float64 NumPy transcription of the official code; lam in {0, 1}."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _np_metrix(a, p, n, lam, mp=0.0, mn=0.5):
  lam = np.broadcast_to(lam, a.shape[:1])
  mixed = lam[:, None] * p + (1 - lam[:, None]) * n          # mixup_data
  d = np.linalg.norm(_unit(a) - _unit(mixed), axis=-1)       # LpDistance() on normalised embeddings
  return lam * np.maximum(d - mp, 0) + (1 - lam) * np.maximum(mn - d, 0)


def test_metrix_vs_numpy_gradients_and_endpoints_float64():
  rng = np.random.default_rng(0)
  a, p, n = (rng.normal(size=(6, 4)) for _ in range(3))
  n[:2] = a[:2] + 0.05 * rng.normal(size=(2, 4))  # close negatives: the hinge [m- - d]_+ is active
  lam = rng.uniform(size=6)
  with jax.enable_x64(True):
    f = jax.jit(losses.metrix_contrastive_loss)
    np.testing.assert_allclose(np.asarray(f(a, p, n, lam)), _np_metrix(a, p, n, lam), rtol=1e-12)
    g = np.asarray(jax.grad(lambda x: f(x, p, n, lam).sum())(jnp.asarray(a)))
    eps, fd = 1e-6, np.zeros_like(a)
    for i in np.ndindex(a.shape):
      e = np.zeros_like(a)
      e[i] = eps
      fd[i] = (_np_metrix(a + e, p, n, lam).sum() - _np_metrix(a - e, p, n, lam).sum()) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    # lam = 1: the contrastive positive term on (a, p); lam = 0: the negative term on (a, n)
    d_ap = np.linalg.norm(_unit(a) - _unit(p), axis=-1)
    d_an = np.linalg.norm(_unit(a) - _unit(n), axis=-1)
    np.testing.assert_allclose(np.asarray(f(a, p, n, 1.0)), d_ap, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(f(a, p, n, 0.0)), np.maximum(0.5 - d_an, 0), rtol=1e-12, atol=1e-15)
    assert float(np.max(np.maximum(0.5 - d_an, 0))) > 0  # the negative hinge is exercised


def test_metrix_bad_input():
  a = jnp.ones((3, 2))
  with pytest.raises(ValueError, match="lam"):
    losses.metrix_contrastive_loss(a, a, a, 1.5)
  assert np.isnan(np.asarray(jax.jit(losses.metrix_contrastive_loss)(a, a, a, jnp.array([0.5, 2.0, 0.5])))[1])
  with pytest.raises(ValueError, match="negative"):
    losses.metrix_contrastive_loss(a, a, a[:2], 0.5)
  with pytest.raises(ValueError, match="neg_margin"):
    losses.metrix_contrastive_loss(a, a, a, 0.5, neg_margin=-1.0)
  with pytest.raises(TypeError, match="anchor"):
    losses.metrix_contrastive_loss(a.astype(jnp.int32), a, a, 0.5)
