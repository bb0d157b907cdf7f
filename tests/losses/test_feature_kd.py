"""ND loss [56] against a float64 NumPy transcription of the official DirectNormLoss (values and gradients)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses


def _np_nd(s, t, means, y):
  out = []
  for si, ti, yi in zip(s, t, y):  # the official per-example loop
    e_c = means[yi] / np.linalg.norm(means[yi])
    out.append(1 - si @ e_c / max(np.linalg.norm(si), np.linalg.norm(ti)))
  return np.array(out)


def _np_nd_grad(s, t, means, y):
  """d/ds: -e_c / ||t|| below the teacher's norm; -e_c / ||s|| + <s, e_c> s / ||s||^3 above it."""
  g = []
  for si, ti, yi in zip(s, t, y):
    e_c = means[yi] / np.linalg.norm(means[yi])
    ns, nt = np.linalg.norm(si), np.linalg.norm(ti)
    g.append(-e_c / nt if ns < nt else -e_c / ns + (si @ e_c) * si / ns ** 3)
  return np.array(g)


def test_nd_loss_and_class_means_match_numpy_float64():
  rng = np.random.default_rng(0)
  feats, labels = rng.normal(size=(12, 5)), np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 1])
  s = rng.normal(size=(6, 5)) * np.array([[0.5], [3], [0.5], [3], [1], [2]])  # norms on both sides of the teacher's
  t = rng.normal(size=(6, 5)) * 1.5
  y = np.array([0, 1, 2, 1, 0, 2])
  with jax.enable_x64(True):
    class_means = jax.jit(losses.teacher_class_means, static_argnums=2)
    means = class_means(feats, labels, 3)
    np.testing.assert_allclose(np.asarray(means), np.stack([feats[labels == k].mean(0) for k in range(3)]), rtol=1e-12)
    nd = jax.jit(losses.nd_loss)
    np.testing.assert_allclose(np.asarray(nd(s, t, means, y)), _np_nd(s, t, np.asarray(means), y), rtol=1e-12)
    g = jax.jit(jax.grad(lambda a: nd(a, t, means, y).sum()))(jnp.asarray(s))
    np.testing.assert_allclose(np.asarray(g), _np_nd_grad(s, t, np.asarray(means), y), rtol=1e-10, atol=1e-12)
    # the paper's two properties: along c_y the loss falls with the student's norm up to the teacher's; at fixed
    # norm it is minimised at cos = 1 (value 1 - ||s|| / max(||s||, ||t||))
    e = np.asarray(means[0]) / np.linalg.norm(means[0])
    t1 = np.tile(e * 2.0, (4, 1))
    along = nd(np.outer([0.5, 1.0, 1.5, 2.0], e), t1, means, np.zeros(4, int))
    assert np.all(np.diff(np.asarray(along)) < 0) and abs(float(along[-1])) < 1e-12
    other = np.cross(e[:3], [1.0, 0, 0]).tolist() + [0.0, 0.0]
    rot = nd(np.stack([e, np.asarray(other) / np.linalg.norm(other)]), t1[:2] / 2, means, np.zeros(2, int))
    assert float(rot[0]) < float(rot[1])
  # empty class: NaN mean, never a silent zero direction
  assert np.isnan(np.asarray(losses.teacher_class_means(feats, labels, 4))[3]).all()


def test_nd_loss_where_half_and_bad_input():
  rng = np.random.default_rng(1)
  s, t = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
  means = jnp.asarray(rng.normal(size=(2, 4)), jnp.float32)
  y = jnp.array([0, 1, 5])
  nd = jax.jit(losses.nd_loss)
  w = jnp.array([True, True, False])
  out = nd(s.at[2].set(jnp.nan), t, means, y, where=w)
  assert float(out[2]) == 0 and np.all(np.isfinite(np.asarray(out)))
  assert np.isnan(np.asarray(nd(s, t, means, y))[2])  # out-of-range label under jit: NaN row
  with pytest.raises(ValueError, match="labels"):
    losses.nd_loss(s, t, means, y)
  assert nd(s.astype(jnp.bfloat16), t.astype(jnp.bfloat16), means, y.at[2].set(0)).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="class_means"):
    losses.nd_loss(s, t, means[:, :3], y)
  with pytest.raises(ValueError, match="teacher_emb"):
    losses.nd_loss(s, t[:2], means, y)
  with pytest.raises(TypeError, match="labels"):
    losses.teacher_class_means(s, jnp.zeros(3), 2)
