"""Feature-level knowledge distillation: the ND loss [56]; LAPTOP-Diff's normalised feature KD and output-loss
pruning criterion [94].

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

from typing import Callable, Optional, Sequence

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


# ---- LAPTOP-Diff [94] (issue 19, branch ls19a) -------------------------------------------------------------------------
# Dingkun Zhang, Sijia Li, Chen Chen, Qingsong Xie, Haonan Lu, "LAPTOP-Diff: Layer Pruning and Normalized Distillation
# for Compressing Diffusion Models", 2024, arXiv:2404.11098. Sec. 3.2: the one-shot layer-pruning criterion (the
# output loss ||eps(r_1..r_m) - eps_ori||^2 of removing a set of blocks, approximated by the sum of the single-block
# output losses: its additivity); Sec. 3.3: normalised feature distillation (each layer's feature loss divided by
# the squared L2 norm of the teacher's feature map, so no few numerically large layers dominate).


def normalized_feature_kd(student_feats: Sequence[jax.Array], teacher_feats: Sequence[jax.Array], *,
                          sum_layers: bool = True, where: Optional[jax.Array] = None) -> jax.Array:
  """LAPTOP-Diff's normalised feature distillation per example: sum_l ||s_l - t_l||^2 / ||t_l||^2.

  Zhang et al., "LAPTOP-Diff: Layer Pruning and Normalized Distillation for Compressing Diffusion Models", 2024,
  arXiv:2404.11098, Sec. 3.3 (normalised feature distillation): the feature loss of layer l is re-weighted by the
  inverse squared L2 norm of the teacher's feature map, which makes every term scale-free (a student output of 0
  scores exactly 1 at every layer) and so balances layers whose features differ in magnitude by orders. The norms
  are per example (over all of a layer's feature entries); the teacher's features get no gradient.

  Args:
    student_feats: L >= 1 floating arrays [B, ...] (layer l may have its own shape).
    teacher_feats: L arrays, each of the shape of the student's feature at the same layer.
    sum_layers: True: [B], the sum over layers; False: [B, L], each layer's normalised term.
    where: optional bool [B]: examples to include (the others give 0 and 0 gradient).

  Returns:
    [B] (or [B, L]) in float32 (or wider; half precision computed in float32); inf where a teacher feature map is
    all zeros and the student's is not; NaN where an input is NaN.
  """
  if isinstance(student_feats, (jax.Array,)) or isinstance(teacher_feats, (jax.Array,)):
    raise TypeError("student_feats and teacher_feats must be sequences (one [B, ...] array per layer), not arrays")
  s_list, t_list = list(student_feats), list(teacher_feats)
  if len(s_list) < 1 or len(s_list) != len(t_list):
    raise ValueError(f"student_feats and teacher_feats must hold the same number L >= 1 of layers, got "
                     f"{len(s_list)} and {len(t_list)}")
  terms = []
  batch = None
  ct = jnp.float32
  for l, (s, t) in enumerate(zip(s_list, t_list)):
    s = validation.check_floating(s, f"student_feats[{l}]")
    t = validation.check_floating(t, f"teacher_feats[{l}]")
    if s.ndim < 1 or s.shape != t.shape:
      raise ValueError(f"teacher_feats[{l}] must have the shape of student_feats[{l}] (rank >= 1, batch first), got "
                       f"{t.shape} and {s.shape}")
    if batch is None:
      batch = s.shape[0]
    elif s.shape[0] != batch:
      raise ValueError(f"every layer must have the batch size {batch}, got student_feats[{l}].shape={s.shape}")
    ct = jnp.promote_types(ct, validation.compute_dtype_for(jnp.result_type(s, t)))
    terms.append((s, t))
  w = validation.check_where(where, (batch,))
  out = []
  for s, t in terms:
    s32 = s.astype(ct).reshape(batch, -1)
    t32 = jax.lax.stop_gradient(t).astype(ct).reshape(batch, -1)
    if w is not None:  # excluded rows: constants that keep the value and the gradient finite (zeroed below)
      s32 = jnp.where(w[:, None], s32, jnp.zeros((), ct))
      t32 = jnp.where(w[:, None], t32, jnp.ones((), ct))
    out.append(jnp.sum((s32 - t32) ** 2, axis=-1) / jnp.sum(t32 ** 2, axis=-1))
  loss = jnp.stack(out, axis=-1)                                                   # [B, L]
  if w is not None:
    loss = jnp.where(w[:, None], loss, jnp.zeros((), ct))
  return jnp.sum(loss, axis=-1) if sum_layers else loss


def output_loss_criterion(forward: Callable[[jax.Array], jax.Array], num_blocks: int) -> jax.Array:
  """LAPTOP-Diff's one-shot pruning scores: the output loss of removing each block alone.

  Zhang et al., arXiv:2404.11098, Sec. 3.2: score_i = mean over the batch of ||f(keep = all but i) - f(all)||^2,
  the squared L2 distance of the network's output (per example, summed over its entries) when block i is skipped.
  Pruning the n blocks of smallest score is the paper's one-shot solution of min ||eps(r) - eps_ori||^2 under
  a pruning ratio; it is good because the output loss is close to additive over the removed set (checked in the
  experiment `tta_distill_toys`). Use `jnp.argsort(scores)[:n]` for the blocks to remove.

  Args:
    forward: keep -> output [B, ...]: the network on a fixed batch, with keep a float [num_blocks] vector of 0/1
      (a removed block is skipped, e.g. x + keep_i * block_i(x) in a residual network); traced under vmap.
    num_blocks: m >= 1, the number of removable blocks.

  Returns:
    [num_blocks] float32 (or wider) output losses, >= 0.
  """
  if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
    raise ValueError(f"num_blocks must be an int >= 1, got {num_blocks=}")
  if not callable(forward):
    raise TypeError(f"forward must be a callable keep -> output, got {type(forward).__name__}")
  full = forward(jnp.ones((num_blocks,), jnp.float32))
  validation.check_floating(full, "forward(keep)")
  masks = 1.0 - jnp.eye(num_blocks, dtype=jnp.float32)
  outs = jax.vmap(forward)(masks)
  ct = jnp.promote_types(full.dtype, jnp.float32)
  diff = (outs.astype(ct) - full.astype(ct)[None]).reshape(num_blocks, full.shape[0], -1)
  return jnp.mean(jnp.sum(diff ** 2, axis=-1), axis=-1)
