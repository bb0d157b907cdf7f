"""Saliency mass on a concept's input region [32].

Jack Furby, Daniel Cunnington, Dave Braines, Alun Preece, "Can we Constrain Concept Bottleneck Models to Learn
Semantically Meaningful Input Features?", 2024, arXiv:2402.00912.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxlib_methods import validation


def attribution_on_region(saliency, mask):
  """Fraction of a saliency map's absolute mass that falls on a region: sum_{mask} |s| / sum |s|, per example.

  Furby, Cunnington, Braines & Preece, "Can we Constrain Concept Bottleneck Models to Learn Semantically Meaningful
  Input Features?", 2024, arXiv:2402.00912: whether a concept's saliency lies on the concept's own input features.
  An all-zero saliency map gives 0.

  Args:
    saliency: [B, *S] float saliency maps (any trailing shape S).
    mask: [*S] or [B, *S] bool region mask.

  Returns:
    float [B] fractions in [0, 1].
  """
  s = validation.check_floating(saliency, "saliency")
  m = validation.check_bool(mask, "mask")
  if s.ndim < 2:
    raise ValueError(f"saliency must be [B, ...] maps, got saliency.shape={s.shape}")
  if m.shape not in (s.shape[1:], s.shape):
    raise ValueError(f"mask must be {s.shape[1:]} or {s.shape}, got mask.shape={m.shape}")
  a = jnp.abs(s).reshape(s.shape[0], -1)
  mm = jnp.broadcast_to(m, s.shape).reshape(s.shape[0], -1)
  tot = a.sum(1)
  return jnp.where(tot > 0, jnp.sum(jnp.where(mm, a, 0.0), 1) / jnp.where(tot > 0, tot, 1.0), 0.0)
