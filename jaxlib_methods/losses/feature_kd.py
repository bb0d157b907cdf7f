"""Feature-level knowledge distillation: the ND loss [56]; LAPTOP-Diff's normalised feature KD and output-loss
pruning criterion [94]; DR-Tune's semantic calibration and distribution-regularised objective [93].

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
import numpy as np

from jaxlib_methods import validation
from jaxlib_methods._norms import l2_normalize, safe_l2_norm


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
  e_c = l2_normalize(cy)
  t_norm = jnp.linalg.norm(t32, axis=-1)
  max_norm = jnp.maximum(safe_l2_norm(s32, min_norm=1e-12), t_norm)   # zero student and teacher: 1, not 0 / 0
  # an infinite teacher norm would give a plausible finite 1: make it NaN (docs/conventions.md, rule 3)
  loss = (1.0 - jnp.sum(s32 * e_c, axis=-1) / max_norm) * jnp.where(jnp.isfinite(t_norm), 1.0, jnp.nan).astype(ct)
  loss = validation.nan_where_invalid(loss, valid)
  if w is not None:
    loss = jnp.where(w, loss, jnp.zeros((), ct))
  return loss.astype(s.dtype) if jnp.finfo(s.dtype).bits < 32 else loss


# ---- LAPTOP-Diff [94] (issue 19, branch ls19a) -----------------------------------------------------------------------
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
  if not isinstance(sum_layers, (bool, np.bool_)):
    raise TypeError(f"sum_layers must be a bool (True: [B], False: [B, L]), got {sum_layers!r}")
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


# ---- DR-Tune [93] (issue 19, branch ls19a) ---------------------------------------------------------------------------
# Nan Zhou, Jiaxin Chen, Di Huang, "DR-Tune: Improving Fine-tuning of Pretrained Visual Models by Distribution
# Regularization with Semantic Calibration", ICCV 2023, arXiv:2308.12058. Official code: github.com/weeknan/DR-Tune
# (model.py: `semantic_calibration`, `rot_align`; the loss is the head's CE over the batch's downstream features and
# the calibrated pretrained features of a queue, one mean over both).


def _l2_normalize(x):
  return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def semantic_calibration(pre_feats: jax.Array, down_feats: jax.Array, labels: jax.Array, num_classes: int, *,
                         prototypes: Optional[jax.Array] = None, rotate: bool = True,
                         scale: Optional[float] = None) -> jax.Array:
  """DR-Tune's semantic calibration (SC) of pretrained features towards the downstream feature distribution.

  Zhou, Chen, Huang, "DR-Tune: Improving Fine-tuning of Pretrained Visual Models by Distribution Regularization with
  Semantic Calibration", ICCV 2023, arXiv:2308.12058, Sec. 3.3 (SC: a global rotation, then class-level
  translations). Both sets of features (the same N images through the frozen pretrained and the downstream encoder)
  are L2-normalised; with `rotate`, the centred pretrained features are rotated onto the centred downstream ones by
  the orthogonal Procrustes (Kabsch) rotation R = V U^T of svd(X^T Y) with the determinant fixed to +1 (as the
  official `rot_align`, the result stays centred); then every class c is translated by (downstream centre of c) -
  (pretrained centre of c). The downstream centre is the class mean, or, with `prototypes` (the head's weights, as
  in the official code), the average weighted by softmax over the class's samples of their cosine to the class's
  prototype. After the translation the calibrated class means equal the downstream centres exactly; with `scale`,
  each row is then re-normalised to that L2 norm (the official code's last step: the batch's mean downstream norm).
  Constants throughout (no gradient). The SVD is of a D x D matrix: call it eagerly or in float32 under jit.

  Args:
    pre_feats: [N, D] floating features of the frozen pretrained encoder.
    down_feats: [N, D] floating features of the same images under the downstream encoder.
    labels: [N] integer classes in [0, num_classes).
    num_classes: C >= 1.
    prototypes: optional [C, D] class prototypes (the classification head's weight rows).
    rotate: apply the global rotation first.
    scale: optional positive float: the rows' L2 norm after calibration (None: leave them as translated).

  Returns:
    [N, D] calibrated pretrained features, float32 (or wider); rows of a class without examples are unchanged by
    the translation.
  """
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"num_classes must be an int >= 1, got {num_classes=}")
  x = validation.check_floating(pre_feats, "pre_feats")
  y = validation.check_floating(down_feats, "down_feats")
  if x.ndim != 2 or x.shape[0] < 1:
    raise ValueError(f"pre_feats must be [N >= 1, D], got pre_feats.shape={x.shape}")
  if y.shape != x.shape:
    raise ValueError(f"down_feats must have the shape of pre_feats {x.shape}, got down_feats.shape={y.shape}")
  lab = validation.check_integer(labels, "labels")
  if lab.shape != x.shape[:1]:
    raise ValueError(f"labels must be [N] with N = pre_feats.shape[0], got labels.shape={lab.shape}")
  valid = validation.check_labels(lab, num_classes, "labels")
  if prototypes is not None:
    prototypes = validation.check_floating(prototypes, "prototypes")
    if prototypes.shape != (num_classes, x.shape[1]):
      raise ValueError(f"prototypes must be [C, D] = {(num_classes, x.shape[1])}, got {prototypes.shape}")
  if scale is not None:
    validation.check_positive(scale, "scale")
  ct = jnp.promote_types(validation.compute_dtype_for(jnp.result_type(x, y)), jnp.float32)
  x = _l2_normalize(jax.lax.stop_gradient(x).astype(ct))
  y = _l2_normalize(jax.lax.stop_gradient(y).astype(ct))
  if rotate:
    xc, yc = x - x.mean(0), y - y.mean(0)
    u, _, vt = jnp.linalg.svd(xc.T @ yc)
    d = jnp.sign(jnp.linalg.det(vt.T @ u.T))
    vt = vt.at[-1].multiply(d)                       # the reflection fix of Kabsch: det(R) = +1
    x = xc @ (vt.T @ u.T).T                          # rows: R x_i
  c = jnp.clip(lab, 0, num_classes - 1)
  onehot = jax.nn.one_hot(c, num_classes, dtype=ct)                          # [N, C]
  counts = onehot.sum(0)
  pre_centre = (onehot.T @ x) / jnp.maximum(counts, 1)[:, None]
  if prototypes is None:
    weights = onehot / jnp.maximum(counts, 1)[None]
  else:
    cos = y @ _l2_normalize(jax.lax.stop_gradient(prototypes).astype(ct)).T   # [N, C]
    logits = jnp.where(onehot > 0, cos, -jnp.inf)
    weights = jnp.where(counts[None] > 0, jax.nn.softmax(logits, axis=0), 0.0)
  down_centre = weights.T @ y
  out = x + (down_centre - pre_centre)[c]
  if scale is not None:
    out = _l2_normalize(out) * scale
  return validation.nan_where_invalid(out, valid)


def dr_tune_loss(down_logits: jax.Array, labels: jax.Array, calibrated_logits: jax.Array,
                 calibrated_labels: jax.Array) -> jax.Array:
  """DR-Tune's objective: the head's cross-entropy over the downstream batch and the calibrated pretrained features.

  Zhou et al., ICCV 2023, arXiv:2308.12058, Sec. 3.2 (distribution regularization: the downstream head must also
  classify the pretrained feature distribution, after semantic calibration) and the official code (one CE mean
  over the concatenation of the B downstream logits and the K calibrated queue logits). A batch-level scalar:
  (sum_B CE + sum_K CE) / (B + K). The gradient reaches the encoder through `down_logits` only (the calibrated
  features are constants); the head gets both terms.

  Args:
    down_logits: [B, C] floating: head(downstream features of the batch).
    labels: [B] integer classes in [0, C).
    calibrated_logits: [K, C] floating: head(`semantic_calibration` of the pretrained features of a queue).
    calibrated_labels: [K] integer classes of the queue.

  Returns:
    scalar float32 (or wider); NaN, in value and gradient, if a label is out of range under jit (ValueError
    eagerly, naming `labels` or `calibrated_labels`).
  """
  a = validation.check_floating(down_logits, "down_logits")
  b = validation.check_floating(calibrated_logits, "calibrated_logits")
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
    raise ValueError(f"down_logits and calibrated_logits must be [B, C] and [K, C] with the same C, got "
                     f"{a.shape} and {b.shape}")
  if a.shape[0] + b.shape[0] < 1:
    raise ValueError("dr_tune_loss needs at least one example in down_logits or calibrated_logits")
  ya = validation.check_integer(labels, "labels")
  yb = validation.check_integer(calibrated_labels, "calibrated_labels")
  if ya.shape != a.shape[:1] or yb.shape != b.shape[:1]:
    raise ValueError(f"labels and calibrated_labels must be [B] = {a.shape[:1]} and [K] = {b.shape[:1]}, got "
                     f"{ya.shape} and {yb.shape}")
  c = a.shape[1]
  va = validation.check_labels(ya, c, "labels")
  vb = validation.check_labels(yb, c, "calibrated_labels")
  valid = validation.combine_valid(*(None if v is None else jnp.all(v) for v in (va, vb)))
  ct = jnp.promote_types(validation.compute_dtype_for(jnp.result_type(a, b)), jnp.float32)

  def ce_sum(z, y):
    logp = jax.nn.log_softmax(z.astype(ct), axis=-1)
    return -jnp.sum(jnp.take_along_axis(logp, jnp.clip(y, 0, c - 1)[:, None], axis=-1))

  total = (ce_sum(a, ya) + ce_sum(b, yb)) / (a.shape[0] + b.shape[0])
  return validation.nan_where_invalid(total, valid)   # a bad traced label: NaN in value and in gradient
