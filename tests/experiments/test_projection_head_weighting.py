"""The projection-head experiment [55]: the claims' logic on hand-made results (the training runs in the mutation
test; `layerwise_feature_weights` and the spectral loss are tested in tests/analysis/test_feature_weighting.py)."""

from experiments import _seed_stats as st
from experiments import projection_head_weighting as exp


def test_claims_logic():
  res = {"slope": 2.05, "spread_layer1": [1.5, 1.6, 1.4], "spread_layer2": [2.2, 2.5, 2.0],
         "probe_diff": st.paired_ci([0.85, 0.86, 0.84], [0.82, 0.83, 0.82])}
  assert [c.passed for c in exp.claims(res)] == [True, True, True]
  res = {"slope": 1.0, "spread_layer1": [1.5, 1.6, 1.4], "spread_layer2": [2.2, 1.5, 2.0],
         "probe_diff": st.paired_ci([0.85, 0.80, 0.84], [0.82, 0.83, 0.82])}
  assert [c.passed for c in exp.claims(res)] == [False, False, False]
