"""The SGD-stability experiment [198]: the claims' logic on hand-made results (the run itself checks the Hutch++ trace
against the interpolation closed form; the full run is `python -m experiments run sgd_stability_trace`)."""

import numpy as np

from experiments import sgd_stability_trace as exp


def _results(sgd_trace, gd_trace, sgd_test, gd_test, norms):
  etas = [0.1, 0.2]
  ones = np.ones((2, 4))
  arm = lambda tr, test, norm: {"trace": tr, "trace_closed": tr, "lambda_max": ones.tolist(),
                                "lambda_max_closed": ones.tolist(), "train_loss": (0 * ones).tolist(),
                                "norm": norm, "l1": ones.tolist(), "test_mse": test}
  return {"etas": etas, "sgd": arm(sgd_trace, sgd_test, norms), "gd": arm(gd_trace, gd_test, (30 * ones).tolist())}


def test_claims_pass_and_fail_on_hand_made_results():
  noise = np.array([[0.0, 0.01, -0.01, 0.02]] * 2)
  good = _results(sgd_trace=[[15.0] * 4, [8.0] * 4], gd_trace=[[25.0] * 4, [25.0] * 4],
                  sgd_test=(np.array([[0.5] * 4, [0.2] * 4]) + noise).tolist(), gd_test=[[0.6] * 4, [0.6] * 4],
                  norms=(np.array([[16.0] * 4, [9.0] * 4]) + noise).tolist())
  assert all(c.passed for c in exp.claims(good)), [c.claim for c in exp.claims(good) if not c.passed]
  # SGD above 2/eta at eta = 0.2 (trace 12 > 10), and test error flat: those claims must fail.
  bad = _results(sgd_trace=[[15.0] * 4, [12.0] * 4], gd_trace=[[25.0] * 4, [25.0] * 4],
                 sgd_test=[[0.5] * 4, [0.5] * 4], gd_test=[[0.6] * 4, [0.6] * 4],
                 norms=(np.array([[16.0] * 4, [9.0] * 4]) + noise).tolist())
  failed = {c.claim.split(":")[0] + ":" + c.claim.split(":")[1][:25] for c in exp.claims(bad) if not c.passed}
  assert any(name.startswith("SGD (B = 1)") for name in failed), failed
  assert any("test MSE" in name for name in failed), failed
  # A diverged run (NaN, stored as the string "nan") fails the claims instead of crashing them.
  nan_run = _results(sgd_trace=[[15.0] * 4, ["nan"] * 4], gd_trace=[[25.0] * 4, [25.0] * 4],
                     sgd_test=[[0.5] * 4, ["nan"] * 4], gd_test=[[0.6] * 4, [0.6] * 4],
                     norms=[[16.0] * 4, [9.0] * 4])
  assert not all(c.passed for c in exp.claims(nan_run))
