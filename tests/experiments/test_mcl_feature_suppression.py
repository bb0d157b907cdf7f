"""The MCL experiment [54]: the easy/hard data, the stage-2 arms, and the claims' logic."""

import numpy as np
import pytest

from experiments import _seed_stats as st
from experiments import mcl_feature_suppression as exp
from jaxlib_methods.runner import experiment as exp_lib


def test_data_and_claims():
  cfg = exp_lib.get("mcl_feature_suppression").config("cpu", exp.TINY)
  (x, e, h), (xt, et, ht) = exp.make_data(cfg, 0)
  assert x.shape == (cfg.n_train, cfg.dim) and xt.shape == (cfg.n_test, cfg.dim) and x.dtype == np.float32
  assert set(np.unique(e)) == set(range(cfg.num_easy)) and set(np.unique(h)) == set(range(cfg.num_hard))
  assert abs(np.corrcoef(e, h)[0, 1]) < 0.06                                  # independent attributes
  # The easy attribute moves a point ~easy/hard_scale times more than the hard one (float64 check of the generator).
  easy_means = np.stack([x[e == c].mean(0) for c in range(cfg.num_easy)])
  hard_means = np.stack([x[h == c].mean(0) for c in range(cfg.num_hard)])
  ratio = np.std(easy_means - x.mean(0)) / np.std(hard_means - x.mean(0))
  assert cfg.easy_scale / cfg.hard_scale * 0.6 < ratio < cfg.easy_scale / cfg.hard_scale * 1.6
  np.testing.assert_array_equal(exp.make_data(cfg, 0)[0][0], x)              # seeded

  def res(hard_mcl, easy_mcl):
    return {"hard_mcl_minus_control": st.paired_ci(hard_mcl, [0.8, 0.75, 0.82]),
            "easy_mcl_minus_stage1": st.paired_ci(easy_mcl, [0.99, 0.98, 1.0]),
            "stage1_hard_minus_easy": st.paired_ci([0.5, 0.5, 0.52], [0.99, 0.98, 1.0])}
  rows = exp.claims(res([0.97, 0.95, 0.99], [0.99, 0.98, 1.0]))
  assert [(r.kind, r.passed) for r in rows] == [("paper", True), ("paper", True), ("sanity", True)]
  rows = exp.claims(res([0.8, 0.75, 0.82], [0.95, 0.94, 0.97]))          # no gain; easy feature lost
  assert [r.passed for r in rows] == [False, False, True]


@pytest.mark.slow   # the default run's test_mutations runs this mutation at the TINY size
def test_one_cluster_makes_mcl_the_control(tmp_path):
  # The mutation `clusters=1`: stage 2's negatives are the whole batch, so MCL's stage 2 is the control (same
  # weights and batches); with clusters the two differ.
  cfg = exp_lib.get("mcl_feature_suppression").config("cpu", (
      "seeds=2", "steps=10", "n_train=256", "n_test=100", "batch_size=32", "hidden=16", "clusters=1"))
  data = [exp.make_data(cfg, r) for r in range(cfg.seeds)]
  out = exp.train_all(cfg, data, tmp_path)
  np.testing.assert_array_equal(out["mcl"]["hard"], out["control"]["hard"])
  np.testing.assert_array_equal(out["mcl"]["easy"], out["control"]["easy"])
