"""EnsLoss random calibrated derivatives vs a NumPy transcription of the official sampler (Dai 2024)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.losses import calibrated_ensemble as el


def np_derivatives(e, s, lam=0.0, lower=-1.0, eps=1e-6):
  """The official ensLoss.forward, step by step, in float64 NumPy (same normal draws e)."""
  e = np.asarray(e, np.float64)
  s = np.asarray(s, np.float64)
  bc = np.exp(e) if lam == 0 else np.maximum(1 + lam * e, 0) ** (1 / lam)
  rd = np.sort(-bc)
  g = np.zeros_like(s)
  g[np.argsort(s, kind="stable")] = rd
  g = np.maximum(g, lower)
  g = np.where(s > 1, g / np.where(s > 1, s, 1), g)
  return g - eps


@pytest.mark.parametrize("b,lam", [(1, 0.0), (7, 0.0), (16, 0.5), (9, -0.3)])
def test_sampler_matches_official_recipe(b, lam):
  key = jax.random.PRNGKey(b)
  s = jax.random.normal(jax.random.PRNGKey(100 + b), (b,)) * 2
  got = el.sample_calibrated_derivatives(key, s, box_cox_lambda=lam)
  e = jax.random.normal(key, (b,), jnp.float32)
  np.testing.assert_allclose(np.asarray(got), np_derivatives(np.asarray(e), np.asarray(s), lam), rtol=1e-5,
                             atol=1e-7)


def test_cc_conditions_on_a_grid():
  # Every sampled derivative is non-decreasing in the margin (convexity) and < 0, in particular at 0 (calibration).
  s = jnp.linspace(-5.0, 5.0, 41)  # contains 0
  for i in range(20):
    g = np.asarray(el.sample_calibrated_derivatives(jax.random.PRNGKey(i), s))
    assert np.all(np.diff(g) >= -1e-7), g
    assert np.all(g < 0)
    assert g[20] < 0 and float(s[20]) == 0.0
    assert np.all(g >= -1.0 - 1e-6)


def test_gradient_is_the_sampled_derivative():
  s = jax.random.normal(jax.random.PRNGKey(0), (6,))
  key = jax.random.PRNGKey(3)
  g = el.sample_calibrated_derivatives(key, s)
  grad = jax.grad(lambda m: jnp.mean(el.ensloss(m, key)))(s)
  np.testing.assert_allclose(grad, g / 6, rtol=1e-6)
  # Through a linear model: d/dw mean_i ensloss(y_i <w, x_i>) = mean_i g_i y_i x_i.
  x = jax.random.normal(jax.random.PRNGKey(1), (6, 3))
  lab = jnp.array([0, 1, 1, 0, 1, 0])
  w = jnp.array([0.3, -0.2, 0.5])

  def obj(w):
    return jnp.mean(el.ensloss(el.ensloss_margins(x @ w, lab), key))

  m = el.ensloss_margins(x @ w, lab)
  g = el.sample_calibrated_derivatives(key, m)
  yy = 2.0 * lab - 1.0
  np.testing.assert_allclose(jax.grad(obj)(w), jnp.mean((g * yy)[:, None] * x, 0), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(jax.grad(obj))(w), jax.grad(obj)(w), rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_stability(dtype):
  s = jnp.array([1e4, -1e4, 0.0, 3.0], dtype)
  v = el.ensloss(s, jax.random.PRNGKey(0))
  g = jax.grad(lambda m: el.ensloss(m, jax.random.PRNGKey(0)).astype(jnp.float32).sum())(s)
  assert v.dtype == dtype and g.dtype == dtype
  assert np.all(np.isfinite(np.asarray(v, np.float32))) and np.all(np.isfinite(np.asarray(g, np.float32)))


def test_bad_inputs():
  with pytest.raises(ValueError, match="margins"):
    el.sample_calibrated_derivatives(jax.random.PRNGKey(0), jnp.zeros((2, 3)))
  with pytest.raises(TypeError, match="margins must be a floating"):
    el.ensloss(jnp.array([1, 2]), jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="lower"):
    el.sample_calibrated_derivatives(jax.random.PRNGKey(0), jnp.zeros(3), lower=0.5)
  with pytest.raises(ValueError, match="shape"):
    el.ensloss_margins(jnp.zeros(3), jnp.zeros(4, jnp.int32))
