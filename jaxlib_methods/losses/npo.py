"""NPO (Negative Preference Optimization) for unlearning, and the gradient-ascent baseline.

Paper [182]: Ruiqi Zhang, Licong Lin, Yu Bai, Song Mei, "Negative Preference Optimization: From Catastrophic
Collapse to Effective Unlearning", COLM 2024, arXiv:2404.05868 (the NPO loss and its gradient).
Official code: github.com/licong-lin/negative-preference-optimization.

With log pi_theta(y | x) the model's sequence log-probability of a forget-set response and log pi_ref the same
under the frozen initial (reference) model:

    L_GA  = E[ log pi_theta(y | x) ]                              (gradient ascent on the NLL = descent on L_GA)
    L_NPO = -(2 / beta) E[ log sigmoid( -beta (log pi_theta - log pi_ref) ) ]
          =  (2 / beta) E[ log(1 + (pi_theta / pi_ref)^beta) ]

The official code writes it as `-F.logsigmoid(beta * (nll_theta - nll_ref)) * 2 / beta` (default beta = 0.1).
Its gradient is a re-weighted GA gradient,

    grad L_NPO = E[ W * grad log pi_theta ],   W = 2 pi_theta^beta / (pi_theta^beta + pi_ref^beta) in (0, 2),

and beta -> 0 recovers L_GA up to a constant (2/beta log 2 + L_GA + O(beta)). The adaptive weight W -> 0 as the
forget response becomes unlikely, which is why NPO's collapse is exponentially slower than GA's.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxlib_methods.validation import check_positive


def _check_pair(logp: Any, logp_ref: Any) -> None:
  if jnp.shape(logp) != jnp.shape(logp_ref):
    raise ValueError(f"logp and logp_ref must have the same shape (one per forget example), got {jnp.shape(logp)=}, "
                     f"{jnp.shape(logp_ref)=}")
  for name, v in (("logp", logp), ("logp_ref", logp_ref)):
    if not jnp.issubdtype(jnp.asarray(v).dtype, jnp.floating):
      raise ValueError(f"{name} must be floating point, got {jnp.asarray(v).dtype=}")


def ga_loss(logp: jax.Array) -> jax.Array:
  """Gradient-ascent unlearning loss per example: log pi_theta(y|x) (minimise it). [...] -> [...]."""
  if not jnp.issubdtype(jnp.asarray(logp).dtype, jnp.floating):
    raise ValueError(f"logp must be floating point, got {jnp.asarray(logp).dtype=}")
  return jnp.asarray(logp)


def npo_loss(logp: jax.Array, logp_ref: jax.Array, *, beta: Any = 0.1) -> jax.Array:
  """NPO loss per example: -(2/beta) log sigmoid(-beta (logp - logp_ref)) (Zhang et al. 2024, arXiv:2404.05868).

  Args:
    logp: [...] sequence log-probabilities log pi_theta(y|x) of forget-set responses (sum over tokens).
    logp_ref: [...] the same under the frozen reference model (gradient is not taken through it).
    beta: inverse temperature beta > 0 (official default 0.1).

  Returns:
    [...] per-example loss (>= 0), in logp's dtype (half precision computed in float32).

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(npo_loss(jnp.array(0.0), jnp.array(0.0), beta=1.0)), 4)  # 2 log 2
    1.3863
  """
  _check_pair(logp, logp_ref)
  check_positive(beta, "beta")
  dtype = jnp.asarray(logp).dtype
  ct = jnp.promote_types(dtype, jnp.float32)
  ratio = jnp.asarray(logp).astype(ct) - jax.lax.stop_gradient(jnp.asarray(logp_ref)).astype(ct)
  return (-(2.0 / beta) * jax.nn.log_sigmoid(-beta * ratio)).astype(dtype)


def npo_weight(logp: jax.Array, logp_ref: jax.Array, *, beta: Any = 0.1) -> jax.Array:
  """W = 2 pi^beta / (pi^beta + pi_ref^beta) = 2 sigmoid(beta (logp - logp_ref)) in (0, 2); grad NPO = W grad GA."""
  _check_pair(logp, logp_ref)
  check_positive(beta, "beta")
  ct = jnp.promote_types(jnp.asarray(logp).dtype, jnp.float32)
  return 2.0 * jax.nn.sigmoid(beta * (jnp.asarray(logp).astype(ct) - jnp.asarray(logp_ref).astype(ct)))


def sequence_log_prob(logits: jax.Array, targets: jax.Array, mask: Any = None) -> jax.Array:
  """Sum over tokens of log softmax(logits)[target]: [B, T, V], [B, T] (, mask [B, T]) -> [B]."""
  if jnp.ndim(logits) != 3 or jnp.shape(targets) != jnp.shape(logits)[:2]:
    raise ValueError(f"logits must be [B, T, V] and targets [B, T], got {jnp.shape(logits)=}, {jnp.shape(targets)=}")
  ct = jnp.promote_types(jnp.asarray(logits).dtype, jnp.float32)
  logp = jax.nn.log_softmax(jnp.asarray(logits).astype(ct), axis=-1)
  tok = jnp.take_along_axis(logp, jnp.asarray(targets)[..., None], axis=-1)[..., 0]
  if mask is not None:
    if jnp.shape(mask) != jnp.shape(targets):
      raise ValueError(f"mask must have the shape of targets, got {jnp.shape(mask)=}, {jnp.shape(targets)=}")
    tok = tok * jnp.asarray(mask, tok.dtype)
  return jnp.sum(tok, axis=-1)


__all__ = ["ga_loss", "npo_loss", "npo_weight", "sequence_log_prob"]
