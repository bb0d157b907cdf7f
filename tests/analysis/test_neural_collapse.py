"""[47] Mixup and neural collapse (arXiv:2402.06171): NC metrics on a planted simplex ETF (exact zeros) and against
a NumPy transcription of Papyan et al.'s definitions; the UFM mixup features against autodiff of the objective they
minimise (CE: stationarity) and the ridge closed form (MSE)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.analysis import neural_collapse as N


def test_nc_metrics_on_planted_etf_and_against_numpy():
  k, d = 4, 6
  w = np.asarray(N.simplex_etf(k, d), np.float64)
  np.testing.assert_allclose(w @ w.T, (k * np.eye(k) - 1) / (k - 1), atol=1e-6)
  y = np.repeat(np.arange(k), 5)
  noise = np.random.default_rng(0).normal(size=(k * 5, d)) * 0.3
  metrics = jax.jit(N.nc_metrics, static_argnums=2)
  planted = metrics(3.0 * w[y].astype(np.float32), y, k, w.astype(np.float32))
  for name in ("nc1", "nc2", "nc3"):
    assert abs(float(planted[name])) < 1e-5, (name, planted)
  h = (w[y] + noise).astype(np.float32)
  out = metrics(h, y, k, w.astype(np.float32))
  mu = np.stack([h[y == c].mean(0) for c in range(k)]).astype(np.float64)
  m = mu - mu.mean(0)
  sw = sum((h[y == c] - mu[c]).T @ (h[y == c] - mu[c]) for c in range(k)) / len(y)
  sb = m.T @ m / k
  g = m @ m.T
  e = np.eye(k) - 1 / k
  np.testing.assert_allclose(out["nc1"], np.trace(sw @ np.linalg.pinv(sb)) / k, rtol=1e-4)
  np.testing.assert_allclose(out["nc2"], np.linalg.norm(g / np.linalg.norm(g) - e / np.linalg.norm(e)), rtol=1e-4)
  np.testing.assert_allclose(out["nc3"], np.sum((w / np.linalg.norm(w) - m / np.linalg.norm(m)) ** 2), rtol=1e-4)
  with pytest.raises(ValueError, match="every class"):
    N.nc_metrics(h[:5], y[:5], k)


@pytest.mark.slow  # compile-heavy (the experiment theory_wave3 exercises it at every cpu run)
def test_mixup_ufm_features_minimise_their_objective():
  k, d, wd = 3, 4, 0.1
  w = N.simplex_etf(k, d)
  a, b = jnp.array([0, 0, 1, 2]), jnp.array([0, 1, 2, 2])
  lam = jnp.array([0.3, 0.5, 0.8, 1.0])

  def objective(h):   # the mixup CE objective, written with optax
    z = h @ w.T
    ce = lam * optax.softmax_cross_entropy_with_integer_labels(z, a) + (1 - lam) * \
        optax.softmax_cross_entropy_with_integer_labels(z, b)
    return ce.sum() + wd / 2 * jnp.sum(h ** 2)

  h, h_mse, g = jax.jit(lambda: (N.mixup_ufm_features(w, a, b, lam, weight_decay=wd, steps=500),
                                  N.mixup_ufm_features(w, a, b, lam, weight_decay=wd, loss="mse", steps=500),
                                  jax.grad(objective)(N.mixup_ufm_features(w, a, b, lam, weight_decay=wd,
                                                                            steps=500))))()
  assert float(jnp.max(jnp.abs(g))) < 1e-5
  # same-class mixes align with their classifier row, whatever lambda
  cos = float(h[0] @ w[0] / jnp.linalg.norm(h[0]))
  assert cos > 1 - 1e-6
  wn = np.asarray(w, np.float64)
  t = np.asarray(lam)[:, None] * np.eye(k)[np.asarray(a)] + (1 - np.asarray(lam))[:, None] * np.eye(k)[np.asarray(b)]
  ridge = t @ wn @ np.linalg.inv(wn.T @ wn + wd * np.eye(d))
  np.testing.assert_allclose(h_mse, ridge, atol=1e-5)


def test_mixup_ufm_features_accepts_array_likes():
  # Python lists for the labels used to crash with AttributeError ('list' object has no attribute 'shape').
  w = N.simplex_etf(3, 3)
  a = N.mixup_ufm_features(w, [0, 1], [1, 2], [0.3, 0.7], weight_decay=0.1, steps=50)
  b = N.mixup_ufm_features(w, jnp.array([0, 1]), jnp.array([1, 2]), jnp.array([0.3, 0.7]), weight_decay=0.1,
                           steps=50)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
