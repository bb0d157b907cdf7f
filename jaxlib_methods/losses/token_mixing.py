"""SMMix's losses on mixed images: the fine-grained token-label loss and the feature (prediction) consistency loss.

Paper:
  [34] Mengzhao Chen, Mingbao Lin, Zhihang Lin, Yuxin Zhang, Fei Chao, Rongrong Ji, "SMMix: Self-Motivated Image
       Mixing for Vision Transformers", ICCV 2023, arXiv:2212.12977 (Sec. 3.3-3.4; official `engine.py`:
       loss = loss_cls + loss_fine + loss_con). The image mixing itself is `jaxlib_methods.data.smmix`; the mixed-label
       loss `loss_cls` is the cross-entropy on its area-mixed label (`optax.losses.softmax_cross_entropy`).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def _check_partner(partner: Any, b: int) -> jax.Array:
  partner = validation.check_integer(partner, "partner")
  if partner.shape != (b,):
    raise ValueError(f"partner must have shape [B] = [{b}], got partner.shape={partner.shape}")
  return partner


def smmix_fine_grained_loss(target_logits: jax.Array, source_logits: jax.Array, labels: jax.Array, *,
                            partner: jax.Array, where: Optional[jax.Array] = None) -> jax.Array:
  """SMMix's fine-grained label assignment loss, per mixed image (Chen et al., "SMMix: Self-Motivated Image Mixing
  for Vision Transformers", ICCV 2023, arXiv:2212.12977, Sec. 3.3; official `loss_fine`).

    l_i = (CE(target_logits_i, y_i) + CE(source_logits_i, y_{partner_i})) / 2

  where target_logits / source_logits are the token head applied to the mean of the image tokens from image i's own
  region / from the partner's pasted window (`source_mask` of `data.smmix`).

  Args:
    target_logits: [B, K] logits of the mean target-region token.
    source_logits: [B, K] logits of the mean source-region token.
    labels: [B] int class indices in [0, K) of the un-mixed images.
    partner: [B] int index of each image's source image (as given to `data.smmix`).
    where: optional [B] bool mask of the images to score.

  Returns:
    [B] per-image losses (logits' dtype; half precision computed in float32).
  """
  target_logits = validation.check_floating(target_logits, "target_logits")
  source_logits = validation.check_floating(source_logits, "source_logits")
  validation.check_same_shape_and_dtype("target_logits", target_logits, "source_logits", source_logits)
  if target_logits.ndim != 2:
    raise ValueError(f"target_logits must be [B, K], got target_logits.shape={target_logits.shape}")
  b, k = target_logits.shape
  partner = _check_partner(partner, b)
  t = validation.classification_inputs(target_logits, labels, where=where, logits_name="target_logits")
  valid_p = validation.check_values((partner >= 0) & (partner < b), partner, "partner", f"indices in [0, {b})", where)
  src_labels = t.labels[jnp.clip(partner, 0, max(b - 1, 0))]
  zs = source_logits.astype(t.logits.dtype)
  if t.where is not None:
    zs = jnp.where(t.where[:, None], zs, jnp.zeros((), zs.dtype))
  ce_t = -jnp.take_along_axis(jax.nn.log_softmax(t.logits, -1), t.labels[:, None], -1)[:, 0]
  ce_s = -jnp.take_along_axis(jax.nn.log_softmax(zs, -1), src_labels[:, None], -1)[:, 0]
  # a partner whose label is invalid poisons the row that uses it, also when `where` excludes the partner itself
  src_raw = jnp.asarray(labels)[jnp.clip(partner, 0, max(b - 1, 0))]
  valid_s = validation.check_values((src_raw >= 0) & (src_raw < k), src_raw, "labels[partner]",
                                    f"integer class indices in [0, {k}) (a partner's label scores the pasted window)",
                                    t.where)
  valid = validation.combine_valid(t.valid, valid_s, valid_p)
  return validation.finish_per_example((ce_t + ce_s) / 2, valid, t.where, t.dtype)


def smmix_consistency_loss(mixed_logits: jax.Array, unmixed_logits: jax.Array, lam: Any, *,
                           partner: jax.Array) -> jax.Array:
  """SMMix's feature consistency constraint, per mixed image (Chen et al., "SMMix: Self-Motivated Image Mixing for
  Vision Transformers", ICCV 2023, arXiv:2212.12977, Sec. 3.4; official `loss_con`, a KLDivLoss).

    l_i = KL( softmax(lam u_i + (1 - lam) u_{partner_i}) || softmax(m_i) )

  with u the model's logits on the un-mixed images (the self-motivated target: computed without gradient, as the
  official code's `torch.no_grad()`), m the logits on the mixed images and lam the target image's area ratio. The
  official `KLDivLoss(reduction='batchmean')` is the mean of these.

  Args:
    mixed_logits: [B, K] logits of the mixed images.
    unmixed_logits: [B, K] logits of the un-mixed images (gradient stopped).
    lam: the area ratio of each image's own region, a scalar or [B] in [0, 1] (1 - w^2 / S^2 for `data.smmix`).
    partner: [B] int index of each image's source image.

  Returns:
    [B] per-image losses (mixed_logits' dtype; half precision computed in float32).
  """
  mixed_logits = validation.check_floating(mixed_logits, "mixed_logits")
  unmixed_logits = validation.check_floating(unmixed_logits, "unmixed_logits")
  validation.check_same_shape_and_dtype("mixed_logits", mixed_logits, "unmixed_logits", unmixed_logits)
  if mixed_logits.ndim != 2:
    raise ValueError(f"mixed_logits must be [B, K], got mixed_logits.shape={mixed_logits.shape}")
  b = mixed_logits.shape[0]
  partner = _check_partner(partner, b)
  lam = validation.check_floating(lam, "lam")
  if lam.ndim > 1 or (lam.ndim == 1 and lam.shape != (b,)):
    raise ValueError(f"lam must be a scalar or [B] = [{b}], got lam.shape={lam.shape}")
  v_lam = validation.check_values(jnp.isfinite(lam) & (lam >= 0) & (lam <= 1), lam, "lam", "in [0, 1]")
  v_p = validation.check_values((partner >= 0) & (partner < b), partner, "partner", f"indices in [0, {b})")
  ct = validation.compute_dtype_for(mixed_logits.dtype)
  u = jax.lax.stop_gradient(unmixed_logits.astype(ct))
  lam_b = jnp.broadcast_to(lam.astype(ct), (b,))[:, None]
  target = lam_b * u + (1 - lam_b) * u[jnp.clip(partner, 0, max(b - 1, 0))]
  log_p = jax.nn.log_softmax(target, -1)
  log_q = jax.nn.log_softmax(mixed_logits.astype(ct), -1)
  loss = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
  valid = validation.combine_valid(None if v_lam is None else jnp.broadcast_to(v_lam, (b,)), v_p)
  return validation.nan_where_invalid(loss, valid).astype(mixed_logits.dtype)
