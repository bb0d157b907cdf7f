"""Issue 22 distillation and cache objectives, each against a float64 NumPy transcription of its paper's equation.

[148] decoupled_distill_loss, [12] head_distillation_loss, [88] robust_kd_loss + partial_unfreeze_labels (with
optax.multi_transform), [77] momentum_gs_block_weights + the EMA teacher as optax.incremental_update,
[53] harmonica_router_objective, [68] marginal_entropy_loss.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import losses
from jaxlib_methods.losses import cache, distill

rng = np.random.default_rng(0)


def f32(*shape):
  return rng.normal(size=shape).astype(np.float32)


def np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_feature_distillation_losses_match_numpy_and_jit():
  """[148] MSE on the embedding (no decoder); [12] weighted sum over layers of per-example SSE (or mean)."""
  s, t = f32(3, 4, 5), f32(3, 4, 5)
  s2, t2 = f32(3, 6), f32(3, 6)
  ref148 = ((s.astype(np.float64) - t) ** 2).reshape(3, -1).mean(1)
  w = np.array([True, False, True])

  @jax.jit
  def run(s, t):  # one program for the values and gradients checked below
    return (distill.decoupled_distill_loss(s, t), distill.head_distillation_loss(s, t, reduction="mean"),
            jax.grad(lambda b: distill.decoupled_distill_loss(s, b).sum())(t),
            jax.grad(lambda a: distill.decoupled_distill_loss(a, t).sum())(s),
            distill.decoupled_distill_loss(s, t, where=w))

  mse, mean, g_t, g_s, out = run(s, t)
  np.testing.assert_allclose(mse, ref148, rtol=1e-6)
  ref12 = (0.5 * ((s.astype(np.float64) - t) ** 2).reshape(3, -1).sum(1)
           + 2.0 * ((s2.astype(np.float64) - t2) ** 2).sum(1))
  fn = jax.jit(lambda a, b, c, d: distill.head_distillation_loss([a, c], [b, d], layer_weights=(0.5, 2.0)))
  np.testing.assert_allclose(fn(s, t, s2, t2), ref12, rtol=1e-6)
  # single layer, mean reduction equals [148]'s MSE; the teacher gets no gradient; `where` zeroes rows
  np.testing.assert_allclose(mean, ref148, rtol=1e-6)
  assert np.all(np.asarray(g_t) == 0)
  np.testing.assert_allclose(g_s, 2 * (s - t) / 20, rtol=1e-5)
  np.testing.assert_allclose(out, np.where(w, ref148, 0), rtol=1e-6)
  with pytest.raises(ValueError, match="teacher_emb"):
    distill.decoupled_distill_loss(s, t[:, :2])
  with pytest.raises(ValueError, match="layer_weights"):
    distill.head_distillation_loss([s], [t], layer_weights=(1.0, 2.0))


def test_robust_kd_loss_matches_numpy_and_alpha_limits():
  """[88] (1 - a) CE + a T^2 KL(p_t^T || p_s^T) vs float64 NumPy; a = 0 is cross-entropy exactly."""
  zs, zt, y = f32(5, 4), f32(5, 4), np.array([0, 3, 1, 2, 0])
  T, a = 2.0, 0.7
  ls, lt = np_log_softmax(zs.astype(np.float64) / T), np_log_softmax(zt.astype(np.float64) / T)
  kl = (np.exp(lt) * (lt - ls)).sum(-1)
  ce = -np_log_softmax(zs.astype(np.float64))[np.arange(5), y]
  ref = (1 - a) * ce + a * T ** 2 * kl
  out, out_ce, out_same = jax.jit(lambda s, t, l: (  # one program
      distill.robust_kd_loss(s, t, l, temperature=T, alpha=a), distill.robust_kd_loss(s, t, l, alpha=0.0),
      distill.robust_kd_loss(s, s, l, alpha=1.0)))(zs, zt, y)
  np.testing.assert_allclose(out, ref, rtol=1e-5)
  np.testing.assert_allclose(out_ce, ce, rtol=1e-5)
  # a = 1, T = 1 and the teacher equal to the student: the loss is 0
  np.testing.assert_allclose(out_same, 0.0, atol=1e-6)
  with pytest.raises(ValueError, match="alpha"):
    distill.robust_kd_loss(zs, zt, y, alpha=1.5)


def test_partial_unfreezing_gives_frozen_params_exactly_zero_updates():
  """[88] labels for optax.multi_transform: frozen leaves get 0 updates, trainable ones adam's exact update."""
  params = {"blocks": {"0": {"w": jnp.ones((2, 2))}, "1": {"w": jnp.ones((2, 2))}}, "head": {"b": jnp.ones(3)}}
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  labels = distill.partial_unfreeze_labels(params, ("blocks/1", "head"))
  assert labels == {"blocks": {"0": {"w": "frozen"}, "1": {"w": "trainable"}}, "head": {"b": "trainable"}}
  assert distill.partial_unfreeze_labels(params, lambda p: p.startswith("head"))["blocks"]["1"]["w"] == "frozen"
  tx = optax.multi_transform({"trainable": optax.adam(0.1), "frozen": optax.set_to_zero()}, labels)
  upd, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  assert np.all(np.asarray(upd["blocks"]["0"]["w"]) == 0.0)
  # adam's first step is -lr * sign(g) (up to eps): independent of the library
  np.testing.assert_allclose(upd["blocks"]["1"]["w"], -0.1, rtol=1e-5)
  np.testing.assert_allclose(upd["head"]["b"], -0.1, rtol=1e-5)
  with pytest.raises(ValueError, match="matches no parameter"):
    distill.partial_unfreeze_labels(params, ("blocks/7",))
  with pytest.raises(TypeError, match="trainable"):
    distill.partial_unfreeze_labels(params, 3)


