"""The SSL-EY CCA experiment [120]: the exact-CCA reference is right and the claims can fail."""

import dataclasses

import numpy as np

from experiments import ssl_ey_cca as exp
from jaxlib_methods.runner import Claim


def test_exact_cca_reference_recovers_population_correlations():
  cfg = dataclasses.replace(exp.Config(), n=20000)
  x, y, rho = exp.make_data(cfg)
  np.testing.assert_allclose(exp.exact_cca(x, y)[:cfg.n_signal], rho[:cfg.n_signal], atol=0.02)
  # Invariant to invertible linear maps of each view.
  rng = np.random.default_rng(1)
  np.testing.assert_allclose(exp.exact_cca(x @ rng.normal(size=(cfg.p, cfg.p)), y), exp.exact_cca(x, y), rtol=1e-8)


def test_claims_are_paper_claims_that_fail_off_the_optimum():
  """A run is judged against exact CCA: a 1% miss of a canonical correlation fails claims 1-2 (the TINY run and the
  PLS mutation are exercised by tests/experiments/test_mutations.py)."""
  exact = [0.9, 0.7, 0.5]
  res = {"rho_exact_cca": exact, "rho_ey_sgd": exact, "max_abs_rho_error": 0.0, "pcc": 1.0,
         "final_full_batch_ey_loss": -1.55, "ey_minimum_closed_form": -1.55}
  out = exp.claims(res)
  assert all(isinstance(c, Claim) and c.kind == "paper" and c.passed for c in out) and len(out) == 3
  off = dict(res, max_abs_rho_error=0.009, pcc=1 - 0.009 / 2.1, final_full_batch_ey_loss=-1.53)
  assert [c.passed for c in exp.claims(off)] == [False, False, False]
