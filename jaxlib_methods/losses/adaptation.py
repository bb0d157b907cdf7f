"""Test-time and domain adaptation losses: RMT's symmetric cross-entropy, MIC's masked consistency, CAFA.

Paper [44]: Mario Döbler, Robert A. Marsden, Bin Yang, "Robust Mean Teacher for Continual and Gradual Test-Time
Adaptation" (RMT), CVPR 2023, arXiv:2211.13081. Official code: https://github.com/mariodoebler/test-time-adaptation
(`symmetric_cross_entropy` in methods/rmt.py).

RMT adapts a student on unlabelled test batches towards an exponential-moving-average teacher with the symmetric
cross-entropy (SCE) consistency loss (the paper's SCE equation, Sec. 3.1)

    L_SCE(x) = -1/2 sum_c p_t,c log p_s,c  -  1/2 sum_c p_s,c log p_t,c,     p = softmax(logits),

i.e. the mean of the cross-entropy of the student against the teacher's soft pseudo-label and the reverse. Its
gradient with respect to the student logits z is (checked in tests/losses/test_adaptation.py)

    dL/dz = 1/2 (p_s - p_t) - 1/2 p_s * (log p_t - <p_s, log p_t>),

where the first term is the usual CE gradient and the second, bounded by the teacher's log-probabilities weighted by
the student's own probabilities, is what makes SCE less dominated by wrong, low-confidence pseudo-labels than CE
(the paper's argument). The teacher's logits get no gradient (its weights are an EMA of the student's, not trained:
`optax.incremental_update(student_params, teacher_params, step_size=1 - momentum)` is the mean-teacher update).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation
from jaxlib_methods.losses.feature_kd import teacher_class_means


def symmetric_cross_entropy(student_logits: jax.Array, teacher_logits: jax.Array, *, axis: int = -1,
                            where: Optional[jax.Array] = None) -> jax.Array:
  """RMT's symmetric cross-entropy -1/2 [sum p_t log p_s + sum p_s log p_t] per example (teacher held constant).

  Döbler, Marsden, Yang, "Robust Mean Teacher for Continual and Gradual Test-Time Adaptation", CVPR 2023,
  arXiv:2211.13081, Sec. 3.1 (the SCE consistency loss). With student == teacher it is the entropy H(p).

  Args:
    student_logits: [..., K] floating (class axis `axis`; usually [B, K]).
    teacher_logits: same shape; the mean teacher's logits, treated as constants (stop-gradient).
    axis: the class axis (an int).
    where: optional bool [...] (the logits' shape without the class axis): examples to include; the others give 0
      loss and 0 gradient, whatever their logits hold.

  Returns:
    [...] in the student logits' dtype (half precision is computed in float32 and cast back); NaN where a logit
    is NaN.
  """
  s = validation.check_floating(student_logits, "student_logits")
  t = validation.check_floating(teacher_logits, "teacher_logits")
  if s.ndim < 1:
    raise ValueError(f"student_logits must have a class axis (rank >= 1), got student_logits.shape={s.shape}")
  if t.shape != s.shape:
    raise ValueError(f"teacher_logits must have the shape of student_logits, got teacher_logits.shape={t.shape}, "
                     f"student_logits.shape={s.shape}")
  ax = validation.check_axis(axis, s.ndim)
  if s.shape[ax] < 1:
    raise ValueError(f"student_logits needs at least one class along axis {axis}, got shape {s.shape}")
  out_shape = s.shape[:ax] + s.shape[ax + 1:]
  w = validation.check_where(where, out_shape)
  ct = validation.compute_dtype_for(jnp.result_type(s, t))
  zs = jnp.moveaxis(s, ax, -1).astype(ct)
  zt = jax.lax.stop_gradient(jnp.moveaxis(t, ax, -1).astype(ct))
  if w is not None:  # excluded rows: zero logits, so garbage (even NaN) reaches neither the value nor the gradient
    zs = jnp.where(w[..., None], zs, jnp.zeros((), ct))
    zt = jnp.where(w[..., None], zt, jnp.zeros((), ct))
  log_ps, log_pt = jax.nn.log_softmax(zs, axis=-1), jax.nn.log_softmax(zt, axis=-1)

  def plogq(log_p, log_q):   # sum_k p_k log q_k with 0 log 0 = 0: a class masked by -inf logits in both is skipped
    p = jnp.exp(log_p)
    keep = p != 0   # NaN stays (and propagates)
    return jnp.sum(jnp.where(keep, p * jnp.where(keep, log_q, jnp.zeros((), ct)), jnp.zeros((), ct)), axis=-1)
  loss = -0.5 * (plogq(log_pt, log_ps) + plogq(log_ps, log_pt))
  if w is not None:
    loss = jnp.where(w, loss, jnp.zeros((), ct))
  return loss.astype(s.dtype) if jnp.finfo(s.dtype).bits < 32 else loss


# ---- MIC [46] and CAFA [24] (issue 19, branch ls19a) -----------------------------------------------------------------
# MIC: Lukas Hoyer, Dengxin Dai, Haoran Wang, Luc Van Gool, "MIC: Masked Image Consistency for Context-Enhanced Domain
# Adaptation", CVPR 2023, arXiv:2212.01322, Sec. 3.2 (official code: github.com/lhoyer/MIC, seg/mmseg/models/uda/
# masking_consistency_module.py, teacher_module.py, utils/masking_transforms.py). The EMA teacher of MIC is
# `optax.incremental_update(student, teacher, step_size=1 - alpha)` with alpha = 0.999 (the code caps alpha at
# 1 - 1/(t + 1) early in training); no helper here.
#
# CAFA: Sanghun Jung, Jungsoo Lee, Nanhee Kim, Amirreza Shaban, Byron Boots, Jaegul Choo, "CAFA: Class-Aware Feature
# Alignment for Test-Time Adaptation", ICCV 2023, arXiv:2206.00205, Sec. 3 (source statistics, Mahalanobis distance,
# intra-/inter-class distances and the CAFA loss).


def random_patch_mask(key: jax.Array, shape: Sequence[int], *, patch_size: int, mask_ratio: float = 0.7) -> jax.Array:
  """MIC's random patch mask: each patch of `patch_size` pixels per side is kept iff v > r, v ~ U(0, 1).

  Hoyer et al., "MIC: Masked Image Consistency for Context-Enhanced Domain Adaptation", CVPR 2023,
  arXiv:2212.01322, Sec. 3.2 (the patch mask M, b = `patch_size`, r = `mask_ratio`; the paper uses b = 64 and
  r = 0.7). The masked image is `x * mask[..., None]` for channels-last images. A fraction `mask_ratio` of the
  patches is withheld in expectation (independently per patch).

  Args:
    key: a PRNG key.
    shape: (B, S1, ..., Sn): the batch and the spatial sizes (n >= 1: 1-D sequences, 2-D images, ...); each
      spatial size must be a multiple of `patch_size`.
    patch_size: b >= 1, the side of a square (cubic, ...) patch in pixels.
    mask_ratio: r in [0, 1), the probability that a patch is withheld.

  Returns:
    bool [B, S1, ..., Sn]: True where the pixel is kept.
  """
  shape = tuple(shape)
  if len(shape) < 2 or not all(isinstance(n, (int, np.integer)) and n >= 1 for n in shape):
    raise ValueError(f"shape must be (B, S1, ..., Sn) with n >= 1 spatial axes of positive ints, got {shape=}")
  if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)) or patch_size < 1:
    raise ValueError(f"patch_size must be an int >= 1, got {patch_size=}")
  if any(n % patch_size for n in shape[1:]):
    raise ValueError(f"every spatial size in shape[1:]={shape[1:]} must be a multiple of {patch_size=}")
  validation.check_in_interval(mask_ratio, "mask_ratio", 0.0, 1.0, closed_high=False)
  grid = (shape[0],) + tuple(n // patch_size for n in shape[1:])
  keep = jax.random.uniform(key, grid) > mask_ratio
  for ax in range(1, len(shape)):
    keep = jnp.repeat(keep, patch_size, axis=ax)
  return keep


def _mic_inputs(teacher_logits, axis, tau):
  t = validation.check_floating(teacher_logits, "teacher_logits")
  if t.ndim < 2:
    raise ValueError(f"teacher_logits must be [B, ..., K] (a batch axis and a class axis), got "
                     f"teacher_logits.shape={t.shape}")
  ax = validation.check_axis(axis, t.ndim)
  if ax == 0:
    raise ValueError(f"axis={axis} is the batch axis; the class axis must be another one")
  if t.shape[ax] < 1:
    raise ValueError(f"teacher_logits needs at least one class along axis {axis}, got shape {t.shape}")
  validation.check_in_interval(tau, "tau", 0.0, 1.0)
  return t, ax


def mic_quality_weight(teacher_logits: jax.Array, *, tau: float = 0.968, axis: int = -1) -> jax.Array:
  """MIC's pseudo-label quality q^T per image: the fraction of its pixels whose teacher max-probability is >= tau.

  Hoyer et al., CVPR 2023, arXiv:2212.01322, Sec. 3.2 (the quality estimate q^T of the EMA teacher's
  pseudo-label, tau = 0.968). The official code (`EMATeacher.get_pseudo_label_and_weight`) uses `>=` and pools the
  fraction over the whole batch; here it is per image (the paper's definition), which equals the code's when the
  batch holds one image. Without spatial axes ([B, K] logits: classification) it is 1 or 0 per example.

  Args:
    teacher_logits: [B, S1, ..., Sn, K] floating (class axis `axis`, any other axes after the batch axis are
      pixels); no gradient flows through it.
    tau: the confidence threshold in [0, 1].
    axis: the class axis (an int, not 0).

  Returns:
    [B] in float32 (or wider): q^T in [0, 1]; NaN for an image with a NaN teacher logit.
  """
  t, ax = _mic_inputs(teacher_logits, axis, tau)
  z = jnp.moveaxis(jax.lax.stop_gradient(t), ax, -1).astype(jnp.promote_types(t.dtype, jnp.float32))
  p_max = jnp.max(jax.nn.softmax(z, axis=-1), axis=-1)
  conf = jnp.where(jnp.isnan(p_max), jnp.nan, (p_max >= tau).astype(z.dtype))
  return jnp.mean(conf.reshape(conf.shape[0], int(np.prod(conf.shape[1:]))), axis=-1)


def mic_loss(masked_student_logits: jax.Array, teacher_logits: jax.Array, *, tau: float = 0.968, axis: int = -1,
             where: Optional[jax.Array] = None) -> jax.Array:
  """MIC's masked consistency loss per image: q^T * mean over pixels of CE(f(x^M), argmax p^T).

  Hoyer et al., "MIC: Masked Image Consistency for Context-Enhanced Domain Adaptation", CVPR 2023,
  arXiv:2212.01322, Sec. 3.2 (L^M = q^T H(y^M, p^T): the student's prediction on the masked target image against
  the EMA teacher's hard pseudo-label of the complete image, weighted by the quality estimate
  `mic_quality_weight`). The teacher's logits get no gradient. Averaging the output over the batch gives the
  official code's pixel mean (equal pixel counts per image).

  Args:
    masked_student_logits: [B, S1, ..., Sn, K] floating: the student's logits on the masked images (n >= 0
      spatial axes; class axis `axis`).
    teacher_logits: same shape: the EMA teacher's logits on the complete images.
    tau: the confidence threshold of the quality weight, in [0, 1] (0.968 in the paper).
    axis: the class axis (an int, not 0).
    where: optional bool [B]: images to include (the others give 0 loss and 0 gradient).

  Returns:
    [B] in the student logits' dtype (half precision computed in float32 and cast back); NaN where a logit is NaN.
  """
  s = validation.check_floating(masked_student_logits, "masked_student_logits")
  t, ax = _mic_inputs(teacher_logits, axis, tau)
  if s.shape != t.shape:
    raise ValueError(f"teacher_logits must have the shape of masked_student_logits {s.shape}, got "
                     f"teacher_logits.shape={t.shape}")
  w = validation.check_where(where, s.shape[:1])
  ct = validation.compute_dtype_for(jnp.result_type(s, t))
  zs = jnp.moveaxis(s, ax, -1).astype(ct)
  zt = jax.lax.stop_gradient(jnp.moveaxis(t, ax, -1).astype(ct))
  if w is not None:  # excluded images: zero logits, so garbage (even NaN) reaches neither the value nor the gradient
    bw = w.reshape(w.shape + (1,) * (zs.ndim - 1))
    zs, zt = jnp.where(bw, zs, jnp.zeros((), ct)), jnp.where(bw, zt, jnp.zeros((), ct))
  q = mic_quality_weight(zt, tau=tau, axis=-1)
  pseudo = jnp.argmax(zt, axis=-1)
  ce = -jnp.take_along_axis(jax.nn.log_softmax(zs, axis=-1), pseudo[..., None], axis=-1)[..., 0]
  # a NaN teacher logit makes argmax a plausible class: carry its NaN into the loss (docs/conventions.md, rule 3)
  ce = ce + jnp.where(jnp.any(jnp.isnan(zt), axis=-1), jnp.nan, 0.0).astype(ct)
  loss = q * jnp.mean(ce.reshape(ce.shape[0], int(np.prod(ce.shape[1:]))), axis=-1)
  if w is not None:
    loss = jnp.where(w, loss, jnp.zeros((), ct))
  return loss.astype(s.dtype) if jnp.finfo(s.dtype).bits < 32 else loss


def cafa_source_statistics(features: jax.Array, labels: jax.Array, num_classes: int, *,
                           ridge: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """CAFA's pre-computed source statistics: class means mu_c and the inverse class covariances Sigma_c^-1.

  Jung et al., "CAFA: Class-Aware Feature Alignment for Test-Time Adaptation", ICCV 2023, arXiv:2206.00205,
  Sec. 3 (pre-calculation of the source class-conditional Gaussians N(mu_c, Sigma_c) with a pre-trained network,
  once, before adaptation). The means are `teacher_class_means`; Sigma_c is the biased (1/N_c) class covariance,
  plus `ridge` * I before the inversion. Call it once, eagerly (it inverts K matrices of size D).

  Args:
    features: [N, D] floating source features g(x).
    labels: [N] integer source classes in [0, num_classes).
    num_classes: K >= 1.
    ridge: lambda >= 0 added to each covariance's diagonal (needed when a class has fewer than D + 1 examples).

  Returns:
    (means [K, D], precisions [K, D, D]) in float32 (or wider), no gradient; NaN for a class without examples.
  """
  validation.check_nonnegative(ridge, "ridge")
  mu = teacher_class_means(features, labels, num_classes)  # checks features, labels and num_classes
  f = jax.lax.stop_gradient(jnp.asarray(features)).astype(mu.dtype)
  y = jnp.clip(jnp.asarray(labels), 0, num_classes - 1)
  centred = f - mu[y]
  outer = centred[:, :, None] * centred[:, None, :]
  counts = jax.ops.segment_sum(jnp.ones(y.shape, f.dtype), y, num_segments=num_classes)
  cov = jax.ops.segment_sum(outer, y, num_segments=num_classes) / jnp.where(counts > 0, counts, jnp.nan)[:, None, None]
  cov = cov + ridge * jnp.eye(f.shape[1], dtype=f.dtype)
  return mu, jnp.linalg.inv(cov)


def cafa_loss(features: jax.Array, pseudo_labels: jax.Array, means: jax.Array, precisions: jax.Array, *,
              where: Optional[jax.Array] = None) -> jax.Array:
  """The CAFA loss per test example: log D(x; mu_y, Sigma_y) - log sum_c D(x; mu_c, Sigma_c).

  Jung et al., "CAFA: Class-Aware Feature Alignment for Test-Time Adaptation", ICCV 2023, arXiv:2206.00205,
  Sec. 3: D(x; mu, Sigma) = (g(x) - mu)^T Sigma^-1 (g(x) - mu) is the squared Mahalanobis distance to a source
  class Gaussian, the intra-class distance is D to the class of the pseudo-label y (the model's prediction on the
  test input), the inter-class term the sum of D over all C classes, and the loss is the log of their ratio:
  minimising it pulls g(x) towards mu_y and pushes it from the other classes, with no hyper-parameter. The source
  statistics (`cafa_source_statistics`) and the pseudo-labels are constants. The value is <= 0, and 0 only when
  every other class is at distance 0.

  Args:
    features: [B, D] floating test features g(x) (the adapted network's).
    pseudo_labels: [B] integer predicted classes in [0, C) (out of range: ValueError eagerly, NaN rows under jit).
    means: [C, D] source class means.
    precisions: [C, D, D] inverse source class covariances (symmetric positive definite, ValueError otherwise when
      concrete; a traced precision is not checked), or [D, D] shared.
    where: optional bool [B]: examples to include (the others give 0 and are not checked).

  Returns:
    [B] in the features' dtype (half precision computed in float32); -inf where g(x) = mu_y exactly; NaN where an
    input is NaN.
  """
  f = validation.check_floating(features, "features")
  mu = validation.check_floating(means, "means")
  prec = validation.check_floating(precisions, "precisions")
  if f.ndim != 2:
    raise ValueError(f"features must be [B, D], got features.shape={f.shape}")
  if mu.ndim != 2 or mu.shape[1] != f.shape[1] or mu.shape[0] < 1:
    raise ValueError(f"means must be [C >= 1, D = {f.shape[1]}], got means.shape={mu.shape}")
  d = f.shape[1]
  if prec.shape not in ((mu.shape[0], d, d), (d, d)):
    raise ValueError(f"precisions must be [C, D, D] = {(mu.shape[0], d, d)} or shared [D, D] = {(d, d)}, got "
                     f"precisions.shape={prec.shape}")
  if not validation.is_traced(prec):  # a non-SPD precision makes D negative and the log ratio NaN or meaningless
    p64 = np.asarray(prec, np.float64)
    if not np.all(np.isfinite(p64)):
      raise ValueError("precisions must be finite")
    scale = max(float(np.max(np.abs(p64))), np.finfo(np.float64).tiny)
    if not np.allclose(p64, np.swapaxes(p64, -1, -2), rtol=0.0, atol=1e-5 * scale):
      raise ValueError("precisions must be symmetric (inverse covariances)")
    if np.min(np.linalg.eigvalsh(0.5 * (p64 + np.swapaxes(p64, -1, -2)))) <= 0.0:
      raise ValueError("precisions must be positive definite (inverse covariances; add a ridge to the covariance: "
                       "cafa_source_statistics(..., ridge=...))")
  y = validation.check_integer(pseudo_labels, "pseudo_labels")
  if y.shape != f.shape[:1]:
    raise ValueError(f"pseudo_labels must be [B] with B = features.shape[0], got pseudo_labels.shape={y.shape}")
  w = validation.check_where(where, y.shape)
  valid = validation.check_labels(y, mu.shape[0], "pseudo_labels", where=w)
  ct = validation.compute_dtype_for(jnp.result_type(f, mu, prec))
  x = f.astype(ct)
  if w is not None:  # excluded rows: the first class mean, a finite constant (the row is zeroed below)
    x = jnp.where(w[:, None], x, jnp.ones((), ct))
  mu = jax.lax.stop_gradient(mu).astype(ct)
  prec = jax.lax.stop_gradient(prec).astype(ct)
  diff = x[:, None, :] - mu[None]                                              # [B, C, D]
  if prec.ndim == 2:
    dist = jnp.einsum("bcd,de,bce->bc", diff, prec, diff)
  else:
    dist = jnp.einsum("bcd,cde,bce->bc", diff, prec, diff)                     # [B, C]
  yc = jnp.clip(y, 0, mu.shape[0] - 1)
  intra = jnp.take_along_axis(dist, yc[:, None], axis=-1)[:, 0]
  loss = jnp.log(intra) - jnp.log(jnp.sum(dist, axis=-1))
  loss = validation.nan_where_invalid(loss, valid)
  if w is not None:
    loss = jnp.where(w, loss, jnp.zeros((), ct))
  return loss.astype(f.dtype) if jnp.finfo(f.dtype).bits < 32 else loss
