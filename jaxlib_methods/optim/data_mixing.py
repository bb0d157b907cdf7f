"""FLAD: choosing auxiliary datasets with multi-armed bandits rewarded by gradient alignment (EXP3-FLAD, UCB1-FLAD).

Paper [165]: Alon Albalak, Colin Raffel, William Yang Wang, "Improving Few-Shot Generalization by Exploring and
Exploiting Auxiliary Data", NeurIPS 2023, arXiv:2302.00674.

Few-shot learning with auxiliary data (FLAD) trains on a target task with few examples plus K auxiliary datasets.
Each auxiliary dataset is an arm; at every step one arm a is sampled, a batch of it and a target batch are used for
the update, and the arm is rewarded by the alignment of the two gradients, R = cos(grad L_aux_a, grad L_target)
(`gradient_alignment`). The cost of a step is one auxiliary and one target gradient, whatever K is.

EXP3-FLAD (Alg. 1; the official `Exp3BatchedFLADTrainer`):
    eps_t = min(1 / K, sqrt(ln K / (K t)))
    pi_t(a) = (1 - K eps_t) * softmax(eps_{t-1} G)_a + eps_t
    R_hat_a <- (1 - beta) R_hat_a + beta R;   G_a <- G_a + R_hat_a / pi_t(a)      (the sampled arm only)
UCB1-FLAD (Alg. 2; the official `UCB1BatchedFLADTrainer`):
    a_t = argmax_a R_hat_a + sqrt(2 ln t / n_a),  then R_hat_a <- (1 - beta) R_hat_a + beta R,  n_a <- n_a + 1
with t counting the rounds (the K initial pulls included) and n_a the pulls of arm a. R_hat starts at 1 for EXP3
(the official initialisation) and at each arm's first observed reward for UCB1 (`ucb1_flad_init` takes them).

These are data schedules, not optax transforms: pure functions on small NamedTuple states, jit-able and vmap-able.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


class Exp3FladState(NamedTuple):
  """EXP3-FLAD state over K auxiliary datasets.

  Albalak et al., "Improving Few-Shot Generalization by Exploring and Exploiting Auxiliary Data", NeurIPS 2023,
  arXiv:2302.00674 (EXP3-FLAD, Alg. 1).

  step: int32 scalar, rounds played so far (t - 1); similarity: [K] float32, R_hat, the smoothed rewards;
  cumulative_reward: [K] float32, G; probs: [K] float32, pi_t.
  """
  step: jax.Array               # int32 scalar: rounds played so far (t - 1)
  similarity: jax.Array         # [K] float32: R_hat, the smoothed rewards
  cumulative_reward: jax.Array  # [K] float32: G, importance-weighted cumulative rewards
  probs: jax.Array              # [K] float32: pi_t, the current sampling distribution


class Ucb1FladState(NamedTuple):
  """UCB1-FLAD state over K auxiliary datasets.

  Albalak et al., "Improving Few-Shot Generalization by Exploring and Exploiting Auxiliary Data", NeurIPS 2023,
  arXiv:2302.00674 (UCB1-FLAD, Alg. 2).

  step: int32 scalar, rounds played so far (the K initial pulls included); similarity: [K] float32, R_hat; pulls: [K]
  float32, n_a.
  """
  step: jax.Array        # int32 scalar: rounds played so far (the K initial pulls included)
  similarity: jax.Array  # [K] float32: R_hat
  pulls: jax.Array       # [K] float32: n_a


def _check_k(num_datasets: Any) -> int:
  if isinstance(num_datasets, (bool, np.bool_)) or not isinstance(num_datasets, (int, np.integer)) or \
      num_datasets < 1:
    raise ValueError(f"num_datasets must be an int >= 1, got {num_datasets=!r}")
  return int(num_datasets)


def gradient_alignment(g_target: Any, g_aux: Any, eps: float = 1e-12) -> jax.Array:
  """FLAD's reward: the cosine similarity of two gradient pytrees, <g_t, g_a> / (||g_t|| ||g_a||) (flattened).

  Args:
    g_target: the target-task gradient pytree.
    g_aux: the auxiliary-data gradient pytree (same structure and shapes).
    eps: added to the norms' product.

  Returns:
    A float32 scalar in [-1, 1].

  References:
    Albalak, Raffel, Wang. "Improving Few-Shot Generalization by Exploring and Exploiting Auxiliary Data". NeurIPS
    2023. arXiv:2302.00674, Sec. 3 (gradient-alignment reward).
  """
  if jax.tree.structure(g_target) != jax.tree.structure(g_aux):
    raise ValueError("g_target and g_aux must have the same tree structure")
  dot = sum(jnp.vdot(a.astype(jnp.float32), b.astype(jnp.float32)).real for a, b in
            zip(jax.tree.leaves(g_target), jax.tree.leaves(g_aux)))
  na = jnp.sqrt(sum(jnp.sum(jnp.square(jnp.abs(a.astype(jnp.float32)))) for a in jax.tree.leaves(g_target)))
  nb = jnp.sqrt(sum(jnp.sum(jnp.square(jnp.abs(b.astype(jnp.float32)))) for b in jax.tree.leaves(g_aux)))
  return (dot / (na * nb + eps)).astype(jnp.float32)


def _check_arm(arm: Any, k: int) -> jax.Array:
  """The played arm as an int32 scalar; ValueError when a concrete arm is not an integer index in [0, K) (an
  out-of-range index would otherwise be one-hot encoded as all zeros: a round counted with no arm updated)."""
  if np.ndim(arm) != 0:
    raise ValueError(f"arm must be a scalar index, got shape {np.shape(arm)}")
  validation.check_labels(arm, k, "arm")
  return jnp.asarray(arm, jnp.int32)


def _exp3_eps(t: jax.Array, k: int) -> jax.Array:
  """eps_t = min(1 / K, sqrt(ln K / (K t))) for t >= 1 (1 / K when K = 1)."""
  t = jnp.maximum(jnp.asarray(t, jnp.float32), 1.0)
  if k == 1:
    return jnp.asarray(1.0, jnp.float32)
  return jnp.minimum(1.0 / k, jnp.sqrt(np.log(k) / (k * t)))


def _exp3_probs(cum: jax.Array, eps_prev: jax.Array, eps_now: jax.Array) -> jax.Array:
  k = cum.shape[0]
  return (1.0 - k * eps_now) * jax.nn.softmax(eps_prev * cum) + eps_now


def exp3_flad_init(num_datasets: int) -> Exp3FladState:
  """The EXP3-FLAD state before the first round: G = 0, R_hat = 1, pi uniform.

  References:
    Albalak, Raffel, Wang. "Improving Few-Shot Generalization by Exploring and Exploiting Auxiliary Data". NeurIPS
    2023. arXiv:2302.00674, Algorithm 1.
  """
  k = _check_k(num_datasets)
  cum = jnp.zeros([k], jnp.float32)
  eps = _exp3_eps(jnp.asarray(1), k)
  return Exp3FladState(step=jnp.zeros([], jnp.int32), similarity=jnp.ones([k], jnp.float32), cumulative_reward=cum,
                       probs=_exp3_probs(cum, eps, eps))


def exp3_flad_sample(state: Exp3FladState, key: jax.Array) -> jax.Array:
  """Draw the auxiliary dataset of this round, a ~ pi_t (an int32 scalar).

  Albalak et al., "Improving Few-Shot Generalization by Exploring and Exploiting Auxiliary Data", NeurIPS 2023,
  arXiv:2302.00674 (EXP3-FLAD, Alg. 1). state.probs: [K]; key: a PRNG key; returns an int32 scalar.
  """
  return jax.random.categorical(key, jnp.log(state.probs)).astype(jnp.int32)


def exp3_flad_update(state: Exp3FladState, arm: Any, reward: Any, *, smoothing: float = 1.0) -> Exp3FladState:
  """One EXP3-FLAD round: smooth the sampled arm's reward, add R_hat / pi to its G, recompute pi (Alg. 1).

  Args:
    state: the current state.
    arm: the index played this round (int scalar in [0, K); a concrete index outside raises ValueError).
    reward: its reward (the gradient alignment, a scalar in [-1, 1]).
    smoothing: beta in (0, 1], the EMA weight of the new reward (1: R_hat is the last reward, the official default).

  Returns:
    The next state.

  Examples:
    >>> import jax.numpy as jnp
    >>> s = exp3_flad_init(3)
    >>> for _ in range(50):
    ...   s = exp3_flad_update(s, 2, 1.0)
    >>> int(jnp.argmax(s.probs))
    2

  References:
    Albalak, Raffel, Wang. "Improving Few-Shot Generalization by Exploring and Exploiting Auxiliary Data". NeurIPS
    2023. arXiv:2302.00674, Algorithm 1 (EXP3-FLAD).
  """
  validation.check_in_interval(smoothing, "smoothing", 0.0, 1.0, closed_low=False)
  k = state.probs.shape[0]
  arm = _check_arm(arm, k)
  onehot = jax.nn.one_hot(arm, k, dtype=jnp.float32)
  r = jnp.asarray(reward, jnp.float32)
  sim = jnp.where(onehot > 0, (1.0 - smoothing) * state.similarity + smoothing * r, state.similarity)
  cum = state.cumulative_reward + onehot * sim / state.probs
  step = state.step + 1
  eps_prev = _exp3_eps(step, k)       # eps of the round just played (t = step)
  eps_now = _exp3_eps(step + 1, k)    # eps of the next round
  return Exp3FladState(step=step, similarity=sim, cumulative_reward=cum, probs=_exp3_probs(cum, eps_prev, eps_now))


def ucb1_flad_init(initial_rewards: Any) -> Ucb1FladState:
  """The UCB1-FLAD state after pulling every arm once: R_hat = those rewards, n_a = 1, t = K.

  Args:
    initial_rewards: [K] the alignment measured once for each auxiliary dataset (the official code requires this
      warm start, `weight_initialization_samples` > 0).

  References:
    Albalak, Raffel, Wang. "Improving Few-Shot Generalization by Exploring and Exploiting Auxiliary Data". NeurIPS
    2023. arXiv:2302.00674, Algorithm 2 (UCB1-FLAD).
  """
  r = validation.check_floating(initial_rewards, "initial_rewards")
  if r.ndim != 1 or r.shape[0] < 1:
    raise ValueError(f"initial_rewards must be [K] with K >= 1, got shape {r.shape}")
  k = r.shape[0]
  return Ucb1FladState(step=jnp.asarray(k, jnp.int32), similarity=r.astype(jnp.float32),
                       pulls=jnp.ones([k], jnp.float32))


def ucb1_flad_scores(state: Ucb1FladState) -> jax.Array:
  """R_hat_a + sqrt(2 ln t / n_a) for every arm [K].

  Albalak et al., "Improving Few-Shot Generalization by Exploring and Exploiting Auxiliary Data", NeurIPS 2023,
  arXiv:2302.00674 (UCB1-FLAD, Alg. 2). Returns float32 [K].
  """
  t = jnp.maximum(state.step.astype(jnp.float32), 1.0)
  return state.similarity + jnp.sqrt(2.0 * jnp.log(t) / state.pulls)


def ucb1_flad_select(state: Ucb1FladState) -> jax.Array:
  """The arm of this round: argmax of `ucb1_flad_scores` (the lowest index among ties), an int32 scalar.

  Albalak et al., "Improving Few-Shot Generalization by Exploring and Exploiting Auxiliary Data", NeurIPS 2023,
  arXiv:2302.00674 (UCB1-FLAD, Alg. 2). Returns an int32 scalar in [0, K).
  """
  return jnp.argmax(ucb1_flad_scores(state)).astype(jnp.int32)


def ucb1_flad_update(state: Ucb1FladState, arm: Any, reward: Any, *, smoothing: float = 1.0) -> Ucb1FladState:
  """One UCB1-FLAD round: smooth the played arm's reward, count the pull (Alg. 2).

  Args:
    state: the current state.
    arm: the index played (normally `ucb1_flad_select(state)`), an int scalar in [0, K) (a concrete index outside
      raises ValueError).
    reward: its reward (gradient alignment).
    smoothing: beta in (0, 1], the EMA weight of the new reward.

  Returns:
    The next state.

  References:
    Albalak, Raffel, Wang. "Improving Few-Shot Generalization by Exploring and Exploiting Auxiliary Data". NeurIPS
    2023. arXiv:2302.00674, Algorithm 2 (UCB1-FLAD).
  """
  validation.check_in_interval(smoothing, "smoothing", 0.0, 1.0, closed_low=False)
  k = state.similarity.shape[0]
  onehot = jax.nn.one_hot(_check_arm(arm, k), k, dtype=jnp.float32)
  r = jnp.asarray(reward, jnp.float32)
  sim = jnp.where(onehot > 0, (1.0 - smoothing) * state.similarity + smoothing * r, state.similarity)
  return Ucb1FladState(step=state.step + 1, similarity=sim, pulls=state.pulls + onehot)


__all__ = ["Exp3FladState", "Ucb1FladState", "exp3_flad_init", "exp3_flad_sample", "exp3_flad_update",
           "gradient_alignment", "ucb1_flad_init", "ucb1_flad_scores", "ucb1_flad_select", "ucb1_flad_update"]
