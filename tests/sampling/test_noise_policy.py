"""[177] The REINFORCE estimator through a Beta noise policy is unbiased: the mean of many estimates matches the
closed-form gradient of E_{Beta(a, b)}[f] for a polynomial f (autodiff of the Beta moments), within 5 standard
errors (a correct estimator fails with probability < 1e-6 under the normal approximation; the seed is fixed)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.sampling import beta_noise_policy, reinforce_surrogate


def _expected_f(ab):
  """E[f(m)] for f(m) = 3 m - 2 m^2 + m^3, from the Beta moments E[m^k] = prod_{j<k} (a + j) / (a + b + j)."""
  a, b = ab
  m1 = a / (a + b)
  m2 = m1 * (a + 1) / (a + b + 1)
  m3 = m2 * (a + 2) / (a + b + 2)
  return 3 * m1 - 2 * m2 + m3


def test_reinforce_gradient_is_unbiased():
  n = 20_000
  ab = jnp.array([2.0, 3.5])

  def estimates(key):   # per-sample estimates -grad surrogate_i [n, 2] (one sampling call), and the samples
    def surrogates(ab):
      m, lp = beta_noise_policy(key, jnp.full((n,), ab[0]), jnp.full((n,), ab[1]))
      reward = 3 * m - 2 * m ** 2 + m ** 3
      return reinforce_surrogate(lp, reward, baseline=0.4), (m, lp)   # a constant baseline: still unbiased
    jac, aux = jax.jacfwd(surrogates, has_aux=True)(ab)
    return -jac, aux

  g, (m, lp) = jax.jit(estimates)(jax.random.key(0))
  g = np.asarray(g, np.float64)                                            # [n, 2]
  true = np.asarray(jax.grad(_expected_f)(jnp.array([2.0, 3.5], jnp.float32)), np.float64)
  se = g.std(0) / np.sqrt(n)
  assert np.all(np.abs(g.mean(0) - true) <= 5 * se), (g.mean(0), true, se)
  assert np.all(np.abs(true) > 20 * se)                        # the test resolves the gradient's size
  # the log-density is Beta's (scipy), and the samples follow Beta(2, 3.5) (Kolmogorov-Smirnov, p > 1e-4)
  from scipy import stats
  m, lp = np.asarray(m, np.float64), np.asarray(lp, np.float64)
  np.testing.assert_allclose(lp[:100], stats.beta.logpdf(m[:100], 2.0, 3.5), rtol=1e-4, atol=1e-4)
  assert stats.kstest(m, stats.beta(2.0, 3.5).cdf).pvalue > 1e-4
  with pytest.raises(ValueError, match="alpha"):
    beta_noise_policy(jax.random.key(0), jnp.array([0.0]), jnp.array([1.0]))
  with pytest.raises(ValueError, match="reward"):
    reinforce_surrogate(jnp.zeros(3), jnp.zeros(4))


def test_beta_noise_policy_rejects_non_finite_concentrations():
  """alpha = NaN or inf passed the `min <= 0` check (NaN compares false) and gave NaN masks and log-densities."""
  for bad in (np.nan, np.inf):
    with pytest.raises(ValueError, match="alpha"):
      beta_noise_policy(jax.random.key(0), jnp.array([bad, 1.0]), jnp.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="beta"):
      beta_noise_policy(jax.random.key(0), jnp.array([1.0, 1.0]), jnp.array([1.0, bad]))
  m, lp = beta_noise_policy(jax.random.key(0), jnp.array([2.0, 0.5]), jnp.array([3.0, 0.5]))
  assert np.all(np.isfinite(np.asarray(m))) and np.all(np.isfinite(np.asarray(lp)))
