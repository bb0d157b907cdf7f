"""Metrics for concept-based explanations: global importance, existence and location of concepts (post-hoc CBMs).

Aysel, Cai, Prugel-Bennett, "Concept-Based Explainable Artificial Intelligence: Metrics and Benchmarks", 2025,
arXiv:2501.19271 (Sec. 3: CGIM, CEM, CLM and concept activation mapping, CoAM). A post-hoc concept bottleneck model
scores concept c on an image with feature map F [H, W, D] by projecting its pooled features on a concept vector v_c;
the class logits are W_cls [K, C] times the concept scores. The definitions implemented here (the paper's equations
could not be retrieved verbatim: these follow its text and are stated exactly):

- CoAM: the concept score computed at each location instead of on the pooled features, M_c[h, w] = <F[h, w], v_c>
  (the concept analogue of class activation mapping), min-max normalised to [0, 1] per map.
- CGIM: the per-class Pearson correlation between the model's concept importances for class k (a row of W_cls) and
  the ground-truth class-level concept annotations (a row of the class x concept attribute matrix).
- CEM: per image, the fraction of its top-k most important concepts (importance = W_cls[predicted class, c] times the
  image's concept score) that the image's ground-truth concept annotation says are present.
- CLM: per image and concept, the IoU between the CoAM thresholded at `threshold` and the concept's ground-truth
  region mask (the metric is high when the map highlights the annotated part and only it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def concept_activation_map(features, concept_vectors):
  """CoAM: per-location concept scores, min-max normalised per map (Aysel et al. 2025, arXiv:2501.19271, Sec. 3.4).

  Args:
    features: [..., H, W, D] float spatial feature maps.
    concept_vectors: [C, D] float concept directions v_c.

  Returns:
    [..., C, H, W] maps in [0, 1] (a constant map is all zeros).
  """
  F = validation.check_floating(features, "features")
  V = validation.check_floating(concept_vectors, "concept_vectors")
  if F.ndim < 3:
    raise ValueError(f"features must be [..., H, W, D], got features.shape={F.shape}")
  if V.ndim != 2 or V.shape[1] != F.shape[-1]:
    raise ValueError(f"concept_vectors must be [C, D] with D = features.shape[-1] = {F.shape[-1]}, got "
                     f"concept_vectors.shape={V.shape}")
  m = jnp.einsum("...hwd,cd->...chw", F, V.astype(F.dtype))
  lo = jnp.min(m, axis=(-2, -1), keepdims=True)
  hi = jnp.max(m, axis=(-2, -1), keepdims=True)
  span = hi - lo
  return jnp.where(span > 0, (m - lo) / jnp.where(span > 0, span, 1.0), 0.0)


def concept_global_importance(class_concept_weights, class_concept_annotations):
  """CGIM: per class, the Pearson correlation between the model's concept weights and the ground-truth class-level
  concept annotations (Aysel et al. 2025, arXiv:2501.19271, Sec. 3.1).

  Args:
    class_concept_weights: [K, C] float, the CBM's final-layer weights (class k's importance of concept c).
    class_concept_annotations: [K, C] float or bool, ground-truth class-level concept attributes.

  Returns:
    [K] correlations in [-1, 1]; NaN for a class whose weights or annotations are constant (undefined correlation).
  """
  W = validation.check_floating(class_concept_weights, "class_concept_weights")
  G = jnp.asarray(class_concept_annotations)
  if G.dtype == jnp.bool_:
    G = G.astype(W.dtype)
  G = validation.check_floating(G, "class_concept_annotations")
  if W.ndim != 2 or G.shape != W.shape:
    raise ValueError(f"class_concept_weights and class_concept_annotations must both be [K, C], got "
                     f"{W.shape} and {G.shape}")
  if W.shape[1] < 2:
    raise ValueError(f"a correlation needs C >= 2 concepts, got class_concept_weights.shape={W.shape}")
  w = W - W.mean(-1, keepdims=True)
  g = G.astype(W.dtype) - G.mean(-1, keepdims=True).astype(W.dtype)
  return jnp.sum(w * g, -1) / jnp.sqrt(jnp.sum(w * w, -1) * jnp.sum(g * g, -1))


def concept_existence_metric(concept_importance, concept_present, *, k: int):
  """CEM: per image, the fraction of its k most important concepts that are present in it (Aysel et al. 2025,
  arXiv:2501.19271, Sec. 3.2). Ties in importance are broken by the lower concept index (jax.lax.top_k).

  Args:
    concept_importance: [N, C] float, per-image concept importances (e.g. W_cls[predicted class] * concept scores).
    concept_present: [N, C] bool, the per-image ground-truth concept annotations.
    k: int in [1, C].

  Returns:
    [N] fractions in [0, 1].
  """
  imp = validation.check_floating(concept_importance, "concept_importance")
  present = validation.check_bool(concept_present, "concept_present")
  if imp.ndim != 2 or present.shape != imp.shape:
    raise ValueError(f"concept_importance and concept_present must both be [N, C], got {imp.shape} and "
                     f"{present.shape}")
  if isinstance(k, bool) or not isinstance(k, int):
    raise TypeError(f"k must be an int, got {k=}")
  if not 1 <= k <= imp.shape[1]:
    raise ValueError(f"k must lie in [1, C={imp.shape[1]}], got {k=}")
  _, idx = jax.lax.top_k(imp, k)
  return jnp.mean(jnp.take_along_axis(present, idx, axis=1).astype(imp.dtype), axis=1)


def concept_location_metric(activation_map, region_mask, *, threshold: float = 0.5):
  """CLM: IoU between the activation map thresholded at `threshold` and the concept's ground-truth region (Aysel et
  al. 2025, arXiv:2501.19271, Sec. 3.3).

  Args:
    activation_map: [..., H, W] float maps in [0, 1] (e.g. from `concept_activation_map`).
    region_mask: [..., H, W] bool ground-truth regions of the concept.
    threshold: float in [0, 1); locations with map > threshold count as highlighted.

  Returns:
    [...] IoU in [0, 1]; 0 where both the highlighted set and the region are empty.
  """
  m = validation.check_floating(activation_map, "activation_map")
  r = validation.check_bool(region_mask, "region_mask")
  if m.ndim < 2 or r.shape != m.shape:
    raise ValueError(f"activation_map and region_mask must both be [..., H, W], got {m.shape} and {r.shape}")
  validation.check_in_interval(threshold, "threshold", 0.0, 1.0, closed_high=False)
  hot = m > threshold
  inter = jnp.sum(hot & r, axis=(-2, -1))
  union = jnp.sum(hot | r, axis=(-2, -1))
  return jnp.where(union > 0, inter / jnp.maximum(union, 1), 0.0).astype(m.dtype)
