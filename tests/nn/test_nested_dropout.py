"""Nested dropout + co-teaching [21] (issue 20): every nested-dropout mask keeps exactly a prefix; the prefix lengths
follow the truncated geometric law (a chi-square test); one k per batch by default; the small-loss selection equals
NumPy's stable argsort selection; co-teaching's losses and gradients against NumPy (each network gets the gradient of
the examples its peer kept, none through the selection or into the peer); errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import NestedDropout, coteaching_loss, nested_dropout_mask, small_loss_selection


def test_nested_dropout_prefix():
  n, p = 6, 0.3
  mask = np.asarray(nested_dropout_mask(jax.random.key(0), (64, n), p=p))
  k = mask.sum(1).astype(int)
  np.testing.assert_array_equal(mask, (np.arange(n)[None, :] < k[:, None]).astype(np.float32))   # prefixes only
  assert k.min() >= 1 and len(set(k)) > 1
  layer = NestedDropout(n, p=p)
  h = jnp.ones((4, n))
  out = np.asarray(layer(h, key=jax.random.key(1)))
  assert np.all(out == out[0]) and out[0, 0] == 1.0                                # one k shared by the batch
  np.testing.assert_array_equal(np.asarray(layer(h, k=2)), np.tile([1, 1, 0, 0, 0, 0], (4, 1)))
  np.testing.assert_array_equal(np.asarray(layer(h)), np.asarray(h))
  with pytest.raises(ValueError, match="p must"):
    NestedDropout(n, p=0.0)
  with pytest.raises(ValueError, match="k must"):
    layer(h, k=0)


@pytest.mark.slow  # a statistical check of the sampler; the prefix property stays in the default run
def test_nested_dropout_geometric_law():
  n, p, rows = 6, 0.3, 20000
  mask = np.asarray(jax.jit(lambda k: nested_dropout_mask(k, (rows, n), p=p))(jax.random.key(0)))
  k = mask.sum(1).astype(int)
  np.testing.assert_array_equal(mask, (np.arange(n)[None, :] < k[:, None]).astype(np.float32))
  probs = np.array([p * (1 - p) ** (j - 1) for j in range(1, n)] + [(1 - p) ** (n - 1)])
  counts = np.bincount(k, minlength=n + 1)[1:]
  chi2 = np.sum((counts - rows * probs) ** 2 / (rows * probs))
  # Pearson chi-square, 5 dof: the 0.999 quantile is 20.52 (a correct sampler fails this fixed seed w.p. 1e-3)
  assert chi2 < 20.52, (counts, rows * probs, chi2)
  per = np.asarray(NestedDropout(n, p=p, per_example=True)(jnp.ones((64, n)), key=jax.random.key(2)))
  assert len({tuple(r) for r in per}) > 1


def test_coteaching_selection_losses_and_gradients():
  rng = np.random.default_rng(0)
  b, kk, fr = 10, 3, 0.35
  l1 = rng.normal(size=(b, kk)).astype(np.float32)
  l2 = rng.normal(size=(b, kk)).astype(np.float32)
  y = rng.integers(0, kk, size=b)
  losses = np.array([0.3, 0.1, 0.3, 0.9, 0.0, 0.5, 0.1, 0.7, 0.2, 0.3], np.float32)
  r = int(np.floor((1 - fr) * b))
  ref = np.zeros(b, bool)
  ref[np.argsort(losses, kind="stable")[:r]] = True
  np.testing.assert_array_equal(np.asarray(small_loss_selection(jnp.asarray(losses), forget_rate=fr)), ref)

  @jax.jit
  def run(l1, l2, fr):
    (a, bb) = coteaching_loss(l1, l2, jnp.asarray(y), forget_rate=fr)
    g = jax.grad(lambda l1, l2: coteaching_loss(l1, l2, jnp.asarray(y), forget_rate=fr)[0], argnums=(0, 1))(l1, l2)
    return a, bb, g

  a, bb, (g11, g12) = run(jnp.asarray(l1), jnp.asarray(l2), jnp.float32(fr))        # forget_rate traced
  def ce(l):
    l = l.astype(np.float64)
    m = l.max(1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(l - m).sum(1))
    return lse - l[np.arange(b), y]
  ce1, ce2 = ce(l1), ce(l2)
  keep1 = np.isin(np.arange(b), np.argsort(ce1, kind="stable")[:r])
  keep2 = np.isin(np.arange(b), np.argsort(ce2, kind="stable")[:r])
  np.testing.assert_allclose(float(a), ce1[keep2].mean(), rtol=1e-5)
  np.testing.assert_allclose(float(bb), ce2[keep1].mean(), rtol=1e-5)
  sm = np.exp(l1 - l1.max(1, keepdims=True))
  sm /= sm.sum(1, keepdims=True)
  g_ref = (sm - np.eye(kk)[y]) * keep2[:, None] / r
  np.testing.assert_allclose(np.asarray(g11), g_ref, rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(g12), 0.0)                               # nothing through the selection
  with pytest.raises(ValueError, match="forget_rate"):
    small_loss_selection(jnp.asarray(losses), forget_rate=1.0)
  with pytest.raises(ValueError, match="labels must be in"):
    coteaching_loss(jnp.asarray(l1), jnp.asarray(l2), jnp.full((b,), kk), forget_rate=0.2)
  with pytest.raises(ValueError, match="logits2"):
    coteaching_loss(jnp.asarray(l1), jnp.asarray(l2[:3]), jnp.asarray(y), forget_rate=0.2)
