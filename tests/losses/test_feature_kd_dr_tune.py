"""DR-Tune [93]: semantic calibration against a float64 NumPy transcription of the official code, its exact
properties (calibrated class centres = downstream centres; a rotated copy is mapped onto itself), and the loss."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import losses


def _norm(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def _np_sc(pre, down, labels, k, protos=None, scale=None):
  """The official `semantic_calibration` (rotation every step), in float64 NumPy, one class at a time."""
  x, y = _norm(pre), _norm(down)
  xc, yc = (x - x.mean(0)).T, (y - y.mean(0)).T
  u, _, vt = np.linalg.svd(xc @ yc.T)
  v = vt.T.copy()
  v[:, -1] *= np.linalg.det(v @ u.T)
  x = ((v @ u.T) @ xc).T
  for c in range(k):
    idx = np.nonzero(labels == c)[0]
    if protos is None:
      w = np.full(len(idx), 1 / len(idx))
    else:
      s = y[idx] @ (protos[c] / np.linalg.norm(protos[c]))
      w = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    x[idx] = x[idx] + (w @ y[idx] - x[idx].mean(0))
  return x if scale is None else _norm(x) * scale


def test_semantic_calibration_matches_official_code_and_exact_properties_float64():
  rng = np.random.default_rng(0)
  n, d, k = 30, 5, 3
  pre, down = rng.normal(size=(n, d)), rng.normal(size=(n, d))
  labels = np.arange(n) % k
  protos = rng.normal(size=(k, d))
  with jax.enable_x64(True):   # eager: the float64 SVD stays out of jit (docs: XLA:CPU float64 decompositions)
    for kw in (dict(), dict(prototypes=protos, scale=2.5)):
      out = np.asarray(losses.semantic_calibration(pre, down, labels, k, **kw))
      ref = _np_sc(pre, down, labels, k, kw.get("prototypes"), kw.get("scale"))
      np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)
    # exact: the calibrated class means are the downstream class means (before any re-normalisation)
    out = np.asarray(losses.semantic_calibration(pre, down, labels, k))
    for c in range(k):
      np.testing.assert_allclose(out[labels == c].mean(0), _norm(down)[labels == c].mean(0), atol=1e-12)
    # exact: a rotated copy of the pretrained features is calibrated onto itself
    q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    q[:, 0] *= np.sign(np.linalg.det(q))
    np.testing.assert_allclose(np.asarray(losses.semantic_calibration(pre, pre @ q.T, labels, k)), _norm(pre) @ q.T,
                               atol=1e-10)
  # float32 under jit (the SVD is D x D, float32)
  sc = jax.jit(losses.semantic_calibration, static_argnames=("num_classes", "rotate", "scale"))
  np.testing.assert_allclose(np.asarray(sc(pre.astype(np.float32), down.astype(np.float32), labels, num_classes=k)),
                             _np_sc(pre, down, labels, k), atol=2e-5)


def test_dr_tune_loss_and_bad_input():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
  ya, yb = np.array([0, 1, 2, 0]), np.array([2, 2, 1, 0, 1, 0])
  ref = optax.losses.softmax_cross_entropy_with_integer_labels(np.concatenate([a, b]), np.concatenate([ya, yb])).mean()
  np.testing.assert_allclose(float(jax.jit(losses.dr_tune_loss)(a, ya, b, yb)), float(ref), rtol=1e-6)
  assert np.isnan(float(jax.jit(losses.dr_tune_loss)(a, ya, b, yb + 1)))    # a label 3 of 3 classes, traced
  with pytest.raises(ValueError, match="labels"):
    losses.dr_tune_loss(a, ya, b, yb + 1)
  with pytest.raises(ValueError, match="same C"):
    losses.dr_tune_loss(a, ya, b[:, :2], yb)
  x = np.ones((4, 3), np.float32)
  with pytest.raises(ValueError, match="down_feats"):
    losses.semantic_calibration(x, x[:3], ya, 3)
  with pytest.raises(ValueError, match="labels"):
    losses.semantic_calibration(x, x, ya + 5, 3)
  with pytest.raises(ValueError, match="prototypes"):
    losses.semantic_calibration(x, x, ya, 3, prototypes=np.ones((2, 3), np.float32))
  with pytest.raises(TypeError, match="pre_feats"):
    losses.semantic_calibration(x.astype(np.int32), x, ya, 3)
