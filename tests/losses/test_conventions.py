"""The conventions of docs/conventions.md, checked on the classification losses against independent references.

- `softmax_cross_entropy_with_integer_labels` equals optax's function of the same name (an independent
  implementation), including optax's `axis` and both shapes of `where` (examples, or classes);
- `axis` moves the class axis: every classification loss on logits [K, B] with axis=0 equals the loss on the
  transpose (a float64 NumPy transcription checks the LDR-KL values);
- `where` excludes examples: 0 loss, 0 gradient, their labels unchecked (PyTorch's ignore_index=-100 padding works),
  and a NaN logit in an excluded row does not leak into the gradient;
- the rule for invalid values: eager ValueError; under jit NaN for the offending rows in value AND gradient, the other
  rows untouched;
- StableMax propagates a NaN logit (value and gradient) instead of treating it as a 0 logit;
- half-precision logits are computed in float32 and returned in their own dtype.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import losses
from jaxlib_methods.losses import bd_kd, bias, comp_sum, ldr, stablemax as sm

_rng = np.random.default_rng(3)
Z = jnp.asarray(_rng.normal(size=(5, 4)) * 2, jnp.float32)
Y = jnp.array([0, 3, 1, 2, 1])

CLASS_LOSSES = {
    "softmax_ce": sm.softmax_cross_entropy_with_integer_labels,
    "stablemax_ce": sm.stablemax_cross_entropy,
    "ldr_kl": functools.partial(ldr.ldr_kl_loss, lam=0.7, margin=0.1),
    "crammer_singer": ldr.crammer_singer_loss,
    "comp_sum_gce": functools.partial(comp_sum.comp_sum_loss, phi="gce"),
    "bias": lambda logits, labels, **kw: bias.bias_loss(logits, labels, jnp.arange(20.0).reshape(5, 4) ** 2, **kw),
    "bd_kd_student": lambda logits, labels, **kw: bd_kd.bd_kd_student_loss(logits, -logits, labels, **kw),
}


def _np_ldr_kl(z, y, lam, margin):
  z = np.asarray(z, np.float64)
  out = []
  for zi, yi in zip(z, y):
    s = margin * (np.arange(len(zi)) != yi) + zi - zi[yi]
    out.append(lam * np.log(np.mean(np.exp(s / lam))))
  return np.array(out)


def test_softmax_ce_with_integer_labels_matches_optax_including_axis_and_where():
  ours = sm.softmax_cross_entropy_with_integer_labels
  ref = optax.losses.softmax_cross_entropy_with_integer_labels
  np.testing.assert_allclose(ours(Z, Y), ref(Z, Y), rtol=1e-6)
  np.testing.assert_allclose(ours(Z.T, Y, axis=0), ref(Z.T, Y, axis=0), rtol=1e-6)
  rows = jnp.array([True, False, True, True, False])
  np.testing.assert_allclose(ours(Z, Y, where=rows), ref(Z, Y, where=rows), rtol=1e-6)
  classes = jnp.ones((5, 4), bool).at[:, 2].set(False).at[3, 2].set(True)  # class 2 kept where it is the label
  np.testing.assert_allclose(ours(Z, Y, where=classes), ref(Z, Y, where=classes), rtol=1e-6)


def test_ldr_kl_matches_float64_numpy_with_axis():
  want = _np_ldr_kl(Z, Y, 0.7, 0.1)
  np.testing.assert_allclose(ldr.ldr_kl_loss(Z, Y, lam=0.7), want, rtol=1e-5)
  np.testing.assert_allclose(ldr.ldr_kl_loss(Z.T, Y, lam=0.7, axis=0), want, rtol=1e-5)
  p = ldr.ldr_kl_worst_case_distribution(Z.T, Y, lam=0.7, axis=0)
  assert p.shape == (4, 5)
  np.testing.assert_allclose(p, ldr.ldr_kl_worst_case_distribution(Z, Y, lam=0.7).T, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CLASS_LOSSES))
def test_axis_moves_the_class_axis(name):
  fn = CLASS_LOSSES[name]
  np.testing.assert_allclose(fn(Z.T, Y, axis=0), fn(Z, Y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CLASS_LOSSES))
def test_where_excludes_examples(name):
  fn = CLASS_LOSSES[name]
  keep = jnp.array([True, False, True, True, False])
  padded = Y.at[1].set(-100).at[4].set(7)  # ignore_index-style padding labels, out of range: not checked
  z_nan = Z.at[1, 0].set(jnp.nan)  # garbage logits in an excluded row
  out = fn(z_nan, padded, where=keep)
  assert np.all(np.asarray(out)[~np.asarray(keep)] == 0)
  if name != "bias":  # the bias loss couples the batch through the variance normalisation (features fixed here)
    np.testing.assert_allclose(np.asarray(out)[np.asarray(keep)], np.asarray(fn(Z, Y))[np.asarray(keep)],
                               rtol=1e-5, atol=1e-6)
  g = jax.grad(lambda z: jnp.sum(fn(z, padded, where=keep)))(z_nan)
  assert np.all(np.isfinite(np.asarray(g)))
  assert np.all(np.asarray(g)[~np.asarray(keep)] == 0)


@pytest.mark.parametrize("name", ["softmax_ce", "stablemax_ce", "ldr_kl", "comp_sum_gce"])
def test_invalid_labels_eager_error_and_nan_rows_under_jit(name):
  fn = CLASS_LOSSES[name]
  for bad in (-1, 4, -100):
    with pytest.raises(ValueError, match=r"labels must be integer class indices in \[0, 4\)"):
      fn(Z, Y.at[2].set(bad))
  bad_y = Y.at[2].set(-1)  # -1 would silently read the last class through negative indexing
  out = jax.jit(fn)(Z, bad_y)
  assert np.isnan(np.asarray(out)[2])
  np.testing.assert_allclose(np.delete(np.asarray(out), 2), np.delete(np.asarray(fn(Z, Y)), 2), rtol=1e-6)
  g = np.asarray(jax.jit(jax.grad(lambda z, y: jnp.sum(fn(z, y))))(Z, bad_y))
  assert np.all(np.isnan(g[2]))  # the offending row's gradient is NaN too (a jnp.where would give a silent 0) ...
  assert np.all(np.isfinite(np.delete(g, 2, axis=0)))  # ... and only its own


def test_stablemax_propagates_nan_logits_in_value_and_gradient():
  z = Z.at[1, 2].set(jnp.nan)
  out = sm.stablemax_cross_entropy(z, Y)
  assert np.isnan(np.asarray(out)[1]) and np.all(np.isfinite(np.delete(np.asarray(out), 1)))
  g = jax.grad(lambda t: sm.stablemax_cross_entropy(t, Y)[1])(z)
  assert np.any(np.isnan(np.asarray(g)))
  assert np.isnan(float(sm.stablemax_s(jnp.float32(jnp.nan))))
  assert np.isnan(float(jax.grad(sm.stablemax_s)(jnp.float32(jnp.nan))))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", ["softmax_ce", "stablemax_ce", "ldr_kl"])
def test_half_precision_computed_in_float32_returned_in_own_dtype(name, dtype):
  fn = CLASS_LOSSES[name]
  zh = Z.astype(dtype)
  out = fn(zh, Y)
  assert out.dtype == dtype
  np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(fn(zh.astype(jnp.float32), Y)), rtol=1e-2,
                             atol=1e-2)


def test_one_uniformity_loss():
  from jaxlib_methods import analysis
  assert analysis.uniformity_loss is losses.uniformity_loss
  assert losses.softmax_cross_entropy_with_integer_labels is sm.softmax_cross_entropy_with_integer_labels
