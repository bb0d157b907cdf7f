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

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation
from jaxlib_methods.validation import check_positive, is_concrete_number


def _check_scores_mask(scores: Any, pos_mask: Any) -> None:
  validation.check_floating(scores, "scores")
  validation.check_bool(pos_mask, "pos_mask")
  if jnp.ndim(scores) != 2:
    raise ValueError(f"scores must have shape [B, L], got scores.shape={jnp.shape(scores)}")
  if jnp.shape(pos_mask) != jnp.shape(scores):
    raise ValueError(f"pos_mask must have the shape of scores [B, L], got pos_mask.shape={jnp.shape(pos_mask)}, "
                     f"scores.shape={jnp.shape(scores)}")


def _nan_rows(out: jax.Array, s: jax.Array) -> jax.Array:
  """NaN (value and gradient) for queries with a NaN score: a NaN among the negatives would otherwise vanish."""
  return validation.nan_where_invalid(out, ~jnp.any(jnp.isnan(s), axis=-1))


def _masked_logsumexp(x: jax.Array, mask: jax.Array) -> jax.Array:
  """logsumexp over mask == True along the last axis; -inf (with zero gradient) where the mask is empty."""
  big_neg = jnp.finfo(x.dtype).min
  m = jnp.max(jnp.where(mask, x, big_neg), axis=-1, keepdims=True)
  m = jax.lax.stop_gradient(jnp.where(jnp.any(mask, axis=-1, keepdims=True), m, 0.0))
  s = jnp.sum(jnp.where(mask, jnp.exp(jnp.where(mask, x - m, 0.0)), 0.0), axis=-1)
  safe = jnp.where(s > 0, s, 1.0)
  return jnp.where(s > 0, m[..., 0] + jnp.log(safe), jnp.where(jnp.isnan(s), s, -jnp.inf))


def _mean_over_positives(per_label: jax.Array, pos_mask: jax.Array) -> jax.Array:
  n_pos = jnp.sum(pos_mask, axis=-1)
  tot = jnp.sum(jnp.where(pos_mask, per_label, 0.0), axis=-1)
  return tot / jnp.maximum(n_pos, 1).astype(tot.dtype)


def decoupled_softmax_loss(scores: jax.Array, pos_mask: jax.Array) -> jax.Array:
  """Decoupled softmax loss per query (Gupta et al. 2024, arXiv:2310.10636; official `decoupled-softmax`).

  Args:
    scores: [B, L] floating query-label scores (already divided by any temperature).
    pos_mask: [B, L] bool, True at the query's positive labels.

  Returns:
    [B] loss in the scores' dtype (half precision computed in float32); 0 for queries without positives; NaN for
    queries with a NaN score.
  """
  _check_scores_mask(scores, pos_mask)
  dtype = jnp.asarray(scores).dtype
  s = jnp.asarray(scores).astype(jnp.promote_types(dtype, jnp.float32))
  pos = jnp.asarray(pos_mask)
  lse_neg = _masked_logsumexp(s, ~pos)[:, None]
  nll = jnp.logaddexp(lse_neg, s) - s  # -log(e^{s_l} / (e^{s_l} + sum_N e^{s_j}))
  return _nan_rows(_mean_over_positives(nll, pos), s).astype(dtype)


def multi_positive_softmax_loss(scores: jax.Array, pos_mask: jax.Array) -> jax.Array:
  """The baseline: -(1/|P|) sum_{l in P} log softmax(s)_l (positives share the denominator) (Gupta et al. 2024,
  arXiv:2310.10636). scores [B, L] floating, pos_mask [B, L] bool -> [B] (NaN for queries with a NaN score)."""
  _check_scores_mask(scores, pos_mask)
  dtype = jnp.asarray(scores).dtype
  s = jnp.asarray(scores).astype(jnp.promote_types(dtype, jnp.float32))
  nll = -jax.nn.log_softmax(s, axis=-1)
  return _nan_rows(_mean_over_positives(nll, jnp.asarray(pos_mask)), s).astype(dtype)


