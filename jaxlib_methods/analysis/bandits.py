"""Action selection of contextual bandits by reduction to online regression: inverse-gap weighting (SquareCB) and
its KL-loss counterpart (FastCB), as used by neural contextual bandits.

Paper [181]: Rohan Deb, Yikun Ban, Shiliang Zuo, Jingrui He, Arindam Banerjee, "Contextual Bandits with Online
Neural Regression", ICLR 2024, arXiv:2312.07145 (NeuSquareCB and NeuFastCB). The weightings are those of
Foster & Rakhlin, "Beyond UCB: Optimal and Efficient Contextual Bandits with Regression Oracles", ICML 2020,
arXiv:2002.04926 (SquareCB), and Foster & Krishnamurthy, "Efficient First-Order Contextual Bandits", NeurIPS 2021,
arXiv:2107.03455 (FastCB). With predicted losses yhat_a of K actions and b = argmin_a yhat_a:

    SquareCB: p_a = 1 / (K + gamma (yhat_a - yhat_b)),                     a != b;  p_b = 1 - sum_{a != b} p_a
    FastCB:   p_a = yhat_b / (K yhat_b + gamma (yhat_a - yhat_b)),         a != b;  p_b = 1 - sum_{a != b} p_a
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def _prep(predicted_losses: Any, gamma: Any):
  y = validation.check_floating(predicted_losses, "predicted_losses")
  if y.ndim < 1 or y.shape[-1] < 1:
    raise ValueError(f"predicted_losses must be [..., K] with K >= 1 actions, got shape {y.shape}")
  g = validation.check_floating(gamma, "gamma")
  valid = validation.check_values(jnp.isfinite(g) & (g >= 0), g, "gamma", "finite and >= 0")
  dt = validation.compute_dtype_for(y.dtype)
  y = y.astype(dt)
  best = jnp.argmin(y, -1)
  is_best = jax.nn.one_hot(best, y.shape[-1], dtype=bool)
  gap = y - jnp.min(y, -1, keepdims=True)
  return y, jnp.asarray(g, dt)[..., None] if jnp.ndim(g) else jnp.asarray(g, dt), is_best, gap, valid


def _finish(p_other, is_best, valid, dtype):
  p_other = jnp.where(is_best, 0.0, p_other)
  p = jnp.where(is_best, 1.0 - p_other.sum(-1, keepdims=True), p_other)
  return validation.nan_where_invalid(p, valid).astype(dtype)


def inverse_gap_weighting(predicted_losses: Any, gamma: Any) -> jax.Array:
  """SquareCB's inverse-gap weighting of K actions from predicted losses (Deb et al., ICLR 2024, arXiv:2312.07145,
  NeuSquareCB; Foster & Rakhlin 2020, arXiv:2002.04926, Alg. 1): p_a = 1 / (K + gamma (yhat_a - min yhat))
  for the non-greedy actions, the rest on the greedy one (ties: the first minimiser).

  Args:
    predicted_losses: [..., K] float predicted losses (lower is better).
    gamma: learning-rate-like exploration parameter >= 0 (a number or [...]); 0 gives the uniform distribution.

  Returns:
    [..., K] action probabilities (sum to 1, the greedy action >= 1/K).
  """
  y, g, is_best, gap, valid = _prep(predicted_losses, gamma)
  return _finish(1.0 / (y.shape[-1] + g * gap), is_best, valid, y.dtype)


def fastcb_weighting(predicted_losses: Any, gamma: Any) -> jax.Array:
  """FastCB's weighting for losses in [0, 1] learnt with the KL (log) loss (Deb et al., ICLR 2024,
  arXiv:2312.07145, NeuFastCB; Foster & Krishnamurthy 2021, arXiv:2107.03455, Alg. 1):
  p_a = yhat_b / (K yhat_b + gamma (yhat_a - yhat_b)) for a != b = argmin yhat, the rest on b; a greedy loss of 0
  puts all the mass on the greedy action.

  Args:
    predicted_losses: [..., K] float predicted losses in [0, 1].
    gamma: exploration parameter >= 0 (a number or [...]).

  Returns:
    [..., K] action probabilities.
  """
  y0 = validation.check_floating(predicted_losses, "predicted_losses")
  vy = validation.check_values((y0 >= 0) & (y0 <= 1), y0, "predicted_losses", "in [0, 1]")
  y, g, is_best, gap, valid = _prep(predicted_losses, gamma)
  yb = jnp.min(y, -1, keepdims=True)
  denom = y.shape[-1] * yb + g * gap
  p_other = jnp.where(denom > 0, yb / jnp.where(denom > 0, denom, 1.0), 0.0)
  p = _finish(p_other, is_best, valid, y.dtype)
  return validation.nan_where_invalid(p, vy)
