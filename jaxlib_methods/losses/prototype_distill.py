"""Prototype-sample relation distillation for replay-free continual learning (ls19b, issue 19, catalog [59]).

Paper: Nader Asadi, MohammadReza Davari, Sudhir Mudur, Rahaf Aljundi, Eugene Belilovsky, "Prototype-Sample Relation
Distillation: Towards Replay-Free Continual Learning", ICML 2023, arXiv:2303.14771. Transcribed from the authors'
pre-release code (naderAsadi/Probing-Continual-Learning, `methods/repe.py`: `relation_distillation_loss`,
`_get_scores`, `_distillation_loss`, `linear_loss`): class prototypes live in the feature space, one head of
prototypes per task; the new task's prototypes follow the features (`prototype_cosine_loss`), the old tasks'
prototypes are kept consistent with the features of the new data by distilling, per old task, the softmax over its
prototypes of the previous model (and previous prototypes) into that of the current model (`prd_loss`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods._norms import safe_l2_norm


def _scores(features: jax.Array, prototypes: jax.Array) -> jax.Array:
  """<f, w_c> / ||w_c|| per task head: features [B, d], prototypes [T, n, d] -> [T, B, n] (official `_get_scores`)."""
  return jnp.einsum("bd,tnd->tbn", features, prototypes) / jnp.linalg.norm(prototypes, axis=-1)[:, None, :]


def prd_loss(features: jax.Array, old_features: jax.Array, prototypes: jax.Array, old_prototypes: jax.Array, *,
             temperature: Any) -> jax.Array:
  """PRD's relation-distillation loss per sample (Asadi et al., ICML 2023, arXiv:2303.14771, Sec. 3.3, the
  prototype-sample relation distillation; official `relation_distillation_loss`).

  For each old task t with prototypes w_tc (c over its n classes), the scores of sample i are
  s_tc(i) = <f_i, w_tc> / ||w_tc|| (features not normalised), and

    L_i = sum_t sum_c -q_tc(i) log p_tc(i),
    q_t(i) = softmax_c(s_tc^old(i) / T)   (previous model's features, previous prototypes; a constant),
    p_t(i) = softmax_c(s_tc(i) / T)       (current features, current prototypes of the old tasks).

  The official batch loss is the mean over samples (of the two augmented views). The teacher side is wrapped in
  `jax.lax.stop_gradient` (the official code computes it under `torch.inference_mode`). The loss is the
  cross-entropy, KL(q || p) plus the teacher's entropy: minimised (for fixed q) at p = q.

  Args:
    features: [B, d] current model's features of the new task's samples.
    old_features: [B, d] the previous model's features of the same samples.
    prototypes: [T, n, d] the current prototypes of the T old tasks (n classes each).
    old_prototypes: [T, n, d] the prototypes as they were at the end of the previous task.
    temperature: T > 0 (the official `distill_temp`).

  Returns:
    [B] per-sample losses in the features' dtype (half precision computed in float32).
  """
  f = validation.check_floating(features, "features")
  fo = validation.check_floating(old_features, "old_features")
  w = validation.check_floating(prototypes, "prototypes")
  wo = validation.check_floating(old_prototypes, "old_prototypes")
  if f.ndim != 2:
    raise ValueError(f"features must be [B, d], got features.shape={f.shape}")
  if fo.shape != f.shape:
    raise ValueError(f"old_features must have the shape of features {f.shape}, got old_features.shape={fo.shape}")
  if w.ndim != 3 or w.shape[-1] != f.shape[1] or w.shape[1] < 1:
    raise ValueError(f"prototypes must be [T, n >= 1, d={f.shape[1]}] (one head per old task), got "
                     f"prototypes.shape={w.shape}")
  if wo.shape != w.shape:
    raise ValueError(f"old_prototypes must have the shape of prototypes {w.shape}, got old_prototypes.shape={wo.shape}")
  validation.check_positive(temperature, "temperature")
  ct = validation.compute_dtype_for(jnp.result_type(f, fo, w, wo))
  q = jax.nn.softmax(jax.lax.stop_gradient(_scores(fo.astype(ct), wo.astype(ct))) / temperature, axis=-1)
  logp = jax.nn.log_softmax(_scores(f.astype(ct), w.astype(ct)) / temperature, axis=-1)
  return jnp.sum(-q * logp, axis=(0, 2)).astype(f.dtype)


def prototype_cosine_loss(features: jax.Array, prototypes: jax.Array, labels: jax.Array) -> jax.Array:
  """PRD's prototype loss per sample: 1 - cos(f_i, w_{y_i}) over the current task's prototypes (Asadi et al., ICML
  2023, arXiv:2303.14771, Sec. 3.2; official `linear_loss`, which applies it to detached features so that only the
  prototypes learn from it: pass `jax.lax.stop_gradient(features)` for that).

  Args:
    features: [B, d] floating features.
    prototypes: [n, d] the current task's prototypes.
    labels: [B] int class indices within the task, in [0, n) (ValueError eagerly, NaN rows under jit).

  Returns:
    [B] per-sample losses in [0, 2] (the features' dtype; half precision computed in float32).
  """
  f = validation.check_floating(features, "features")
  w = validation.check_floating(prototypes, "prototypes")
  if f.ndim != 2:
    raise ValueError(f"features must be [B, d], got features.shape={f.shape}")
  if w.ndim != 2 or w.shape[1] != f.shape[1] or w.shape[0] < 1:
    raise ValueError(f"prototypes must be [n >= 1, d={f.shape[1]}], got prototypes.shape={w.shape}")
  labels = validation.check_integer(labels, "labels")
  if labels.shape != f.shape[:1]:
    raise ValueError(f"labels must have shape [B]={f.shape[:1]}, got labels.shape={labels.shape}")
  valid = validation.check_labels(labels, w.shape[0])
  ct = validation.compute_dtype_for(jnp.result_type(f, w))
  wy = w.astype(ct)[jnp.clip(labels, 0, w.shape[0] - 1)]
  fc = f.astype(ct)
  cos = jnp.sum(fc * wy, -1) / (safe_l2_norm(wy, min_norm=1e-12) * safe_l2_norm(fc, min_norm=1e-12))
  return validation.nan_where_invalid(1.0 - cos, valid).astype(f.dtype)
