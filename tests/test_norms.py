"""The shared safe norms (jaxlib_methods/_norms.py), and the zero-vector edge cases they fix (audits, 2026-12-03).

References, none derived from the library's code: NumPy's norm and x / max(||x||, eps) (torch's `F.normalize`) in
float64 for the values; for the gradients, the closed forms of d||x|| / dx (x / ||x||, and 0 at x = 0, torch's
`vector_norm` convention) and of d(x / max(||x||, eps)) / dx. Then, for each loss that normalised through
`jnp.linalg.norm`, the input that used to give a NaN gradient (a zero embedding, an empty cluster, a zero gate row, a
zero input gradient) must give a finite gradient, with the same value as before where the value was defined.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses
from jaxlib_methods import _norms
from jaxlib_methods.losses import contrastive, dataset_distillation, feature_kd, graph_contrastive
from jaxlib_methods.losses import metric_learning, metric_mixup, prototype_distill


def test_safe_norm_and_normalize_match_numpy_values_and_gradients():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(5, 4))
  x[2] = 0.0
  with jax.enable_x64(True):
    n, gn = jax.vmap(jax.value_and_grad(_norms.safe_l2_norm))(jnp.asarray(x))
    u = _norms.l2_normalize(jnp.asarray(x))
    w = rng.normal(size=(5, 4))
    gu = jax.grad(lambda v: jnp.sum(jnp.asarray(w) * _norms.l2_normalize(v)))(jnp.asarray(x))
  ref_n = np.linalg.norm(x, axis=-1)
  np.testing.assert_allclose(np.asarray(n), ref_n, rtol=1e-14)
  ref_gn = np.where(ref_n[:, None] > 0, x / np.where(ref_n > 0, ref_n, 1.0)[:, None], 0.0)
  np.testing.assert_allclose(np.asarray(gn), ref_gn, rtol=1e-14, atol=0)
  np.testing.assert_allclose(np.asarray(u), x / np.maximum(ref_n, 1e-12)[:, None], rtol=1e-14)
  # d/dx <w, x/||x||> = (w - <w, u> u) / ||x|| for x != 0; at x = 0 the clamp makes it w / eps
  for i in range(5):
    if ref_n[i] > 0:
      ui = x[i] / ref_n[i]
      np.testing.assert_allclose(np.asarray(gu[i]), (w[i] - (w[i] @ ui) * ui) / ref_n[i], rtol=1e-10)
    else:
      np.testing.assert_allclose(np.asarray(gu[i]), w[i] / 1e-12, rtol=1e-14)
  assert _norms.safe_l2_norm(jnp.ones((2, 3), jnp.bfloat16)).dtype == jnp.bfloat16


def _finite(tree):
  return all(bool(np.isfinite(np.asarray(leaf, np.float32)).all()) for leaf in jax.tree_util.tree_leaves(tree))


def test_zero_vectors_give_finite_gradients_in_every_loss_that_normalises():
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(1), 3)
  a = jax.random.normal(k1, (4, 8))
  y = jnp.array([0, 1, 2, 0])
  w = jax.random.normal(k2, (3, 8))
  z0 = a.at[0].set(0.0)
  # [118] normalised softmax, [11] self-pruning contrastive: one zero embedding row
  assert _finite(jax.grad(lambda x: metric_learning.normalized_softmax_loss(x, w, y).sum())(z0))
  assert _finite(jax.grad(lambda x: contrastive.self_pruning_contrastive_loss(x, a).sum())(z0))
  # [116] Hydra: a gate row of exactly 0 (inside its documented range [0, 1]) must not poison the other rows
  g = jax.nn.sigmoid(jax.random.normal(k3, (4, 8))).at[0].set(0.0)
  assert _finite(jax.grad(lambda x: contrastive.hydra_loss(x, jnp.array([0, 1, 2, 3]), jnp.array([1, 0, 3, 2]),
                                                             g).sum())(a))
  # [56] ND loss: zero student (value 1, the cosine term 0), and zero student and teacher (value 1, not 0 / 0)
  v, gs = jax.value_and_grad(lambda s: feature_kd.nd_loss(s, a, w, y)[0])(z0)
  assert float(v) == pytest.approx(1.0) and _finite(gs)
  both = feature_kd.nd_loss(z0, z0, w, y)
  assert float(both[0]) == pytest.approx(1.0) and _finite(both)
  # [59] prototype cosine loss: a zero feature has cosine 0, loss 1
  v = prototype_distill.prototype_cosine_loss(z0, w, y)
  assert float(v[0]) == pytest.approx(1.0) and _finite(v)
  assert _finite(jax.grad(lambda f: prototype_distill.prototype_cosine_loss(f, w, y).sum())(z0))
  # [200] Metrix: anchor equal to the mixed embedding (d = 0) and a zero mixed vector
  assert _finite(jax.grad(lambda x: metric_mixup.metrix_contrastive_loss(x, x, -x, 1.0).sum())(a))
  assert _finite(metric_mixup.metrix_contrastive_loss(a, a, -a, 0.5))
  # [89] PamC: one cluster empty (its meta-node is the zero vector)
  z = jax.random.normal(k1, (6, 4))
  edges = jnp.array([[0, 1], [1, 0], [2, 3], [3, 2], [4, 5], [5, 4]])
  c = jax.nn.one_hot(jnp.array([0, 0, 1, 1, 0, 1]), 3)
  val, gz = jax.value_and_grad(lambda zz: graph_contrastive.pamc_loss(zz, edges, c))(z)
  assert np.isfinite(float(val)) and _finite(gz)
  # [48] AST gradient penalty at a zero input gradient: weight * (0 - 1)^2, gradient 0 (torch's norm convention)
  v, gp = jax.value_and_grad(lambda x: dataset_distillation.ast_gradient_penalty(x).sum())(jnp.zeros((2, 3)))
  assert float(v) == pytest.approx(0.2) and np.asarray(gp).tolist() == [[0.0] * 3] * 2


def test_values_unchanged_where_they_were_defined():
  # the safe norms change nothing away from 0: compare with the plain-norm formulas on ordinary inputs
  k1, k2 = jax.random.split(jax.random.PRNGKey(2))
  a, b = jax.random.normal(k1, (6, 5)), jax.random.normal(k2, (6, 5))
  lam = 0.3
  mixed = lam * b + (1 - lam) * (-b)
  an = a / jnp.linalg.norm(a, axis=-1, keepdims=True)
  mn = mixed / jnp.linalg.norm(mixed, axis=-1, keepdims=True)
  d = jnp.linalg.norm(an - mn, axis=-1)
  ref = lam * jax.nn.relu(d - 0.0) + (1 - lam) * jax.nn.relu(0.5 - d)
  np.testing.assert_allclose(np.asarray(metric_mixup.metrix_contrastive_loss(a, b, -b, lam)), np.asarray(ref),
                             rtol=1e-6)
  assert losses.dc_gradient_distance is dataset_distillation.dc_gradient_distance


def test_layers_normalising_features_have_finite_gradients_at_zero():
  # audit of jaxlib_methods/nn, 2026-12-03: a ReLU feature vector of zeros gave NaN gradients into the backbone
  from flax import nnx
  from jaxlib_methods.nn.cache import cache_affinity_logits
  from jaxlib_methods.nn.grassmann import GrassmannClassifier, grassmann_logits
  from jaxlib_methods.nn.subspace_learners import split_subspaces
  S = GrassmannClassifier(4, 3, 2, rngs=nnx.Rngs(0)).S[...]
  assert _finite(jax.grad(lambda x: grassmann_logits(x, S).sum())(jnp.zeros(4)))                  # [97]
  assert _finite(jax.grad(lambda e: split_subspaces(e, 2)[..., 1].sum())(jnp.array([[0.0, 0.0, 1.0, 2.0]])))
  out = cache_affinity_logits(jnp.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]), jnp.eye(3), jnp.eye(3))
  assert _finite(out)                                                                              # a padded row
