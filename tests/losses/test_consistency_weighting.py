"""AdaWAC [51] (ls19d, issue 19): `adawac_weight_update` equals the official exponentiated-gradient step (weights
(beta, 1 - beta) multiplied by exp(eta (sup - cons)) and L1-normalised, float64 NumPy), stays on the simplex (also at
its corners and for huge steps), is the identity at eta = 0 and drives beta to the larger loss; `adawac_objective`
against NumPy with its gradient (beta for the supervised loss, 1 - beta for the consistency loss, none to beta)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses


def _np_official_step(beta, sup, cons, eta):
  w = np.stack([beta, 1 - beta], 1)
  w[:, 0] *= np.exp(eta * (sup - cons))
  return (w / np.abs(w).sum(1, keepdims=True))[:, 0]


def test_adawac_update_and_objective_vs_numpy_float64():
  rng = np.random.default_rng(0)
  n = 6
  beta = rng.uniform(0.05, 0.95, n)
  sup, cons = rng.uniform(0, 2, n), rng.uniform(0, 2, n)
  with jax.enable_x64(True):
    step = jax.jit(lambda b_, s_, c_, eta: losses.adawac_weight_update(b_, s_, c_, learning_rate=eta))  # 1 compile
    np.testing.assert_allclose(np.asarray(step(beta, sup, cons, np.float64(0.7))),
                               _np_official_step(beta, sup, cons, 0.7), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(step(beta, sup, cons, np.float64(0.0))), beta, rtol=1e-15)
    corners = np.asarray(step(np.array([0.0, 1.0, 0.5, 0.5, 0.5, 0.5]), sup, cons, np.float64(1e4)))
    assert np.all((corners >= 0) & (corners <= 1)) and corners[0] == 0 and corners[1] == 1
    np.testing.assert_array_equal(corners[2:], (sup > cons)[2:].astype(float))   # huge steps: the larger loss wins
    b = beta
    for _ in range(200):
      b = step(b, sup, cons, np.float64(0.5))
    np.testing.assert_array_equal(np.asarray(b) > 0.5, sup > cons)
    obj = jax.jit(losses.adawac_objective)
    np.testing.assert_allclose(np.asarray(obj(sup, cons, beta)), beta * sup + (1 - beta) * cons, rtol=1e-14)
    gs, gc, gb = jax.jit(jax.grad(lambda s_, c_, b_: obj(s_, c_, b_).sum(), argnums=(0, 1, 2)))(sup, cons, beta)
    np.testing.assert_allclose(np.asarray(gs), beta, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(gc), 1 - beta, rtol=1e-14)
    assert np.all(np.asarray(gb) == 0)
  with pytest.raises(ValueError, match="beta"):
    losses.adawac_weight_update(np.array([1.5]), np.ones(1), np.ones(1), learning_rate=0.1)
  with pytest.raises(ValueError, match="learning_rate"):
    losses.adawac_weight_update(np.array([0.5]), np.ones(1), np.ones(1), learning_rate=-0.1)
  with pytest.raises(ValueError, match="beta"):
    losses.adawac_objective(np.ones(2), np.ones(2), np.ones(3) / 2)
