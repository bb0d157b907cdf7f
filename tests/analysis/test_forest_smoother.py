"""[109] forest smoother weights and effective parameters. Trees: the module's small NumPy CART (scikit-learn is not
installed in the project's venv). Exact: S y equals the forest's own leaf-mean predictions (stored at fit time), rows
sum to 1, and one un-bootstrapped tree has p_e = number of leaves on its training inputs. The paper's toy claims on a
seeded regression: forest p_e < single-tree p_e; forest p_e on test < on train (self-regularising); for a single
tree the two agree (within 15%, in expectation exactly)."""

import numpy as np
import pytest

from jaxlib_methods.analysis import RegressionForest, effective_params, fit_regression_forest, forest_smoother_weights


def _data(n, seed):
  rng = np.random.default_rng(seed)
  X = rng.uniform(-1, 1, size=(n, 3))
  return X, np.sin(3 * X[:, 0]) + X[:, 1] + 0.3 * rng.normal(size=n)


def test_forest_smoother_exact_and_self_regularising():
  X, y = _data(150, 0)
  Xt, _ = _data(1500, 1)
  tree = fit_regression_forest(X, y, n_trees=1, min_samples_leaf=3, bootstrap=False)
  n_leaves = int(np.sum(tree.feature[0] < 0))
  S_train = forest_smoother_weights(tree.apply(X), tree.apply(X))
  assert float(effective_params(S_train)) == pytest.approx(n_leaves, rel=1e-5)
  np.testing.assert_allclose(np.asarray(S_train) @ y, tree.predict(X), rtol=1e-4, atol=1e-5)
  p_tree_test = float(effective_params(forest_smoother_weights(tree.apply(X), tree.apply(Xt)), 150))
  assert abs(p_tree_test / n_leaves - 1) < 0.15, (p_tree_test, n_leaves)
  forest = fit_regression_forest(X, y, n_trees=25, min_samples_leaf=1, max_features=2, seed=2)
  assert isinstance(forest, RegressionForest) and forest.counts.shape == (150, 25)
  leaves_train, leaves_test = forest.apply(X), forest.apply(Xt)
  S_f = forest_smoother_weights(leaves_train, leaves_train, forest.counts)
  S_ft = forest_smoother_weights(leaves_train, leaves_test, forest.counts)
  np.testing.assert_allclose(np.asarray(S_f).sum(1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(S_ft) @ y, forest.predict(Xt), rtol=1e-4, atol=1e-4)
  deep = fit_regression_forest(X, y, n_trees=1, min_samples_leaf=1, bootstrap=False)
  p_deep = float(effective_params(forest_smoother_weights(deep.apply(X), deep.apply(X))))
  p_train, p_test = float(effective_params(S_f)), float(effective_params(S_ft, 150))
  assert p_test < p_train < p_deep, (p_test, p_train, p_deep)
  with pytest.raises(ValueError, match="max_features"):
    fit_regression_forest(X, y, max_features=4)
  with pytest.raises(ValueError, match="share T"):
    forest_smoother_weights(leaves_train, leaves_test[:, :3])


def test_forest_smoother_weights_query_leaf_without_training_mass():
  # A query leaf holding no training example (or only zero-count ones) has no smoother weights: it used to give a NaN
  # row eagerly and, under jit, a silent all-zero row (not summing to 1).
  import jax
  tl = np.array([[0], [1]])
  with pytest.raises(ValueError, match="query_leaves"):
    forest_smoother_weights(tl, np.array([[2]]))
  with pytest.raises(ValueError, match="query_leaves"):
    forest_smoother_weights(tl, np.array([[1]]), counts=np.array([[1], [0]]))
  out = np.asarray(jax.jit(forest_smoother_weights)(tl, np.array([[2], [1]])))
  assert np.isnan(out[0]).all()
  np.testing.assert_array_equal(out[1], [0.0, 1.0])
