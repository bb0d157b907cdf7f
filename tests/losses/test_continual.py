"""MVP's gradient-similarity focal loss [26] (losses.gradient_similarity_focal_loss, gradient_similarity_scores):
the scores equal 1 - cos of autodiff head gradients (the released code's per-example backward loop, run on a linear
head), the loss a float64 NumPy transcription, the -inf mask of unseen classes gives them zero gradient, and
alpha = 0 is plain cross-entropy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses
from jaxlib_methods.data.si_blurry import seen_class_logit_mask
from jaxlib_methods.losses.continual import gradient_similarity_focal_loss, gradient_similarity_scores


def _numpy_reference(W, b, f, y, seen, alpha, gamma):
  """float64 transcription of MVP._compute_grads / _get_ignore / loss_fn (per-example focal form)."""
  z = f @ W.T + b
  z = np.where(seen, z, -np.inf)
  z = z - z.max(1, keepdims=True)
  p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
  ce = -np.log(p[np.arange(len(y)), y])
  onehot = np.eye(W.shape[0])[y]
  g_batch = (p - onehot).T @ f / len(y)
  s = np.empty(len(y))
  for i in range(len(y)):
    gi = (p[i, y[i]] - 1.0) * f[i]
    gb = g_batch[y[i]]
    s[i] = 1.0 - gi @ gb / (np.linalg.norm(gi) * np.linalg.norm(gb))
  return s, ((1 - alpha) + alpha * s ** gamma) * ce, ce


def test_gradient_similarity_focal_loss_exact():
  rng = np.random.default_rng(0)
  B, D, K = 7, 5, 6
  W, b = rng.normal(size=(K, D)), rng.normal(size=K)
  f = rng.normal(size=(B, D))
  y = np.array([0, 2, 2, 3, 0, 2, 5])
  seen = np.array([True, False, True, True, False, True])
  alpha, gamma = 0.5, 2.0
  keep = np.array([True, True, False, True, True, True, False])
  s_ref, loss_ref, ce_ref = _numpy_reference(W, b, f, y, seen, alpha, gamma)
  with jax.enable_x64(True):
    Wj, bj, fj, yj, sj = map(jnp.asarray, (W, b, f, y, seen))

    def logits_of(W, b):
      return seen_class_logit_mask(fj @ W.T + b, sj)

    @jax.jit
    def run(W, b):
      z = logits_of(W, b)
      s = gradient_similarity_scores(z, fj, yj)
      loss = gradient_similarity_focal_loss(z, fj, yj, alpha=alpha, gamma=gamma)
      ce_i = lambda W, i: losses.softmax_cross_entropy_with_integer_labels(logits_of(W, b), yj)[i]
      # the released code's loop: backward of each example's CE, keep its class's row of the head gradient
      g_own = jax.vmap(lambda i: jax.grad(ce_i)(W, i)[yj[i]])(jnp.arange(B))
      g_bar = jax.grad(lambda W: losses.softmax_cross_entropy_with_integer_labels(logits_of(W, b), yj).mean())(W)[yj]
      cos = jnp.sum(g_own * g_bar, 1) / (jnp.linalg.norm(g_own, axis=1) * jnp.linalg.norm(g_bar, axis=1))
      gz = jax.grad(lambda z: gradient_similarity_focal_loss(z, fj, yj, alpha=alpha, gamma=gamma).sum())(z)
      plain = gradient_similarity_focal_loss(z, fj, yj, alpha=0.0)
      s_sub = gradient_similarity_scores(z, fj, yj, where=jnp.asarray(keep))
      return s, loss, 1.0 - cos, gz, plain, jax.nn.softmax(z), s_sub
    s, loss, s_autodiff, gz, plain, p, s_sub = run(Wj, bj)
  np.testing.assert_allclose(s, s_ref, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(s_autodiff, s_ref, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(loss, loss_ref, rtol=1e-10)
  np.testing.assert_allclose(plain, ce_ref, rtol=1e-10)            # alpha = 0: cross-entropy
  assert np.all((s_ref >= 0) & (s_ref <= 2)) and np.ptp(s_ref) > 0.1
  # the scores are constants: d loss_i / d z_i = w_i (p_i - e_{y_i}); unseen classes get exactly zero gradient
  w = (1 - alpha) + alpha * s_ref ** gamma
  np.testing.assert_allclose(gz, w[:, None] * (np.asarray(p) - np.eye(K)[y]), rtol=1e-9, atol=1e-12)
  assert np.all(np.asarray(gz)[:, ~seen] == 0.0)
  # the released code's batch form: mean CE times the mean focal factor
  code_value = ce_ref.mean() * w.mean()
  s, plain = np.asarray(s), np.asarray(plain)
  np.testing.assert_allclose(plain.mean() * ((1 - alpha) + alpha * s ** gamma).mean(), code_value, rtol=1e-10)
  # where: an excluded example neither counts nor enters gbar (scores of the others = the subset's scores)
  s_ref_sub, _, _ = _numpy_reference(W, b, f[keep], y[keep], seen, alpha, gamma)
  np.testing.assert_allclose(np.asarray(s_sub)[keep], s_ref_sub, rtol=1e-10, atol=1e-12)
  assert np.all(np.asarray(s_sub)[~keep] == 0)


def test_gradient_similarity_focal_loss_bad_input():
  z, f, y = jnp.zeros((3, 4)), jnp.zeros((3, 2)), jnp.array([0, 1, 2])
  with pytest.raises(ValueError, match="alpha"):
    gradient_similarity_focal_loss(z, f, y, alpha=1.5)
  with pytest.raises(ValueError, match="gamma"):
    gradient_similarity_focal_loss(z, f, y, gamma=-1.0)
  with pytest.raises(ValueError, match="features"):
    gradient_similarity_focal_loss(z, jnp.zeros((2, 2)), y)
  with pytest.raises(TypeError, match="features"):
    gradient_similarity_scores(z, jnp.zeros((3, 2), jnp.int32), y)
  with pytest.raises(ValueError, match="labels"):
    gradient_similarity_focal_loss(z, f, jnp.array([0, 1, 4]))
