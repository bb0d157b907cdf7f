"""The MoCHi experiment [83]: the data, the MoCo pieces (EMA key encoder, FIFO queue) and the claims' logic."""

import numpy as np

from experiments import _seed_stats as st
from experiments import mochi_hard_negatives as exp
from jaxlib_methods.runner import experiment as exp_lib


def test_data_and_claims():
  cfg = exp_lib.get("mochi_hard_negatives").config("cpu", exp.TINY)
  x, y, xt, yt = exp.make_data(cfg, 0)
  assert x.shape == (cfg.n_train, cfg.dim) and xt.shape == (cfg.n_test, cfg.dim) and x.dtype == np.float32
  assert set(np.unique(y)) == set(range(cfg.num_clusters))
  np.testing.assert_array_equal(exp.make_data(cfg, 0)[0], x)             # seeded
  assert not np.array_equal(exp.make_data(cfg, 1)[0], x)
  # The within-cluster spread is point_noise per coordinate (float64 check of the generator).
  centers = np.stack([x[y == c].mean(0) for c in range(cfg.num_clusters)])
  assert abs(np.std(x - centers[y]) - cfg.point_noise) < 0.05

  def res(acc_mochi, unif_mochi):
    acc_moco, unif_moco = [0.35, 0.34, 0.36], [3.40, 3.41, 3.39]
    return {"acc_diff": st.paired_ci(acc_mochi, acc_moco), "unif_diff": st.paired_ci(unif_mochi, unif_moco),
            "setting": [128, 128, 32], "queue_size": 512}
  rows = exp.claims(res([0.36, 0.35, 0.37], [3.42, 3.42, 3.41]))
  assert [(r.kind, r.passed) for r in rows] == [("paper", True), ("paper", True)]
  rows = exp.claims(res([0.35, 0.34, 0.36], [3.45, 3.38, 3.39]))   # identical accuracy; uniformity interval holds 0
  assert [r.passed for r in rows] == [False, False]


def test_no_synthetic_negatives_makes_the_arms_identical(tmp_path):
  # The mutation: without synthetic negatives the MoCHi arm is MoCo (same weights, batches, views, queue).
  cfg = exp_lib.get("mochi_hard_negatives").config("cpu", (
      "seeds=2", "steps=10", "n_train=256", "n_test=100", "batch_size=16", "queue_size=64", "num_hard=16",
      "num_mix=0", "num_query_mix=0", "probe_labels=100", "hidden=16", "out=8"))
  data = [exp.make_data(cfg, r) for r in range(cfg.seeds)]
  out = exp.train_all(cfg, data, tmp_path)
  np.testing.assert_array_equal(out["uniformity"][0::2], out["uniformity"][1::2])
  np.testing.assert_array_equal(out["probe_acc"][0::2], out["probe_acc"][1::2])
