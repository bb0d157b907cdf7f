"""Metrix: mixup for deep metric learning, with the contrastive loss as the base loss.

Paper [200]: Shashanka Venkataramanan, Bill Psomas, Ewa Kijak, Laurent Amsaleg, Konstantinos Karantzalos, Yannis
Avrithis, "It Takes Two to Tango: Mixup for Deep Metric Learning", ICLR 2022, arXiv:2106.04990. Official code:
https://github.com/billpsomas/Metrix_ICLR22 (`mixup/losses.py: loss_posneg_mixup`, `mixup/utils.py: mixup_data`).

Metrix mixes a positive x+ and a negative x- of an anchor a, x~ = lam x+ + (1 - lam) x- (inputs, features or, here,
embeddings), and interpolates the pair's target: the mixed pair counts as positive with weight lam and as negative
with weight 1 - lam. With the contrastive base loss, l+(a, x) = [d(a, x) - m+]_+ and l-(a, x) = [m- - d(a, x)]_+,

    l~(a, x~; lam) = lam [d(a, x~) - m+]_+ + (1 - lam) [m- - d(a, x~)]_+,

d the Euclidean distance of L2-normalised embeddings (pytorch-metric-learning's `LpDistance()` default, as in the
official code), m+ = 0 and m- = 0.5 there. lam = 1 is the base loss's positive term on (a, x+), lam = 0 its negative
term on (a, x-) (tested). The official code draws lam ~ Beta(2, 2) per batch (`mixup_data(..., alpha=2.0)`). The
mixing is linear (the paper's mixup), not the geodesic mixup of m^2-Mix (`losses.geodesic_mixup`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods._norms import l2_normalize, safe_l2_norm


def metrix_contrastive_loss(anchor: jax.Array, positive: jax.Array, negative: jax.Array, lam: Any, *,
                            pos_margin: Any = 0.0, neg_margin: Any = 0.5, normalize: bool = True) -> jax.Array:
  """Metrix's mixed contrastive loss per (anchor, positive, negative) triple (Venkataramanan et al., ICLR 2022,
  arXiv:2106.04990, the mixed loss with interpolated target, contrastive base; official `loss_posneg_mixup`).

  Args:
    anchor: [B, D] floating anchor embeddings.
    positive: [B, D] embeddings of a positive of each anchor.
    negative: [B, D] embeddings of a negative of each anchor.
    lam: the mixing factor in [0, 1], a scalar or [B] (out of range: ValueError eagerly, NaN rows under jit).
    pos_margin: m+ >= 0 (official: 0).
    neg_margin: m- >= 0 (official: 0.5).
    normalize: L2-normalise the embeddings (after mixing) before the distance, as the official distance does.

  Returns:
    [B] in the anchor's dtype (half precision computed in float32): lam [d - m+]_+ + (1 - lam) [m- - d]_+.
  """
  a = validation.check_floating(anchor, "anchor")
  if a.ndim != 2:
    raise ValueError(f"anchor must be [B, D], got anchor.shape={a.shape}")
  p = validation.check_floating(positive, "positive")
  n = validation.check_floating(negative, "negative")
  for name, x in (("positive", p), ("negative", n)):
    if x.shape != a.shape:
      raise ValueError(f"{name} must have the shape of anchor {a.shape}, got {name}.shape={x.shape}")
  validation.check_nonnegative(pos_margin, "pos_margin")
  validation.check_nonnegative(neg_margin, "neg_margin")
  if not isinstance(normalize, bool):
    raise TypeError(f"normalize must be a bool, got {normalize!r}")
  if jnp.ndim(lam) not in (0, 1) or (jnp.ndim(lam) == 1 and jnp.shape(lam) != a.shape[:1]):
    raise ValueError(f"lam must be a scalar or [B] with B = {a.shape[0]}, got shape {jnp.shape(lam)}")
  lam_arr = validation.check_floating(jnp.asarray(lam, jnp.float32) if isinstance(lam, (int, float)) else lam, "lam")
  valid = validation.check_values((lam_arr >= 0) & (lam_arr <= 1), lam_arr, "lam", "in [0, 1]")
  ct = validation.compute_dtype_for(jnp.result_type(a, p, n))
  lam_c = jnp.broadcast_to(lam_arr.astype(ct), a.shape[:1])
  mixed = lam_c[:, None] * p.astype(ct) + (1 - lam_c[:, None]) * n.astype(ct)
  a32 = a.astype(ct)
  if normalize:
    a32, mixed = l2_normalize(a32), l2_normalize(mixed)
  d = safe_l2_norm(a32 - mixed)   # gradient 0 at d = 0, as torch's norm
  loss = lam_c * jax.nn.relu(d - pos_margin) + (1 - lam_c) * jax.nn.relu(neg_margin - d)
  loss = validation.nan_where_invalid(loss, valid)
  return loss.astype(a.dtype) if jnp.finfo(a.dtype).bits < 32 else loss
