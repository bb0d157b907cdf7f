"""The iSogCLR temperature experiment [183]: the data are long-tailed per batch, the probe and diagnostics are right
(the TINY run and the eta = 0 mutation are exercised by tests/experiments/test_mutations.py)."""

import dataclasses

import numpy as np

from experiments import isogclr_temperatures as exp


def test_linear_probe_is_perfect_on_separable_features():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 3, size=90)
  f = np.eye(3)[y] * 5 + 0.01 * rng.normal(size=(90, 3))
  assert exp.linear_probe_accuracy(f[:60], y[:60], f[60:], y[60:]) == 1.0


def test_rare_anchors_usually_have_no_classmate_in_their_batch():
  cfg = exp.Config()
  x, y, x_test, y_test = exp.make_data(cfg)
  assert len(y) == cfg.n_frequent * cfg.per_frequent + cfg.n_rare * cfg.per_rare
  assert np.all(np.bincount(y_test) == cfg.test_per_class)                 # balanced test set
  # Monte Carlo over batches drawn without replacement vs the closed form (per_rare - 1)(B - 1)/(N - 1).
  rng = np.random.default_rng(1)
  mates, none = [], []
  for _ in range(300):
    b = y[rng.choice(len(y), cfg.batch_size, replace=False)]
    rare = b >= cfg.n_frequent
    counts = np.bincount(b, minlength=y.max() + 1)[b] - 1
    mates.extend(counts[rare])
    none.extend(counts[rare] == 0)
  assert abs(np.mean(mates) - exp.expected_classmates(cfg)) < 0.03
  assert np.mean(none) > 0.7                                            # "usually no class-mate"


def test_batch_diagnostics_kl_is_zero_for_equal_similarities():
  cfg = dataclasses.replace(exp.Config(), batch_size=8, n_frequent=1)
  f = np.tile(np.eye(4)[:1], (16, 1)) + 0.0          # every embedding identical: p uniform, KL = 0
  y = np.array([0] * 8 + [1] * 8)
  kl_f, kl_r, near_f, near_r = exp.batch_diagnostics(f, y, np.full(16, 0.1), cfg, num_batches=2)
  assert abs(kl_f) < 1e-12 and abs(kl_r) < 1e-12 and near_f == near_r == 1.0
