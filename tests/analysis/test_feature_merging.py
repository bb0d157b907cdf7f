"""Tests of jaxlib_methods/analysis/feature_merging.py [23]: a ReLU MLP with planted, positively rescaled duplicate
neurons (outgoing weights split so the function is unchanged) must merge back to its original widths with identical
outputs (float64, exact up to rounding); distinct neurons must not merge at a small threshold."""

import numpy as np
import pytest

from jaxlib_methods.analysis import feature_merging as fm


def _mlp(layers, x):
  for w, b in layers[:-1]:
    x = np.maximum(x @ w + b, 0.0)
  return x @ layers[-1][0] + layers[-1][1]


def _duplicate(layers, rng, copies=2):
  """Every hidden neuron i gets `copies - 1` duplicates: in-weights c_k [w_i; b_i] (c_k in (0.5, 2)), out-weights
  split as t_k v_i / c_k with sum t_k = 1, so relu(c z) t v / c = t relu(z) v sums back to the original."""
  out = [list(l) for l in layers]
  for l in range(len(layers) - 1):
    w, b = out[l]
    w_next = out[l + 1][0]
    n = w.shape[1]
    ws, bs, nexts = [], [], []
    t = rng.dirichlet(np.ones(copies), size=n)                     # [n, copies]
    for k in range(copies):
      c = np.ones(n) if k == 0 else rng.uniform(0.5, 2.0, n)
      ws.append(w * c)
      bs.append(b * c)
      nexts.append(w_next * (t[:, k] / c)[:, None])
    perm = rng.permutation(n * copies)
    out[l] = [np.concatenate(ws, 1)[:, perm], np.concatenate(bs)[perm]]
    out[l + 1][0] = np.concatenate(nexts, 0)[perm]
  return [tuple(l) for l in out]


def test_ifm_recovers_planted_duplicates_exactly():
  rng = np.random.default_rng(0)
  dims = [5, 4, 3, 2]
  base = [(rng.normal(size=(i, o)), rng.normal(size=o)) for i, o in zip(dims[:-1], dims[1:])]
  wide = _duplicate(base, rng, copies=3)
  x = rng.normal(size=(64, 5))
  np.testing.assert_allclose(_mlp(wide, x), _mlp(base, x), atol=1e-10)           # the planted net is the same map
  merged, widths = fm.iterative_feature_merging(wide, 1e-8)
  assert widths == [4, 3] and fm.feature_complexity(wide, 1e-8) == [4, 3]
  np.testing.assert_allclose(_mlp(merged, x), _mlp(base, x), atol=1e-10)
  # distinct random neurons do not merge at a small threshold; a threshold above 2 merges every layer to one unit
  assert fm.feature_complexity(base, 1e-3) == [4, 3]
  assert fm.feature_complexity(wide, 2.01) == [1, 1]
  with pytest.raises(ValueError, match="beta"):
    fm.iterative_feature_merging(base, -1.0)
  with pytest.raises(ValueError, match="inputs"):
    fm.iterative_feature_merging([base[0], base[2]], 0.1)
