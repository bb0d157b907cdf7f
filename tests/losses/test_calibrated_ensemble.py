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
  @jax.jit
  def run(key, skey):  # one program
    s = jax.random.normal(skey, (b,)) * 2
    return s, el.sample_calibrated_derivatives(key, s, box_cox_lambda=lam), jax.random.normal(key, (b,), jnp.float32)

  s, got, e = run(jax.random.PRNGKey(b), jax.random.PRNGKey(100 + b))
  np.testing.assert_allclose(np.asarray(got), np_derivatives(np.asarray(e), np.asarray(s), lam), rtol=1e-5,
                             atol=1e-7)


def test_cc_conditions_on_a_grid():
  # Every sampled derivative is non-decreasing in the margin (convexity) and < 0, in particular at 0 (calibration).
  s = jnp.linspace(-5.0, 5.0, 41)  # contains 0
  sample = jax.jit(lambda key: el.sample_calibrated_derivatives(key, s))  # compiled once for the 20 keys
  for i in range(20):
    g = np.asarray(sample(jax.random.PRNGKey(i)))
    assert np.all(np.diff(g) >= -1e-7), g
    assert np.all(g < 0)
    assert g[20] < 0 and float(s[20]) == 0.0
    assert np.all(g >= -1.0 - 1e-6)


def test_gradient_is_the_sampled_derivative():
  key = jax.random.PRNGKey(3)
  x = jax.random.normal(jax.random.PRNGKey(1), (6, 3))
  lab = jnp.array([0, 1, 1, 0, 1, 0])
  w = jnp.array([0.3, -0.2, 0.5])

  def obj(w):
    return jnp.mean(el.ensloss(el.ensloss_margins(x @ w, lab), key))

  @jax.jit
  def derivatives(s):  # one program: the sampled derivatives at s and at the linear model's margins
    m = el.ensloss_margins(x @ w, lab)
    return (el.sample_calibrated_derivatives(key, s), jax.grad(lambda m: jnp.mean(el.ensloss(m, key)))(s),
            el.sample_calibrated_derivatives(key, m))

  g, grad, g_m = derivatives(jax.random.normal(jax.random.PRNGKey(0), (6,)))
  np.testing.assert_allclose(grad, g / 6, rtol=1e-6)
  # Through a linear model: d/dw mean_i ensloss(y_i <w, x_i>) = mean_i g_i y_i x_i.
  yy = 2.0 * lab - 1.0
  eager = jax.grad(obj)(w)  # eager, to compare with jit below
  np.testing.assert_allclose(eager, jnp.mean((g_m * yy)[:, None] * x, 0), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(jax.grad(obj))(w), eager, rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_stability(dtype):
  s = jnp.array([1e4, -1e4, 0.0, 3.0], dtype)
  v, g = jax.jit(lambda s: (el.ensloss(s, jax.random.PRNGKey(0)),  # value and gradient in one program
                            jax.grad(lambda m: el.ensloss(m, jax.random.PRNGKey(0)).astype(jnp.float32).sum())(s)))(s)
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


def test_margins_do_not_wrap_wide_integer_labels():
  # Regression (audit s23): labels were cast to int32 before the {0, 1} check, so under x64 an int64 label
  # 2**32 + 1 wrapped to 1 and was accepted (margin +f) instead of raising / giving NaN.
  with jax.enable_x64(True):
    y = jnp.asarray(np.array([0, 2**32 + 1, 1], np.int64))
    with pytest.raises(ValueError, match="labels"):
      el.ensloss_margins(jnp.ones(3), y)
    out = np.asarray(jax.jit(el.ensloss_margins)(jnp.ones(3), y))
    assert np.isnan(out[1]) and out[0] == -1.0 and out[2] == 1.0
