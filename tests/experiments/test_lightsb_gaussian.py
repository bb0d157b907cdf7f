"""The LightSB experiment [133]: its closed-form EOT plan against Janati et al. 2020, and that its claims can fail."""

import numpy as np
import scipy.linalg

from experiments import lightsb_gaussian as exp


def test_closed_form_plan_matches_janati_and_the_marginals():
  cfg = exp.Config(dim=3, seed=4)
  mu0, s0, mu1, s1 = exp.gaussian_problem(cfg)
  eps = 0.3
  r, s = exp.eot_conditional(mu0, s0, mu1, s1, eps)
  # Janati et al. 2020 (cost |x-y|^2, reg 2 sigma^2 = 2 eps):
  # C = 1/2 A^1/2 (4 A^1/2 B A^1/2 + eps^2 I)^1/2 A^-1/2 - eps/2 I
  a = np.real(scipy.linalg.sqrtm(s0))
  d = np.real(scipy.linalg.sqrtm(4 * a @ s1 @ a + eps ** 2 * np.eye(3)))
  cross = 0.5 * a @ d @ np.linalg.inv(a) - eps / 2 * np.eye(3)
  np.testing.assert_allclose(s0 @ s, cross, atol=1e-10)
  np.testing.assert_allclose(s @ s0 @ s + eps * s, s1, atol=1e-10)    # y-marginal covariance
  np.testing.assert_allclose(r + s @ mu0, mu1, atol=1e-12)             # y-marginal mean
  assert np.all(np.linalg.eigvalsh(s) > 0)


def test_claims_logic():
  good = {"cov_rel_error": 0.003, "mean_rel_error": 0.004, "marginal_mean_rel_error": 0.01,
          "marginal_cov_rel_error": 0.01, "fit_seconds": 50.0}
  assert all(c.passed for c in exp.claims(good))
  bad = dict(good, cov_rel_error=0.2, mean_rel_error=0.05)
  assert [c.passed for c in exp.claims(bad)] == [False, False, True, True]
