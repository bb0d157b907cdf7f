"""Issue 22 heads, fusion layers and cache ops, each against an independent float64 NumPy transcription.

[95] krr_classifier (NumPy solve; the lambda -> 0 interpolation limit), [53] cache_router_mix, [68]
feature_cache_predict (the authors' code's steps, standardisation included), [108] cache_affinity_logits,
[110] MultiExpertFusionProjector + image_position_ids, [157] SpatialAttentionAggregator (weights sum to 1; equal
inputs give the input back), under jax.jit / nnx.jit.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxlib_methods import losses, nn
from jaxlib_methods.nn import cache, heads

rng = np.random.default_rng(1)


def f32(*shape):
  return rng.normal(size=shape).astype(np.float32)


def l2n(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_krr_classifier_matches_numpy_solve_and_interpolates_as_lambda_goes_to_zero():
  xs, xq = rng.normal(size=(6, 8)), rng.normal(size=(4, 8))
  y = np.eye(3)[[0, 1, 2, 0, 1, 2]]
  ref = xq @ xs.T @ np.linalg.solve(xs @ xs.T + 0.5 * np.eye(6), y)
  d2 = ((xq[:, None] - xs[None]) ** 2).sum(-1)
  ks = np.exp(-0.3 * ((xs[:, None] - xs[None]) ** 2).sum(-1))
  ref_rbf = np.exp(-0.3 * d2) @ np.linalg.solve(ks + 0.1 * np.eye(6), y)

  @jax.jit
  def all_heads(xs, y, xq):  # one compile for every call of the test
    return (heads.krr_classifier(xs, y, xq, lam=0.5),
            heads.krr_classifier(xs, y, xq, lam=0.1, kernel="rbf", gamma=0.3),
            [heads.krr_classifier(xs, y, xs, lam=lam) for lam in (1e-2, 1e-6)])

  with jax.enable_x64(True):
    out, out_rbf, on_support = all_heads(xs, y, xq)
  np.testing.assert_allclose(out, ref, rtol=1e-10)
  np.testing.assert_allclose(out_rbf, ref_rbf, rtol=1e-8)
  # N = 6 <= D = 8: K is invertible, so the scores on the support set tend to Y as lambda -> 0
  errs = [float(np.abs(np.asarray(s) - y).max()) for s in on_support]
  assert errs[1] < 1e-5 < errs[0]
  with pytest.raises(ValueError, match="lam"):
    heads.krr_classifier(xs, y, xq, lam=0.0)
  with pytest.raises(ValueError, match="support_targets"):
    heads.krr_classifier(xs, y[:5], xq, lam=1.0)
  with pytest.raises(ValueError, match="kernel"):
    heads.krr_classifier(xs, y, xq, lam=1.0, kernel="poly")


def test_cache_ops_match_numpy():
  # [53] r * fresh + (1 - r) * cached
  fr, ca, r = f32(2, 3), f32(2, 3), np.array([0.0, 0.25, 1.0], np.float32)
  np.testing.assert_allclose(cache.cache_router_mix(fr, ca, r), r * fr + (1 - r) * ca, rtol=1e-6)
  with pytest.raises(ValueError, match="router"):
    cache.cache_router_mix(fr, ca, r + 1.0)
  # [108] CapS-Adapter affinity (1 - delta) cos(f, k_img) + delta cos(f, k_cap), logits exp(-beta (1 - A)) V
  f, keys, caps, v = f32(3, 5), f32(7, 5), f32(7, 5), rng.uniform(size=(7, 4)).astype(np.float32)
  fh64 = l2n(f.astype(np.float64))
  aff = 0.7 * fh64 @ l2n(keys.astype(np.float64)).T + 0.3 * fh64 @ l2n(caps.astype(np.float64)).T
  ref = np.exp(-5.5 * (1 - aff)) @ v
  out = jax.jit(lambda a, b, c, d: cache.cache_affinity_logits(a, b, c, beta=5.5, caption_keys=d, delta=0.3))(
      f, keys, v, caps)
  np.testing.assert_allclose(out, ref, rtol=1e-5)
  tip = np.exp(-5.5 * (1 - fh64 @ l2n(keys.astype(np.float64)).T)) @ v  # delta = 0: Tip-Adapter
  np.testing.assert_allclose(cache.cache_affinity_logits(f, keys, v, beta=5.5), tip, rtol=1e-5)
  with pytest.raises(ValueError, match="caption_keys"):
    cache.cache_affinity_logits(f, keys, v, delta=0.5)
  # [68] TFUP, transcribed step by step from the authors' code (incl. the per-row standardisation, ddof=1)
  w, labels = f32(4, 5), np.array([0, 1, 2, 3, 1, 0, 2])
  fh, kh, wh = (l2n(x.astype(np.float64)) for x in (f, keys, w))

  def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)

  p, q = softmax(10 * fh @ wh.T), softmax(10 * kh @ wh.T)
  kl = np.stack([(p[i] * np.log(p[i] / q)).sum(1) for i in range(3)])
  kn = (kl - kl.mean(1, keepdims=True)) / kl.std(1, ddof=1, keepdims=True)
  sim = 2 * (1 - (kn - kn.min(1, keepdims=True)) / (kn.max(1, keepdims=True) - kn.min(1, keepdims=True)))
  ref68 = 100 * fh @ wh.T + 0.3 * np.exp(-1.0 * (1 - (fh @ kh.T) * sim)) @ np.eye(4)[labels]
  out68 = jax.jit(cache.feature_cache_predict)(f, keys, labels, w)
  np.testing.assert_allclose(out68, ref68, rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="cache_labels"):
    cache.feature_cache_predict(f, keys, labels + 4, w)


def test_multi_expert_fusion_projector_matches_numpy_and_position_ids():
  model = heads.MultiExpertFusionProjector((3, 5), 4, hidden_dim=6, rngs=nnx.Rngs(0))
  xa, xb = f32(2, 3, 3), f32(2, 2, 5)
  graph, state = nnx.split(model)  # the pure-pytree route: split outside, merge inside jax.jit
  out = jax.jit(lambda st, a, b: nnx.merge(graph, st)([a, b]))(state, xa, xb)
  assert out.shape == (2, 5, 4)
  from scipy.special import erf

  def mlp(x, l1, l2):
    h = x.astype(np.float64) @ np.asarray(l1.kernel[...]) + np.asarray(l1.bias[...])
    h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
    return h @ np.asarray(l2.kernel[...]) + np.asarray(l2.bias[...])

  ref = np.concatenate([mlp(xa, model.fc1[0], model.fc2[0]), mlp(xb, model.fc1[1], model.fc2[1])], axis=1)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
  # [88]'s partial unfreezing on an NNX state: only fc2 trains, fc1 gets exactly zero updates
  labels = losses.partial_unfreeze_labels(state, ("fc2",))
  tx = optax.multi_transform({"trainable": optax.sgd(1.0), "frozen": optax.set_to_zero()}, labels)
  grads = jax.tree.map(jnp.ones_like, state)
  upd, _ = jax.jit(tx.update)(grads, tx.init(state), state)
  for path, u in jax.tree_util.tree_flatten_with_path(upd)[0]:
    expect = -1.0 if "fc2" in jax.tree_util.keystr(path) else 0.0
    assert np.all(np.asarray(u) == expect), jax.tree_util.keystr(path)
  with pytest.raises(ValueError, match="expert_feats"):
    model([xb, xa])
  # MouSi: SAM's 4096 tokens on 64 positions (one per row of the 64 x 64 grid) or on 1
  ids = np.asarray(heads.image_position_ids(4096, positions=64, start=10))
  np.testing.assert_array_equal(ids.reshape(64, 64), 10 + np.arange(64)[:, None] * np.ones((1, 64), int))
  np.testing.assert_array_equal(heads.image_position_ids(4096, positions=1, start=3), np.full(4096, 3))
  np.testing.assert_array_equal(heads.image_position_ids(5, positions=5), np.arange(5))
  with pytest.raises(ValueError, match="positions"):
    heads.image_position_ids(10, positions=3)


def test_spatial_attention_aggregator_weights_sum_to_one_and_equal_inputs_are_fixed():
  agg = heads.SpatialAttentionAggregator(3, 2, hidden=4, rngs=nnx.Rngs(0))
  # batch rows 0-1: three different feature maps; rows 2-3: the same map from all K = 3 models
  rand, base = f32(3, 2, 4, 4, 2) * 3, f32(1, 2, 4, 4, 2) * 3
  feats = np.concatenate([rand, np.repeat(base, 3, axis=0)], axis=1)
  graph, state = nnx.split(agg)
  out, w = jax.jit(lambda st, x: (lambda m: (m(x), m.weights(x)))(nnx.merge(graph, st)))(state, feats)
  np.testing.assert_allclose(np.asarray(w).sum(-1), 1.0, rtol=1e-6)
  assert np.all(np.asarray(w) > 0) and float(np.asarray(w).std()) > 1e-4  # the weights do vary
  np.testing.assert_allclose(out, np.einsum("bhwk,kbhwc->bhwc", np.asarray(w, np.float64), feats), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(out[2:], base[0], rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="feats"):
    agg(feats[:2])
  assert nn.SpatialAttentionAggregator is heads.SpatialAttentionAggregator