# jitted so that eager calls compile the bisection once per (shape, alpha, n_iter): a fresh fori_loop body per call
# otherwise recompiled the whole loop on every eager call (inside an outer jit it is inlined as before)
@functools.partial(jax.jit, static_argnames=("alpha", "n_iter"))
def _bisect_threshold(s: jax.Array, k: jax.Array, alpha: float, n_iter: int) -> jax.Array:
  # Bracket for any L and k: at lo every sigmoid is < k / L (sum < k), at hi every sigmoid is > k / L (sum > k).
  # (Fixed offsets of -+10 / alpha missed the root once L * sigmoid(-10) > k, e.g. L = 50000 labels and k = 1.)
  logit_k = (jnp.log(k) - jnp.log(s.shape[-1] - k)) / alpha
  lo = -jnp.max(s, axis=-1) + logit_k - 1.0 / alpha
  hi = -jnp.min(s, axis=-1) + logit_k + 1.0 / alpha

  def body(_, lohi):
    lo, hi = lohi
    mid = 0.5 * (lo + hi)
    below = jnp.sum(jax.nn.sigmoid(alpha * (s + mid[:, None])), axis=-1) < k
    return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

  lo, hi = jax.lax.fori_loop(0, n_iter, body, (lo, hi))
  return 0.5 * (lo + hi)


def soft_topk_threshold(scores: jax.Array, k: Any, *, alpha: float = 1.0, n_iter: int = 64) -> jax.Array:
  """Threshold t [B] with sum_j sigmoid(alpha (s_j + t)) = k, differentiable (implicit gradient) (Gupta et al. 2024,
  arXiv:2310.10636, soft top-k; official `TopK`). scores [B, L] floating, k in (0, L) -> [B] float32 or wider.

  Rows with a NaN score, or an invalid traced k, give NaN (value and gradient)."""
  s = validation.check_floating(scores, "scores")
  if s.ndim != 2:
    raise ValueError(f"scores must have shape [B, L], got scores.shape={s.shape}")
  k_valid = _check_k(k, s.shape)
  if not is_concrete_number(alpha):
    raise ValueError(f"alpha must be a concrete number (close over it, do not trace it), got {alpha=}")
  check_positive(alpha, "alpha")
  if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter <= 0:
    raise ValueError(f"n_iter must be a positive int, got {n_iter=}")
  s = s.astype(validation.compute_dtype_for(s.dtype))
  t = _soft_topk_threshold(s, jnp.asarray(k, s.dtype), float(alpha), int(n_iter))
  return _nan_rows(validation.nan_where_invalid(t, k_valid), s)


def _check_k(k: Any, shape: tuple):
  """k: an int or [B]; 0 < k < L (ValueError when concrete, a valid mask when traced)."""
  b, num_labels = shape
  if jnp.ndim(k) not in (0, 1) or (jnp.ndim(k) == 1 and jnp.shape(k)[0] != b):
    raise ValueError(f"k must be a number or have shape [B]=({b},), got k.shape={jnp.shape(k)}")
  kv = jnp.asarray(k)
  if kv.dtype == jnp.bool_ or jnp.issubdtype(kv.dtype, jnp.complexfloating):
    raise TypeError(f"k must be a real number, got k.dtype={kv.dtype}")
  return validation.check_values((kv > 0) & (kv < num_labels), k, "k", f"in (0, L={num_labels})")


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
    [B] loss in the scores' dtype (computed in float32 or wider); 0 for queries without positives; NaN for queries
    with a NaN score or (under jit) an invalid k.
  """
  _check_scores_mask(scores, pos_mask)
  dtype = jnp.asarray(scores).dtype
  s = jnp.asarray(scores).astype(jnp.promote_types(dtype, jnp.float32))
  t = soft_topk_threshold(s, k, alpha=alpha, n_iter=n_iter)  # checks k, alpha, n_iter; NaN rows as documented
  nll = -jax.nn.log_sigmoid(alpha * (s + t[:, None]))
  return validation.nan_where_invalid(_mean_over_positives(nll, jnp.asarray(pos_mask)), ~jnp.isnan(t)).astype(dtype)


__all__ = [
    "decoupled_softmax_loss",
    "multi_positive_softmax_loss",
    "soft_topk_loss",
    "soft_topk_threshold",
]
