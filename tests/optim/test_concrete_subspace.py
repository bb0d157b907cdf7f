"""Concrete subspace merging [104]: the binary-Concrete sample against its closed-form CDF, the temperature -> 0
limit is the hard mask, and masked task arithmetic by its formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import optim as O


def test_temperature_to_zero_gives_the_hard_mask():
  logits = {"w": jnp.linspace(-3.0, 3.0, 400).reshape(20, 20)}
  key = jax.random.key(3)
  hard, soft = jax.jit(lambda logits, key: (  # one program for both temperatures
      O.concrete_mask(logits, key, temperature=0.0)["w"], O.concrete_mask(logits, key, temperature=1e-4)["w"]))(
          logits, key)
  assert set(np.unique(np.asarray(hard)).tolist()) <= {0.0, 1.0}
  np.testing.assert_allclose(np.asarray(soft), np.asarray(hard), atol=1e-6)


def test_relaxed_sample_has_the_binary_concrete_cdf():
  """X = sigmoid((l + L) / tau), L ~ Logistic(0, 1): P(X <= y) = sigmoid(tau logit(y) - l) (Maddison et al. 2017)."""
  l, tau = 0.8, 0.5
  x = np.asarray(jax.jit(lambda logits, key: O.concrete_mask(logits, key, tau))({"w": jnp.full((200000,), l)},
                                                                               jax.random.key(0))["w"])
  for y in (0.1, 0.3, 0.5, 0.7, 0.9):
    cdf = 1 / (1 + np.exp(-(tau * np.log(y / (1 - y)) - l)))
    assert abs(np.mean(x <= y) - cdf) < 0.005
  assert abs(np.mean(x > 0.5) - 1 / (1 + np.exp(-l))) < 0.005   # P(mask "on") = sigmoid(l)


def test_masked_task_arithmetic_formula():
  p0 = {"w": jnp.array([1.0, 2.0, 3.0, 4.0])}
  fts = [{"w": jnp.array([2.0, 2.0, 1.0, 4.0])}, {"w": jnp.array([1.0, 3.0, 3.0, 6.0])}]
  taus = O.task_vectors(p0, fts)
  np.testing.assert_allclose(np.asarray(taus[1]["w"]), [0.0, 1.0, 0.0, 2.0])
  plain = O.masked_task_arithmetic(p0, taus, None, 0.5)
  np.testing.assert_allclose(np.asarray(plain["w"]), [1.5, 2.5, 2.0, 5.0])
  ones = O.masked_task_arithmetic(p0, taus, {"w": jnp.ones(4)}, 0.5)
  np.testing.assert_allclose(np.asarray(ones["w"]), np.asarray(plain["w"]))
  m = jnp.array([1.0, 0.0, 1.0, 0.0])   # mean 0.5: kept entries scaled by 2
  got = O.masked_task_arithmetic(p0, taus, {"w": m}, 0.5)
  np.testing.assert_allclose(np.asarray(got["w"]), [1.0 + 0.5 * 2 * 1.0, 2.0, 3.0 + 0.5 * 2 * -2.0, 4.0])
  raw = O.masked_task_arithmetic(p0, taus, {"w": m}, 0.5, rescale=False)
  np.testing.assert_allclose(np.asarray(raw["w"]), [1.5, 2.0, 2.0, 4.0])


def test_gradient_reaches_the_mask_logits_and_bad_input():
  p0 = {"w": jnp.zeros(3)}
  taus = [{"w": jnp.array([1.0, -1.0, 2.0])}]
  loss = lambda l: jnp.sum(O.masked_task_arithmetic(p0, taus, O.concrete_mask(l, jax.random.key(0), 0.5),
                                                    rescale=False)["w"])
  g = jax.jit(jax.grad(loss))({"w": jnp.zeros(3)})["w"]
  assert np.all(np.sign(np.asarray(g)) == [1, -1, 1])
  with pytest.raises(ValueError, match="temperature"):
    O.concrete_mask({"w": jnp.zeros(2)}, jax.random.key(0), -1.0)
  with pytest.raises(ValueError, match="finetuned"):
    O.task_vectors(p0, [])
  with pytest.raises(ValueError, match="mask"):
    O.masked_task_arithmetic(p0, taus, {"v": jnp.ones(3)})
