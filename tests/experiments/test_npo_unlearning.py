"""The NPO unlearning experiment [182] on a tiny config: deterministic, claims well formed."""

import json

import numpy as np
import pytest

from experiments import npo_unlearning as exp

TINY = exp.Config(n_train=200, n_test=200, hidden=16, pretrain_steps=50, unlearn_steps=80, log_every=20)


def test_forget_set_is_its_own_cluster():
  x, y, xt, yt, forget = exp.make_data(TINY)
  assert forget.sum() == 20
  centre = x[forget].mean(0)
  assert np.linalg.norm(centre) > 0.7 * TINY.forget_offset


def test_run_and_claims_tiny(tmp_path):
  a = exp.run(TINY, tmp_path / "a")
  json.dumps(a)
  assert (tmp_path / "a" / "figure.png").exists()
  rows = exp.claims(a)
  assert len(rows) == 4
  # NPO's gradient is GA's times a weight in (0, 2): the first NPO step can't push the forget set down faster.
  assert a["runs"]["npo"]["forget_loglik"][1] >= a["runs"]["ga"]["forget_loglik"][1] - 1e-6


@pytest.mark.slow
def test_same_seed_same_numbers(tmp_path):
  a = exp.run(TINY, tmp_path / "a")
  b = exp.run(TINY, tmp_path / "b")
  assert a["runs"]["npo"]["forget_loglik"] == b["runs"]["npo"]["forget_loglik"]
