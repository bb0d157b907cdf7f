"""Loss-based sample weights vs a float64 NumPy transcription of the reference recipe (Sow et al. 2025)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.losses import reweighting as lr


def np_weights(l, strategy, delta=1.0, r=1.0):
  l = np.asarray(l, np.float64)
  lmin, lmax = l.min(), l.max()
  denom = max(lmax - lmin, 1e-6)
  n = 2 * delta * l / denom - delta * (lmax + lmin) / denom  # the reference's form
  if strategy == "linupper":
    g = np.minimum(n + delta, delta)
  elif strategy == "quadratic":
    g = 1 - n ** 2 / delta ** 2
  elif strategy == "extremes":
    g = np.abs(n)
  else:
    g = np.zeros_like(n)
  e = np.exp((g - g.max()) / r)
  return e / e.sum() * len(l)


@pytest.mark.parametrize("strategy", ["linupper", "quadratic", "extremes", "uniform"])
@pytest.mark.parametrize("b,delta,r", [(1, 1.0, 1.0), (7, 1.0, 0.5), (10, 2.0, 0.3)])
def test_weights_match_numpy(strategy, b, delta, r):
  l = np.random.default_rng(b).exponential(size=b) * 3
  w, mean = jax.jit(lambda l: (w := lr.loss_reweighting(l, strategy, delta=delta, r=r), jnp.mean(w)))(
      jnp.asarray(l, jnp.float32))  # one program
  np.testing.assert_allclose(np.asarray(w), np_weights(l, strategy, delta, r), rtol=1e-5)
  assert np.all(np.asarray(w) >= 0)
  np.testing.assert_allclose(float(mean), 1.0, rtol=1e-6)


def test_uniform_when_losses_equal_and_linupper_downweights_easy():
  strategies = ("linupper", "quadratic", "extremes", "uniform")
  equal, w, q, e = jax.jit(lambda flat, ramp, three: (  # one program
      [lr.loss_reweighting(flat, s) for s in strategies], lr.loss_reweighting(ramp, "linupper"),
      lr.loss_reweighting(three, "quadratic"), lr.loss_reweighting(three, "extremes")))(
          jnp.full((5,), 2.5), jnp.array([0.0, 0.5, 1.0, 1.5, 2.0]), jnp.array([0.0, 1.0, 2.0]))
  for v in equal:
    np.testing.assert_allclose(v, 1.0, rtol=1e-6)
  w, q, e = np.asarray(w), np.asarray(q), np.asarray(e)
  assert w[0] < w[1] < w[2] and np.allclose(w[2:], w[2])
  assert q[1] > q[0] and np.isclose(q[0], q[2])
  assert e[1] < e[0] and np.isclose(e[0], e[2])


def test_reweighted_mean_value_and_stop_gradient():
  l = jnp.array([0.2, 1.0, 3.0])
  w = lr.loss_reweighting(l, "linupper")
  np.testing.assert_allclose(lr.reweighted_mean(l, w), jnp.mean(w * l), rtol=1e-6)

  def obj(l):
    return lr.reweighted_mean(l, lr.loss_reweighting(l, "linupper"))

  np.testing.assert_allclose(jax.grad(obj)(l), w / 3, rtol=1e-6)  # weights are constants
  np.testing.assert_allclose(jax.jit(obj)(l), obj(l), rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_stability(dtype):
  l = jnp.array([1e4, 0.0, 3.0, 6e4], dtype)
  w, g = jax.jit(lambda l: (  # one program
      lr.loss_reweighting(l, "extremes", r=0.01),
      jax.grad(lambda l: lr.reweighted_mean(l, lr.loss_reweighting(l)).astype(jnp.float32))(l)))(l)
  assert np.all(np.isfinite(w))
  assert np.all(np.isfinite(np.asarray(g, np.float32)))


def test_bad_inputs():
  with pytest.raises(ValueError, match="strategy"):
    lr.loss_reweighting(jnp.ones(3), "cubic")
  with pytest.raises(ValueError, match="delta"):
    lr.loss_reweighting(jnp.ones(3), delta=0.0)
  with pytest.raises(ValueError, match="r must"):
    lr.loss_reweighting(jnp.ones(3), r=-1.0)
  with pytest.raises(ValueError, match="shape"):
    lr.loss_reweighting(jnp.ones((2, 3)))
  with pytest.raises(ValueError, match="shape"):
    lr.reweighted_mean(jnp.ones(3), jnp.ones(4))
