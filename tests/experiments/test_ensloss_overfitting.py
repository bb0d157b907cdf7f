"""The EnsLoss experiment [75]: the data, and the claims' logic (the mutation test runs the training)."""

import numpy as np

from experiments import _seed_stats as st
from experiments import ensloss_overfitting as exp
from jaxlib_methods.runner import experiment as exp_lib


def test_data_overlap_and_noise():
  cfg = exp_lib.get("ensloss_overfitting").config("cpu", ("n_train=20000",))
  x, y, xt, yt = exp.make_data(cfg, 0)
  assert set(np.unique(y)) == {0, 1} and x.shape == (20000, cfg.dim)
  # Bayes accuracy of two unit-variance Gaussians at distance `separation`: Phi(separation / 2).
  from scipy.stats import norm
  direction = xt[yt == 1].mean(0) - xt[yt == 0].mean(0)
  assert abs(np.linalg.norm(direction) - cfg.separation) < 0.3
  assert norm.cdf(cfg.separation / 2) < 0.75


def test_claims_logic():
  d = {"test_vs_logistic": st.paired_ci([0.6, 0.61, 0.62], [0.58, 0.59, 0.6]),
       "test_vs_hinge": st.paired_ci([0.6, 0.6, 0.6], [0.6, 0.6, 0.6]),
       "gap_vs_logistic": st.paired_ci([0.3, 0.31, 0.3], [0.35, 0.36, 0.35])}
  assert [c.passed for c in exp.claims({"diff": d})] == [True, False, True]
