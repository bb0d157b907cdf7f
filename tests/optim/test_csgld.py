"""cSGLD [106]: the cyclical schedule against a NumPy transcription of Zhang et al. eq. 1, zero noise = SGD, the
noise scale and the stationary distribution of a Gaussian posterior (closed form)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import optim as O


def _alpha_np(k1, alpha0, total, cycles):
  """Zhang et al. 2020 eq. (1), 1-based k, in float64."""
  period = math.ceil(total / cycles)
  return alpha0 / 2 * (math.cos(math.pi * ((k1 - 1) % period) / period) + 1)


def test_cyclical_step_size_is_eq1_and_sampling_stage_is_the_last_fraction():
  total, cycles, beta = 103, 4, 0.8
  sched = O.cyclical_step_size(0.5, total, cycles)
  sampling = O.csgld_is_sampling(total, cycles, beta)
  ts = np.arange(total + 30)
  got = np.asarray(jax.vmap(sched)(jnp.asarray(ts)))
  want = np.array([_alpha_np(t + 1, 0.5, total, cycles) for t in ts])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  period = math.ceil(total / cycles)
  np.testing.assert_array_equal(np.asarray(jax.vmap(sampling)(jnp.asarray(ts))),
                                np.array([(t % period) / period >= beta for t in ts]))


def test_zero_temperature_and_constant_step_is_exactly_sgd():
  params = {"w": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.array([0.1])}
  a, b = O.scale_by_langevin(0.05, temperature=0.0, data_size=10, seed=3), optax.sgd(0.05)
  sa, sb, pa, pb = a.init(params), b.init(params), params, params
  for t in range(4):
    g = jax.tree.map(lambda x: jnp.sin(x * (t + 1)), pa)
    ua, sa = a.update(g, sa, pa)
    ub, sb = b.update(g, sb, pb)
    pa, pb = optax.apply_updates(pa, ua), optax.apply_updates(pb, ub)
  for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_csgld_at_zero_temperature_is_cyclical_sgd_with_weight_decay():
  params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)}
  tx = O.csgld(0.1, total_steps=12, num_cycles=3, data_size=100, temperature=0.0, weight_decay=0.01)
  ref = optax.chain(optax.add_decayed_weights(0.01), optax.sgd(O.cyclical_step_size(0.1, 12, 3)))
  s, r, p, q = tx.init(params), ref.init(params), params, params

  @jax.jit
  def step(s, r, p, q, t):  # both optimizers' steps in one program, compiled once for the 9 steps
    g = jax.tree.map(lambda x: jnp.cos(x + t), p)
    u, s = tx.update(g, s, p)
    v, r = ref.update(g, r, q)
    return s, r, optax.apply_updates(p, u), optax.apply_updates(q, v)

  for t in range(9):
    s, r, p, q = step(s, r, p, q, jnp.float32(t))
  np.testing.assert_allclose(np.asarray(p["w"]), np.asarray(q["w"]), rtol=1e-6, atol=1e-7)


def test_noise_has_the_langevin_scale_only_in_the_sampling_stage():
  n, eta, temp = 1000, 0.02, 0.5
  tx = O.csgld(eta, total_steps=8, num_cycles=2, data_size=n, exploration_ratio=0.5, temperature=temp, seed=1)
  g = {"w": jnp.zeros((400, 500))}
  state = tx.init(g)
  step = jax.jit(tx.update)
  for t in range(4):
    u, state = step(g, state)
    alpha = _alpha_np(t + 1, eta, 8, 2)
    if t < 2:  # r = 0, 0.25 < 0.5: exploration, no noise at all
      assert float(jnp.abs(u["w"]).max()) == 0.0
    else:
      std = float(jnp.std(u["w"]))
      assert std == pytest.approx(math.sqrt(2 * alpha * temp / n), rel=0.01)
      assert abs(float(jnp.mean(u["w"]))) < 3 * std / math.sqrt(2e5)


def test_sgld_samples_a_gaussian_posterior():
  """Mean loss (theta - mu)^2 / (2 s^2) over N data points: the posterior is N(mu, s^2 / N); SGLD with a small step
  samples it (discretisation bias O(step))."""
  mu, s2, n, eta = 0.7, 4.0, 50, 0.01
  tx = O.scale_by_langevin(eta, temperature=1.0, data_size=n, seed=0)
  theta = jnp.zeros((4000,))

  def body(carry, _):
    th, st = carry
    u, st = tx.update((th - mu) / s2, st)
    return (th + u, st), None

  (theta, _), _ = jax.lax.scan(body, (theta, tx.init(theta)), None, length=3000)
  var = s2 / n
  assert float(jnp.mean(theta)) == pytest.approx(mu, abs=4 * math.sqrt(var / 4000))
  # Euler-Maruyama on an OU process has stationary variance var / (1 - eta / (2 s2)): 0.1% above var here.
  assert float(jnp.var(theta)) == pytest.approx(var / (1 - eta / (2 * s2)), rel=0.06)


def test_same_seed_same_noise_other_seed_other_noise():
  g = {"w": jnp.zeros((3, 3))}
  a = O.scale_by_langevin(0.1, data_size=1, seed=5)
  b = O.scale_by_langevin(0.1, data_size=1, seed=6)
  ua1 = a.update(g, a.init(g))[0]["w"]
  ua2 = a.update(g, a.init(g))[0]["w"]
  ub = b.update(g, b.init(g))[0]["w"]
  np.testing.assert_array_equal(np.asarray(ua1), np.asarray(ua2))
  assert not np.allclose(np.asarray(ua1), np.asarray(ub))


@pytest.mark.parametrize("kwargs,err", [
    (dict(total_steps=0), ValueError), (dict(num_cycles=0), ValueError), (dict(data_size=0), ValueError),
    (dict(exploration_ratio=1.5), ValueError), (dict(temperature=-1.0), ValueError),
    (dict(learning_rate=0.0), ValueError), (dict(total_steps=10.5), TypeError), (dict(weight_decay=-1.0), ValueError),
    # audit 2026-12-03: more cycles than steps, and cycles too short to reach the sampling stage (P = 5 < 1 / 0.1:
    # no step would ever add noise), used to run as plain cyclical SGD without a word
    (dict(num_cycles=20), ValueError), (dict(exploration_ratio=0.9), ValueError),
])
def test_bad_hyperparameters_are_rejected_before_tracing(kwargs, err):
  base = dict(learning_rate=0.1, total_steps=10, num_cycles=2, data_size=5, exploration_ratio=0.8)
  with pytest.raises(err, match=list(kwargs)[0]):
    O.csgld(**{**base, **kwargs})


def test_complex_and_integer_params_are_rejected_naming_the_leaf():
  tx = O.scale_by_langevin(0.1)
  with pytest.raises(TypeError, match=r"\['z'\].*complex"):
    tx.init({"z": jnp.zeros(2, jnp.complex64)})
  with pytest.raises(TypeError, match=r"\['i'\].*int32"):
    tx.init({"i": jnp.zeros(2, jnp.int32)})


def test_short_cycles_are_an_error_only_where_noise_was_asked_for():
  with pytest.raises(ValueError, match="no step of a cycle would sample"):
    O.csgld_is_sampling(10, 2, 0.9)
  assert [bool(O.csgld_is_sampling(10, 2, 0.8)(t)) for t in range(5)] == [False] * 4 + [True]   # (P - 1) / P = 0.8
  assert not any(bool(O.csgld_is_sampling(10, 2, 1.0)(t)) for t in range(10))                   # beta = 1: never
  O.csgld(0.1, total_steps=10, num_cycles=2, data_size=5, temperature=0.0)   # cyclical SGD: nothing to sample
  with pytest.raises(ValueError, match="num_cycles"):
    O.cyclical_step_size(0.1, total_steps=2, num_cycles=5)
