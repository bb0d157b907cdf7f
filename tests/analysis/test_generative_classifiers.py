"""[43] naive Bayes and logistic regression (analysis/generative_classifiers.py) against NumPy/SciPy: the NB closed
form, the L-BFGS fit against scipy.optimize on a NumPy transcription of the objective, the experiment's exact error
formula against Monte Carlo; plus the experiment's claims on hand-made results."""

import jax
import numpy as np
import pytest
from scipy import optimize
from scipy.special import logsumexp

from experiments import generative_vs_discriminative as exp
from jaxlib_methods.analysis import (
    LogisticParams,
    NaiveBayesParams,
    gaussian_naive_bayes,
    logistic_objective,
    logistic_regression,
    naive_bayes_logits,
)


def _data(n=40, d=3, k=3, seed=0):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % k
  x = rng.normal(size=(n, d)) * np.array([1.0, 2.0, 0.5]) + 1.5 * rng.normal(size=(k, d))[y]
  return x, y


def test_naive_bayes_matches_numpy_closed_form_with_mask():
  x, y = _data()
  where = np.arange(40) < 31
  # Fit and logits jitted (eager: ~35 small compiles).
  p = jax.jit(lambda x, y, w: gaussian_naive_bayes(x, y, num_classes=3, where=w, var_smoothing=0.0))(x, y, where)
  assert isinstance(p, NaiveBayesParams)
  xs, ys = x[where], y[where]
  mu = np.stack([xs[ys == c].mean(0) for c in range(3)])
  prior = np.array([(ys == c).mean() for c in range(3)])
  var = sum(prior[c] * xs[ys == c].var(0) for c in range(3))
  np.testing.assert_allclose(np.asarray(p.means), mu, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(p.variances), var, rtol=1e-4)
  np.testing.assert_allclose(np.asarray(p.log_prior), np.log(prior), rtol=1e-6)
  # the Gaussian class log-likelihood + log prior, up to a class-independent constant
  ll = np.log(prior) - 0.5 * (((x[:, None] - mu[None]) ** 2) / var).sum(-1)
  z = np.asarray(jax.jit(naive_bayes_logits)(p, x))
  np.testing.assert_allclose(z - z[:, :1], ll - ll[:, :1], rtol=1e-4, atol=1e-4)


def test_logistic_regression_matches_scipy_and_is_stationary():
  x, y = _data()
  d, k = 3, 3
  with jax.enable_x64(True):
    p = logistic_regression(x, y, num_classes=k, C=0.5, iters=100)
    assert isinstance(p, LogisticParams)

    def f(theta):  # NumPy transcription: sum_i CE + ||W||^2 / (2C), bias unpenalised
      w, b = theta[:d * k].reshape(d, k), theta[d * k:]
      z = x @ w + b
      return float((logsumexp(z, 1) - z[np.arange(len(y)), y]).sum() + (w ** 2).sum() / (2 * 0.5))

    ref = optimize.minimize(f, np.zeros(d * k + k), method="BFGS", options={"gtol": 1e-10})
    ours = np.concatenate([np.asarray(p.weights).ravel(), np.asarray(p.bias)])
    assert f(ours) <= ref.fun + 1e-8 * abs(ref.fun)
    np.testing.assert_allclose(np.asarray(x @ p.weights + p.bias).argmax(1),
                               (x @ ref.x[:d * k].reshape(d, k) + ref.x[d * k:]).argmax(1))
    # weights are identified (the penalty fixes the softmax shift for W, the bias shift is free): compare W centred
    w_ref = ref.x[:d * k].reshape(d, k)
    np.testing.assert_allclose(np.asarray(p.weights), w_ref, atol=1e-4)
    g = jax.jit(jax.grad(logistic_objective))(p, x, y, np.ones(len(y), bool), 0.5)  # jitted: not eager dispatch
    assert float(np.abs(np.asarray(g.weights)).max()) < 1e-5
    # masked rows do not count: garbage in the masked-out rows changes nothing (same shapes: no recompilation)
    mask = np.arange(40) < 20
    x_bad = np.where(mask[:, None], x, 1e3)
    p_a = logistic_regression(x, y, num_classes=k, C=0.5, iters=100, where=mask)
    p_b = logistic_regression(x_bad, y, num_classes=k, C=0.5, iters=100, where=mask)
    np.testing.assert_allclose(np.asarray(p_a.weights), np.asarray(p_b.weights), atol=1e-9)


def test_exact_linear_error_matches_monte_carlo():
  rng = np.random.default_rng(1)
  mu0, mu1, std = exp._problem(6)
  v, c = rng.normal(size=6), 0.3
  x0 = mu0 + std * rng.normal(size=(200_000, 6))
  x1 = mu1 + std * rng.normal(size=(200_000, 6))
  mc = 0.5 * np.mean(x0 @ v + c > 0) + 0.5 * np.mean(x1 @ v + c <= 0)
  # 200k samples per class: the Monte Carlo standard error is < 0.0012; 5 sigma
  assert abs(exp.linear_error(v, c, mu0, mu1, std) - mc) < 0.006


def test_generative_classifiers_reject_bad_input():
  x, y = _data()
  with pytest.raises(ValueError, match="y"):
    gaussian_naive_bayes(x, np.full(40, 3), num_classes=3)
  with pytest.raises(TypeError, match="y"):
    gaussian_naive_bayes(x, y.astype(float), num_classes=3)
  with pytest.raises(ValueError, match="where"):
    logistic_regression(x, y, num_classes=3, where=np.ones(39, bool))
  with pytest.raises(ValueError, match="C"):
    logistic_regression(x, y, num_classes=3, C=0.0)
  with pytest.raises(ValueError, match="iters"):
    logistic_regression(x, y, num_classes=3, iters=0)
  with pytest.raises(ValueError, match="num_classes"):
    gaussian_naive_bayes(x, y, num_classes=1)
  with pytest.raises(ValueError, match="x must be"):
    # (the fit itself jitted: only naive_bayes_logits' eager shape check is under test here)
    naive_bayes_logits(jax.jit(lambda x, y: gaussian_naive_bayes(x, y, num_classes=3))(x, y), x[:, :2])


def test_generative_vs_discriminative_claims_on_hand_made_results():
  def res(n, m_nb, m_lr):
    grid = [4, 8, 16, 32, 64, 128, 256, 512]
    curve = lambda m: [[0.3 if g < m else 0.0 for g in grid]] * 2
    return {"n": n, "grid": grid, "bayes": 0.0, "nb": curve(m_nb), "lr": curve(m_lr)}
  good = {"dims": [32, 64, 128, 256], "eps": 0.01,
          "runs": [res(32, 8, 32), res(64, 8, 64), res(128, 8, 128), res(256, 8, 256)]}
  assert all(c.passed for c in exp.claims(good))
  flat_lr = dict(good, runs=[res(32, 8, 32), res(64, 8, 32), res(128, 8, 32), res(256, 8, 32)])
  failed = [c.claim for c in exp.claims(flat_lr) if not c.passed]
  assert any(f.startswith("logistic regression") for f in failed)
  slow_nb = dict(good, runs=[res(32, 32, 32), res(64, 64, 64), res(128, 128, 128), res(256, 256, 256)])
  failed = [c.claim for c in exp.claims(slow_nb) if not c.passed]
  assert any(f.startswith("naive Bayes") for f in failed) and any(f.startswith("min over n") for f in failed)
