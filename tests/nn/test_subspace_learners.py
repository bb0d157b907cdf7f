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


def test_subspace_attention_exact():
  """SubspaceAttention = a float64 NumPy transcription of Jetley et al.'s Eqs. 1-3 (c_i = <u, l_i + W g + b>,
  softmax over positions, attention-weighted sum), through nnx.split/merge + jax.jit; u = 0 is average pooling."""
  from flax import nnx

  from jaxlib_methods.nn.subspace_learners import SubspaceAttention
  rng = np.random.default_rng(1)
  B, H, W, C, G = 2, 3, 4, 5, 7
  l = rng.normal(size=(B, H, W, C))
  g = rng.normal(size=(B, G))
  with jax.enable_x64(True):
    m = SubspaceAttention(C, G, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(m)
    run = jax.jit(lambda state, l, g: nnx.merge(graphdef, state)(l, g))
    out, att = run(state, jnp.asarray(l), jnp.asarray(g))
    zero = jax.tree_util.tree_map(lambda x: x, state)
    zero["u"] = nnx.Param(jnp.zeros(C))
    out0, att0 = run(zero, jnp.asarray(l), jnp.asarray(g))
    perm = rng.permutation(H * W)
    lp = l.reshape(B, H * W, C)[:, perm].reshape(B, H, W, C)
    outp, attp = run(state, jnp.asarray(lp), jnp.asarray(g))
  u = np.asarray(m.u[...])
  gw = g @ np.asarray(m.global_proj.kernel[...]) + np.asarray(m.global_proj.bias[...])
  c = np.einsum("bhwc,c->bhw", l + gw[:, None, None, :], u).reshape(B, -1)
  a = np.exp(c - c.max(1, keepdims=True))
  a /= a.sum(1, keepdims=True)
  np.testing.assert_allclose(att, a.reshape(B, H, W), rtol=1e-12)
  np.testing.assert_allclose(out, np.einsum("bn,bnc->bc", a, l.reshape(B, -1, C)), rtol=1e-12)
  np.testing.assert_allclose(out0, l.mean((1, 2)), rtol=1e-12)                       # u = 0: average pooling
  np.testing.assert_allclose(att0, np.full((B, H, W), 1 / (H * W)), rtol=1e-12)
  np.testing.assert_allclose(outp, out, rtol=1e-12)                                   # positions permuted
  np.testing.assert_allclose(np.asarray(attp).reshape(B, -1), a[:, perm], rtol=1e-12)
  assert SubspaceAttention(C, C, rngs=nnx.Rngs(0)).global_proj is None               # same width: g added as is
  with pytest.raises(ValueError, match="local_features"):
    m(jnp.zeros((B, H, W, C + 1)), jnp.zeros((B, G)))
  with pytest.raises(ValueError, match="global_features"):
    m(jnp.zeros((B, H, W, C)), jnp.zeros((B + 1, G)))
  with pytest.raises(ValueError, match="local_dim"):
    SubspaceAttention(0, G, rngs=nnx.Rngs(0))
