"""runner.minimize, the experiments' in-memory optax loop: checked against closed forms of gradient descent."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.runner import minimize
from jaxlib_methods.runner.constraints import UsageError


@pytest.fixture(autouse=True)
def _float64():
  with jax.enable_x64(True):    # the closed forms are checked to 1e-12
    yield


def test_full_batch_gradient_descent_matches_closed_form():
  # GD on 0.5 ||p - c||^2 at rate eta: p_t - c = (1 - eta)^t (p_0 - c); the recorded value is the loss before step t.
  c, p0, eta, n = np.array([1.0, -2.0, 0.5]), np.array([3.0, 0.0, -1.0]), 0.3, 7
  loss = lambda p: 0.5 * jnp.sum((p["w"] - c) ** 2)
  p, values = minimize(loss, {"w": jnp.asarray(p0)}, optax.sgd(eta), length=n)
  decay = (1 - eta) ** np.arange(n + 1)
  np.testing.assert_allclose(p["w"], c + decay[-1] * (p0 - c), rtol=1e-12)
  np.testing.assert_allclose(values, 0.5 * decay[:-1] ** 2 * np.sum((p0 - c) ** 2), rtol=1e-12)


def test_per_step_inputs_and_aux():
  # Step t sees x_t: GD at rate 1 on 0.5 (p - x_t)^2 jumps to x_t, so p ends at the last target; the aux is x_t.
  xs = jnp.array([2.0, -1.0, 4.0, 0.5])
  loss = lambda p, x: (0.5 * (p - x) ** 2, x)
  p, (values, aux) = minimize(loss, jnp.asarray(0.0), optax.sgd(1.0), xs, has_aux=True)
  assert float(p) == 0.5
  np.testing.assert_array_equal(aux, xs)
  np.testing.assert_allclose(values, 0.5 * (np.array([0.0, 2.0, -1.0, 4.0]) - np.asarray(xs)) ** 2)


def test_equals_a_python_loop_of_optax_steps_under_jit_and_vmap():
  key = jax.random.PRNGKey(0)
  a = jax.random.normal(key, (5, 3))
  loss = lambda p, k: jnp.mean((a @ p - jax.random.normal(k, (5,))) ** 2)
  tx = optax.adam(0.1)
  keys = jax.random.split(jax.random.PRNGKey(1), 6)
  p, s = jnp.zeros(3), tx.init(jnp.zeros(3))
  for k in keys:
    u, s = tx.update(jax.grad(loss)(p, k), s, p)
    p = optax.apply_updates(p, u)
  got, _ = jax.jit(lambda p0: minimize(loss, p0, tx, keys))(jnp.zeros(3))
  np.testing.assert_allclose(got, p, rtol=1e-12)
  batched, _ = jax.vmap(lambda p0: minimize(loss, p0, tx, keys))(jnp.zeros((2, 3)))
  np.testing.assert_allclose(batched, np.stack([p, p]), rtol=1e-12)


def test_needs_steps():
  with pytest.raises(UsageError, match="xs.*length"):
    minimize(lambda p: p ** 2, jnp.asarray(1.0), optax.sgd(0.1))
