"""Metric-learning losses on a hypersphere (ls19b, issue 19).

Paper [118]: Rafael S. Pereira, Alexis Joly, Patrick Valduriez, Fabio Porto, "Hyperspherical embedding for novel
class classification", 2021, arXiv:2102.03243: train the embedding with the normalized softmax loss (cosine logits,
Zhai & Wu, "Classification is a Strong Baseline for Deep Metric Learning", BMVC 2019, arXiv:1811.12649, Eq. (2)),
then classify novel classes by their nearest centroid on the sphere. The paper adds a constraint on the latent
representation that we could not check against its text (only the abstract was available to us): it is not
implemented here; the embeddings are L2-normalised, i.e. constrained to the unit hypersphere.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods.losses.stablemax import softmax_cross_entropy_with_integer_labels


def _unit(x: jax.Array) -> jax.Array:
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def normalized_softmax_loss(embeddings: jax.Array, class_weights: jax.Array, labels: jax.Array, *,
                            temperature: float = 0.05, where: Any = None) -> jax.Array:
  """Normalized softmax (cosine-logit) cross-entropy per example (Zhai & Wu 2019, arXiv:1811.12649, Eq. (2); the
  training loss of Pereira et al. 2021, arXiv:2102.03243, "Hyperspherical embedding for novel class
  classification", Sec. 3).

    L_i = -log softmax_k( cos(x_i, w_k) / temperature )[y_i]

  with x_i and the class proxies w_k L2-normalised (the logits are bounded by 1 / temperature).

  Args:
    embeddings: [B, d] floating embeddings.
    class_weights: [K, d] floating class proxies (one row per seen class).
    labels: [B] int class indices in [0, K) (ValueError eagerly, NaN rows under jit).
    temperature: T > 0 (Zhai & Wu: 0.05).
    where: optional [B] bool mask of the examples to score (excluded rows give 0 and are not checked).

  Returns:
    [B] per-example losses in the embeddings' dtype (half precision computed in float32).
  """
  x = validation.check_floating(embeddings, "embeddings")
  w = validation.check_floating(class_weights, "class_weights")
  if x.ndim != 2:
    raise ValueError(f"embeddings must be [B, d], got embeddings.shape={x.shape}")
  if w.ndim != 2 or w.shape[1] != x.shape[1] or w.shape[0] < 1:
    raise ValueError(f"class_weights must be [K >= 1, d={x.shape[1]}], got class_weights.shape={w.shape}")
  validation.check_positive(temperature, "temperature")
  ct = validation.compute_dtype_for(jnp.result_type(x, w))
  logits = _unit(x.astype(ct)) @ _unit(w.astype(ct)).T / temperature
  loss = softmax_cross_entropy_with_integer_labels(logits, labels, where=where)
  return loss.astype(x.dtype)
