"""Comp-sum losses vs float64 NumPy transcriptions of Phi^tau(sum_{y'!=y} exp(h_y' - h_y)) (Mao et al. 2023)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.losses import comp_sum as cs
from jaxlib_methods.testing import central_difference_grad


def np_phi(u, tau):
  if tau == 1.0:
    return np.log1p(u)
  return ((1.0 + u) ** (1.0 - tau) - 1.0) / (1.0 - tau)


def np_comp_sum(h, y, tau):
  h = np.asarray(h, np.float64)
  out = []
  for i in range(h.shape[0]):
    u = sum(np.exp(h[i, j] - h[i, y[i]]) for j in range(h.shape[1]) if j != y[i])
    out.append(np_phi(u, tau))
  return np.array(out)



def np_grad(fn, x, h=1e-6):
  return central_difference_grad(fn, x, h)


@pytest.mark.parametrize("phi,tau,n,k", [("logistic", 1.0, 1, 2), ("sum_exponential", 0.0, 4, 5),
                                         ("gce", 1.7, 3, 7), ("mae", 2.0, 2, 3)])
def test_named_phi_matches_numpy_values_and_grad(phi, tau, n, k):
  rng = np.random.default_rng(k)
  h = rng.normal(size=(n, k))
  y = rng.integers(0, k, n)
  with jax.enable_x64(True):
    loss = lambda t: cs.comp_sum_loss(t, jnp.asarray(y), phi, q=0.7)
    got, g = jax.jit(lambda t: (loss(t), jax.grad(lambda t: loss(t).sum())(t)))(jnp.asarray(h))  # one program
  np.testing.assert_allclose(np.asarray(got), np_comp_sum(h, y, tau), rtol=1e-10)
  np.testing.assert_allclose(np.asarray(g), np_grad(lambda t: np_comp_sum(t, y, tau).sum(), h), rtol=1e-6, atol=1e-8)


def test_generic_tau_matches_numpy():
  rng = np.random.default_rng(0)
  h = rng.normal(size=(3, 4))
  y = np.array([0, 3, 1])
  with jax.enable_x64(True):
    taus = (0.5, 1.3, 3.0)
    outs = jax.jit(lambda h, y: [cs.comp_sum_loss(h, y, tau=tau) for tau in taus])(jnp.asarray(h), jnp.asarray(y))
    for tau, out in zip(taus, outs):  # (one program for the three)
      np.testing.assert_allclose(np.asarray(out), np_comp_sum(h, y, tau), rtol=1e-10)


def test_special_cases():
  rng = np.random.default_rng(1)
  h = jnp.asarray(rng.normal(size=(5, 6)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 6, 5))
  @jax.jit  # one program for every value below
  def run(h, y):
    return (jax.nn.softmax(h)[jnp.arange(5), y], cs.comp_sum_loss(h, y, "logistic"),
            optax.losses.softmax_cross_entropy_with_integer_labels(h, y), cs.comp_sum_loss(h, y, "mae"),
            cs.comp_sum_loss(h, y, "gce", q=0.4), cs.comp_sum_loss(h, y, "sum_exponential"),
            cs.comp_sum_loss(h, y, "gce", q=1.0))

  p_y, logistic, ce, mae, gce, sum_exp, gce1 = run(h, y)
  # logistic == softmax cross-entropy (optax)
  np.testing.assert_allclose(logistic, ce, rtol=1e-6, atol=1e-6)
  # MAE == 1 - p_y ; GCE == (1 - p_y^q) / q (Zhang & Sabuncu) ; sum-exp == 1/p_y - 1
  np.testing.assert_allclose(mae, 1 - p_y, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(gce, (1 - p_y ** 0.4) / 0.4, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(sum_exp, 1 / p_y - 1, rtol=1e-5, atol=1e-6)
  # gce with q = 1 is mae
  np.testing.assert_allclose(gce1, mae, rtol=1e-6)


def test_smooth_adv_matches_numpy_and_reduces_to_comp_sum():
  rng = np.random.default_rng(2)
  h = rng.normal(size=(3, 5))
  ha = h + rng.normal(size=(3, 5)) * 0.3
  y = np.array([1, 4, 0])
  with jax.enable_x64(True):
    got, same, g = jax.jit(lambda h, ha, y: (  # one program
        cs.smooth_adv_comp_sum_loss(h, ha, y, "gce", nu=0.5), cs.smooth_adv_comp_sum_loss(h, h, y, "gce", nu=0.5),
        jax.grad(lambda t: cs.smooth_adv_comp_sum_loss(t, t, y, nu=2.0).sum())(h)))(
            jnp.asarray(h), jnp.asarray(ha), jnp.asarray(y))
  ref = np_comp_sum(h, y, 1.7) + 0.5 * np.linalg.norm(ha - h, axis=-1)
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-10)
  np.testing.assert_allclose(np.asarray(same), np_comp_sum(h, y, 1.7), rtol=1e-10)
  assert np.all(np.isfinite(np.asarray(g)))  # gradient of the norm at 0 is finite


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_stability(dtype):
  h = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]], dtype)
  y = jnp.array([1, 1])
  # bounded members (tau >= 1) are finite everywhere
  phis = ("logistic", "gce", "mae")

  @jax.jit  # one program for every value and gradient below
  def run(h, y):
    return ([(cs.comp_sum_loss(h, y, phi), jax.grad(lambda t: cs.comp_sum_loss(t, y, phi).astype(jnp.float32).sum())(h))
             for phi in phis], cs.comp_sum_loss(h[1:], y[1:], "sum_exponential"))

  vg, v_sum_exp = run(h, y)
  for v, g in vg:
    assert v.dtype == dtype
    assert np.all(np.isfinite(np.asarray(v, np.float32))) and np.all(np.isfinite(np.asarray(g, np.float32)))
  # the sum-exponential loss is finite (and ~0) on the correctly classified example
  v = v_sum_exp
  assert np.isfinite(float(v[0])) and float(v[0]) < 1e-3


def test_jit_vmap():
  h = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
  y = jnp.array([0, 1, 2, 0])
  a = jax.jit(lambda h, y: cs.comp_sum_loss(h, y, "gce"))(h, y)
  b = jax.vmap(lambda h, y: cs.comp_sum_loss(h, y, "gce"))(h, y)
  np.testing.assert_allclose(a, b, rtol=1e-6)


def test_bad_inputs():
  h = jnp.zeros((2, 3))
  y = jnp.array([0, 2])
  with pytest.raises(ValueError, match="phi"):
    cs.comp_sum_loss(h, y, "hinge")
  with pytest.raises(ValueError, match="q"):
    cs.comp_sum_loss(h, y, "gce", q=0.0)
  with pytest.raises(ValueError, match="tau"):
    cs.comp_sum_loss(h, y, tau=-1.0)
  with pytest.raises(ValueError, match="labels"):
    cs.comp_sum_loss(h, jnp.array([0, 3]))
  with pytest.raises(ValueError, match="adv_logits"):
    cs.smooth_adv_comp_sum_loss(h, jnp.zeros((2, 4)), y)
  with pytest.raises(ValueError, match="nu"):
    cs.smooth_adv_comp_sum_loss(h, h, y, nu=-1.0)
  with pytest.raises(ValueError, match="tau must be a concrete"):
    jax.jit(lambda t: cs.comp_sum_loss(h, y, tau=t))(1.0)
