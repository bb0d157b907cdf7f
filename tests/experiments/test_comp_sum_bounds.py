"""The comp-sum bounds experiment [164]: T_tau and its inverse, the closed-form Bayes risk, the claims' logic."""

import numpy as np
import pytest
from scipy.optimize import minimize

from experiments import comp_sum_bounds as exp


@pytest.mark.parametrize("tau", [1.0, 0.5, 0.0])
def test_t_transform_is_the_two_class_excess_and_gamma_inverts_it(tau):
  t = np.linspace(0.01, 0.99, 25)
  # T_tau(t) = excess conditional risk at p = ((1+t)/2, (1-t)/2) of the boundary hypothesis (softmax 1/2, 1/2):
  # C(1/2) = log 2 (CE) or (2^(1-tau) - 1) / (1 - tau), minus the Bayes risk (computed independently below).
  c_half = np.log(2.0) if tau == 1.0 else (2 ** (1 - tau) - 1) / (1 - tau)
  bayes = np.array([_bayes_numeric(np.array([(1 + x) / 2, (1 - x) / 2]), tau) for x in t])
  np.testing.assert_allclose(exp.t_transform(t, tau), c_half - bayes, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(exp.gamma_transform(exp.t_transform(t, tau), tau), t, atol=1e-12)
  if tau == 1.0:  # CE: Gamma ~ sqrt(2 t) near 0 (Pinsker)
    np.testing.assert_allclose(exp.gamma_transform(np.array([1e-8]), 1.0), np.sqrt(2e-8), rtol=1e-3)


def _bayes_numeric(p, tau):
  """inf over softmax s of sum_y p_y Phi^tau(1/s_y - 1), by a generic optimiser on the logits (float64)."""
  def risk(z):
    s = np.exp(z - z.max())
    s /= s.sum()
    if tau == 1.0:
      return -np.sum(p * np.log(s))
    return np.sum(p * (s ** (tau - 1) - 1) / (1 - tau))
  return minimize(risk, np.zeros(len(p)), method="BFGS", options={"gtol": 1e-12}).fun


@pytest.mark.parametrize("tau", [1.0, 0.5, 0.0])
def test_closed_form_bayes_risk_matches_a_generic_optimiser(tau):
  rng = np.random.default_rng(int(tau * 10))
  for n in (2, 3, 6):
    p = rng.dirichlet(np.ones(n))
    np.testing.assert_allclose(exp.bayes_conditional_risk(p, tau), _bayes_numeric(p, tau), rtol=1e-6, atol=1e-9)


def test_claims_logic():
  good = {"bound": {t: {"max_gap": -0.01} for t in ("1.0", "0.5", "0.0")},
          "tight": {t: {"max_ratio": 0.9999} for t in ("1.0", "0.5", "0.0")},
          "closed_form_check": {"1.0": 1e-9}}
  assert all(c.passed for c in exp.claims(good))
  bad = dict(good, bound=dict(good["bound"], **{"0.5": {"max_gap": 0.02}}))
  assert [c.passed for c in exp.claims(bad)] == [True, False, True, True, True]
