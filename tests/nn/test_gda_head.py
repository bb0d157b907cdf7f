"""[128] training-free GDA head: gda_fit equals a float64 NumPy transcription of the LDA closed form (plain,
ridge and Eq. 4 precisions; uniform, empirical and given priors) and scikit-learn-free Bayes rule on the true
parameters agrees with it at large N; jit; the ensemble's arithmetic; traced invalid labels give NaN; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.nn import gda_ensemble_logits, gda_fit


def _numpy_lda(x, y, k, shrinkage, log_p):
  x = np.asarray(x, np.float64)
  n, d = x.shape
  mu = np.stack([x[y == c].mean(0) for c in range(k)])
  r = x - mu[y]
  cov = r.T @ r / (n - 1)
  if shrinkage == "empirical_bayes":
    prec = d * np.linalg.inv((n - 1) * cov + np.trace(cov) * np.eye(d))
  elif shrinkage is None:
    prec = np.linalg.inv(cov)
  else:
    prec = np.linalg.inv(cov + shrinkage * np.eye(d))
  w = mu @ prec
  return w, log_p - 0.5 * np.einsum("kd,kd->k", w, mu)


def test_gda_fit_matches_numpy_lda():
  rng = np.random.default_rng(0)
  k, d, n = 3, 5, 240
  y = np.repeat(np.arange(k), n // k)
  y[:10] = 0                                                     # unequal counts for the empirical prior
  mu_true = 2 * rng.normal(size=(k, d))
  a = rng.normal(size=(d, d)) / np.sqrt(d)
  cov_true = a @ a.T + 0.5 * np.eye(d)
  x = mu_true[y] + rng.normal(size=(n, d)) @ np.linalg.cholesky(cov_true).T
  xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y)
  counts = np.bincount(y, minlength=k)
  cases = (("empirical_bayes", "uniform", np.full(k, -np.log(k))), (None, "empirical", np.log(counts / n)),
           (0.3, jnp.array([0.2, 0.3, 0.5]), np.log([0.2, 0.3, 0.5])))
  fits = jax.jit(lambda x, y: [gda_fit(x, y, k, shrinkage=sh, priors=pr) for sh, pr, _ in cases])(xj, yj)
  for (shrinkage, _, log_p), (w, b) in zip(cases, fits):
    w_ref, b_ref = _numpy_lda(x, y, k, shrinkage, log_p)
    np.testing.assert_allclose(w, w_ref, rtol=2e-4, atol=2e-4 * np.abs(w_ref).max())
    np.testing.assert_allclose(b, b_ref, rtol=2e-4, atol=2e-4 * np.abs(b_ref).max())
  w_e, _ = gda_fit(xj, yj, k)                                        # eager = jit
  np.testing.assert_allclose(w_e, fits[0][0], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_gda_large_n_agrees_with_the_bayes_rule():
  rng = np.random.default_rng(0)
  k, d = 3, 5
  mu_true = 2 * rng.normal(size=(k, d))
  a = rng.normal(size=(d, d)) / np.sqrt(d)
  cov_true = a @ a.T + 0.5 * np.eye(d)
  # Large-N plain LDA predicts as the Bayes rule with the true parameters on >= 99% of fresh points.
  xt = mu_true[rng.integers(0, k, 2000)] + rng.normal(size=(2000, d)) @ np.linalg.cholesky(cov_true).T
  prec = np.linalg.inv(cov_true)
  bayes = np.argmax(xt @ prec @ mu_true.T - 0.5 * np.einsum("kd,de,ke->k", mu_true, prec, mu_true), -1)
  big_n = 6000
  yb = rng.integers(0, k, big_n)
  xb = mu_true[yb] + rng.normal(size=(big_n, d)) @ np.linalg.cholesky(cov_true).T
  w, b = gda_fit(jnp.asarray(xb, jnp.float32), jnp.asarray(yb), k, shrinkage=None)
  agree = np.mean(np.argmax(np.asarray(xt @ np.asarray(w).T + np.asarray(b)), -1) == bayes)
  assert agree >= 0.99, agree


@pytest.mark.slow
def test_gda_ensemble_and_bad_inputs():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(7, 4)), jnp.float32)
  W, b = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), jnp.asarray(rng.normal(size=3), jnp.float32)
  z = jnp.asarray(rng.normal(size=(7, 3)), jnp.float32)
  np.testing.assert_allclose(gda_ensemble_logits(x, W, b, z, alpha=0.5),
                             np.asarray(z) + 0.5 * (np.asarray(x) @ np.asarray(W).T + np.asarray(b)), rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(jax.jit(gda_ensemble_logits)(x, W, b), np.asarray(x) @ np.asarray(W).T + np.asarray(b),
                             rtol=1e-5, atol=1e-5)
  # Traced invalid labels poison W and b; concrete ones raise.
  y_bad = jnp.array([0, 1, 2, 0, 1, 2, 5])
  w_bad, _ = jax.jit(lambda x, y: gda_fit(x, y, 3))(x, y_bad)
  assert np.isnan(np.asarray(w_bad)).all()
  with pytest.raises(ValueError, match="labels must be"):
    gda_fit(x, y_bad, 3)
  with pytest.raises(ValueError, match="every class"):
    gda_fit(x, jnp.array([0, 1, 0, 1, 0, 1, 0]), 3)
  with pytest.raises(TypeError, match="feats"):
    gda_fit(jnp.ones((7, 4), jnp.int32), jnp.zeros(7, jnp.int32), 3)
  with pytest.raises(ValueError, match="shrinkage"):
    gda_fit(x, jnp.array([0, 1, 2, 0, 1, 2, 0]), 3, shrinkage=-1.0)
  with pytest.raises(ValueError, match="feats must be"):
    gda_ensemble_logits(x[:, :3], W, b)
  with pytest.raises(ValueError, match="zero_shot_logits"):
    gda_ensemble_logits(x, W, b, z[:, :2])
  with pytest.raises(ValueError, match="alpha"):
    gda_ensemble_logits(x, W, b, alpha=-1.0)
