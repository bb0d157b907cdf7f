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
          "accuracy": {"1": [1.0], "2": [1.0], "4": [0.99]},
          "transfer": {"1": [0.80, 0.85, 0.82], "2": [0.9, 0.9, 0.9], "4": [0.95, 0.99, 0.97]}}
  assert all(c.passed for c in exp.claims(good))
  bad = dict(good, orth_error={"1": 1e-3}, k1_abs_cos_error=0.1,
             variability={"1": [0.3, 0.2, 0.5], "2": [0.2, 0.25, 0.2], "4": [0.3, 0.35, 0.1]},
             transfer={"1": [0.9, 0.8, 0.95], "2": [0.9, 0.9, 0.9], "4": [0.92, 0.85, 0.9]})
  assert [c.passed for c in exp.claims(bad)] == [False, False, False, False, True]
  assert [c.kind for c in exp.claims(good)] == ["sanity", "sanity", "paper", "paper", "sanity"]


def test_linear_probe_accuracy_known_cases():
  rng = np.random.default_rng(0)
  y = np.repeat(np.arange(4), 40)
  separable = np.eye(6)[y] + 0.05 * rng.normal(size=(160, 6))       # one direction per label: the probe is exact
  assert exp.linear_probe_accuracy(separable, y, separable, y) == 1.0
  noise = rng.normal(size=(160, 6))                                    # labels independent of the features
  assert exp.linear_probe_accuracy(noise[:80], y[::2], noise[80:], y[1::2]) < 0.6
