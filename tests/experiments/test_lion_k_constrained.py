"""The Lion-K experiment [193]: a pure function of config + seed; its reference solver is right."""

import dataclasses

import numpy as np

from experiments import lion_k_constrained as exp


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
  cfg = dataclasses.replace(exp.Config(), horizon=1.0, log_every=250, checkpoint_every=1000)
  a = exp.run(cfg, tmp_path / "a")
  b = exp.run(cfg, tmp_path / "b")
  c = exp.run(dataclasses.replace(cfg, seed=1), tmp_path / "c")
  assert a["x_final_A"] == b["x_final_A"] and a["lambda"] == b["lambda"]
  assert a["x_final_A"] != c["x_final_A"]


def test_reference_solver_satisfies_kkt_conditions():
  cfg = exp.Config()
  a, y, x_unc, lam = exp.make_problem(cfg)
  assert np.max(np.abs(x_unc)) * lam > 1.5  # the unconstrained optimum is well outside the box
  x_star = exp.constrained_reference(a, y, cfg.ridge, lam, cfg)
  g = exp._grad_np(a, y, cfg.ridge, x_star)
  r = 1 / lam
  inside = np.abs(x_star) < r - 1e-9
  np.testing.assert_allclose(g[inside], 0.0, atol=1e-9)                # stationary in free coordinates
  assert np.all(-g[~inside] * np.sign(x_star[~inside]) >= -1e-9)       # pushing outward at active ones
  assert np.all(np.abs(x_star) <= r + 1e-12)
