"""The TCM experiment [10]: open-world data (disjoint train and test classes), Recall@1, and the claims' logic."""

import numpy as np
import pytest

from experiments import _seed_stats as st
from experiments import tcm_threshold_consistency as exp
from jaxlib_methods.runner import experiment as exp_lib

SMALL = ("seeds=2", "steps=20", "train_classes=6", "test_classes=5", "per_class=4", "test_per_class=6", "hidden=16",
         "emb_dim=8", "batch_size=16")


def test_data_spreads_and_shapes():
  cfg = exp_lib.get("tcm_threshold_consistency").config("cpu", SMALL)
  (x, y, spread), (xt, yt, spread_t) = exp.make_data(cfg, 0)
  assert x.shape == (6 * 4, cfg.dim) and xt.shape == (5 * 6, cfg.dim)
  assert set(y.tolist()) == set(range(6)) and set(yt.tolist()) == set(range(5))
  assert np.all((spread >= cfg.spread_min) & (spread <= cfg.spread_max)) and np.ptp(spread_t) > 0


def test_recall_at_1_matches_brute_force():
  rng = np.random.default_rng(1)
  e = rng.normal(size=(30, 4))
  e /= np.linalg.norm(e, axis=1, keepdims=True)
  y = rng.integers(0, 3, 30)
  sim = e @ e.T
  hits = []
  for i in range(30):
    j = max((k for k in range(30) if k != i), key=lambda k: sim[i, k])
    hits.append(y[j] == y[i])
  assert exp.recall_at_1(sim, y) == np.mean(hits)


@pytest.mark.slow  # ~10 s of compilation; the metrics themselves are tested in tests/losses/test_tcm.py
def test_train_all_runs_and_measures_the_library_metrics():
  cfg = exp_lib.get("tcm_threshold_consistency").config("cpu", SMALL)
  data = [exp.make_data(cfg, r) for r in range(cfg.seeds)]
  out = exp.train_all(cfg, data)
  assert {k: len(v) for k, v in out.items()} == {k: 4 for k in ("opis", "eps_opis", "recall_at_1", "pos_sim_mean",
                                                               "neg_sim_mean")}
  assert all(np.isfinite(v) for vs in out.values() for v in vs)
  assert all(0 <= v <= 1 for v in out["recall_at_1"])


def test_claims_logic():
  d = {"opis": st.paired_ci([0.01, 0.012, 0.011], [0.02, 0.021, 0.02]),
       "eps_opis": st.paired_ci([0.3, 0.2, 0.35], [0.3, 0.3, 0.3]),
       "recall_at_1": st.paired_ci([0.9, 0.91, 0.9], [0.9, 0.9, 0.9])}
  rows = exp.claims({"diff": d})
  assert [(r.kind, r.passed) for r in rows] == [("paper", True), ("paper", False), ("paper", True)]
  d["recall_at_1"] = st.paired_ci([0.85, 0.86, 0.85], [0.9, 0.9, 0.9])
  assert not exp.claims({"diff": d})[2].passed
