"""Feature-level knowledge distillation: the ND loss (feature norm and direction against teacher class means).

Paper [56]: Yuzhu Wang, Lechao Cheng, Manni Duan, Yongheng Wang, Zunlei Feng, Shu Kong, "Improving Knowledge
Distillation via Regularizing Feature Norm and Direction", 2023, arXiv:2305.17007. Official code:
https://github.com/WangYZ1608/Knowledge-Distillation-via-ND (`DirectNormLoss.project_center`).

The student's penultimate-layer embedding e_s is pulled towards the direction of the teacher's class mean c_y
(the mean teacher embedding of class y over the training set), while its norm is pushed up to the teacher's:

    L_ND(e_s, e_t, y) = 1 - < e_s, c_y / ||c_y|| > / max(||e_s||, ||e_t||).

Below the teacher's norm (||e_s|| < ||e_t||) the loss is 1 - ||e_s|| cos(e_s, c_y) / ||e_t||, decreasing in the
student's norm along c_y; above it, it is 1 - cos(e_s, c_y), minimised at cos = 1. It is added to a logit KD loss
("KD++"). The teacher's embeddings and class means are constants (no gradient).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def teacher_class_means(features: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
  """Class means c_k of the teacher's embeddings (Wang et al. 2023, arXiv:2305.17007, the ND loss's class centres).

  Args:
    features: [N, D] floating teacher embeddings.
    labels: [N] integer classes in [0, num_classes).
    num_classes: K >= 1.

  Returns:
    [K, D] float32 (or wider) class means, no gradient; NaN rows for classes with no example (a class mean is
    undefined there, and `nd_loss` must not see a silent zero direction).
  """
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"num_classes must be an int >= 1, got {num_classes=}")
  f = validation.check_floating(features, "features")
  if f.ndim != 2:
    raise ValueError(f"features must be [N, D], got features.shape={f.shape}")
  y = validation.check_integer(labels, "labels")
  if y.shape != f.shape[:1]:
    raise ValueError(f"labels must be [N] with N = features.shape[0], got labels.shape={y.shape}")
  valid = validation.check_labels(y, num_classes, "labels")
  f = jax.lax.stop_gradient(f).astype(jnp.promote_types(validation.compute_dtype_for(f.dtype), jnp.float32))
  f = validation.nan_where_invalid(f, valid)
  sums = jax.ops.segment_sum(f, jnp.clip(y, 0, num_classes - 1), num_segments=num_classes)
  counts = jax.ops.segment_sum(jnp.ones(y.shape, f.dtype), jnp.clip(y, 0, num_classes - 1), num_classes)
  return sums / jnp.where(counts > 0, counts, jnp.nan)[:, None]


def nd_loss(student_emb: jax.Array, teacher_emb: jax.Array, class_means: jax.Array, labels: jax.Array, *,
            where: Optional[jax.Array] = None) -> jax.Array:
  """The ND loss per example: 1 - <e_s, c_y/||c_y||> / max(||e_s||, ||e_t||) (Wang et al. 2023, arXiv:2305.17007).

  The teacher's embedding and class means get no gradient; the gradient through max(||e_s||, ||e_t||) follows
  the official code (it flows through ||e_s|| when the student's norm is the larger).

  Args:
    student_emb: [B, D] floating student embeddings.
    teacher_emb: [B, D] the teacher's embeddings of the same examples.
    class_means: [K, D] teacher class means (`teacher_class_means`).
    labels: [B] integer classes in [0, K) (out of range: ValueError eagerly, NaN rows under jit).
    where: optional bool [B]: examples to include (the others give 0 and are not checked).

  Returns:
    [B] in the student embeddings' dtype (half precision computed in float32); NaN where an input is NaN.
  """
  s = validation.check_floating(student_emb, "student_emb")
  t = validation.check_floating(teacher_emb, "teacher_emb")
  c = validation.check_floating(class_means, "class_means")
  if s.ndim != 2:
    raise ValueError(f"student_emb must be [B, D], got student_emb.shape={s.shape}")
  if t.shape != s.shape:
    raise ValueError(f"teacher_emb must have the shape of student_emb {s.shape}, got teacher_emb.shape={t.shape}")
  if c.ndim != 2 or c.shape[1] != s.shape[1] or c.shape[0] < 1:
    raise ValueError(f"class_means must be [K >= 1, D = {s.shape[1]}], got class_means.shape={c.shape}")
  y = validation.check_integer(labels, "labels")
  if y.shape != s.shape[:1]:
    raise ValueError(f"labels must be [B] with B = student_emb.shape[0], got labels.shape={y.shape}")
  w = validation.check_where(where, y.shape)
  valid = validation.check_labels(y, c.shape[0], "labels", where=w)
  ct = validation.compute_dtype_for(jnp.result_type(s, t, c))
  s32 = s.astype(ct)
  t32 = jax.lax.stop_gradient(t).astype(ct)
  cy = jax.lax.stop_gradient(c).astype(ct)[jnp.clip(y, 0, c.shape[0] - 1)]
  if w is not None:  # excluded rows: constants that keep the value and the gradient finite (zeroed below)
    ones = jnp.ones((), ct)
    s32, t32, cy = (jnp.where(w[:, None], a, ones) for a in (s32, t32, cy))
  e_c = cy / jnp.linalg.norm(cy, axis=-1, keepdims=True)
  t_norm = jnp.linalg.norm(t32, axis=-1)
  max_norm = jnp.maximum(jnp.linalg.norm(s32, axis=-1), t_norm)
  # an infinite teacher norm would give a plausible finite 1: make it NaN (docs/conventions.md, rule 3)
  loss = (1.0 - jnp.sum(s32 * e_c, axis=-1) / max_norm) * jnp.where(jnp.isfinite(t_norm), 1.0, jnp.nan).astype(ct)
  loss = validation.nan_where_invalid(loss, valid)
  if w is not None:
    loss = jnp.where(w, loss, jnp.zeros((), ct))
  return loss.astype(s.dtype) if jnp.finfo(s.dtype).bits < 32 else loss
