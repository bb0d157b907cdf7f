"""HPM [163]: the relative loss-prediction objective and the easy-to-hard mask against independent references.

References: a float64 NumPy double loop over patch pairs transcribing the official `forward_learning_loss
(relative=True)` (labels from the order of the targets, BCE on sigma(p_j - p_i), divided by the number of untied
pairs), its gradient by central finite differences; the stop-gradient on the targets (zero gradient into
`recon_loss`); the mask's defining counts (exactly n_mask masked, the top-k predicted patches always among them,
random ones uniform in frequency over many keys, alpha = 1 -> exactly the top n_mask).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses


def _np_relative(p, t, w=None):
  n, length = p.shape
  out = np.zeros(n)
  for b in range(n):
    tot, cnt = 0.0, 0
    for i in range(length):
      for j in range(length):
        if w is not None and not (w[b, i] and w[b, j]):
          continue
        s = 1.0 / (1.0 + np.exp(-(p[b, j] - p[b, i])))
        if t[b, j] > t[b, i]:
          tot -= np.log(s)
          cnt += 1
        elif t[b, j] < t[b, i]:
          tot -= np.log(1.0 - s)
          cnt += 1
    out[b] = tot / max(cnt, 1)
  return out


def test_relative_loss_matches_numpy_with_stop_gradient_float64():
  rng = np.random.default_rng(0)
  p, t = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
  t[1, 2] = t[1, 4]                                   # a tie: excluded from the pairs
  w = rng.random((3, 5)) > 0.3
  @jax.jit
  def everything(p, t, w):   # one program
    fn = lambda p, t: losses.hpm_relative_loss(p, t, where=w)
    gp, gt = jax.grad(lambda p, t: fn(p, t).sum(), argnums=(0, 1))(p, t)
    return losses.hpm_relative_loss(p, t), fn(p, t), gp, gt

  with jax.enable_x64(True):
    full, masked, gp, gt = everything(p, t, w)
  np.testing.assert_allclose(np.asarray(full), _np_relative(p, t), rtol=1e-12)
  np.testing.assert_allclose(np.asarray(masked), _np_relative(p, t, w), rtol=1e-12)
  eps, fd = 1e-6, np.zeros_like(p)
  for i in np.ndindex(p.shape):
    a, b = p.copy(), p.copy()
    a[i] += eps
    b[i] -= eps
    fd[i] = (_np_relative(a, t, w).sum() - _np_relative(b, t, w).sum()) / (2 * eps)
  np.testing.assert_allclose(np.asarray(gp), fd, rtol=1e-6, atol=1e-9)
  assert np.all(np.asarray(gt) == 0.0)              # stop-gradient: the MAE's losses are targets only
  # a perfect ranker with a large margin has ~0 loss; the reversed one a large loss; all ties: 0 (no pairs)
  t1 = np.arange(6.0, dtype=np.float32)[None]
  nan_t = np.array([[0, np.nan, 1], [0, 1, 2.]], np.float32)
  good, bad, ties, half, nan = jax.jit(lambda t1, nan_t: (
      losses.hpm_relative_loss(50.0 * t1, t1), losses.hpm_relative_loss(-50.0 * t1, t1),
      losses.hpm_relative_loss(t1, jnp.zeros_like(t1)),
      losses.hpm_relative_loss(jnp.zeros((2, 4), jnp.bfloat16), jnp.ones((2, 4))),
      losses.hpm_relative_loss(jnp.zeros((2, 3)), nan_t)))(t1, nan_t)
  assert float(good[0]) < 1e-10 and float(bad[0]) > 40   # a perfect / reversed ranker with a large margin
  assert float(ties[0]) == 0.0                            # all tied: no pair, 0
  assert half.dtype == jnp.bfloat16
  assert np.isnan(np.asarray(nan)[0]) and np.isfinite(np.asarray(nan)[1])   # a NaN target poisons its image only


def test_easy_to_hard_mask_counts_top_k_and_random_rest():
  rng = np.random.default_rng(1)
  pred = rng.normal(size=(4, 16)).astype(np.float32)
  n_mask = 16 - int(16 * (1 - 0.75))                 # 12
  top_order = np.argsort(-pred, axis=1)
  fn = jax.jit(jax.vmap(lambda k: losses.hpm_easy_to_hard_mask(k, pred, mask_ratio=0.75, epoch=9, total_epochs=10)))
  masks = np.asarray(fn(jax.random.split(jax.random.key(0), 400)))           # alpha = 0.5: k = 6
  assert masks.dtype == bool and np.all(masks.sum(-1) == n_mask)
  for b in range(4):
    assert masks[:, b, top_order[b, :6]].all()                                # the top-6 predicted always masked
    freq = masks[:, b, top_order[b, 6:]].mean(0)                              # the other 6 of 12 uniform over 10
    assert np.all(np.abs(freq - 0.6) < 0.1)                                    # binomial sd 0.024: 4 sd
  exact = losses.hpm_easy_to_hard_mask(jax.random.key(1), pred, mask_ratio=0.75, epoch=0, total_epochs=1,
                                       alpha_0=1.0, alpha_T=1.0)
  for b in range(4):
    assert set(np.flatnonzero(np.asarray(exact[b]))) == set(top_order[b, :n_mask])
  traced = jax.jit(lambda e: losses.hpm_easy_to_hard_mask(jax.random.key(3), pred, epoch=e, total_epochs=10))(9)
  np.testing.assert_array_equal(np.asarray(traced), np.asarray(
      losses.hpm_easy_to_hard_mask(jax.random.key(3), pred, epoch=9, total_epochs=10)))   # traced epoch: same k
  first = losses.hpm_easy_to_hard_mask(jax.random.key(2), pred, epoch=0, total_epochs=200)   # k = int(12 / 400) = 0
  assert np.all(np.asarray(first).sum(-1) == n_mask)
  # audit 2026-12-03: at k's float boundaries the traced path used float32 + 1e-6 and could mask one more top
  # patch than the eager path (212 small-L settings, e.g. L=6, ratio 0.7, T=3, alpha_T=0.3, epoch 1: k = int(1.0))
  p6 = jnp.tile(jnp.arange(6.0), (64, 1))
  for e in range(3):
    eager = losses.hpm_easy_to_hard_mask(jax.random.key(4), p6, mask_ratio=0.7, epoch=e, total_epochs=3, alpha_T=0.3)
    jitted = jax.jit(lambda ep: losses.hpm_easy_to_hard_mask(jax.random.key(4), p6, mask_ratio=0.7, epoch=ep,
                                                             total_epochs=3, alpha_T=0.3))(jnp.int32(e))
    np.testing.assert_array_equal(np.asarray(jitted), np.asarray(eager))


def test_bad_input_is_rejected():
  with pytest.raises(ValueError, match="recon_loss"):
    losses.hpm_relative_loss(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
  with pytest.raises(ValueError, match="pred_loss"):
    losses.hpm_relative_loss(jnp.zeros(3), jnp.zeros(3))
  with pytest.raises(TypeError, match="where"):
    losses.hpm_relative_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)), where=jnp.ones((2, 3)))
  with pytest.raises(TypeError, match="pred_loss"):
    losses.hpm_relative_loss(jnp.zeros((2, 3), jnp.int32), jnp.zeros((2, 3)))
  k = jax.random.key(0)
  with pytest.raises(ValueError, match="epoch"):
    losses.hpm_easy_to_hard_mask(k, jnp.zeros((2, 4)), epoch=5, total_epochs=5)
  with pytest.raises(ValueError, match="mask_ratio"):
    losses.hpm_easy_to_hard_mask(k, jnp.zeros((2, 4)), mask_ratio=1.0, epoch=0, total_epochs=5)
  with pytest.raises(ValueError, match="alpha_T"):
    losses.hpm_easy_to_hard_mask(k, jnp.zeros((2, 4)), epoch=0, total_epochs=5, alpha_T=1.5)
  with pytest.raises(TypeError, match="epoch"):
    losses.hpm_easy_to_hard_mask(k, jnp.zeros((2, 4)), epoch=0.5, total_epochs=5)
  with pytest.raises(ValueError, match="total_epochs"):
    losses.hpm_easy_to_hard_mask(k, jnp.zeros((2, 4)), epoch=0, total_epochs=0)
