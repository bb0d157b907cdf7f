"""Bag/instance/interpolating losses vs float64 NumPy loops over bags (Javanmard et al. 2024)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.losses import aggregate_responses as ag


def np_losses(f, bags, ybar, rho):
  f = np.asarray(f, np.float64)
  nb = len(ybar)
  bag = np.zeros(nb)
  inst_mean = np.zeros(nb)
  for b in range(nb):
    idx = np.where(bags == b)[0]
    if len(idx) == 0:
      continue
    bag[b] = (ybar[b] - f[idx].mean()) ** 2
    inst_mean[b] = np.mean((ybar[b] - f[idx]) ** 2)
  inst = (ybar[bags] - f) ** 2
  return bag, inst, rho * bag + (1 - rho) * inst_mean


@pytest.mark.parametrize("n,nb,rho", [(1, 1, 0.3), (9, 3, 0.5), (11, 4, 0.0), (6, 5, 1.0)])
def test_matches_numpy_values_and_grad(n, nb, rho):
  rng = np.random.default_rng(n)
  f = rng.normal(size=n)
  bags = rng.integers(0, nb, n)
  ybar = rng.normal(size=nb)
  with jax.enable_x64(True):
    @jax.jit
    def run(f, *args):  # one program: the three losses and the gradient
      return (ag.bag_level_loss(f, *args, num_bags=nb), ag.instance_level_loss(f, *args, num_bags=nb),
              ag.interpolating_loss(f, *args, num_bags=nb, rho=rho),
              jax.grad(lambda a: ag.interpolating_loss(a, *args, num_bags=nb, rho=rho).sum())(f))

    bag, inst, mix, g = run(jnp.asarray(f), jnp.asarray(bags), jnp.asarray(ybar))
  rb, ri, rm = np_losses(f, bags, ybar, rho)
  np.testing.assert_allclose(np.asarray(bag), rb, rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(np.asarray(inst), ri, rtol=1e-12)
  np.testing.assert_allclose(np.asarray(mix), rm, rtol=1e-12, atol=1e-15)
  h = 1e-6
  fd = np.array([(np_losses(f + h * e, bags, ybar, rho)[2].sum() - np_losses(f - h * e, bags, ybar, rho)[2].sum())
                 / (2 * h) for e in np.eye(n)])
  np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-6, atol=1e-8)


def test_instance_equals_bag_plus_within_bag_variance():
  rng = np.random.default_rng(0)
  f_np, ybar_np = rng.normal(size=12), rng.normal(size=4)
  bags = jnp.repeat(jnp.arange(4), 3)  # k = 3
  with jax.enable_x64(True):
    @jax.jit
    def run(f, ybar):  # one program
      inst = ag.instance_level_loss(f, bags, ybar, num_bags=4)
      return (ag.bag_level_loss(f, bags, ybar, num_bags=4), ag.within_bag_variance(f, bags, num_bags=4),
              ag.interpolating_loss(f, bags, ybar, num_bags=4, rho=0.25),
              jax.ops.segment_sum(inst, bags, num_segments=4))

    bag, var, mix, inst_sum = run(jnp.asarray(f_np), jnp.asarray(ybar_np))
    inst_sum = np.asarray(inst_sum)
  # sum_i (ybar - f_i)^2 = k * (ybar - fbar)^2 + sum_i (f_i - fbar)^2
  np.testing.assert_allclose(inst_sum, 3 * np.asarray(bag) + 3 * np.asarray(var), rtol=1e-12)
  np.testing.assert_allclose(np.asarray(mix), np.asarray(bag) + 0.75 * np.asarray(var), rtol=1e-12)


def test_jit_and_low_precision():
  f = jnp.array([1e4, -1e4, 0.5, 2.0], jnp.float32)
  bags = jnp.array([0, 0, 1, 1])
  yb = jnp.array([0.0, 1.0])
  fn = lambda f: ag.interpolating_loss(f, bags, yb, num_bags=2, rho=0.5)
  v, g = jax.jit(lambda f: (fn(f), jax.grad(lambda f: fn(f).sum())(f)))(f)  # value and gradient in one program
  assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
  low = jax.jit(lambda f, yb: ag.interpolating_loss(f, bags, yb, num_bags=2, rho=0.5))
  for dtype in (jnp.float16, jnp.bfloat16):
    v = low(jnp.asarray([1.0, -2.0, 0.5, 2.0], dtype), yb.astype(dtype))
    assert v.dtype == dtype and np.all(np.isfinite(np.asarray(v, np.float32)))


def test_bad_inputs():
  f = jnp.zeros(4)
  bags = jnp.array([0, 0, 1, 1])
  yb = jnp.zeros(2)
  with pytest.raises(ValueError, match=r"bag_ids must be integer bag indices in \[0, 2\)"):
    ag.bag_level_loss(f, jnp.array([0, 0, 1, 2]), yb, num_bags=2)
  with pytest.raises(ValueError, match="bag_responses"):
    ag.bag_level_loss(f, bags, jnp.zeros(3), num_bags=2)
  with pytest.raises(ValueError, match="preds and bag_ids"):
    ag.instance_level_loss(f, jnp.array([0, 1]), yb, num_bags=2)
  with pytest.raises(ValueError, match="rho"):
    ag.interpolating_loss(f, bags, yb, num_bags=2, rho=1.5)
  with pytest.raises(ValueError, match="num_bags"):
    ag.bag_level_loss(f, bags, yb, num_bags=0)


def test_interpolating_loss_traced_rho_out_of_range_is_nan():
  # Regression: rho was only range-checked when concrete, so under jit rho = 1.5 silently extrapolated
  # 1.5 L_bag - 0.5 L_inst instead of giving NaN.
  preds, ids, yb = jnp.arange(5.0), jnp.array([0, 0, 1, 1, 2]), jnp.ones(3)
  f = jax.jit(lambda r: ag.interpolating_loss(preds, ids, yb, num_bags=3, rho=r))
  np.testing.assert_allclose(np.asarray(f(0.5)), np.asarray(ag.interpolating_loss(preds, ids, yb, num_bags=3, rho=0.5)),
                             rtol=1e-6)
  assert np.isnan(np.asarray(f(1.5))).all()
  g = jax.jit(jax.grad(lambda p, r: ag.interpolating_loss(p, ids, yb, num_bags=3, rho=r).sum()))(preds, -0.1)
  assert np.isnan(np.asarray(g)).all()
  with pytest.raises(ValueError, match="rho"):
    ag.interpolating_loss(preds, ids, yb, num_bags=3, rho=jnp.float32(1.5))
