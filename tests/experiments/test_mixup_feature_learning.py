"""The Mixup feature-learning experiment [41]: the claims' logic on hand-made results (the training itself runs in
the mutation test, under -m slow; the artifacts are tested in tests/data/test_mixup_feature_noise.py)."""

from experiments import _seed_stats as st
from experiments import mixup_feature_learning as exp


def test_claims_logic():
  res = {"rare_gain": st.paired_ci([0.95, 0.97, 0.96], [0.5, 0.49, 0.51]), "erm_rare": st.mean_ci([0.5, 0.49, 0.51]),
         "decoupled_minus_mixup": st.paired_ci([0.99, 0.995, 0.99], [0.99, 0.99, 0.992]),
         "early_minus_mixup": st.paired_ci([0.99, 0.99, 0.99], [0.99, 0.992, 0.991]), "erm_train_acc": 1.0}
  assert [c.passed for c in exp.claims(res)] == [True] * 5
  res["rare_gain"] = st.paired_ci([0.6, 0.62, 0.61], [0.5, 0.49, 0.51])      # a gain of 0.11: not >> ERM
  res["early_minus_mixup"] = st.paired_ci([0.95, 0.96, 0.95], [0.99, 0.99, 0.99])
  res["decoupled_minus_mixup"] = st.paired_ci([0.9, 0.91, 0.9], [0.99, 0.99, 0.99])
  assert [c.passed for c in exp.claims(res)] == [False, True, False, False, True]
