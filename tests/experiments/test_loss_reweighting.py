"""The loss-reweighting experiment [78]: the redundant data, steps-to-target, and the claims' logic."""

import numpy as np

from experiments import _seed_stats as st
from experiments import loss_reweighting as exp
from jaxlib_methods.runner import experiment as exp_lib


def test_redundant_samples_span_two_dimensions():
  cfg = exp_lib.get("loss_reweighting").config("cpu", exp.TINY)
  x, y, w = exp.make_data(cfg, 0)
  n_red = int(round(cfg.redundant_fraction * cfg.n_train))
  assert np.linalg.matrix_rank(x[:n_red].astype(np.float64), tol=1e-3) == 2
  assert np.linalg.matrix_rank(x[n_red:].astype(np.float64)) == cfg.dim
  np.testing.assert_allclose(np.mean(x[:n_red] ** 2), np.mean(x[n_red:] ** 2), rtol=0.15)  # same scale


def test_steps_to_and_claims():
  assert exp.steps_to(np.array([5.0, 3.0, 1.0, 0.5]), 1.0, 20) == 40.0
  assert exp.steps_to(np.array([5.0, 3.0]), 1.0, 20) == float("inf")
  res = {"steps_ratio": st.mean_ci([0.3, 0.35, 0.32]), "final_diff": st.paired_ci([1.0, 1.1, 1.0], [1.0, 1.0, 1.0]),
         "final_uniform": [1.0, 1.0, 1.0]}
  rows = exp.claims(res)
  assert [r.passed for r in rows] == [True, False]  # +0.033 [-0.11, +0.18]: the upper end is above 0
  res["final_diff"] = st.paired_ci([0.8, 0.85, 0.82], [1.0, 1.0, 1.0])
  assert [r.passed for r in exp.claims(res)] == [True, True]
  res["steps_ratio"] = st.mean_ci([1.0, 1.0, 1.0])
  assert not exp.claims(res)[0].passed
