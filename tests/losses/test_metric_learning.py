"""Normalized softmax loss [118] (ls19b, issue 19) vs a float64 NumPy transcription (values, gradients) and optax's
cross-entropy on pre-normalised inputs; where, labels and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import losses


def _np_norm_softmax(x, w, y, t):
  u = x / np.linalg.norm(x, axis=-1, keepdims=True)
  v = w / np.linalg.norm(w, axis=-1, keepdims=True)
  logits = u @ v.T / t
  m = logits.max(-1, keepdims=True)
  logp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
  return -logp[np.arange(len(y)), y]


@pytest.mark.slow  # float64 transcription + finite differences: many small compiles (default-run budget)
def test_normalized_softmax_vs_numpy_optax_and_bad_input():
  rng = np.random.default_rng(0)
  x, w, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), np.array([0, 3, 1, 1, 2])
  with jax.enable_x64(True):
    f = jax.jit(lambda x, w: losses.normalized_softmax_loss(x, w, y, temperature=0.3))
    np.testing.assert_allclose(np.asarray(f(x, w)), _np_norm_softmax(x, w, y, 0.3), rtol=1e-12)
    gx, gw = jax.grad(lambda x, w: f(x, w).sum(), argnums=(0, 1))(jnp.asarray(x), jnp.asarray(w))
    eps = 1e-6
    for arr, g, name in ((x, gx, "x"), (w, gw, "w")):
      for idx in [(0, 0), (3, 2)]:
        e = np.zeros_like(arr)
        e[idx] = eps
        args_p = (x + e, w) if name == "x" else (x, w + e)
        args_m = (x - e, w) if name == "x" else (x, w - e)
        fd = (_np_norm_softmax(*args_p, y, 0.3).sum() - _np_norm_softmax(*args_m, y, 0.3).sum()) / (2 * eps)
        np.testing.assert_allclose(float(g[idx]), fd, rtol=1e-6, atol=1e-9)
    # unit inputs: plain softmax cross-entropy of the dot products / T (optax)
    u = x / np.linalg.norm(x, axis=-1, keepdims=True)
    v = w / np.linalg.norm(w, axis=-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(losses.normalized_softmax_loss(u, v, y, temperature=0.05)),
                               np.asarray(optax.softmax_cross_entropy_with_integer_labels(u @ v.T / 0.05, y)),
                               rtol=1e-12)
  where = np.array([True, False, True, True, True])
  out = losses.normalized_softmax_loss(x.astype(np.float32), w.astype(np.float32), np.array([0, -100, 1, 1, 2]),
                                       where=where)
  assert float(out[1]) == 0.0 and np.all(np.asarray(out)[where] > 0)
  with pytest.raises(ValueError, match="labels"):
    losses.normalized_softmax_loss(x, w, np.array([0, 4, 1, 1, 2]))
  with pytest.raises(ValueError, match="class_weights"):
    losses.normalized_softmax_loss(x, w[:, :2], y)
  with pytest.raises(ValueError, match="temperature"):
    losses.normalized_softmax_loss(x, w, y, temperature=0.0)
  assert losses.normalized_softmax_loss(jnp.ones((2, 3), jnp.bfloat16), jnp.ones((4, 3), jnp.bfloat16),
                                        jnp.array([0, 1])).dtype == jnp.bfloat16


def _np_dist(a, b):
  return np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1) + 1e-6)


def _np_proto_triplet(q, y, p, margin):
  d = _np_dist(q, p)
  own = np.eye(p.shape[0], dtype=bool)[y]
  return np.maximum(d[own] - np.where(own, np.inf, d).min(1) + margin, 0)


def _np_icnn(x, y, k=4, ipc=None):
  """The authors' modified_score, line by line in float64 NumPy (argsort in place of torch.topk)."""
  n = x.shape[0]
  k = n - 2 if k + 2 >= n else k
  ipc = k + 1 if ipc is None else ipc
  eps = 1e-7
  dist = _np_dist(x, x)
  order = np.argsort(dist, axis=1, kind="stable")[:, :ipc + 1]
  distances = np.take_along_axis(dist, order, 1)[:, 1:]
  indices = order[:, 1:]
  sc = (y[indices] == y[:, None]) * 1
  dc = 1 - sc
  dcnd = distances * dc
  nn_dc = np.where(dcnd == 0, np.inf, dcnd).min(1)
  nd = (distances.T / (nn_dc + eps))[:k]
  nd = (nd / np.maximum(1.0, nd.max(0))).T
  sc, dcnd, dc = sc[:, :k], dcnd[:, :k], dc[:, :k]
  sc_counts = sc.sum(1)
  sclamb = 1 - ((nd * sc).sum(1) / (sc_counts + eps)).sum() / (np.count_nonzero(sc_counts) + eps)
  dcnd = dcnd / (dcnd.max() + eps)
  dcop = -1 if np.all(dc == 0) else 0
  dc_counts = dc.sum(1)
  dclamb = abs((dcnd.sum(1) / (dc_counts + eps)).sum() / (np.count_nonzero(dc_counts) + eps) + dcop)
  gamma = (sc.sum(1) / k).sum() / n if k + 2 < n else 1.0
  return ((sclamb + dclamb) / 2 + gamma) / 2


