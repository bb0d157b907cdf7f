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

from typing import Any, Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods.validation import check_positive


def _check_pair(logp: Any, logp_ref: Any, where: Any):
  logp = validation.check_floating(logp, "logp")
  logp_ref = validation.check_floating(logp_ref, "logp_ref")
  if logp.shape != logp_ref.shape:
    raise ValueError(f"logp and logp_ref must have the same shape (one per forget example), got logp.shape="
                     f"{logp.shape}, logp_ref.shape={logp_ref.shape}")
  return logp, logp_ref, validation.check_where(where, logp.shape)


def ga_loss(logp: jax.Array, *, where: Optional[jax.Array] = None) -> jax.Array:
  """Gradient-ascent unlearning loss per example: log pi_theta(y|x) (minimise it) (Zhang et al. 2024,
  arXiv:2404.05868, the GA baseline). logp: [...] floating -> [...] (0 where `where` is False)."""
  logp = validation.check_floating(logp, "logp")
  where = validation.check_where(where, logp.shape)
  return logp if where is None else jnp.where(where, logp, jnp.zeros((), logp.dtype))


def npo_loss(logp: jax.Array, logp_ref: jax.Array, *, beta: Any = 0.1, where: Optional[jax.Array] = None) -> jax.Array:
  """NPO loss per example: -(2/beta) log sigmoid(-beta (logp - logp_ref)) (Zhang et al. 2024, arXiv:2404.05868).

  Args:
    logp: [...] sequence log-probabilities log pi_theta(y|x) of forget-set responses (sum over tokens), floating.
    logp_ref: [...] the same under the frozen reference model (gradient is not taken through it).
    beta: inverse temperature beta > 0 (official default 0.1).
    where: optional bool [...]: examples to include (the others give 0).

  Returns:
    [...] per-example loss (>= 0), in logp's dtype (half precision computed in float32).

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(npo_loss(jnp.array(0.0), jnp.array(0.0), beta=1.0)), 4)  # 2 log 2
    1.3863
  """
  logp, logp_ref, where = _check_pair(logp, logp_ref, where)
  check_positive(beta, "beta")
  dtype = logp.dtype
  ct = validation.compute_dtype_for(dtype)
  ratio = logp.astype(ct) - jax.lax.stop_gradient(logp_ref).astype(ct)
  if where is not None:
    ratio = jnp.where(where, ratio, jnp.zeros((), ct))
  return validation.finish_per_example(-(2.0 / beta) * jax.nn.log_sigmoid(-beta * ratio), None, where, dtype)


def npo_weight(logp: jax.Array, logp_ref: jax.Array, *, beta: Any = 0.1) -> jax.Array:
  """W = 2 pi^beta / (pi^beta + pi_ref^beta) = 2 sigmoid(beta (logp - logp_ref)) in (0, 2); grad NPO = W grad GA
  (Zhang et al. 2024, arXiv:2404.05868). logp, logp_ref: [...] floating -> [...] float32 or wider."""
  logp, logp_ref, _ = _check_pair(logp, logp_ref, None)
  check_positive(beta, "beta")
  ct = validation.compute_dtype_for(logp.dtype)
  return 2.0 * jax.nn.sigmoid(beta * (logp.astype(ct) - logp_ref.astype(ct)))


def sequence_log_prob(logits: jax.Array, targets: jax.Array, mask: Any = None) -> jax.Array:
  """Sum over tokens of log softmax(logits)[target] (the sequence log-probability NPO uses; Zhang et al. 2024,
  arXiv:2404.05868).

  Args:
    logits: [B, T, V] floating. targets: [B, T] integer token ids in [0, V) (out of range: ValueError eagerly, NaN
      rows under jit).
    mask: optional [B, T], bool or numeric token weights; tokens with mask 0 / False are excluded (their targets
      are not checked, their logits may hold anything).

  Returns:
    [B] float32 or wider.
  """
  if jnp.ndim(logits) != 3 or jnp.shape(targets) != jnp.shape(logits)[:2]:
    raise ValueError(f"logits must be [B, T, V] and targets [B, T], got logits.shape={jnp.shape(logits)}, "
                     f"targets.shape={jnp.shape(targets)}")
  sel = None
  if mask is not None:
    if jnp.shape(mask) != jnp.shape(targets):
      raise ValueError(f"mask must have the shape of targets, got mask.shape={jnp.shape(mask)}, "
                       f"targets.shape={jnp.shape(targets)}")
    mask = jnp.asarray(mask)
    if jnp.issubdtype(mask.dtype, jnp.complexfloating):
      raise TypeError(f"mask must be bool or real, got mask.dtype={mask.dtype}")
    sel = mask.astype(bool) if mask.dtype == jnp.bool_ else (mask != 0)
  c = validation.classification_inputs(logits, targets, where=sel, labels_name="targets")
  logp = jax.nn.log_softmax(c.logits, axis=-1)
  tok = jnp.take_along_axis(logp, c.labels[..., None], axis=-1)[..., 0]
  if mask is not None and mask.dtype != jnp.bool_:
    tok = tok * mask.astype(tok.dtype)
  tok = validation.finish_per_example(tok, c.valid, c.where, tok.dtype)
  return jnp.sum(tok, axis=-1)


__all__ = ["ga_loss", "npo_loss", "npo_weight", "sequence_log_prob"]
