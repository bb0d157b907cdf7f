"""FLAD [165]: EXP3-FLAD and UCB1-FLAD against NumPy transcriptions of the official trainers' update rules, and the
gradient-alignment reward against a NumPy cosine."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import optim as O


def _exp3_np(arms, rewards, k, beta):
  """The official Exp3BatchedFLADTrainer (_update_grad_similarity / _update_probabilities) for the sampled arm, with
  the paper's round index t (the official code scales the step by gradient accumulation * 10)."""
  eps_fn = lambda t: min(1 / k, math.sqrt(math.log(k) / (k * t)))
  sim, cum = np.ones(k), np.zeros(k)
  eps = eps_fn(1)
  probs = (1 - k * eps) * np.exp(eps * cum) / np.exp(eps * cum).sum() + eps
  out = []
  for t, (a, r) in enumerate(zip(arms, rewards), start=1):
    sim[a] = (1 - beta) * sim[a] + beta * r
    cum[a] += sim[a] / probs[a]
    prev, eps = eps_fn(t), eps_fn(t + 1)
    e = np.exp(prev * cum - (prev * cum).max())
    probs = (1 - k * eps) * e / e.sum() + eps
    out.append(probs.copy())
  return np.array(out)


def test_exp3_flad_matches_the_official_update():
  rng = np.random.default_rng(0)
  k, beta = 5, 0.5
  arms = rng.integers(0, k, size=40)
  rewards = rng.uniform(-1, 1, size=40)
  state = O.exp3_flad_init(k)
  np.testing.assert_allclose(np.asarray(state.probs), np.full(k, 1 / k), rtol=1e-6)
  update = jax.jit(lambda s, a, r: O.exp3_flad_update(s, a, r, smoothing=beta))
  got = []
  for a, r in zip(arms, rewards):
    state = update(state, a, r)
    got.append(np.asarray(state.probs))
  np.testing.assert_allclose(np.array(got), _exp3_np(arms, rewards, k, beta), rtol=1e-4, atol=1e-6)
  assert np.allclose(np.array(got).sum(1), 1.0, atol=1e-5)


def test_ucb1_flad_matches_the_official_rule():
  rng = np.random.default_rng(1)
  k = 4
  init = rng.uniform(-1, 1, size=k)
  state = O.ucb1_flad_init(jnp.asarray(init, jnp.float32))
  sim, pulls, t = init.copy(), np.ones(k), k
  for _ in range(30):
    want = int(np.argmax(sim + np.sqrt(2 * np.log(t) / pulls)))
    arm = int(O.ucb1_flad_select(state))
    assert arm == want
    r = rng.uniform(-1, 1)
    state = O.ucb1_flad_update(state, arm, r, smoothing=0.3)
    sim[arm] = 0.7 * sim[arm] + 0.3 * r
    pulls[arm] += 1
    t += 1
  np.testing.assert_allclose(np.asarray(state.similarity), sim, rtol=1e-5, atol=1e-6)


def test_gradient_alignment_is_the_cosine_of_the_flattened_trees():
  rng = np.random.default_rng(2)
  a = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}
  b = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}
  fa = np.concatenate([a["b"], a["w"].ravel()])
  fb = np.concatenate([b["b"], b["w"].ravel()])
  want = fa @ fb / (np.linalg.norm(fa) * np.linalg.norm(fb))
  got = O.gradient_alignment(jax.tree.map(jnp.asarray, a), jax.tree.map(jnp.asarray, b))
  assert float(got) == pytest.approx(want, rel=1e-5)


def test_sampling_follows_the_probabilities_and_bad_input():
  state = O.exp3_flad_init(4)._replace(probs=jnp.array([0.7, 0.1, 0.1, 0.1]))
  draws = jax.vmap(lambda k: O.exp3_flad_sample(state, k))(jax.random.split(jax.random.key(0), 4000))
  assert abs(float(jnp.mean(draws == 0)) - 0.7) < 0.03
  with pytest.raises(ValueError, match="num_datasets"):
    O.exp3_flad_init(0)
  with pytest.raises(ValueError, match="smoothing"):
    O.exp3_flad_update(O.exp3_flad_init(2), 0, 1.0, smoothing=0.0)
  with pytest.raises(ValueError, match="initial_rewards"):
    O.ucb1_flad_init(jnp.zeros((2, 2)))


def test_out_of_range_arm_raises_instead_of_a_silent_empty_round():
  # An out-of-range index was one-hot encoded as all zeros: the round was counted but no arm was updated.
  for bad in (3, -1, jnp.int32(5)):
    with pytest.raises(ValueError, match="arm"):
      O.exp3_flad_update(O.exp3_flad_init(3), bad, 1.0)
    with pytest.raises(ValueError, match="arm"):
      O.ucb1_flad_update(O.ucb1_flad_init(jnp.array([0.1, 0.2, 0.3])), bad, 1.0)
  with pytest.raises(TypeError, match="arm"):
    O.exp3_flad_update(O.exp3_flad_init(3), 1.5, 1.0)
  # A traced arm is still accepted.
  s = jax.jit(O.exp3_flad_update)(O.exp3_flad_init(3), jnp.int32(2), 1.0)
  assert int(s.step) == 1 and float(s.cumulative_reward[2]) > 0
