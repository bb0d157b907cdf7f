"""The LDR label-noise experiment [9]: the authors' noise models, the claims' logic, and (slow) a deterministic run."""

import json

import numpy as np
import pytest

from experiments import _seed_stats as st
from experiments import ldr_label_noise as exp
from jaxlib_methods.runner import experiment as exp_lib


def test_noise_models_are_the_authors():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 26, 200000)
  u = exp.uniform_noise(y, 26, 0.6, np.random.default_rng(1))
  # Redrawn from ALL classes: a fraction 0.6 * 25/26 of the labels change, and a changed label is uniform.
  assert abs(np.mean(u != y) - 0.6 * 25 / 26) < 0.005
  assert abs(np.mean((u - y) % 26 == 1) - 0.6 / 26) < 0.002
  c = exp.class_dependent_noise(y, 26, 0.3, np.random.default_rng(2))
  changed = c != y
  assert abs(changed.mean() - 0.3) < 0.005
  np.testing.assert_array_equal(c[changed], (y[changed] + 1) % 26)


def test_data_splits_and_settings():
  cfg = exp_lib.get("ldr_label_noise").config("cpu", exp.TINY)
  d = exp.make_data(cfg, 0)
  assert d["x_tr"].shape == (cfg.n_train, cfg.dim) and d["x_val"].shape == (cfg.n_val, cfg.dim)
  assert set(d["y_tr"]) == {s[0] for s in exp.SETTINGS}
  np.testing.assert_array_equal(exp.make_data(cfg, 0)["y_tr"]["uniform 0.9"], d["y_tr"]["uniform 0.9"])
  assert not np.array_equal(exp.make_data(cfg, 1)["x_tr"], d["x_tr"])


def test_claims_need_the_interval_above_zero():
  base = {"aldr_minus_ce": st.paired_ci([0.52, 0.55, 0.53], [0.50, 0.51, 0.50]),
          "ldr_minus_ce": st.paired_ci([0.50, 0.51, 0.50], [0.50, 0.51, 0.50]),   # identical: CI [0, 0] fails
          "aldr_minus_other": {"ce": st.paired_ci([0.52, 0.55, 0.53], [0.50, 0.51, 0.50]),
                               "gce": st.paired_ci([0.52, 0.55, 0.53], [0.54, 0.56, 0.55])},
          "ce_clean_minus_uniform09": st.paired_ci([0.8, 0.8, 0.8], [0.3, 0.2, 0.25])}
  rows = exp.claims(base)
  assert [r.kind for r in rows] == ["paper", "paper", "sanity", "paper"]
  assert [r.passed for r in rows] == [True, False, True, False]
  assert "gce" in rows[1].tolerance


@pytest.mark.slow
def test_tiny_run_is_deterministic(tmp_path):
  e = exp_lib.get("ldr_label_noise")
  cfg = e.config("cpu", exp.TINY)
  a = e.run(cfg, tmp_path / "a")
  b = e.run(cfg, tmp_path / "b")
  assert a["final_test_acc"] == b["final_test_acc"]
  json.dumps(a)
  assert (tmp_path / "a" / "figure.png").exists()
