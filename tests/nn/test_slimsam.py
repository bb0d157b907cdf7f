"""SlimSAM [121]: disturbed Taylor importance against a float64 NumPy backprop of a 2-layer embedding, zero without
the disturbance; group channel scores and pruned channels exactly zero (= the sliced small model); distillation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.nn.slimsam import (apply_channel_mask, channel_keep_mask, disturbed_taylor_importance,
                                       group_channel_importance, slimsam_distillation_loss)


def _embed(p, x):
  return jnp.tanh(x @ p["w1"]) @ p["w2"]


def test_importance_vs_numpy_and_pruning():
  rng = np.random.default_rng(0)
  N, din, hid, dout = 6, 5, 8, 4
  p = {"w1": rng.normal(size=(din, hid)), "w2": rng.normal(size=(hid, dout))}
  x = rng.normal(size=(N, din))
  key = jax.random.key(3)
  with jax.enable_x64(True):
    pj = jax.tree.map(jnp.asarray, p)
    f = jax.jit(lambda p, x, k, s: disturbed_taylor_importance(_embed, p, x, k, sigma=s))
    imp = f(pj, jnp.asarray(x), key, 0.01)
    eps = np.asarray(jax.vmap(lambda k: jax.random.normal(k, (1, dout), jnp.float64))(jax.random.split(key, N)))[:, 0]
    zero = f(pj, jnp.asarray(x), key, 0.0)
    score = np.asarray(group_channel_importance([imp["w1"], imp["w2"]], [1, 0]))
  # NumPy backprop of sum_n mean_j (f_nj - (f_nj + 0.01 eps_nj))^2: residual r = -0.01 eps
  h = np.tanh(x @ p["w1"])
  dr = 2 * (-0.01 * eps) / dout                       # dL/df
  g2 = h.T @ dr
  g1 = x.T @ ((dr @ p["w2"].T) * (1 - h ** 2))
  np.testing.assert_allclose(np.asarray(imp["w2"]), np.abs(p["w2"] * g2), rtol=1e-10, atol=1e-14)
  np.testing.assert_allclose(np.asarray(imp["w1"]), np.abs(p["w1"] * g1), rtol=1e-10, atol=1e-14)
  assert all(np.all(np.asarray(v) == 0) for v in jax.tree.leaves(zero))   # undisturbed: no signal at all
  # hidden channel k couples w1[:, k] and w2[k, :]; score = mean of the two sums (norm_type='mean')
  want = (np.abs(p["w1"] * g1).sum(0) + np.abs(p["w2"] * g2).sum(1)) / 2
  np.testing.assert_allclose(score, want, rtol=1e-10)
  keep = np.asarray(channel_keep_mask(jnp.asarray(score), 0.5))
  assert keep.sum() == 4 and set(np.flatnonzero(~keep)) == set(np.argsort(want)[:4])
  w1 = np.asarray(apply_channel_mask(jnp.asarray(p["w1"]), jnp.asarray(keep), 1))
  w2 = np.asarray(apply_channel_mask(jnp.asarray(p["w2"]), jnp.asarray(keep), 0))
  assert np.all(w1[:, ~keep] == 0) and np.all(w2[~keep] == 0)             # exactly zero
  np.testing.assert_array_equal(w1[:, keep], p["w1"][:, keep].astype(np.float32))   # (float32 outside x64)
  small = np.tanh(x @ p["w1"][:, keep]) @ p["w2"][keep]                   # the sliced small model
  np.testing.assert_allclose(np.tanh(x @ w1) @ w2, small, rtol=1e-5, atol=1e-6)


def test_distillation_loss_and_bad_inputs():
  s, t = jnp.ones((2, 3)), jnp.zeros((2, 3))
  np.testing.assert_allclose(float(slimsam_distillation_loss(s, t)), 1.0)
  got = slimsam_distillation_loss(s, t, [2 * s], [t], a=0.5)
  np.testing.assert_allclose(float(got), 0.5 * 1.0 + 0.5 * 4.0)
  g = jax.grad(lambda t: slimsam_distillation_loss(s, t))(t)
  assert np.all(np.asarray(g) == 0)                                        # the teacher is a constant
  with pytest.raises(ValueError, match="ratio"):
    channel_keep_mask(jnp.ones(4), 1.0)
  with pytest.raises(ValueError, match="keep"):
    apply_channel_mask(jnp.ones((3, 4)), jnp.ones(3, bool), 1)
  with pytest.raises(ValueError, match="sigma"):
    disturbed_taylor_importance(_embed, {}, jnp.ones((1, 2)), jax.random.key(0), sigma=-1.0)
