"""The iSogCLR temperature experiment [183]: tiny config runs, eta = 0 freezes temperatures, probe is right."""

import dataclasses

import numpy as np

from experiments import isogclr_temperatures as exp
from jaxlib_methods.runner import Claim


def test_linear_probe_is_perfect_on_separable_features():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 3, size=90)
  f = np.eye(3)[y] * 5 + 0.01 * rng.normal(size=(90, 3))
  assert exp.linear_probe_accuracy(f[:60], y[:60], f[60:], y[60:]) == 1.0


def test_tiny_run_claims_and_frozen_baseline(tmp_path):
  cfg = dataclasses.replace(exp.Config(), per_frequent=60, per_rare=10, n_rare=3, steps=40, log_every=20,
                            batch_size=32)
  res = exp.run(cfg, tmp_path)
  assert res["tau_fixed_max_abs_change"] < 1e-7  # eta = 0: the fixed-temperature baseline
  assert set(res["probe_acc"]) == {"isogclr", "fixed_tau"}
  assert len(res["tau_by_class"]) == cfg.n_frequent + cfg.n_rare
  out = exp.claims(res)
  assert len(out) == 2 and all(isinstance(c, Claim) for c in out)
  assert (tmp_path / "figure.png").exists()
