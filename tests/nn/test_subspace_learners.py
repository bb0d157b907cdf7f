"""Dynamic subspace learners [102]: subspace split, K-means routing and the per-learner margin loss against float64
NumPy loops over pairs; K = 1 equals the plain margin loss over the batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.nn.subspace_learners import kmeans_assign, split_subspaces, subspace_margin_loss


def _loss_np(e, y, c, K, alpha=0.2, beta=1.2):
  B, D = e.shape
  out = np.zeros(K)
  for k in range(K):
    sub = e[:, k * D // K:(k + 1) * D // K]
    sub = sub / np.linalg.norm(sub, axis=1, keepdims=True)
    terms = [max(0.0, alpha + (1 if y[i] == y[j] else -1) * (np.linalg.norm(sub[i] - sub[j]) - beta))
             for i in range(B) for j in range(B) if i != j and c[i] == c[j] == k]
    out[k] = np.mean(terms) if terms else 0.0
  return out


def test_against_numpy_loops():
  rng = np.random.default_rng(0)
  B, D, K = 10, 12, 3
  e = rng.normal(size=(B, D))
  y = rng.integers(0, 3, B)
  cent = rng.normal(size=(K, D))
  with jax.enable_x64(True):
    c = np.array(kmeans_assign(jnp.asarray(e), jnp.asarray(cent)))
    np.testing.assert_array_equal(c, np.argmin(((e[:, None] - cent[None]) ** 2).sum(-1), 1))
    c[-1] = 2 if (c == 2).sum() == 0 else c[-1]
    f = jax.jit(subspace_margin_loss, static_argnums=3)
    got = f(jnp.asarray(e), jnp.asarray(y), jnp.asarray(c), K)
    np.testing.assert_allclose(np.asarray(got), _loss_np(e, y, c, K), rtol=1e-10)
    zero_c = np.zeros(B, c.dtype)                                   # everything routed to learner 0
    got = f(jnp.asarray(e), jnp.asarray(y), jnp.asarray(zero_c), K)
    np.testing.assert_allclose(np.asarray(got), _loss_np(e, y, zero_c, K), rtol=1e-10)
    assert np.all(np.asarray(got)[1:] == 0)                         # learners without a pair: exactly 0
    s = np.asarray(split_subspaces(jnp.asarray(e), 4))
  np.testing.assert_allclose(np.linalg.norm(s, axis=-1), 1.0, rtol=1e-12)
  np.testing.assert_allclose(s[:, 1], e[:, 3:6] / np.linalg.norm(e[:, 3:6], axis=1, keepdims=True), rtol=1e-12)
  with pytest.raises(ValueError, match="divisible"):
    split_subspaces(jnp.ones((2, 5)), 2)
  with pytest.raises(TypeError, match="labels"):
    subspace_margin_loss(jnp.ones((2, 4)), jnp.ones(2), jnp.zeros(2, jnp.int32), 2)
