"""The DEXML experiment [213]: the multi-label data, the retrieval metrics, and the claims' logic."""

import numpy as np

from experiments import _seed_stats as st
from experiments import dexml_multilabel as exp
from jaxlib_methods.runner import experiment as exp_lib


def test_positive_sets_and_metrics():
  cfg = exp_lib.get("dexml_multilabel").config("cpu", exp.TINY)
  (x, pos), (xt, post) = exp.make_data(cfg, 0)
  sizes = pos.sum(1)
  assert sizes.min() == 1 and sizes.max() == cfg.max_positives and x.shape == (cfg.n_train, cfg.dim)
  scores = np.where(post, 1.0, 0.0) + np.random.default_rng(0).random(post.shape) * 0.1  # positives ranked first
  m = exp.metrics(scores, post)
  assert m["p_at_1"] == 1.0 and m["r_at_10"] == 1.0
  np.testing.assert_allclose(m["p_at_5"], np.mean(np.minimum(post.sum(1), 5) / 5))


def test_claims_logic():
  d = {"p_at_1": st.paired_ci([0.8, 0.81, 0.8], [0.8, 0.81, 0.8]),
       "p_at_5": st.paired_ci([0.6, 0.61, 0.62], [0.5, 0.52, 0.5]),
       "r_at_10": st.paired_ci([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])}
  rows = exp.claims({"diff": d, "softmax_minus_floor_min": 0.01})
  assert [(r.kind, r.passed) for r in rows] == [("paper", True), ("paper", False), ("paper", True), ("sanity", True)]
