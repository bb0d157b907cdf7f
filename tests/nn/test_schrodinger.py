"""LightSB [133]: log c_theta and log v_theta against SciPy quadrature / densities, the conditional plan against
exp(<x,y>/eps) v(y) / c(x) on a grid, the sampler against its mixture mean, and the NNX contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats
from flax import nnx

from jaxlib_methods.nn import (LightSB, LightSBParams, lightsb_conditional, lightsb_log_c, lightsb_log_potential,
                               lightsb_loss, lightsb_sample)
from tests.nn._layer_contract import check_layer_contract

EPS = 0.7


def _params_1d():
  return LightSBParams(np.array([0.2, -0.5]), np.array([[-1.0], [1.5]]), np.array([[[0.1]], [[-0.3]]]))


def _v_np(y):
  """v(y) = sum_k alpha_k N(y | r_k, eps S_k), S_k = exp(2 s_k) in 1-D (float64 SciPy)."""
  alpha, r, s = np.exp([0.2, -0.5]), [-1.0, 1.5], np.exp(2 * np.array([0.1, -0.3]))
  return sum(a * scipy.stats.norm.pdf(y, m, np.sqrt(EPS * sk)) for a, m, sk in zip(alpha, r, s))


def test_potentials_and_plan_match_quadrature():
  p = _params_1d()
  xs = np.array([-1.0, 0.0, 0.8])
  with jax.enable_x64(True):
    p = LightSBParams(*(jnp.asarray(a, jnp.float64) for a in p))
    log_c = np.asarray(jax.jit(lambda p, x: lightsb_log_c(p, x, EPS))(p, jnp.asarray(xs[:, None])))
    ys = np.linspace(-3, 4, 7)
    log_v = jax.jit(lambda p, y: lightsb_log_potential(p, y, EPS))(p, jnp.asarray(ys[:, None]))
    np.testing.assert_allclose(np.asarray(log_v), np.log(_v_np(ys)), rtol=1e-10)
    logw, means, covs = lightsb_conditional(p, jnp.asarray(xs[:, None]), EPS)
    for i, x in enumerate(xs):
      c = scipy.integrate.quad(lambda y: np.exp(x * y / EPS) * _v_np(y), -40, 40, limit=200)[0]
      assert log_c[i] == pytest.approx(np.log(c), rel=1e-8)
      dens = np.exp(x * ys / EPS) * _v_np(ys) / c                       # the plan pi(y | x), by definition
      mix = sum(np.exp(logw[i, k]) * scipy.stats.norm.pdf(ys, means[i, k, 0], np.sqrt(covs[k, 0, 0]))
                for k in range(2))
      np.testing.assert_allclose(mix, dens, rtol=1e-7)
    loss = lightsb_loss(p, jnp.asarray(xs[:, None]), jnp.asarray(ys[:3, None]), EPS)
    np.testing.assert_allclose(np.asarray(loss), log_c - np.log(_v_np(ys[:3])), rtol=1e-8)


def test_sampler_matches_the_mixture_mean_and_covariance():
  """4000 samples per x: the sample mean lies within 5 standard errors of sum_k w_k m_k (failure prob. < 1e-5)."""
  p = LightSBParams(jnp.asarray([0.0, 0.3, -0.2]), jnp.asarray([[0.0, 1.0], [2.0, -1.0], [-1.0, 0.5]]),
                    0.2 * jax.random.normal(jax.random.PRNGKey(0), (3, 2, 2)))
  x = jnp.asarray([[0.3, -0.2]])
  xs = jnp.repeat(x, 4000, axis=0)
  y = np.asarray(jax.jit(lambda k: lightsb_sample(p, k, xs, EPS))(jax.random.PRNGKey(1)), np.float64)
  logw, means, covs = lightsb_conditional(p, x, EPS)
  w, m = np.exp(np.asarray(logw[0], np.float64)), np.asarray(means[0], np.float64)
  mean = w @ m
  cov = sum(w[k] * (np.asarray(covs[k]) + np.outer(m[k] - mean, m[k] - mean)) for k in range(3))
  se = np.sqrt(np.diag(cov) / 4000)
  assert np.all(np.abs(y.mean(0) - mean) < 5 * se)
  np.testing.assert_allclose(np.cov(y.T), cov, rtol=0.15, atol=0.02)


def test_bad_inputs_and_sampling_call():
  p = LightSBParams(*(jnp.asarray(a) for a in _params_1d()))
  with pytest.raises(ValueError, match=r"x must be \[B, D\]"):
    lightsb_log_c(p, jnp.ones((3, 2)), EPS)
  with pytest.raises(ValueError, match="epsilon"):
    lightsb_loss(p, jnp.ones((3, 1)), jnp.ones((3, 1)), 0.0)
  with pytest.raises(ValueError, match="same shape"):
    lightsb_loss(p, jnp.ones((3, 1)), jnp.ones((2, 1)), EPS)
  with pytest.raises(ValueError, match="num_components"):
    LightSB(2, 0, EPS, rngs=nnx.Rngs(0))
  x0 = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
  model = LightSB(2, 3, EPS, rngs=nnx.Rngs(0))
  assert model(x0, jax.random.PRNGKey(0)).shape == (16, 2)


@pytest.mark.slow
def test_nnx_contract(tmp_path):
  """nnx.jit, split/merge train step, bf16 params, orbax (compile-heavy: under -m slow)."""
  x0 = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
  check_layer_contract(lambda pdt: LightSB(2, 3, EPS, param_dtype=pdt, rngs=nnx.Rngs(1)), x0, tmp_path,
                       loss=lambda m, x: m.loss(x, x + 2.0))
