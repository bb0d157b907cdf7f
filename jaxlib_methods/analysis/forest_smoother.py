"""Tree ensembles as adaptive smoothers: smoother weights and effective number of parameters.

Curth, Jeffares, van der Schaar, "Why do Random Forests Work? Understanding Tree Ensembles as Self-Regularizing
Adaptive Smoothers", 2024, arXiv:2402.01502 (Sec. 2-3). A regression forest predicts f(x) = sum_i s_i(x) y_i with

    s_i(x) = (1 / T) sum_t c_it 1{leaf_t(x_i) = leaf_t(x)} / sum_k c_kt 1{leaf_t(x_k) = leaf_t(x)},

c_it the number of times training example i is in tree t's bootstrap sample (1 without bootstrapping). The
effective number of parameters on query inputs {x_0j}_{j=1..q} is

    p_e = (n / q) sum_j ||s(x_0j)||_2^2,

which for one un-bootstrapped tree evaluated on its own training inputs is exactly its number of leaves (each
training point in a leaf of size n_l contributes 1 / n_l). The paper's observations: a forest has fewer effective
parameters than a single deep tree, and it is self-regularising: p_e on test inputs is below p_e on the training
inputs (for one tree, the two agree in expectation).

Trees here come from a small NumPy CART (`fit_regression_forest`: variance-reduction splits, bootstrap, feature
subsampling, min_samples_leaf), so nothing beyond the project's dependencies is needed; any other tree library works
through leaf indices (`forest_smoother_weights` takes leaf ids, e.g. scikit-learn's `forest.apply(X)`).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


@dataclasses.dataclass(frozen=True)
class RegressionForest:
  """A fitted forest: per tree, node arrays (feature, threshold, left, right, value; leaves have feature -1), and
  `counts` [n_train, T], the bootstrap multiplicities of the training examples. Built by `fit_regression_forest`
  (Breiman 2001; the forests Curth et al. 2024, arXiv:2402.01502, Sec. 2-3, analyse as smoothers)."""
  feature: tuple
  threshold: tuple
  left: tuple
  right: tuple
  value: tuple
  counts: np.ndarray

  @property
  def n_trees(self) -> int:
    return len(self.feature)

  def apply(self, X) -> np.ndarray:
    """Leaf index of every row of X [q, p] in every tree: [q, T] int."""
    X = np.asarray(X, np.float64)
    out = np.zeros((X.shape[0], self.n_trees), np.int64)
    for t in range(self.n_trees):
      node = np.zeros(X.shape[0], np.int64)
      f, th, le, ri = self.feature[t], self.threshold[t], self.left[t], self.right[t]
      active = f[node] >= 0
      while np.any(active):
        go_left = X[np.arange(X.shape[0]), np.maximum(f[node], 0)] <= th[node]
        node = np.where(active, np.where(go_left, le[node], ri[node]), node)
        active = f[node] >= 0
      out[:, t] = node
    return out

  def predict(self, X) -> np.ndarray:
    """Mean over trees of the leaf values (the bootstrap-weighted leaf means stored at fit time): [q]."""
    leaves = self.apply(X)
    return np.mean([self.value[t][leaves[:, t]] for t in range(self.n_trees)], axis=0)


def _fit_tree(X, y, w, rng, min_samples_leaf, max_features):
  feature, threshold, left, right, value = [], [], [], [], []

  def new_node():
    for a in (feature, threshold, left, right, value):
      a.append(0)
    return len(feature) - 1

  root = new_node()
  stack = [(root, np.flatnonzero(w > 0))]
  while stack:
    node, idx = stack.pop()
    ww, yy = w[idx], y[idx]
    value[node] = float(np.sum(ww * yy) / np.sum(ww))
    feature[node], threshold[node], left[node], right[node] = -1, 0.0, -1, -1
    if len(idx) < 2 * min_samples_leaf:
      continue
    best = None
    for f in rng.choice(X.shape[1], size=max_features, replace=False):
      order = np.argsort(X[idx, f], kind="stable")
      xs, ys, ws = X[idx[order], f], yy[order], ww[order]
      cw, cwy, cwy2 = np.cumsum(ws), np.cumsum(ws * ys), np.cumsum(ws * ys * ys)
      tw, twy, twy2 = cw[-1], cwy[-1], cwy2[-1]
      k = np.arange(min_samples_leaf - 1, len(idx) - min_samples_leaf)  # split after position k
      if k.size == 0:
        continue
      k = k[xs[k] < xs[k + 1]]
      if k.size == 0:
        continue
      lw, lwy, lwy2 = cw[k], cwy[k], cwy2[k]
      rw, rwy, rwy2 = tw - lw, twy - lwy, twy2 - lwy2
      sse = (lwy2 - lwy ** 2 / lw) + (rwy2 - rwy ** 2 / rw)
      j = int(np.argmin(sse))
      if best is None or sse[j] < best[0] - 1e-12:
        best = (sse[j], f, 0.5 * (xs[k[j]] + xs[k[j] + 1]))
    if best is None or best[0] >= twy2 - twy ** 2 / tw - 1e-12:
      continue
    _, f, th = best
    go_left = X[idx, f] <= th
    ln, rn = new_node(), new_node()
    feature[node], threshold[node], left[node], right[node] = int(f), float(th), ln, rn
    stack.append((ln, idx[go_left]))
    stack.append((rn, idx[~go_left]))
  return (np.array(feature, np.int64), np.array(threshold, np.float64), np.array(left, np.int64),
          np.array(right, np.int64), np.array(value, np.float64))


def fit_regression_forest(X, y, *, n_trees: int = 50, min_samples_leaf: int = 1, max_features: Optional[int] = None,
                          bootstrap: bool = True, seed: int = 0) -> RegressionForest:
  """Fit a random regression forest with a small NumPy CART (host code, float64): greedy variance-reduction splits
  (Breiman 2001), as in the forests Curth et al. 2024 (arXiv:2402.01502) analyse.

  Args:
    X: [n, p] float training inputs.
    y: [n] float targets.
    n_trees: int >= 1.
    min_samples_leaf: int >= 1, the fewest distinct training examples per leaf (1 grows trees to purity).
    max_features: int in [1, p] features tried per split (None: all p, i.e. bagging).
    bootstrap: resample n examples with replacement per tree (False: every tree sees all data once).
    seed: int, the NumPy generator seed.

  Returns:
    RegressionForest.
  """
  X = np.asarray(X, np.float64)
  y = np.asarray(y, np.float64)
  if X.ndim != 2 or X.shape[0] < 1:
    raise ValueError(f"X must be a non-empty [n, p] matrix, got X.shape={X.shape}")
  if y.shape != (X.shape[0],):
    raise ValueError(f"y must be [n] = [{X.shape[0]}], got y.shape={y.shape}")
  if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
    raise ValueError("X and y must be finite")
  for name, v in (("n_trees", n_trees), ("min_samples_leaf", min_samples_leaf)):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
  p = X.shape[1]
  max_features = p if max_features is None else max_features
  if isinstance(max_features, bool) or not isinstance(max_features, int) or not 1 <= max_features <= p:
    raise ValueError(f"max_features must be an int in [1, p={p}] or None, got {max_features=}")
  rng = np.random.default_rng(seed)
  n = X.shape[0]
  trees, counts = [], np.zeros((n, n_trees), np.int64)
  for t in range(n_trees):
    counts[:, t] = np.bincount(rng.integers(0, n, n), minlength=n) if bootstrap else 1
    trees.append(_fit_tree(X, y, counts[:, t].astype(np.float64), rng, min_samples_leaf, max_features))
  return RegressionForest(*(tuple(tr[k] for tr in trees) for k in range(5)), counts=counts)


def forest_smoother_weights(train_leaves, query_leaves, counts=None):
  """The forest's smoother matrix S [q, n], f(x_0j) = sum_i S[j, i] y_i (Curth et al. 2024, arXiv:2402.01502,
  Sec. 2, Eq. for s_i(x)).

  Args:
    train_leaves: [n, T] int, the leaf of each training example in each tree.
    query_leaves: [q, T] int, the leaf of each query input in each tree.
    counts: [n, T] int or float >= 0, bootstrap multiplicities (None: all ones, i.e. no bootstrap). Every query
      leaf must hold a positive count (true for leaves of a fitted tree): ValueError when concrete, NaN rows under
      jit.

  Returns:
    [q, n] float32 weights; each row sums to 1.
  """
  tl = validation.check_integer(train_leaves, "train_leaves")
  ql = validation.check_integer(query_leaves, "query_leaves")
  if tl.ndim != 2 or ql.ndim != 2 or tl.shape[1] != ql.shape[1]:
    raise ValueError(f"train_leaves [n, T] and query_leaves [q, T] must share T, got {tl.shape} and {ql.shape}")
  c = jnp.ones(tl.shape, jnp.float32) if counts is None else jnp.asarray(counts, jnp.float32)
  if c.shape != tl.shape:
    raise ValueError(f"counts must be [n, T] = {tl.shape}, got counts.shape={c.shape}")
  same = (ql[:, None, :] == tl[None, :, :]).astype(jnp.float32) * c[None]  # [q, n, T]
  mass = jnp.sum(same, axis=1, keepdims=True)
  # A query leaf with no (positive-count) training example has no smoother weights: 0 / 0 = NaN rows.
  valid = validation.check_values(mass > 0, ql[:, None, :], "query_leaves",
                                  "leaves holding a training example with a positive count in that tree")
  s = jnp.mean(same / jnp.where(mass > 0, mass, 1.0), axis=2)
  return validation.nan_where_invalid(s, None if valid is None else jnp.all(valid[:, 0, :], axis=1)[:, None])


def effective_params(S, n_train: Optional[int] = None):
  """Effective number of parameters p_e = (n / q) sum_j ||S[j]||_2^2 of a smoother evaluated at q inputs (Curth et al.
  2024, arXiv:2402.01502, Sec. 3; Hastie & Tibshirani's sum_i S_ii-type count generalised to unseen inputs).

  Args:
    S: [q, n] float smoother weights.
    n_train: int, n (default S.shape[1]).

  Returns:
    scalar float.
  """
  S = validation.check_floating(S, "S")
  if S.ndim != 2 or S.shape[0] < 1:
    raise ValueError(f"S must be a [q, n] matrix with q >= 1, got S.shape={S.shape}")
  n = S.shape[1] if n_train is None else n_train
  return n / S.shape[0] * jnp.sum(S * S)
