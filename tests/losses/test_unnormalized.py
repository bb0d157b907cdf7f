"""Compositional NLL (MECO) and NCE vs float64 NumPy transcriptions, on a 1-D Gaussian energy model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.losses import unnormalized as un


def _energy(mu, x):
  return 0.5 * (x - mu) ** 2


def _log_q(x):  # q = N(0, 1)
  return -0.5 * x ** 2 - 0.5 * np.log(2 * np.pi)


def test_log_partition_estimate_matches_numpy_and_is_consistent():
  rng = np.random.default_rng(0)
  xn = rng.normal(size=4000)
  mu = 0.7
  ref = np.log(np.mean(np.exp(-_energy(mu, xn) - _log_q(xn))))
  got = jax.jit(un.log_partition_estimate)(jnp.asarray(_energy(mu, xn), jnp.float32),
                                          jnp.asarray(_log_q(xn), jnp.float32))
  assert float(got) == pytest.approx(ref, rel=1e-5)
  assert float(got) == pytest.approx(0.5 * np.log(2 * np.pi), abs=0.05)  # Z = sqrt(2 pi) for this energy


def test_surrogate_gradient_with_gamma_one_is_plugin_nll_gradient():
  rng = np.random.default_rng(1)
  xd, xn = 1.5 + rng.normal(size=8), rng.normal(size=16)
  mu = 0.3
  # d/dmu [mean_i E(x_i) + log g_hat] = -mean(x - mu) + sum_j w_j (x'_j - mu) / sum_j w_j, w_j = e^{-E - log q}.
  w = np.exp(-_energy(mu, xn) - _log_q(xn))
  ref = -np.mean(xd - mu) + np.sum(w * (xn - mu)) / np.sum(w)
  lq = jnp.asarray(_log_q(xn), jnp.float32)

  def f(m):
    loss, _ = un.compositional_nll_loss(_energy(m, jnp.asarray(xd, jnp.float32)),
                                        _energy(m, jnp.asarray(xn, jnp.float32)), lq, un.compositional_init(),
                                        gamma=1.0)
    return jnp.mean(loss)

  assert float(jax.jit(jax.grad(f))(jnp.float32(mu))) == pytest.approx(ref, rel=1e-4)
  nll = jax.jit(lambda xd, xn, lq: un.unnormalized_nll(_energy(mu, xd), _energy(mu, xn), lq))(
      jnp.asarray(xd), jnp.asarray(xn), jnp.asarray(_log_q(xn)))
  np.testing.assert_allclose(np.asarray(nll), _energy(mu, xd) + np.log(np.mean(w)), rtol=1e-5)


def test_moving_average_update_and_gradient_scale():
  rng = np.random.default_rng(2)
  gamma = 0.25
  state = un.compositional_init()
  us, gs = [], []

  @jax.jit
  def step(xn, en, lq, state):  # one program, compiled once for the 3 steps
    grad = jax.grad(lambda m: un.compositional_nll_loss(jnp.zeros(1), _energy(m, xn), lq, state, gamma=gamma)[0].sum())(
        jnp.float32(0.4))
    return grad, un.compositional_nll_loss(jnp.zeros(1), en, lq, state, gamma=gamma)[1]

  for t in range(3):
    xn = rng.normal(size=10)
    en, lq = _energy(0.4, xn), _log_q(xn)
    g = np.mean(np.exp(-en - lq))
    gs.append(g)
    us.append(g if t == 0 else (1 - gamma) * us[-1] + gamma * g)
    grad, state = step(jnp.asarray(xn, jnp.float32), jnp.asarray(en, jnp.float32), jnp.asarray(lq, jnp.float32), state)
    dg = np.mean(np.exp(-en - lq) * (xn - 0.4))  # d g_hat / d mu
    assert float(grad) == pytest.approx(dg / us[-1], rel=1e-4)
    assert float(jnp.exp(state.log_u)) == pytest.approx(us[-1], rel=1e-5)
  assert int(state.count) == 3


def test_extreme_energies_stay_finite():
  en = jnp.array([1e4, 2e4, -1e4 + 3.0], jnp.float32)  # exp(-E) over/underflows in the linear domain
  lq = jnp.zeros(3, jnp.float32)

  @jax.jit
  def run(en):  # one program
    loss, st = un.compositional_nll_loss(jnp.array([0.0]), en, lq, un.compositional_init(), gamma=0.5)
    return loss, st, jax.grad(lambda e: un.compositional_nll_loss(jnp.array([0.0]), e, lq, st, gamma=0.5)[0].sum())(en)

  loss, st, g = run(en)
  assert np.all(np.isfinite(np.asarray(loss))) and np.isfinite(float(st.log_u))
  assert float(st.log_u) == pytest.approx(1e4 - 3.0 - np.log(3), rel=1e-6)
  assert np.all(np.isfinite(np.asarray(g)))


def _np_log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


def test_nce_matches_numpy_and_value_at_model_equal_noise():
  rng = np.random.default_rng(3)
  a, b, c, d = (rng.normal(size=6), rng.normal(size=4), rng.normal(size=6), rng.normal(size=4))
  nu = 2.0
  gd, gn = a - c - np.log(nu), b - d - np.log(nu)
  ref = -np.mean(_np_log_sigmoid(gd)) - nu * np.mean(_np_log_sigmoid(-gn))
  f = lambda v: jnp.asarray(v, jnp.float32)
  got, same, extreme = jax.jit(lambda a, b, c, d: (  # one program
      un.nce_loss(a, b, c, d, nu), un.nce_loss(c, d, c, d, 1.0),
      un.nce_loss(f([1e4]), f([-1e4]), f([0.0]), f([0.0]))))(f(a), f(b), f(c), f(d))
  assert float(got) == pytest.approx(ref, rel=1e-5)
  assert float(same) == pytest.approx(2 * np.log(2), rel=1e-6)
  assert np.isfinite(float(extreme))


def test_nce_gradient_is_flat_far_from_noise_while_compositional_is_not():
  # The paper's Gaussian-mean motivation: data N(6, 1), noise q = N(0, 1), model N(mu, 1) with its exact normaliser,
  # evaluated half-way at mu = 3. There G(x) = mu x - mu^2 / 2 separates data (G ~ 13.5) from noise (G ~ -4.5), so
  # every logistic term is saturated and the NCE gradient in mu is nearly 0, while the NLL gradient is -(6 - 3).
  rng = np.random.default_rng(4)
  xd, xn = 6.0 + rng.normal(size=512), rng.normal(size=512)
  f = lambda v: jnp.asarray(v, jnp.float32)
  log_z = 0.5 * np.log(2 * np.pi)

  def nce(m):
    return un.nce_loss(-_energy(m, f(xd)) - log_z, -_energy(m, f(xn)) - log_z, f(_log_q(xd)), f(_log_q(xn)))

  def comp(m):
    return jnp.mean(un.compositional_nll_loss(_energy(m, f(xd)), _energy(m, f(xn)), f(_log_q(xn)),
                                              un.compositional_init(), gamma=1.0)[0])

  g_nce, g_comp = map(float, jax.jit(lambda m: (jax.grad(nce)(m), jax.grad(comp)(m)))(jnp.float32(3.0)))
  assert g_comp < -2.0  # -(6 - 3) plus the noisy importance-sampled grad log Z (true value 0)
  assert abs(g_nce) < 0.1 * abs(g_comp)


def test_bad_inputs_raise():
  v = jnp.zeros(3)
  with pytest.raises(ValueError, match="gamma"):
    un.compositional_nll_loss(v, v, v, un.compositional_init(), gamma=0.0)
  with pytest.raises(ValueError, match="match"):
    un.log_partition_estimate(jnp.zeros(3), jnp.zeros(4))
  with pytest.raises(ValueError, match="energy_data must be a non-empty vector"):
    un.unnormalized_nll(jnp.zeros((2, 2)), v, v)
  with pytest.raises(ValueError, match="nu"):
    un.nce_loss(v, v, v, v, nu=0.0)
  with pytest.raises(ValueError, match="paired"):
    un.nce_loss(v, v, jnp.zeros(2), v)


def test_unnormalized_nll_half_precision_output_dtype_is_documented():
  # Audit s23: the docstring said "float32 or wider" while the function (rightly, per docs/conventions.md) returns
  # the input's half dtype; pin the documented behaviour.
  e = jnp.asarray([0.5, -1.0, 2.0], jnp.bfloat16)
  out = un.unnormalized_nll(e, jnp.zeros(4), jnp.zeros(4))
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(e, np.float32), atol=1e-2)
  assert "energy_data's dtype" in un.unnormalized_nll.__doc__
