"""Target-based surrogates / SSO [187]: the majorisation (float64 NumPy transcription of the surrogate), m = 1 equals
SGD, many inner steps converge to the target-space projection (closed form), monotone full-batch decrease."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.optim import SSOState, sso, sso_surrogate


def _logistic_problem(n=64, d=5, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d))
  y = np.sign(x @ rng.normal(size=d) + 0.3 * rng.normal(size=n))
  return x, y


def _loss_np(z, y):
  return float(np.mean(np.logaddexp(0.0, -y * z)))


def _grad_z_np(z, y):
  return -y / (1.0 + np.exp(y * z)) / len(y)


def test_surrogate_majorises_the_loss_when_eta_is_at_most_one_over_beta():
  """L(z) = mean softplus(-y z) is (1/(4n))-smooth in z, so for eta <= 4n: L(X theta) <= L(z_t) + g_t(theta) for all
  theta (equality at theta_t); for a much larger eta the bound fails somewhere (the check can fail)."""
  x, y = _logistic_problem()
  n = len(y)
  rng = np.random.default_rng(1)
  theta_t = rng.normal(size=x.shape[1])
  z_t = x @ theta_t
  g = _grad_z_np(z_t, y)
  thetas = theta_t + rng.normal(size=(500, x.shape[1])) * rng.uniform(0.01, 5.0, size=(500, 1))

  def gaps(eta):
    out = []
    for th in thetas:
      z = x @ th
      surrogate_np = _loss_np(z_t, y) + g @ (z - z_t) + np.sum((z - z_t) ** 2) / (2 * eta)
      out.append(surrogate_np - _loss_np(z, y))
    return np.array(out)

  assert gaps(4.0 * n).min() >= -1e-12
  assert gaps(400.0 * n).min() < 0
  with jax.enable_x64(True):
    ours = sso_surrogate(jnp.asarray(x @ thetas[0]), jnp.asarray(z_t), jnp.asarray(g), 4.0 * n)
    np.testing.assert_allclose(float(ours) + _loss_np(z_t, y), gaps(4.0 * n)[0] + _loss_np(x @ thetas[0], y),
                               rtol=1e-12)
    np.testing.assert_allclose(float(sso_surrogate(jnp.asarray(z_t), jnp.asarray(z_t), jnp.asarray(g), 1.0)), 0.0)


def test_one_inner_sgd_step_on_a_linear_model_is_one_sgd_step():
  x, y = _logistic_problem()
  xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  model = lambda th: xj @ th
  loss = lambda z: jnp.mean(jax.nn.softplus(-yj * z))
  theta = jnp.asarray(np.random.default_rng(2).normal(size=x.shape[1]), jnp.float32)
  opt = sso(optax.sgd(0.5), eta=3.0, num_inner_steps=1)
  ours, state, info = opt.step(theta, opt.init(theta), model, loss)
  sgd = optax.sgd(0.5)
  u, _ = sgd.update(jax.grad(lambda th: loss(model(th)))(theta), sgd.init(theta))
  np.testing.assert_allclose(np.asarray(ours), np.asarray(theta + u), rtol=1e-6, atol=1e-7)
  assert isinstance(state, SSOState) and int(state.count) == 1
  np.testing.assert_allclose(float(info["surrogate_start"]), float(info["loss"]), rtol=1e-7)


def test_many_inner_steps_reach_the_target_space_projection():
  """argmin_theta <G, X theta - z_t> + ||X theta - z_t||^2 / (2 eta) = lstsq(X, z_t - eta G): projected SGD in target
  space (Sec. 4)."""
  x, y = _logistic_problem(n=40, d=4)
  rng = np.random.default_rng(3)
  theta_t = rng.normal(size=4)
  eta = 5.0
  z_t = x @ theta_t
  want = np.linalg.lstsq(x, z_t - eta * _grad_z_np(z_t, y), rcond=None)[0]
  with jax.enable_x64(True):
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    lip = np.linalg.eigvalsh(x.T @ x).max() / eta
    opt = sso(optax.sgd(1.0 / lip), eta=eta, num_inner_steps=3000)
    theta, _, info = jax.jit(lambda th, s: opt.step(th, s, lambda q: xj @ q,
                                                    lambda z: jnp.mean(jax.nn.softplus(-yj * z))))(
                                                        jnp.asarray(theta_t), opt.init(jnp.asarray(theta_t)))
  np.testing.assert_allclose(np.asarray(theta), want, rtol=1e-6, atol=1e-8)
  assert float(info["surrogate_end"]) < float(info["surrogate_start"])


def test_full_batch_sso_decreases_the_loss_monotonically_and_state_survives_orbax(tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  x, y = _logistic_problem(n=64, d=5)
  xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  eta = 4.0 * len(y)  # 1 / beta
  lip = float(np.linalg.eigvalsh(x.T @ x).max() / eta)
  inner = optax.inject_hyperparams(optax.sgd)(learning_rate=0.9 / lip, momentum=0.5)
  opt = sso(inner, eta=eta, num_inner_steps=10, reset_inner=False)
  step = jax.jit(lambda th, s: opt.step(th, s, lambda q: xj @ q, lambda z: jnp.mean(jax.nn.softplus(-yj * z))))
  theta = jnp.zeros(5)
  state = opt.init(theta)
  losses = []
  for t in range(12):
    theta, state, info = step(theta, state)
    losses.append(float(info["loss"]))
    if t == 5:
      ckptr = ocp.StandardCheckpointer()
      ckptr.save(tmp_path / "c", {"theta": theta, "state": state})
      ckptr.wait_until_finished()
      restored = ckptr.restore(tmp_path / "c", jax.eval_shape(lambda: {"theta": theta, "state": state}))
      ckptr.close()
      for a, b in zip(jax.tree.leaves(restored["state"]), jax.tree.leaves(state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert np.all(np.diff(losses) <= 1e-7), losses
  assert losses[-1] < 0.5 * losses[0]


def test_bad_hyperparameters_are_rejected():
  with pytest.raises(ValueError, match="eta"):
    sso(optax.sgd(0.1), eta=0.0, num_inner_steps=2)
  with pytest.raises(ValueError, match="num_inner_steps"):
    sso(optax.sgd(0.1), eta=1.0, num_inner_steps=0)
  with pytest.raises(TypeError, match="inner"):
    sso(lambda g: g, eta=1.0, num_inner_steps=1)
  with pytest.raises(ValueError, match="shapes"):
    sso_surrogate(jnp.ones(3), jnp.ones(2), jnp.ones(3), 1.0)
  with pytest.raises(ValueError, match="eta"):
    sso_surrogate(jnp.ones(3), jnp.ones(3), jnp.ones(3), -1.0)
