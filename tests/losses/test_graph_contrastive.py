"""PamC [89] (ls19d, issue 19): `pamc_loss` and `graph_ncontrast_loss` against float64 NumPy transcriptions of the
official code (loops over node pairs: the meta-node similarities from sums over every cross-cluster node pair, the
additivity the paper relies on), gradients by central differences of the transcription, the exact special case
k = N (each node its own meta-node) = the node-level loss, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses


def _np_cos_dot(a, b):
  return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


def _np_pamc(z, edges, w, cmat, t):
  """Official NcontrastCCSP: positives over edges; meta-node dot products as sums over every node pair,
  M_c . M_c' = sum_ij C_ic C_jc' z_i . z_j (for one-hot C: the pairs i in c, j in c'), i.e. without forming M."""
  k = cmat.shape[1]
  n = z.shape[0]
  pos = np.zeros(n)
  for (i, j), wij in zip(edges, w):
    s = 0.0 if i == j else _np_cos_dot(z[i], z[j])
    pos[i] += wij * np.exp(s / t)
  dots = np.zeros((k, k))
  for i in range(n):
    for j in range(n):
      dots += np.outer(cmat[i], cmat[j]) * (z[i] @ z[j])
  neg = np.zeros(k)
  for c in range(k):
    for c2 in range(k):
      s = 0.0 if c == c2 else dots[c, c2] / np.sqrt(dots[c, c] * dots[c2, c2])
      neg[c] += np.exp(s / t)
  return -np.mean(np.log(pos)) + np.mean(np.log(neg))


def _np_ncontrast(z, a, t):
  n = z.shape[0]
  s = np.array([[0.0 if i == j else _np_cos_dot(z[i], z[j]) for j in range(n)] for i in range(n)])
  e = np.exp(s / t)
  return -np.log((e * a).sum(1) / e.sum(1))


def _graph(rng, n):
  edges = [(i, i) for i in range(n)] + [(i, (i + 1) % n) for i in range(n)] + [((i + 1) % n, i) for i in range(n)]
  edges += [(0, 3), (3, 0), (2, 5)]
  edges = np.array(edges, np.int32)
  return edges, rng.uniform(0.2, 1.0, size=len(edges))


def _setup():
  rng = np.random.default_rng(0)
  n, d, k, t = 7, 3, 3, 0.7
  z = rng.normal(size=(n, d))
  edges, w = _graph(rng, n)
  labels = np.array([0, 1, 2, 0, 1, 2, 2])
  return rng, n, k, t, z, edges, w, np.eye(k)[labels]


def test_pamc_vs_numpy_and_node_level_special_case_float64():
  rng, n, k, t, z, edges, w, hard = _setup()
  with jax.enable_x64(True):
    f = jax.jit(lambda z_, c_: losses.pamc_loss(z_, edges, c_, edge_weights=w, temperature=t))
    np.testing.assert_allclose(float(f(z, hard)), _np_pamc(z, edges, w, hard, t), rtol=1e-12)
    # k = N, C = I: every node its own meta-node -> exactly the node-level (Graph-MLP) loss, over all N^2 pairs
    a = np.zeros((n, n))
    np.add.at(a, (edges[:, 0], edges[:, 1]), w)
    node = jax.jit(lambda z_: losses.graph_ncontrast_loss(z_, a, temperature=t))(z)
    np.testing.assert_allclose(np.asarray(node), _np_ncontrast(z, a, t), rtol=1e-12)
    np.testing.assert_allclose(float(f(z, np.eye(n))), float(node.mean()), rtol=1e-12)
  bad = edges.copy()
  bad[0, 1] = n
  with pytest.raises(ValueError, match="edges"):
    losses.pamc_loss(z, bad, hard)
  with pytest.raises(ValueError, match="edges"):   # node 5 has no edge of its own
    losses.pamc_loss(z, edges[edges[:, 0] != 5], hard)


@pytest.mark.slow  # finite differences and the dtype/jit/bad-input table: many small compiles (default-run budget)
def test_pamc_gradients_and_soft_assignments_float64():
  rng, n, k, t, z, edges, w, hard = _setup()
  with jax.enable_x64(True):
    f = jax.jit(lambda z_, c_: losses.pamc_loss(z_, edges, c_, edge_weights=w, temperature=t))
    g = np.asarray(jax.grad(f)(jnp.asarray(z), hard))
    eps, fd = 1e-6, np.zeros_like(z)
    for idx in np.ndindex(z.shape):
      zp, zm = z.copy(), z.copy()
      zp[idx] += eps
      zm[idx] -= eps
      fd[idx] = (_np_pamc(zp, edges, w, hard, t) - _np_pamc(zm, edges, w, hard, t)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    # soft assignments: M = C^T Z
    cs = np.asarray(jax.nn.softmax(jnp.asarray(rng.normal(size=(n, k))), axis=1))
    np.testing.assert_allclose(float(f(z, cs)), _np_pamc(z, edges, w, cs, t), rtol=1e-12)


@pytest.mark.slow  # see above
def test_pamc_dtypes_jit_nan_and_bad_input():
  rng = np.random.default_rng(1)
  n, k = 6, 2
  z = jnp.asarray(rng.normal(size=(n, 4)), jnp.float32)
  edges, _ = _graph(rng, n)
  c = jax.nn.one_hot(jnp.arange(n) % k, k)
  full = losses.pamc_loss(z, edges, c)
  half = losses.pamc_loss(z.astype(jnp.bfloat16), edges, c)
  assert full.shape == () and half.dtype == jnp.float32 and abs(float(half) - float(full)) < 0.05
  node = losses.graph_ncontrast_loss(z.astype(jnp.bfloat16), jnp.eye(n, dtype=jnp.bfloat16))
  assert node.dtype == jnp.bfloat16 and node.shape == (n,)
  # large 1/temperature stays finite (log-sum-exp per node)
  assert np.isfinite(float(losses.pamc_loss(z, edges, c, temperature=1e-3)))
  bad = edges.copy()
  bad[0, 1] = n
  assert np.isnan(float(jax.jit(losses.pamc_loss)(z, bad, c)))
  g = jax.grad(lambda z_: jax.jit(losses.pamc_loss)(z_, bad, c))(z)
  assert np.all(np.isnan(np.asarray(g)))
  with pytest.raises(ValueError, match="assignments"):
    losses.pamc_loss(z, edges, -c)
  with pytest.raises(ValueError, match="assignments"):
    losses.pamc_loss(z, edges, c[:-1])
  with pytest.raises(TypeError, match="edges"):
    losses.pamc_loss(z, edges.astype(np.float32), c)
  with pytest.raises(ValueError, match="edge_weights"):
    losses.pamc_loss(z, edges, c, edge_weights=-np.ones(len(edges), np.float32))
  with pytest.raises(ValueError, match="temperature"):
    losses.pamc_loss(z, edges, c, temperature=0.0)
  with pytest.raises(ValueError, match="adjacency"):
    losses.graph_ncontrast_loss(z, jnp.zeros((n, n)))
  with pytest.raises(TypeError, match="z"):
    losses.graph_ncontrast_loss(jnp.zeros((n, 2), jnp.int32), jnp.eye(n))
