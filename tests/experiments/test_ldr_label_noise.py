"""The LDR label-noise experiment [9] on a tiny config: deterministic, its noise has the requested rates."""

import dataclasses
import json

import numpy as np
import pytest

from experiments import ldr_label_noise as exp

TINY = exp.Config(n_train=200, n_test=200, hidden=16, steps=40, log_every=20, num_classes=4, dim=5)


def test_noise_rates_and_clean_labels():
  x_tr, y_tr, x_te, y_te, labels = exp.make_data(dataclasses.replace(TINY, n_train=4000))
  np.testing.assert_array_equal(labels["clean"], y_tr)
  sym = labels["symmetric"] != y_tr
  assert abs(sym.mean() - 0.4) < 0.03
  asym = labels["asymmetric"] != y_tr
  assert abs(asym.mean() - 0.3) < 0.03
  np.testing.assert_array_equal(labels["asymmetric"][asym], (y_tr[asym] + 1) % 4)


def test_train_one_aldr_tiny_and_claims_logic():
  data = exp.make_data(TINY)
  acc, curve, extra = exp.train_one("aldr_kl", data[4]["symmetric"], data, TINY)
  assert 0.0 <= acc <= 1.0 and len(curve) == 2
  assert 1e-3 <= extra["lambda_min"] <= TINY.ldr_lambda
  accs = {"clean/ce": 0.99, "symmetric/ce": 0.6, "asymmetric/ce": 0.7, "symmetric/ldr_kl": 0.8,
          "symmetric/aldr_kl": 0.55, "asymmetric/ldr_kl": 0.75, "asymmetric/aldr_kl": 0.71}
  rows = exp.claims({"final_test_acc": accs})
  assert [r.passed for r in rows] == [True, True, False, True, True]
  np.testing.assert_allclose(rows[2].ours, -0.05)


@pytest.mark.slow
def test_run_and_claims_tiny(tmp_path):
  a = exp.run(TINY, tmp_path / "a")
  b = exp.run(TINY, tmp_path / "b")
  assert a["final_test_acc"] == b["final_test_acc"]
  json.dumps(a)
  assert (tmp_path / "a" / "figure.png").exists()
  rows = exp.claims(a)
  assert len(rows) == 5 and all(np.isfinite(r.ours) for r in rows)
