"""Threshold-Consistent Margin (TCM) loss and the OPIS threshold-inconsistency metric for deep metric learning.

Paper [10]: Qin Zhang, Linghan Xu, Qingming Tang, Jun Fang, Ying Nian Wu, Joe Tighe, Yifan Xing, "Threshold-Consistent
Margin Loss for Open-World Deep Metric Learning", ICLR 2024, arXiv:2307.04047 (the OPIS metric and the TCM loss).
Maintained reference: pytorch-metric-learning's `ThresholdConsistentMarginLoss` (the parity test compares to it).

TCM is a regulariser added to a base DML loss. On cosine similarities S_ij of all pairs in the batch it penalises
only the hard pairs: positives (same label, i != j) below the positive margin m+, and negatives above m-,

    L_TCM = lam+ * sum_{pos, S <= m+} (m+ - S) / #{pos, S <= m+}
          + lam- * sum_{neg, S >= m-} (S - m-) / #{neg, S >= m-},

each term 0 when its set is empty (defaults m+ = 0.9, m- = 0.5, lam+ = lam- = 1, as pytorch-metric-learning). TCM is
a batch-level loss (means over the hard pairs): it returns a scalar, not per-example values.

OPIS (Operating-Point-Inconsistency Score) measures how much each class's utility-vs-threshold curve deviates from
the overall one over a calibration range of thresholds [d_min, d_max]:

    OPIS = (1/T) sum_{i=1}^{T} (1/(d_max - d_min)) int_{d_min}^{d_max} (U_i(d) - U(d))^2 dd,

with U the F1 score of pair verification (a pair is declared a match when S >= d), U_i computed on the pairs whose
anchor belongs to class i and U on all pairs. We evaluate the integral as the average over the given (uniform)
threshold grid. NOTE: the choice of F1 as the utility is our reading of the paper (it allows other utilities).

epsilon-OPIS compares the extremes instead of the spread: with the classes ranked by their mean utility over the
calibration range, U_worst(d) and U_best(d) are the utilities pooled over the worst and the best ceil(eps T) classes,

    eps-OPIS = (1/(d_max - d_min)) int_{d_min}^{d_max} (U_worst(d) - U_best(d))^2 dd,

again averaged over the threshold grid. NOTE: the ranking by mean utility and the pooling of a group's pairs are our
reading of the paper's "utility of the eps-percentile best and worst classes"; the paper's text was not available.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation
from jaxlib_methods.validation import check_in_interval, check_nonnegative


def cosine_similarity_matrix(embeddings: jax.Array, eps: float = 1e-12) -> jax.Array:
  """S_ij = <e_i, e_j> / (|e_i| |e_j|) (Zhang et al. 2024, arXiv:2307.04047). [N, D] floating -> [N, N] (float32
  or wider; NaN rows and columns for embeddings holding NaN)."""
  e = validation.check_floating(embeddings, "embeddings")
  if e.ndim != 2:
    raise ValueError(f"embeddings must have shape [N, D], got embeddings.shape={e.shape}")
  e = e.astype(validation.compute_dtype_for(e.dtype))
  sq = jnp.sum(e * e, axis=-1, keepdims=True)
  e = e * jax.lax.rsqrt(jnp.maximum(sq, eps))
  return e @ e.T


def _check_sim_labels(sim: Any, labels: Any) -> None:
  validation.check_floating(sim, "sim")
  validation.check_integer(labels, "labels")
  if jnp.ndim(sim) != 2 or jnp.shape(sim)[0] != jnp.shape(sim)[1]:
    raise ValueError(f"sim must be a square [N, N] similarity matrix, got sim.shape={jnp.shape(sim)}")
  if jnp.shape(labels) != (jnp.shape(sim)[0],):
    raise ValueError(f"labels must have shape [N] matching sim, got labels.shape={jnp.shape(labels)}, "
                     f"sim.shape={jnp.shape(sim)}")
  validation.check_min_size(sim, "sim", 1)


def _nan_if_any_nan(out: jax.Array, s: jax.Array) -> jax.Array:
  """A NaN similarity fails every margin comparison and would silently drop out of the sums, and an infinite one is
  no cosine similarity: either makes the result NaN (the diagonal is ignored)."""
  off = ~jnp.eye(s.shape[0], dtype=bool)
  return validation.nan_where_invalid(out, ~jnp.any(~jnp.isfinite(s) & off))


def _pair_masks(labels: jax.Array):
  n = labels.shape[0]
  same = labels[:, None] == labels[None, :]
  off = ~jnp.eye(n, dtype=bool)
  return same & off, ~same


def tcm_loss_from_similarity(sim: jax.Array, labels: jax.Array, *, m_pos: Any = 0.9, m_neg: Any = 0.5,
                             lam_pos: Any = 1.0, lam_neg: Any = 1.0) -> jax.Array:
  """TCM regulariser on a similarity matrix (Zhang et al. 2024, arXiv:2307.04047). Scalar.

  Args:
    sim: [N, N] cosine similarities of the batch embeddings (floating, N >= 1).
    labels: [N] integer class labels (any integers: only equality matters).
    m_pos, m_neg: the positive and negative margins m+, m- in [-1, 1].
    lam_pos, lam_neg: weights >= 0 of the two terms.

  Returns:
    Scalar loss (float32 or wider); NaN if an off-diagonal similarity is NaN or infinite.
  """
  _check_sim_labels(sim, labels)
  check_in_interval(m_pos, "m_pos", -1.0, 1.0)
  check_in_interval(m_neg, "m_neg", -1.0, 1.0)
  check_nonnegative(lam_pos, "lam_pos")
  check_nonnegative(lam_neg, "lam_neg")
  s = jnp.asarray(sim).astype(jnp.promote_types(jnp.asarray(sim).dtype, jnp.float32))
  pos, neg = _pair_masks(jnp.asarray(labels))
  hard_pos = pos & (s <= m_pos)
  hard_neg = neg & (s >= m_neg)
  n_hp = jnp.sum(hard_pos)
  n_hn = jnp.sum(hard_neg)
  pos_term = jnp.sum(jnp.where(hard_pos, m_pos - s, 0.0)) / jnp.maximum(n_hp, 1)
  neg_term = jnp.sum(jnp.where(hard_neg, s - m_neg, 0.0)) / jnp.maximum(n_hn, 1)
  return _nan_if_any_nan(lam_pos * pos_term + lam_neg * neg_term, s)


def tcm_loss(embeddings: jax.Array, labels: jax.Array, *, m_pos: Any = 0.9, m_neg: Any = 0.5,
             lam_pos: Any = 1.0, lam_neg: Any = 1.0) -> jax.Array:
  """TCM regulariser from embeddings [N, D] (floating, N >= 1) and integer labels [N] (cosine similarity; Zhang et
  al. 2024, arXiv:2307.04047). Scalar; NaN if an embedding holds NaN."""
  validation.check_floating(embeddings, "embeddings")
  validation.check_min_size(embeddings, "embeddings", 1)
  validation.check_integer(labels, "labels")
  if jnp.ndim(embeddings) != 2 or jnp.shape(labels) != (jnp.shape(embeddings)[0],):
    raise ValueError(f"embeddings must be [N, D] and labels [N], got embeddings.shape={jnp.shape(embeddings)}, "
                     f"labels.shape={jnp.shape(labels)}")
  return tcm_loss_from_similarity(cosine_similarity_matrix(embeddings), labels, m_pos=m_pos, m_neg=m_neg,
                                  lam_pos=lam_pos, lam_neg=lam_neg)


def _f1(tp, fp, fn):
  den = 2 * tp + fp + fn
  return jnp.where(den > 0, 2 * tp / jnp.where(den > 0, den, 1), 0.0)


def opis(sim: jax.Array, labels: jax.Array, thresholds: jax.Array, *, num_classes: int) -> jax.Array:
  """Operating-Point-Inconsistency Score (Zhang et al. 2024, arXiv:2307.04047), F1 utility.

  Args:
    sim: [N, N] pair similarities (the diagonal is ignored), floating, N >= 1.
    labels: [N] integer labels in [0, num_classes) (out of range: ValueError eagerly, NaN under jit); classes
      absent from the batch are skipped.
    thresholds: [D] floating, uniform grid over the calibration range [d_min, d_max] (a pair matches when
      sim >= d).
    num_classes: static number of classes T.

  Returns:
    Scalar OPIS >= 0 (0 when every class has the same F1 curve as the whole set); NaN if an off-diagonal
    similarity or a threshold is NaN or infinite.
  """
  s, d, tp_c, fp_c, fn_c, present, valid = _opis_counts(sim, labels, thresholds, num_classes)
  u_c = _f1(tp_c, fp_c, fn_c)
  u_all = _f1(jnp.sum(tp_c, -1), jnp.sum(fp_c, -1), jnp.sum(fn_c, -1))  # [D]
  per_class = jnp.mean((u_c - u_all[:, None]) ** 2, axis=0)  # [T]
  out = jnp.sum(jnp.where(present, per_class, 0.0)) / jnp.maximum(jnp.sum(present), 1)
  out = validation.nan_where_invalid(_nan_if_any_nan(out, s), valid)
  return validation.nan_where_invalid(out, jnp.all(jnp.isfinite(d)))


def _opis_counts(sim, labels, thresholds, num_classes):
  """Shared checks and per-class pair counts: (tp_c, fp_c, fn_c [D, T], present [T], validity)."""
  _check_sim_labels(sim, labels)
  validation.check_floating(thresholds, "thresholds")
  if jnp.ndim(thresholds) != 1 or jnp.shape(thresholds)[0] < 1:
    raise ValueError(f"thresholds must have shape [D] with D >= 1, got thresholds.shape={jnp.shape(thresholds)}")
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes <= 0:
    raise ValueError(f"num_classes must be a positive int, got {num_classes=}")
  valid = validation.check_labels(labels, num_classes)
  s = jnp.asarray(sim).astype(jnp.float32)
  y = jnp.asarray(labels)
  pos, neg = _pair_masks(y)
  d = jnp.asarray(thresholds, jnp.float32)
  accept = s[None, :, :] >= d[:, None, None]  # [D, N, N]
  tp_row = jnp.sum(accept & pos, axis=-1)  # [D, N]: per anchor
  fn_row = jnp.sum(~accept & pos, axis=-1)
  fp_row = jnp.sum(accept & neg, axis=-1)
  onehot = jax.nn.one_hot(y, num_classes, dtype=jnp.float32)  # [N, T]
  tp_c, fn_c, fp_c = (x.astype(jnp.float32) @ onehot for x in (tp_row, fn_row, fp_row))  # [D, T]
  present = jnp.sum(onehot, axis=0) > 0
  return s, d, tp_c, fp_c, fn_c, present, valid


def epsilon_opis(sim: jax.Array, labels: jax.Array, thresholds: jax.Array, *, num_classes: int,
                 epsilon: float = 0.05) -> jax.Array:
  """epsilon-OPIS: the mean squared gap between the utility of the worst and of the best eps-fraction of classes over
  the calibration thresholds (Zhang et al. 2024, arXiv:2307.04047, the eps-OPIS metric; F1 utility; see the module
  note on the ranking).

  Args:
    sim: [N, N] pair similarities (the diagonal is ignored), floating, N >= 1.
    labels: [N] integer labels in [0, num_classes) (out of range: ValueError eagerly, NaN under jit); classes
      absent from the batch are not ranked.
    thresholds: [D] floating, uniform grid over the calibration range (a pair matches when sim >= d).
    num_classes: static number of classes T.
    epsilon: the fraction in (0, 0.5] of classes in each group (at least one class per group).

  Returns:
    Scalar eps-OPIS >= 0 (0 when the worst and best groups have the same utility curve); NaN if an off-diagonal
    similarity or a threshold is NaN or infinite.
  """
  if not validation.is_concrete_number(epsilon):
    raise ValueError(f"epsilon must be a concrete number (it sets the group size), got {epsilon=}")
  check_in_interval(epsilon, "epsilon", 0.0, 0.5, closed_low=False)
  s, d, tp_c, fp_c, fn_c, present, valid = _opis_counts(sim, labels, thresholds, num_classes)
  u_c = _f1(tp_c, fp_c, fn_c)  # [D, T]
  score = jnp.mean(u_c, axis=0)  # the ranking: mean utility over the calibration range
  n_present = jnp.sum(present)
  m = jnp.maximum(jnp.ceil(float(epsilon) * n_present), 1.0)
  rank_up = jnp.argsort(jnp.argsort(jnp.where(present, score, jnp.inf)))   # 0 = worst present class
  rank_down = jnp.argsort(jnp.argsort(jnp.where(present, -score, jnp.inf)))  # 0 = best present class
  worst = (present & (rank_up < m)).astype(jnp.float32)
  best = (present & (rank_down < m)).astype(jnp.float32)

  def pooled(group):
    return _f1(tp_c @ group, fp_c @ group, fn_c @ group)  # [D]

  out = jnp.mean((pooled(worst) - pooled(best)) ** 2)
  out = validation.nan_where_invalid(_nan_if_any_nan(out, s), valid)
  return validation.nan_where_invalid(out, jnp.all(jnp.isfinite(d)))


__all__ = ["cosine_similarity_matrix", "epsilon_opis", "opis", "tcm_loss", "tcm_loss_from_similarity"]
