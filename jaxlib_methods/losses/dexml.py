"""DEXML: decoupled softmax and soft top-k losses for dual-encoder (extreme) multi-label classification.

Paper [213]: Nilesh Gupta, Devvrit Khatri, Ankit Singh Rawat, Srinadh Bhojanapalli, Prateek Jain, Inderjit S.
Dhillon, "Dual-Encoders for Extreme Multi-Label Classification", ICLR 2024, arXiv:2310.10636 (the
decoupled softmax loss, and the soft top-k loss). Official code: github.com/nilesh2797/DEXML (`losses.py`,
`utils/topk_utils.py`), whose reductions we follow.

Scores s_j = <q, d_j> of a query against a pool of L labels; P = the query's positive labels, N = the rest.

Decoupled softmax: the multi-positive InfoNCE loss -sum_{l in P} log(e^{s_l} / sum_j e^{s_j}) makes the positives
compete in the denominator (its value is >= log |P| > 0 even for perfect scores). Decoupled softmax removes the
other positives from each positive's denominator:

    L_DS = -(1/|P|) sum_{l in P} log( e^{s_l} / (e^{s_l} + sum_{j in N} e^{s_j}) ),

which tends to 0 when every positive outscores every negative by a growing gap.

Soft top-k (for top-k retrieval metrics): p_j = sigmoid(alpha (s_j + t)), with the threshold t chosen (bisection)
so that sum_j p_j = k; then L_topk = -(1/|P|) sum_{l in P} log p_l. The gradient through t is the implicit one,
dt/ds_j = -v_j / sum_i v_i with v_j = sigmoid'(alpha (s_j + t)), as in the official `TopK` autograd function.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.validation import check_positive, is_concrete_number


def _check_scores_mask(scores: Any, pos_mask: Any) -> None:
  if jnp.ndim(scores) != 2:
    raise ValueError(f"scores must have shape [B, L], got {jnp.shape(scores)=}")
  if jnp.shape(pos_mask) != jnp.shape(scores):
    raise ValueError(f"pos_mask must have the shape of scores [B, L], got {jnp.shape(pos_mask)=}, {jnp.shape(scores)=}")
  if jnp.asarray(pos_mask).dtype != jnp.bool_:
    raise ValueError(f"pos_mask must be boolean, got {jnp.asarray(pos_mask).dtype=}")
  if not jnp.issubdtype(jnp.asarray(scores).dtype, jnp.floating):
    raise ValueError(f"scores must be floating point, got {jnp.asarray(scores).dtype=}")


def _masked_logsumexp(x: jax.Array, mask: jax.Array) -> jax.Array:
  """logsumexp over mask == True along the last axis; -inf (with zero gradient) where the mask is empty."""
  big_neg = jnp.finfo(x.dtype).min
  m = jnp.max(jnp.where(mask, x, big_neg), axis=-1, keepdims=True)
  m = jax.lax.stop_gradient(jnp.where(jnp.any(mask, axis=-1, keepdims=True), m, 0.0))
  s = jnp.sum(jnp.where(mask, jnp.exp(jnp.where(mask, x - m, 0.0)), 0.0), axis=-1)
  safe = jnp.where(s > 0, s, 1.0)
  return jnp.where(s > 0, m[..., 0] + jnp.log(safe), -jnp.inf)


def _mean_over_positives(per_label: jax.Array, pos_mask: jax.Array) -> jax.Array:
  n_pos = jnp.sum(pos_mask, axis=-1)
  tot = jnp.sum(jnp.where(pos_mask, per_label, 0.0), axis=-1)
  return tot / jnp.maximum(n_pos, 1).astype(tot.dtype)


def decoupled_softmax_loss(scores: jax.Array, pos_mask: jax.Array) -> jax.Array:
  """Decoupled softmax loss per query (Gupta et al. 2024, arXiv:2310.10636; official `decoupled-softmax`).

  Args:
    scores: [B, L] query-label scores (already divided by any temperature).
    pos_mask: [B, L] bool, True at the query's positive labels.

  Returns:
    [B] loss in the scores' dtype (half precision computed in float32); 0 for queries without positives.
  """
  _check_scores_mask(scores, pos_mask)
  dtype = jnp.asarray(scores).dtype
  s = jnp.asarray(scores).astype(jnp.promote_types(dtype, jnp.float32))
  pos = jnp.asarray(pos_mask)
  lse_neg = _masked_logsumexp(s, ~pos)[:, None]
  nll = jnp.logaddexp(lse_neg, s) - s  # -log(e^{s_l} / (e^{s_l} + sum_N e^{s_j}))
  return _mean_over_positives(nll, pos).astype(dtype)


def multi_positive_softmax_loss(scores: jax.Array, pos_mask: jax.Array) -> jax.Array:
  """The baseline: -(1/|P|) sum_{l in P} log softmax(s)_l (positives share the denominator). [B, L] -> [B]."""
  _check_scores_mask(scores, pos_mask)
  dtype = jnp.asarray(scores).dtype
  s = jnp.asarray(scores).astype(jnp.promote_types(dtype, jnp.float32))
  nll = -jax.nn.log_softmax(s, axis=-1)
  return _mean_over_positives(nll, jnp.asarray(pos_mask)).astype(dtype)


def _bisect_threshold(s: jax.Array, k: jax.Array, alpha: float, n_iter: int) -> jax.Array:
  lo = -jnp.max(s, axis=-1) - 10.0 / alpha
  hi = -jnp.min(s, axis=-1) + 10.0 / alpha

  def body(_, lohi):
    lo, hi = lohi
    mid = 0.5 * (lo + hi)
    below = jnp.sum(jax.nn.sigmoid(alpha * (s + mid[:, None])), axis=-1) < k
    return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

  lo, hi = jax.lax.fori_loop(0, n_iter, body, (lo, hi))
  return 0.5 * (lo + hi)


def soft_topk_threshold(scores: jax.Array, k: Any, *, alpha: float = 1.0, n_iter: int = 64) -> jax.Array:
  """Threshold t [B] with sum_j sigmoid(alpha (s_j + t)) = k, differentiable (implicit gradient). [B, L] -> [B]."""
  return _soft_topk_threshold(jnp.asarray(scores), jnp.asarray(k, jnp.asarray(scores).dtype), float(alpha),
                              int(n_iter))


def _soft_topk_threshold_impl(s, k, alpha, n_iter):
  return _bisect_threshold(jax.lax.stop_gradient(s), k, alpha, n_iter)


_soft_topk_threshold = jax.custom_vjp(_soft_topk_threshold_impl, nondiff_argnums=(2, 3))


def _stt_fwd(s, k, alpha, n_iter):
  t = _soft_topk_threshold_impl(s, k, alpha, n_iter)
  return t, (s, t)


def _stt_bwd(alpha, n_iter, res, ct):
  s, t = res
  x = jax.nn.sigmoid(alpha * (s + t[:, None]))
  v = x * (1.0 - x)
  tot = jnp.sum(v, axis=-1, keepdims=True)
  dt_ds = -v / jnp.maximum(tot, jnp.finfo(v.dtype).tiny)
  return ct[:, None] * dt_ds, None


_soft_topk_threshold.defvjp(_stt_fwd, _stt_bwd)


def soft_topk_loss(scores: jax.Array, pos_mask: jax.Array, k: Any, *, alpha: float = 1.0,
                   n_iter: int = 64) -> jax.Array:
  """Soft top-k loss per query: -(1/|P|) sum_{l in P} log sigmoid(alpha (s_l + t)) (Gupta et al. 2024).

  Args:
    scores: [B, L]; pos_mask: [B, L] bool.
    k: the top-k budget, 0 < k < L: an int, or [B] (e.g. the number of positives per query, as the official
      `num_pos` option).
    alpha: sharpness alpha > 0 of the sigmoid (concrete, static).
    n_iter: bisection steps for the threshold (64 reaches float precision).

  Returns:
    [B] loss in the scores' dtype (computed in float32 or wider); 0 for queries without positives.
  """
  _check_scores_mask(scores, pos_mask)
  if not is_concrete_number(alpha):
    raise ValueError(f"alpha must be a concrete number (close over it, do not trace it), got {alpha=}")
  check_positive(alpha, "alpha")
  if not isinstance(n_iter, (int, np.integer)) or n_iter <= 0:
    raise ValueError(f"n_iter must be a positive int, got {n_iter=}")
  num_labels = jnp.shape(scores)[1]
  if jnp.ndim(k) not in (0, 1) or (jnp.ndim(k) == 1 and jnp.shape(k)[0] != jnp.shape(scores)[0]):
    raise ValueError(f"k must be an int or have shape [B], got {jnp.shape(k)=}")
  if not isinstance(k, jax.core.Tracer):
    kv = np.asarray(k)
    if np.any(kv <= 0) or np.any(kv >= num_labels):
      raise ValueError(f"k must satisfy 0 < k < L={num_labels}, got {k=}")
  dtype = jnp.asarray(scores).dtype
  s = jnp.asarray(scores).astype(jnp.promote_types(dtype, jnp.float32))
  t = soft_topk_threshold(s, k, alpha=alpha, n_iter=n_iter)
  nll = -jax.nn.log_sigmoid(alpha * (s + t[:, None]))
  return _mean_over_positives(nll, jnp.asarray(pos_mask)).astype(dtype)


__all__ = [
    "decoupled_softmax_loss",
    "multi_positive_softmax_loss",
    "soft_topk_loss",
    "soft_topk_threshold",
]
