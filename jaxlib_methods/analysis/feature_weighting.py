"""Layer-wise feature weighting of a deep linear map: how strongly each layer's representation carries each input
feature.

Paper [55]: Yihao Xue, Eric Gan, Jiayi Ni, Siddharth Joshi, Baharan Mirzasoleiman, "Investigating the Benefits of
Projection Head for Representation Learning", ICLR 2024, arXiv:2403.11391, Sec. 3 (linear two-layer model trained
with the spectral contrastive loss): the implicit bias of gradient training makes the layers balanced, so the weight
of feature i in the representation after layer l grows like c_i^(l/L): features become increasingly unequal with
depth and the pre-projection representation (l = 1 of L = 2) weights them more evenly than the post-projection one.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def layerwise_feature_weights(weights: Sequence[jax.Array], features: jax.Array) -> jax.Array:
  """The weight of each feature at each depth: w[l, i] = ||W_l ... W_1 f_i||_2 (Xue et al., ICLR 2024,
  arXiv:2403.11391, Sec. 3, the layer-wise feature weighting of a linear network).

  Args:
    weights: the layers' matrices [W_1 [h_1, d], W_2 [h_2, h_1], ...] (y = W x convention), at least one.
    features: [d, k] floating feature directions as columns (e.g. orthonormal).

  Returns:
    [L, k] float: row l - 1 holds the norms of the k features mapped through the first l layers.
  """
  if isinstance(weights, (jax.Array,)) or not isinstance(weights, (list, tuple)) or not weights:
    raise TypeError("weights must be a non-empty list or tuple of 2-D matrices [W_1, W_2, ...]")
  features = validation.check_floating(features, "features")
  if features.ndim != 2:
    raise ValueError(f"features must be [d, k] (feature directions as columns), got features.shape={features.shape}")
  out, h = [], features
  for l, w in enumerate(weights):
    w = validation.check_floating(w, f"weights[{l}]")
    if w.ndim != 2 or w.shape[1] != h.shape[0]:
      raise ValueError(f"weights[{l}] must be [h_{l + 1}, {h.shape[0]}] to follow the previous layer, got shape "
                       f"{w.shape}")
    h = w @ h
    out.append(jnp.linalg.norm(h, axis=0))
  return jnp.stack(out)
