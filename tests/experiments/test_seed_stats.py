"""`experiments._seed_stats.paired_z`: the mean paired difference in standard errors, against a hand computation."""

import math

import numpy as np

from experiments import _seed_stats


def test_paired_z_matches_the_hand_computation_and_edge_cases():
  a, b = [0.3, 0.5, 0.2], [0.1, 0.2, 0.1]
  d = [0.2, 0.3, 0.1]                                   # mean 0.2, sample std 0.1, SE 0.1 / sqrt(3)
  assert math.isclose(_seed_stats.paired_z(a, b), 0.2 / (0.1 / math.sqrt(3)), rel_tol=1e-12)
  assert np.allclose(d, np.subtract(a, b))
  assert _seed_stats.paired_z([1.0, 2.0], [1.0, 2.0]) == 0.0          # identical arms: exactly 0, not NaN
  assert math.isnan(_seed_stats.paired_z([1.0], [0.0]))               # one seed says nothing about the noise


def test_paired_mean_se_matches_the_hand_computation():
  mean, se = _seed_stats.paired_mean_se([0.3, 0.5, 0.2], [0.1, 0.2, 0.1])   # differences 0.2, 0.3, 0.1
  assert math.isclose(mean, 0.2, rel_tol=1e-12) and math.isclose(se, 0.1 / math.sqrt(3), rel_tol=1e-12)
