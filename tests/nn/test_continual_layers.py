"""[134] lae_ensemble, [125] HyperTab, [90] SlimmableLinear / cikd_loss: exact checks against NumPy.

- lae_ensemble = elementwise max of the two softmaxes (float64 NumPy);
- HyperTab: trainable parameter count independent of the number of views; each view's output has zero gradient
  w.r.t. the features outside its subset (and a nonzero one inside); one view equals a NumPy transcription of the
  generated target MLP; the ensemble = log mean of the views' softmaxes; split/merge train step under jit;
- SlimmableLinear at width w equals the full layer restricted to the kept channels (and x[:, :c_in] @ W[:c_in, :c_out]
  for a slimmed input); cikd_loss matches NumPy and passes no gradient to the full (teacher) features.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxlib_methods.nn import FeatureMasks, HyperTab, SlimmableLinear, cikd_loss, lae_ensemble, slimmable_width


def test_lae_ensemble_is_max_of_softmaxes():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
  sm = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
  got = jax.jit(lae_ensemble)(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
  np.testing.assert_allclose(got, np.maximum(sm(a), sm(b)), rtol=1e-5, atol=1e-6)
  got_t = lae_ensemble(jnp.asarray(a.T, jnp.float32), jnp.asarray(b.T, jnp.float32), axis=0)
  np.testing.assert_allclose(got_t, np.maximum(sm(a), sm(b)).T, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="share shape"):
    lae_ensemble(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
  with pytest.raises(TypeError, match="logits_online"):
    lae_ensemble(jnp.zeros((2, 3), jnp.int32), jnp.zeros((2, 3), jnp.int32))


def test_hypertab_views_params_and_feature_subsets():
  count = lambda m: sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param)))
  m3 = HyperTab(6, 3, num_views=3, subset_size=2, hidden=4, rngs=nnx.Rngs(0))
  m50 = nnx.eval_shape(lambda: HyperTab(6, 3, num_views=50, subset_size=2, hidden=4, rngs=nnx.Rngs(0)))
  assert count(m3) == count(m50)                                   # views are not parameters
  assert isinstance(m3.masks, FeatureMasks) and not nnx.state(m3, nnx.Param).get("masks")
  masks = np.asarray(m3.masks[...])
  assert masks.shape == (3, 6) and (masks.sum(1) == 2).all()
  x = jax.random.normal(jax.random.key(1), (5, 6))

  @nnx.jit
  def everything(m, x):                                             # one compile for all the checks
    jac = jax.jacrev(lambda x: m.view_logits(x).sum((1, 2)))(x)     # [V, B, D]
    return jac, m.target_params(m.masks[...][0]), m.view_logits(x), m(x)

  jac, params0, logits, ens = everything(m3, x)
  jac = np.asarray(jac)
  for v in range(3):
    per_feature = np.abs(jac[v]).sum(0)
    assert (per_feature[masks[v] == 0] == 0).all() and (per_feature[masks[v] == 1] > 0).all()
  # One view against NumPy, and the soft-voting ensemble.
  w1, b1, w2, b2 = (np.asarray(t, np.float64) for t in params0)
  xn = np.asarray(x, np.float64)
  ref = np.maximum((xn * masks[0]) @ w1 + b1, 0) @ w2 + b2
  logits = np.asarray(logits, np.float64)
  np.testing.assert_allclose(logits[0], ref, rtol=1e-4, atol=1e-5)
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  np.testing.assert_allclose(ens, np.log(p.mean(0)), rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="subset_size"):
    HyperTab(4, 2, num_views=2, subset_size=5, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="x must be"):
    m3.view_logits(jnp.ones((2, 5)))


def test_slimmable_linear_equals_full_layer_on_kept_channels_and_cikd():
  layer = SlimmableLinear(6, 8, rngs=nnx.Rngs(0))
  layer.bias[...] = jnp.arange(8.0) / 10
  x = jax.random.normal(jax.random.key(2), (4, 6))
  s = jax.random.normal(jax.random.key(3), (4, 3))
  t = jax.random.normal(jax.random.key(4), (4, 5))

  @nnx.jit
  def everything(layer, x, s, t):                                   # one compile for all the checks
    grads = jax.grad(lambda s, t: cikd_loss(s, t).sum(), argnums=(0, 1))(s, t)
    return layer(x), layer(x, 0.75), layer(x, 0.5), layer(x[:, :3], 0.5), cikd_loss(s, t), grads

  full, w75, w50, slim_in, cikd, (gs, gt) = everything(layer, x, s, t)
  full = np.asarray(full, np.float64)
  W, b = np.asarray(layer.kernel[...], np.float64), np.asarray(layer.bias[...], np.float64)
  np.testing.assert_allclose(full, np.asarray(x, np.float64) @ W + b, rtol=1e-5, atol=1e-5)
  assert [slimmable_width(8, w) for w in (0.25, 0.5, 0.75, 1.0)] == [2, 4, 6, 8]
  np.testing.assert_allclose(w75, full[:, :6], rtol=1e-5, atol=1e-6)    # = the full layer on the kept channels
  np.testing.assert_allclose(w50, full[:, :4], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(slim_in, np.asarray(x[:, :3], np.float64) @ W[:3, :4] + b[:4], rtol=1e-5, atol=1e-6)
  assert slimmable_width(3, 0.34) == 2 and slimmable_width(5, 0.01) == 1
  # CIKD: value against NumPy, and no gradient into the teacher (full) features.
  np.testing.assert_allclose(cikd, ((np.asarray(s) - np.asarray(t)[:, :3]) ** 2).mean(-1), rtol=1e-5)
  assert np.abs(np.asarray(gs)).sum() > 0
  np.testing.assert_array_equal(gt, 0.0)
  with pytest.raises(ValueError, match="width_mult"):
    layer(x, 0.0)
  with pytest.raises(ValueError, match="x must be"):
    layer(jnp.ones((2, 7)))
  with pytest.raises(ValueError, match="c <= C"):
    cikd_loss(t, s)


@pytest.mark.slow
def test_hypertab_split_merge_train_step():
  m3 = HyperTab(6, 3, num_views=3, subset_size=2, hidden=4, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (5, 6))
  y = jnp.arange(5) % 3
  gd, params, rest = nnx.split(m3, nnx.Param, ...)
  tx = optax.adam(1e-2)

  @jax.jit
  def step(p, s):
    def loss(p):
      z = nnx.merge(gd, p, rest).view_logits(x)
      return optax.softmax_cross_entropy_with_integer_labels(z, jnp.broadcast_to(y, z.shape[:2])).mean()
    v, g = jax.value_and_grad(loss)(p)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s, v

  p, s = params, tx.init(params)
  vals = []
  for _ in range(3):
    p, s, v = step(p, s)
    vals.append(float(v))
  assert vals[-1] < vals[0]
