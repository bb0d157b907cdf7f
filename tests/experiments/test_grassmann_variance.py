"""The GCR toy [97]: its variability measure on cases with known answers, and that its claims can fail."""

import numpy as np

from experiments import grassmann_variance as exp


def test_intra_class_variability_known_cases():
  rng = np.random.default_rng(0)
  y = np.repeat([0, 1, 2], 50)
  dirs = np.eye(5)[:3]
  collapsed = dirs[y] * rng.uniform(0.5, 2.0, size=(150, 1)) * rng.choice([-1, 1], size=(150, 1))
  assert exp.intra_class_variability(collapsed, y) < 1e-12            # each class on one line (either sign): 0
  same = rng.normal(size=(150, 5))                                     # labels independent of features: ~1
  assert 0.9 < exp.intra_class_variability(same, y) <= 1.0


def test_claims_logic():
  good = {"ks": [1, 2, 4], "orth_error": {"1": 3e-7}, "k1_abs_cos_error": 1e-7,
          "variability": {"1": [0.05, 0.06, 0.05], "2": [0.2, 0.25, 0.2], "4": [0.3, 0.35, 0.4]},
          "accuracy": {"1": [1.0], "2": [1.0], "4": [0.99]}}
  assert all(c.passed for c in exp.claims(good))
  bad = dict(good, orth_error={"1": 1e-3}, k1_abs_cos_error=0.1,
             variability={"1": [0.3, 0.2, 0.5], "2": [0.2, 0.25, 0.2], "4": [0.3, 0.35, 0.1]})
  assert [c.passed for c in exp.claims(bad)] == [False, False, False, True]
