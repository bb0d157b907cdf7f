"""The SSL-EY CCA experiment [120]: tiny config runs, claims are well formed, the exact-CCA reference is right."""

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


def test_tiny_run_and_claims(tmp_path):
  cfg = dataclasses.replace(exp.Config(), n=600, steps=400, log_every=200, batch_size=128)
  res = exp.run(cfg, tmp_path)
  assert len(res["rho_ey_sgd"]) == cfg.k and len(res["ey_loss_curve"]) == 2
  assert res["final_full_batch_ey_loss"] >= res["ey_minimum_closed_form"] - 1e-4  # cannot beat the minimum
  out = exp.claims(res)
  assert all(isinstance(c, Claim) for c in out) and len(out) == 2
  assert (tmp_path / "figure.png").exists()