@pytest.mark.slow  # float64 transcription + finite differences: many small compiles (default-run budget)
def test_proto_triplet_and_icnn_vs_numpy_float64():
  rng = np.random.default_rng(3)
  q, p, y = rng.normal(size=(6, 3)), rng.normal(size=(4, 3)), np.array([0, 1, 2, 3, 1, 0])
  with jax.enable_x64(True):
    f = jax.jit(lambda q, p: losses.proto_triplet_loss(q, y, p, margin=0.5))
    np.testing.assert_allclose(np.asarray(f(q, p)), _np_proto_triplet(q, y, p, 0.5), rtol=1e-12)
    assert _np_proto_triplet(q, y, p, 0.5)[2] > 0  # row 2's hinge is active: its gradient below is exercised
    g = jax.grad(lambda q: f(q, p).sum())(jnp.asarray(q))
    e = np.zeros_like(q)
    e[2, 1] = 1e-6
    fd = (_np_proto_triplet(q + e, y, p, 0.5).sum() - _np_proto_triplet(q - e, y, p, 0.5).sum()) / 2e-6
    np.testing.assert_allclose(float(g[2, 1]), fd, rtol=1e-6)
    # queries on their own prototypes, prototypes far apart: zero loss
    far = 10 * np.eye(4, 3)[:, :3] + np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [10, 10, 10]])
    assert float(losses.proto_triplet_loss(far[y], y, far).max()) == 0.0
    for n_cls, per, kk, ipc in ((3, 5, 4, None), (4, 4, 3, 5), (2, 3, 4, None)):
      x = rng.normal(size=(n_cls * per, 3)) + np.repeat(rng.normal(size=(n_cls, 3)), per, 0)
      lab = np.repeat(np.arange(n_cls), per)
      np.testing.assert_allclose(float(losses.icnn_score(x, lab, k=kk, ipc=ipc)), _np_icnn(x, lab, kk, ipc),
                                 rtol=1e-10)
    gi = jax.grad(lambda x: -jnp.log(losses.icnn_score(x, lab)))(jnp.asarray(x))
    assert np.all(np.isfinite(np.asarray(gi)))
  with pytest.raises(ValueError, match="prototypes"):
    losses.proto_triplet_loss(q, np.zeros(6, np.int32), p[:1])
  with pytest.raises(ValueError, match="query_labels"):
    losses.proto_triplet_loss(q, np.array([0, 1, 2, 4, 1, 0]), p)
  with pytest.raises(ValueError, match="features"):
    losses.icnn_score(q[:2], y[:2])
  with pytest.raises(ValueError, match="ipc"):
    losses.icnn_score(q, y, k=2, ipc=9)
