"""Post-hoc CBM [17] (issue 20): CAVs against a float64 SciPy solve of the same SVM objective, the concept projection,
elastic net and edit against NumPy, PCBM / PCBM-h forward, residual-only training, the NNX contract, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize
from flax import nnx

from jaxlib_methods.nn import (PCBM, concept_activation_vectors, edit_concept, pcbm_concept_scores,
                               pcbm_elastic_net)
from tests.nn._layer_contract import check_layer_contract


def _svm_scipy(x, labels, C):
  s = np.where(labels, 1.0, -1.0)

  def f(p):
    w, b = p[:-1], p[-1]
    m = np.maximum(1.0 - s * (x @ w + b), 0.0)
    grad_m = -2.0 * C * m * s
    return 0.5 * w @ w + C * np.sum(m ** 2), np.concatenate([w + x.T @ grad_m, [grad_m.sum()]])

  r = scipy.optimize.minimize(f, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B",
                              options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 5000})
  return r.x[:-1], r.x[-1]


def test_cavs_match_scipy_and_pcbm_pieces_match_numpy():
  rng = np.random.default_rng(0)
  n, d, nc, k = 80, 5, 3, 4
  x = rng.normal(size=(n, d))
  labels = (x @ rng.normal(size=(d, nc)) + 0.5 * rng.normal(size=(n, nc))) > 0      # noisy: not separable
  cavs, b = concept_activation_vectors(jnp.asarray(x, jnp.float32), jnp.asarray(labels), C=0.5, steps=30)
  for i in range(nc):
    w_ref, b_ref = _svm_scipy(x, labels[:, i], 0.5)
    np.testing.assert_allclose(np.asarray(cavs[i]), w_ref, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(float(b[i]), b_ref, rtol=2e-3, atol=2e-4)
  c = np.asarray(cavs, np.float64)
  scores = np.asarray(pcbm_concept_scores(jnp.asarray(x, jnp.float32), cavs))
  np.testing.assert_allclose(scores, x @ c.T / np.sum(c ** 2, 1), rtol=1e-4, atol=1e-5)
  w = rng.normal(size=(nc, k))
  np.testing.assert_allclose(float(pcbm_elastic_net(jnp.asarray(w), lam=0.3, alpha=0.7)),
                             0.3 / w.size * (0.7 * np.abs(w).sum() + 0.3 * (w ** 2).sum()), rtol=1e-5)
  e = np.asarray(edit_concept(jnp.asarray(w, jnp.float32), 1))
  ref = w.copy()
  ref[1] = 0
  np.testing.assert_allclose(e, ref, rtol=1e-6)
  e = np.asarray(edit_concept(jnp.asarray(w, jnp.float32), [0, 2], classes=3))
  ref = w.copy()
  ref[[0, 2], 3] = 0
  np.testing.assert_allclose(e, ref, rtol=1e-6)
  # errors
  with pytest.raises(ValueError, match="positive and negative"):
    concept_activation_vectors(jnp.ones((4, 2)), jnp.ones((4, 1), bool))
  with pytest.raises(TypeError, match="concept_labels"):
    concept_activation_vectors(jnp.ones((4, 2)), jnp.ones((4, 1)))
  with pytest.raises(ValueError, match="C must be"):
    concept_activation_vectors(jnp.asarray(x), jnp.asarray(labels), C=0.0)
  with pytest.raises(ValueError, match="alpha"):
    pcbm_elastic_net(jnp.asarray(w), lam=1.0, alpha=1.5)
  with pytest.raises(ValueError, match="idx"):
    edit_concept(jnp.asarray(w), nc)
  with pytest.raises(ValueError, match="num_classes"):
    PCBM(cavs, 1, rngs=nnx.Rngs(0))


@pytest.mark.slow  # eager module checks: ~2 s of op compiles
def test_pcbm_forward_and_residual_only_training():
  rng = np.random.default_rng(1)
  n, d, nc, k = 20, 5, 3, 4
  x = rng.normal(size=(n, d))
  cavs = jnp.asarray(rng.normal(size=(nc, d)), jnp.float32)
  c = np.asarray(cavs, np.float64)
  scores = x @ c.T / np.sum(c ** 2, 1)
  w = rng.normal(size=(nc, k))
  # PCBM and PCBM-h forward against NumPy; only the residual trains under the PCBM-h filter
  model = PCBM(cavs, k, residual=True, rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(np.asarray(model(jnp.asarray(x, jnp.float32))),
                                np.asarray(PCBM(cavs, k, rngs=nnx.Rngs(0))(jnp.asarray(x, jnp.float32))))
  model.head.kernel[...] = jnp.asarray(w, jnp.float32)
  model.head.bias[...] = jnp.asarray(rng.normal(size=k), jnp.float32)
  model.residual.kernel[...] = jnp.asarray(rng.normal(size=(d, k)), jnp.float32)
  hb, rk, rb = (np.asarray(a[...], np.float64) for a in (model.head.bias, model.residual.kernel, model.residual.bias))
  np.testing.assert_allclose(np.asarray(model(jnp.asarray(x, jnp.float32))),
                             scores @ w + hb + x @ rk + rb, rtol=1e-4, atol=1e-4)
  y = jnp.asarray(rng.integers(0, k, n))
  residual_only = nnx.All(nnx.Param, nnx.PathContains("residual"))
  graphdef, trainable, rest = nnx.split(model, residual_only, ...)
  grads = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(
      nnx.merge(graphdef, p, rest)(jnp.asarray(x, jnp.float32)), y).mean())(trainable)
  paths = {"/".join(map(str, path)) for path, _ in jax.tree_util.tree_flatten_with_path(grads)[0]}
  assert paths and all("residual" in p for p in paths), paths
  with pytest.raises(ValueError, match="d=5"):
    model(jnp.ones((2, d + 1)))


@pytest.mark.slow  # nnx.jit, split/merge train step, bf16, orbax: ~3 s of compiles
def test_pcbm_layer_contract(tmp_path):
  cavs = jax.random.normal(jax.random.key(1), (3, 6))
  x = jax.random.normal(jax.random.key(0), (16, 6))
  y = jnp.arange(16) % 4
  check_layer_contract(lambda dt: PCBM(cavs, 4, residual=True, rngs=nnx.Rngs(0), param_dtype=dt), x, tmp_path,
                       loss=lambda m, x: optax.softmax_cross_entropy_with_integer_labels(
                           m(x).astype(jnp.float32), y).mean())
