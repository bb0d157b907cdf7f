"""Bias loss vs a float64 NumPy transcription of -z(v) log p_y, z(v) = exp(alpha v) - beta (Abrahamyan et al. 2021)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.losses import bias as bl


def np_bias_loss(f, y, feats, alpha, beta, form="paper"):
  f = np.asarray(f, np.float64)
  x = np.asarray(feats, np.float64).reshape(len(f), -1)
  var = x.var(axis=1, ddof=1)  # torch.var default (unbiased); min-max scaling removes the factor
  v = (var - var.min()) / (var.max() - var.min()) if var.max() > var.min() else np.zeros_like(var)
  z = np.exp(alpha * v) - beta if form == "paper" else np.exp(beta * v) - 1 + alpha
  logp = f - f.max(1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
  return -z * logp[np.arange(len(f)), y]


@pytest.mark.parametrize("form", ["paper", "official"])
def test_matches_numpy_values_and_grad(form):
  rng = np.random.default_rng(0)
  f = rng.normal(size=(5, 7))
  y = rng.integers(0, 7, 5)
  feats = rng.normal(size=(5, 3, 3, 2)) * rng.uniform(0.5, 3, size=(5, 1, 1, 1))
  with jax.enable_x64(True):
    got, g = jax.jit(lambda f, y, feats: (  # value and gradient in one program
        bl.bias_loss(f, y, feats, alpha=0.3, beta=0.3, weight_form=form),
        jax.grad(lambda t: bl.bias_loss(t, y, feats, weight_form=form).sum())(f)))(
            jnp.asarray(f), jnp.asarray(y), jnp.asarray(feats))
  ref = np_bias_loss(f, y, feats, 0.3, 0.3, form)
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-6)  # the variance is computed in float32
  # d/df of -z log p_y = z (softmax - onehot), z constant
  x = feats.reshape(5, -1).var(1)
  v = (x - x.min()) / (x.max() - x.min())
  z = np.exp(0.3 * v) - 0.3 if form == "paper" else np.exp(0.3 * v) - 0.7
  p = np.exp(f - f.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  np.testing.assert_allclose(np.asarray(g), z[:, None] * (p - np.eye(7)[y]), rtol=1e-5, atol=1e-8)


def test_alpha_beta_zero_is_ce_and_no_grad_through_features():
  rng = np.random.default_rng(1)
  f = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
  y = jnp.array([0, 2, 1, 1])
  feats = jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)
  v, ce, g = jax.jit(lambda f, y, feats: (  # one program
      bl.bias_loss(f, y, feats, alpha=0.0, beta=0.0), optax.losses.softmax_cross_entropy_with_integer_labels(f, y),
      jax.grad(lambda t: bl.bias_loss(f, y, t).sum())(feats)))(f, y, feats)
  np.testing.assert_allclose(v, ce, rtol=1e-6)
  np.testing.assert_array_equal(g, 0.0)


def test_weight_monotone_in_variance_and_batch_of_one():
  feats = np.zeros((4, 6), np.float32)
  feats[:, 0] = (0.5, 1.0, 2.0, 4.0)

  @jax.jit
  def run(feats):  # one program
    v = bl.normalized_feature_variance(feats)
    return v, bl.bias_loss_weights(v), bl.bias_loss(jnp.zeros((1, 3)), jnp.array([1]), jnp.ones((1, 4)))

  v, w, one = run(feats)
  np.testing.assert_allclose(v[0], 0.0, atol=1e-7)
  np.testing.assert_allclose(v[-1], 1.0, rtol=1e-6)
  assert np.all(np.diff(np.asarray(w)) > 0)
  np.testing.assert_allclose(one, (np.exp(0) - 0.3) * np.log(3), rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_stability(dtype):
  f = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype)
  y = jnp.array([1, 1])
  feats = jnp.array([[1e4, -1e4], [0.0, 1.0]], dtype)
  v, g = jax.jit(lambda f: (bl.bias_loss(f, y, feats),  # value and gradient in one program
                            jax.grad(lambda t: bl.bias_loss(t, y, feats).astype(jnp.float32).sum())(f)))(f)
  assert v.dtype == dtype
  assert np.all(np.isfinite(np.asarray(v, np.float32))) and np.all(np.isfinite(np.asarray(g, np.float32)))


def test_bad_inputs():
  f = jnp.zeros((3, 4))
  y = jnp.array([0, 1, 2])
  with pytest.raises(ValueError, match="features"):
    bl.bias_loss(f, y, jnp.zeros((2, 5)))
  with pytest.raises(ValueError, match="features"):
    bl.bias_loss(f, y, jnp.zeros((3,)))
  with pytest.raises(ValueError, match="weight_form"):
    bl.bias_loss(f, y, jnp.zeros((3, 2)), weight_form="other")
  with pytest.raises(ValueError, match="alpha"):
    bl.bias_loss(f, y, jnp.zeros((3, 2)), alpha=float("nan"))
  with pytest.raises(ValueError, match="labels"):
    bl.bias_loss(f, jnp.array([0, 1, 9]), jnp.zeros((3, 2)))
