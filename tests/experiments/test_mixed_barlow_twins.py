"""The Mixed Barlow Twins experiment [91]: its k-NN probe against a brute-force loop and its data against their
definition. The TINY run and the no-regulariser mutation are exercised by tests/experiments/test_mutations.py (under
-m slow: the TINY run takes over 10 s)."""

import collections

import numpy as np

from experiments import mixed_barlow_twins as exp


def test_knn_accuracy_matches_a_brute_force_loop_and_data_shapes():
  rng = np.random.default_rng(0)
  ftr, fte = rng.normal(size=(30, 4)), rng.normal(size=(20, 4))
  ytr, yte = rng.integers(3, size=30), rng.integers(3, size=20)
  correct = 0
  for f, y in zip(fte, yte):
    cos = [f @ g / (np.linalg.norm(f) * np.linalg.norm(g)) for g in ftr]
    top = sorted(range(30), key=lambda i: -cos[i])[:5]
    counts = collections.Counter(int(ytr[i]) for i in top)
    best = max(counts.values())
    correct += min(c for c, n in counts.items() if n == best) == y
  assert exp.knn_accuracy(ftr, ytr, fte, yte, 5) == correct / 20
  # Separable classes: 1-NN is exact.
  assert exp.knn_accuracy(np.eye(3), [0, 1, 2], 2 * np.eye(3), [0, 1, 2], 1) == 1.0

  config = exp.Config(n_train=16, n_test=12)
  xtr, ytr, xte, yte = exp.make_data(config, np.random.default_rng(1))
  assert xtr.shape == (16, config.input_dim) and xte.shape == (12, config.input_dim)
  assert ytr.min() >= 0 and ytr.max() < config.num_classes
  assert np.all(np.abs(xtr) < 1 + 1.0)   # tanh features plus 0.1-scale noise
