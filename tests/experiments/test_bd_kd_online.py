"""The BD-KD experiment [76]: the data and the claims' logic (the mutation test runs the training)."""

import numpy as np

from experiments import _seed_stats as st
from experiments import bd_kd_online as exp
from jaxlib_methods.runner import experiment as exp_lib


def test_data_has_the_requested_label_noise():
  cfg = exp_lib.get("bd_kd_online").config("cpu", ("n_train=20000",))
  x, y, xt, yt = exp.make_data(cfg, 0)
  rng = np.random.default_rng([cfg.seed, 0])  # the same draws: the clean labels come first
  rng.normal(size=(cfg.num_classes, cfg.dim))
  y_clean = rng.integers(0, cfg.num_classes, cfg.n_train)
  changed = np.mean(y != y_clean)
  assert abs(changed - cfg.label_noise * (1 - 1 / cfg.num_classes)) < 0.01


def test_claims_logic():
  res = {"diff": {"ece": st.paired_ci([0.10, 0.11, 0.12], [0.12, 0.13, 0.14]),
                  "acc": st.paired_ci([0.93, 0.935, 0.925], [0.90, 0.91, 0.90])}}
  assert [c.passed for c in exp.claims(res)] == [True, True]
  res["diff"]["ece"] = st.paired_ci([0.1, 0.1, 0.1], [0.1, 0.1, 0.1])
  assert [c.passed for c in exp.claims(res)] == [False, True]
  # the paper's direction: equal accuracy, or the recorded small significant loss, fails claim 2
  for bd_kd, dml in (([0.90, 0.91, 0.90], [0.90, 0.91, 0.90]), ([0.925, 0.93, 0.92], [0.93, 0.934, 0.926])):
    res["diff"]["acc"] = st.paired_ci(bd_kd, dml)
    assert not exp.claims(res)[1].passed
