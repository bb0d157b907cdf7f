"""Uniformity and tolerance of embeddings on the hypersphere.

Uniformity: Wang & Isola, "Understanding Contrastive Representation Learning through Alignment and Uniformity on the
Hypersphere", ICML 2020, arXiv:2005.10242 (Sec. 4.1.2): L_uniform = log E_{i != j} exp(-t ||z_i - z_j||^2), t = 2
(lower = more uniform). Wang & Liu, "Understanding the Behaviour of Contrastive Loss", CVPR 2021, arXiv:2012.09740
([22], Sec. 4) report the negative of it as uniformity (higher = more uniform) and define tolerance as the mean
similarity of pairs from the same class, T = E_{i != j, l_i = l_j} [z_i . z_j] (Sec. 4, Eq. 12 in that paper's
numbering as we read it; we cite the section).

`uniformity_loss` is the library's single implementation, `jaxlib_methods.losses.contrastive.uniformity_loss`,
re-exported here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods.losses.contrastive import uniformity_loss


def uniformity(z: jax.Array, t: float = 2.0) -> jax.Array:
  """Wang & Liu 2021's uniformity metric (arXiv:2012.09740, Sec. 4): -uniformity_loss (higher = more uniform).

  z: [N, d] floating, N >= 2 (L2-normalised) -> scalar, float32 or wider.
  """
  return -uniformity_loss(z, t)


def tolerance(z: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean cosine similarity z_i . z_j over pairs i != j with the same label (Wang & Liu 2021, arXiv:2012.09740,
  Sec. 4).

  Args:
    z: [N, D] floating L2-normalised embeddings, N >= 2; labels: [N] integer (any values: only equality matters).

  Returns:
    Scalar, float32 or wider. At least one class needs two members (else ValueError eagerly, NaN under jit);
    NaN if an embedding that has a same-class partner holds NaN.
  """
  z = validation.check_floating(z, "z")
  labels = validation.check_integer(labels, "labels")
  if z.ndim != 2:
    raise ValueError(f"z must have shape [N, D], got z.shape={z.shape}")
  validation.check_min_size(z, "z", 2, what="points")
  if labels.shape != (z.shape[0],):
    raise ValueError(f"labels must have shape [N]=({z.shape[0]},), got labels.shape={labels.shape}")
  z = z.astype(validation.compute_dtype_for(z.dtype))
  same = (labels[:, None] == labels[None, :]) & ~jnp.eye(z.shape[0], dtype=bool)
  valid = validation.check_values(jnp.any(same), labels, "labels",
                                  "such that at least one class has two members (no same-class pair to average)")
  n_pairs = jnp.maximum(jnp.sum(same), 1)
  return validation.nan_where_invalid(jnp.sum(jnp.where(same, z @ z.T, 0.0)) / n_pairs, valid)


__all__ = ["tolerance", "uniformity", "uniformity_loss"]
