"""[180] The conjugate-prior ELBO: its closed form equals the ELBO's definition integrated numerically (scipy
quadrature over z and s2, float64), its gradient vanishes at the coordinate-ascent optimum (the conjugate updates),
and there it stays below the log evidence (quadrature), approaching it as the variance prior concentrates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from jaxlib_methods.losses import conjugate_prior_elbo_loss


def _elbo_quadrature(x, mu, m2, a, b, y, eps2, a0, b0):
  """E_q[log p(x, z, s2) - log q(z, s2)] by quadrature, q = N(mu, m2) x InvGamma(a, b), float64."""
  qz, qs = stats.norm(mu, np.sqrt(m2)), stats.invgamma(a, scale=b)
  pz, ps = stats.norm(y, np.sqrt(eps2)), stats.invgamma(a0, scale=b0)
  # E_q[log N(x; z, s2)] = int q(s2) [ -log(2 pi s2)/2 - E_z (x - z)^2 / (2 s2) ] ds2 (inner z-expectation exact)
  ez = (x - mu) ** 2 + m2
  lik = integrate.quad(lambda s: qs.pdf(s) * (-0.5 * np.log(2 * np.pi * s) - ez / (2 * s)), 0, np.inf,
                       epsabs=1e-12, epsrel=1e-12, limit=500)[0]
  lo, hi = mu - 12 * np.sqrt(m2), mu + 12 * np.sqrt(m2)
  kl_z = integrate.quad(lambda z: qz.pdf(z) * (qz.logpdf(z) - pz.logpdf(z)), lo, hi, epsabs=1e-13, limit=500)[0]
  kl_s = integrate.quad(lambda s: qs.pdf(s) * (qs.logpdf(s) - ps.logpdf(s)), 0, np.inf, epsabs=1e-13,
                        limit=500)[0]
  return lik - kl_z - kl_s


def test_closed_form_matches_the_definition_and_the_conjugate_optimum():
  rng = np.random.default_rng(0)
  eps2, a0, b0 = 0.04, 3.0, 0.2
  with jax.enable_x64(True):
    loss = jax.jit(lambda *a: conjugate_prior_elbo_loss(*a, eps2=eps2, alpha0=a0, beta0=b0))
    for _ in range(3):
      x, mu, y = rng.normal(size=3)
      m2, a, b = rng.uniform(0.01, 0.3), rng.uniform(1.5, 6.0), rng.uniform(0.05, 1.0)
      got = -float(loss(*[jnp.float64(v) for v in (x, mu, m2, a, b, y)]))
      np.testing.assert_allclose(got, _elbo_quadrature(x, mu, m2, a, b, y, eps2, a0, b0), rtol=1e-7, atol=1e-8)
    # coordinate ascent (the conjugate updates) to its fixed point: the gradient of the ELBO is 0 there, and the
    # ELBO is below the log evidence log int N(x; y, eps2 + s2) IG(s2; a0, b0) ds2 (quadrature); with a variance
    # prior concentrated at s2 = 0.3 (a0 = 1e5) the posterior factorises and the gap closes
    x, y = 0.7, 0.2
    for a0_, b0_, max_gap in ((a0, b0, np.inf), (1e5, 0.3 * (1e5 + 1), 1e-4)):
      mu, m2, a, b = 0.0, 0.1, a0_, b0_
      for _ in range(200):
        e_inv = a / b
        m2 = 1.0 / (e_inv + 1.0 / eps2)
        mu = m2 * (e_inv * x + y / eps2)
        a, b = a0_ + 0.5, b0_ + 0.5 * ((x - mu) ** 2 + m2)
      params = jnp.array([mu, m2, a, b])
      f = lambda p: -conjugate_prior_elbo_loss(x, p[0], p[1], p[2], p[3], y, eps2=eps2, alpha0=a0_, beta0=b0_)
      g = np.asarray(jax.jit(jax.grad(f))(params))
      np.testing.assert_allclose(g * np.array([1, 1, 1, b]), 0.0, atol=1e-8)   # d/d log beta for the scale
      mode, width = b0_ / (a0_ + 1), 40 * b0_ / a0_ ** 1.5
      lo, hi = max(mode - width, 1e-12), mode + (width if a0_ > 100 else 200)
      ev = np.log(integrate.quad(lambda s: stats.norm.pdf(x, y, np.sqrt(eps2 + s))
                                 * stats.invgamma.pdf(s, a0_, scale=b0_), lo, hi, epsabs=1e-14, limit=500,
                                 points=[mode])[0])
      elbo = float(f(params))
      assert elbo <= ev + 1e-9 and ev - elbo < max_gap, (elbo, ev)
  out = conjugate_prior_elbo_loss(jnp.zeros((2, 3)), 0.0, 0.1, 2.0, 1.0, jnp.zeros(3))
  assert out.shape == (2, 3) and out.dtype == jnp.float32
  with pytest.raises(ValueError, match="m2"):
    conjugate_prior_elbo_loss(0.0, 0.0, -1.0, 2.0, 1.0, 0.0)
  with pytest.raises(ValueError, match="eps2"):
    conjugate_prior_elbo_loss(0.0, 0.0, 1.0, 2.0, 1.0, 0.0, eps2=0.0)
  with pytest.raises(ValueError, match="mu must broadcast"):
    conjugate_prior_elbo_loss(jnp.zeros(2), jnp.zeros(3), 1.0, 2.0, 1.0, 0.0)


@pytest.mark.parametrize("name", ["m2", "alpha", "beta"])
@pytest.mark.parametrize("bad", [0.0, -0.5])
def test_traced_nonpositive_parameters_give_nan_rows(name, bad):
  # Regression (audit s23): under jit alpha = -0.5 gave a plausible finite loss (56.2) and m2 = 0 gave +inf,
  # with a zero gradient; the rule is NaN in value and gradient for the invalid elements only.
  args = {"x": jnp.ones(3), "mu": jnp.zeros(3), "m2": jnp.full(3, 0.5), "alpha": jnp.full(3, 2.0),
          "beta": jnp.ones(3), "y": jnp.zeros(3)}
  args[name] = args[name].at[1].set(bad)
  out = np.asarray(jax.jit(conjugate_prior_elbo_loss)(**args))
  assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]]))
  g = np.asarray(jax.grad(lambda mu: jax.jit(conjugate_prior_elbo_loss)(**{**args, "mu": mu}).sum())(args["mu"]))
  assert np.isnan(g[1]) and np.all(np.isfinite(g[[0, 2]]))
  with pytest.raises(ValueError, match=name):
    conjugate_prior_elbo_loss(**args)
