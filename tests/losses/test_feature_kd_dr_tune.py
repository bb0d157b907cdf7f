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


def test_semantic_calibration_matches_official_code_and_exact_properties():
  rng = np.random.default_rng(0)
  n, d, k = 30, 5, 3
  pre, down = rng.normal(size=(n, d)), rng.normal(size=(n, d))
  labels = np.arange(n) % k
  protos = rng.normal(size=(k, d))
  q = np.linalg.qr(rng.normal(size=(d, d)))[0]
  q[:, 0] *= np.sign(np.linalg.det(q))                 # a proper rotation
  f32 = lambda a: jnp.asarray(a, jnp.float32)

  @jax.jit   # float32: the D x D SVD stays out of float64 under jit (docs: XLA:CPU float64 decompositions)
  def everything(pre, down, protos, rotated):
    sc = losses.semantic_calibration
    return (sc(pre, down, labels, k), sc(pre, down, labels, k, prototypes=protos, scale=2.5),
            sc(pre, rotated, labels, k), sc(pre, down, labels, k, rotate=False))

  plain, proto, onto, norot = (np.asarray(v, np.float64) for v in everything(f32(pre), f32(down), f32(protos),
                                                                            f32(pre @ q.T)))
  np.testing.assert_allclose(plain, _np_sc(pre, down, labels, k), atol=2e-5)
  np.testing.assert_allclose(proto, _np_sc(pre, down, labels, k, protos, 2.5), atol=5e-5)
  # exact: the calibrated class means are the downstream class means (before any re-normalisation)
  for c in range(k):
    np.testing.assert_allclose(plain[labels == c].mean(0), _norm(down)[labels == c].mean(0), atol=2e-6)
  # exact: a rotated copy of the pretrained features is calibrated onto itself
  np.testing.assert_allclose(onto, _norm(pre) @ q.T, atol=2e-5)
  # without the rotation: a class translation of the normalised pretrained features only
  shift = np.stack([_norm(down)[labels == c].mean(0) - _norm(pre)[labels == c].mean(0) for c in range(k)])
  np.testing.assert_allclose(norot, _norm(pre) + shift[labels], atol=2e-6)


def test_dr_tune_loss_matches_float64_numpy_values_and_gradients():
  # (sum_B CE + sum_K CE) / (B + K), written out; its gradient in each logit row is (softmax - onehot) / (B + K)
  rng = np.random.default_rng(3)
  a, b = rng.normal(size=(4, 5)) * 3, rng.normal(size=(7, 5)) * 3
  ya, yb = np.array([0, 4, 2, 2]), np.array([1, 3, 3, 0, 4, 2, 1])

  def np_logsoftmax(z):
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))

  n = len(ya) + len(yb)
  ref = -(np_logsoftmax(a)[np.arange(4), ya].sum() + np_logsoftmax(b)[np.arange(7), yb].sum()) / n
  with jax.enable_x64(True):
    val, (ga, gb) = jax.jit(jax.value_and_grad(losses.dr_tune_loss, argnums=(0, 2)))(a, ya, b, yb)
  assert float(val) == pytest.approx(ref, rel=1e-13)
  np.testing.assert_allclose(np.asarray(ga), (np.exp(np_logsoftmax(a)) - np.eye(5)[ya]) / n, rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(np.asarray(gb), (np.exp(np_logsoftmax(b)) - np.eye(5)[yb]) / n, rtol=1e-12, atol=1e-15)


@pytest.mark.slow  # where / half precision / traced-label probes: compiles many small programs
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
