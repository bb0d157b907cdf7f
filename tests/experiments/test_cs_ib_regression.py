"""The CS-IB regression experiment [4]: its closed-form reference and data (the TINY run and the MSE mutation are
exercised by tests/experiments/test_mutations.py)."""

import dataclasses

import numpy as np
import pytest

from experiments import cs_ib_regression as exp


def test_gaussian_cs_divergence_closed_form_special_cases():
  s = np.array([[1.5, 0.3], [0.3, 0.8]])
  m1, m2 = np.zeros(2), np.array([1.0, -2.0])
  assert exp.gaussian_cs_divergence(m1, s, m1, s) == pytest.approx(0.0, abs=1e-12)
  # Equal covariances: D_CS = (1/2) d^T S^-1 d, the KL divergence.
  d = m1 - m2
  assert exp.gaussian_cs_divergence(m1, s, m2, s) == pytest.approx(0.5 * d @ np.linalg.solve(s, d), rel=1e-12)
  # Symmetric in its arguments, >= 0.
  s2 = np.diag([0.5, 2.0])
  a, b = exp.gaussian_cs_divergence(m1, s, m2, s2), exp.gaussian_cs_divergence(m2, s2, m1, s)
  assert a == pytest.approx(b, rel=1e-12) and a > 0


def test_outliers_replace_the_requested_fraction_of_targets():
  cfg = dataclasses.replace(exp.Config(), n_train=4000, noise_scale=0.0, outlier_fraction=0.25)
  x, y, _, _ = exp.make_data(cfg)
  clean = dataclasses.replace(cfg, outlier_fraction=0.0)
  _, y_clean, _, _ = exp.make_data(clean)
  assert abs(np.mean(np.abs(y - y_clean) > 1e-6) - 0.25) < 0.03