def test_momentum_gs_teacher_and_block_weights_match_numpy():
  """[77] EMA teacher theta_t <- m theta_t + (1 - m) theta_s via optax.incremental_update; block weights vs NumPy."""
  m = 0.9
  teacher, student = {"w": f32(3, 2)}, {"w": f32(3, 2)}
  new = optax.incremental_update(student, teacher, step_size=1 - m)
  np.testing.assert_allclose(new["w"], m * teacher["w"].astype(np.float64) + (1 - m) * student["w"], rtol=1e-6)
  psnr, ssim, sigma = np.array([24.0, 26.5, 25.0, 20.0]), np.array([0.80, 0.85, 0.70, 0.60]), 3.0
  ref = 2 - np.exp(-((psnr.max() - psnr) ** 2 + (10 * ssim.max() - 10 * ssim) ** 2) / (2 * sigma ** 2))
  w = jax.jit(lambda p, s: distill.momentum_gs_block_weights(p, s, sigma=sigma))(psnr.astype(np.float32),
                                                                                 ssim.astype(np.float32))
  np.testing.assert_allclose(w, ref, rtol=1e-6)
  # the best block in both metrics gets exactly weight 1; every weight lies in [1, 2)
  np.testing.assert_allclose(distill.momentum_gs_block_weights(np.array([30.0, 20.0]), np.array([0.9, 0.5]),
                                                               sigma=1.0)[0], 1.0)
  assert np.all((np.asarray(w) >= 1) & (np.asarray(w) < 2))
  with pytest.raises(ValueError, match="sigma"):
    distill.momentum_gs_block_weights(psnr, ssim, sigma=0.0)


def test_harmonica_objective_and_marginal_entropy_match_numpy():
  """[53] lambda_t mean((e_c - e_f)^2) + beta sum(r) (the released train_router.py); [68] sum_k p_bar log p_bar."""
  xc, xf, r = f32(3, 2, 4), f32(3, 2, 4), rng.uniform(size=(5, 6)).astype(np.float32)
  wgt = np.array([1.0, 0.5, 2.0], np.float32)
  ref = wgt * ((xc.astype(np.float64) - xf) ** 2).reshape(3, -1).mean(1) + 0.3 * r.astype(np.float64).sum()
  out = jax.jit(lambda a, b, c, d: cache.harmonica_router_objective(a, b, c, lam=0.3, error_weight=d))(xc, xf, r, wgt)
  np.testing.assert_allclose(out, ref, rtol=1e-6)
  g_r = jax.jit(jax.grad(lambda c: cache.harmonica_router_objective(xc, xf, c, lam=0.3).mean()))(r)
  np.testing.assert_allclose(g_r, 0.3, rtol=1e-5)  # the penalty pushes every router score towards caching
  with pytest.raises(ValueError, match="router"):
    cache.harmonica_router_objective(xc, xf, r + 1.5, lam=0.3)
  assert np.isnan(np.asarray(jax.jit(lambda c: cache.harmonica_router_objective(xc, xf, c, lam=0.3))(r + 1.5))).all()
  z = f32(6, 4)
  p = np.exp(np_log_softmax(z.astype(np.float64))).mean(0)
  entropy = jax.jit(cache.marginal_entropy_loss)
  np.testing.assert_allclose(entropy(z), (p * np.log(p)).sum(), rtol=1e-5)
  balanced = np.log(np.eye(4, dtype=np.float32) * 50 + 1e-30).clip(-80)  # each class used once, confidently
  np.testing.assert_allclose(entropy(balanced), -np.log(4), rtol=1e-5)
  assert float(entropy(z)) > -np.log(4)
  assert losses.marginal_entropy_loss is cache.marginal_entropy_loss


def test_marginal_entropy_gradient_finite_with_a_class_masked_everywhere():
  # Regression: xlogy(p, p) has derivative log(p) + 1 = -inf at p = 0, so a class at -inf in every row (p_bar = 0)
  # made the whole gradient NaN although the value is finite.
  z = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
  ext = jnp.concatenate([jnp.asarray(z), jnp.full((5, 1), -jnp.inf, jnp.float32)], axis=1)
  np.testing.assert_allclose(cache.marginal_entropy_loss(ext), cache.marginal_entropy_loss(jnp.asarray(z)), rtol=1e-6)
  g_ext = jax.jit(jax.grad(cache.marginal_entropy_loss))(ext)
  g = jax.grad(cache.marginal_entropy_loss)(jnp.asarray(z))
  np.testing.assert_allclose(np.asarray(g_ext), np.concatenate([np.asarray(g), np.zeros((5, 1))], 1), atol=1e-6)

  # Regression (2026-12-04): the p_bar > 0 guard sent a NaN mean to the 0 branch: a NaN or +Inf logit gave a finite
  # loss (-H of the other classes) instead of NaN.
  for bad in (jnp.nan, jnp.inf):
    assert np.isnan(float(jax.jit(cache.marginal_entropy_loss)(jnp.asarray(z).at[0, 0].set(bad))))


def test_harmonica_traced_negative_lam_is_nan():
  # Regression: lam was only checked when concrete, so a negative lam under jit silently rewarded compute.
  xc, xf, r = jnp.ones((2, 3)), jnp.zeros((2, 3)), jnp.full(4, 0.5)
  f = jax.jit(lambda lam: cache.harmonica_router_objective(xc, xf, r, lam=lam))
  np.testing.assert_allclose(np.asarray(f(0.25)), 1.0 + 0.25 * 2.0, rtol=1e-6)
  assert np.isnan(np.asarray(f(-1.0))).all()
  with pytest.raises(ValueError, match="lam"):
    cache.harmonica_router_objective(xc, xf, r, lam=-1.0)
