"""Uniformity and tolerance of embeddings on the hypersphere.

Uniformity: Wang & Isola, "Understanding Contrastive Representation Learning through Alignment and Uniformity on the
Hypersphere", ICML 2020, arXiv:2005.10242 (Sec. 4.1.2): L_uniform = log E_{i != j} exp(-t ||z_i - z_j||^2), t = 2
(lower = more uniform). Wang & Liu, "Understanding the Behaviour of Contrastive Loss", CVPR 2021, arXiv:2012.09740
([22], Sec. 4) report the negative of it as uniformity (higher = more uniform) and define tolerance as the mean
similarity of pairs from the same class, T = E_{i != j, l_i = l_j} [z_i . z_j] (Sec. 4, Eq. 12 in that paper's
numbering as we read it; we cite the section).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def _check_z(z: jax.Array) -> None:
  if jnp.ndim(z) != 2 or z.shape[0] < 2:
    raise ValueError(f"need embeddings [N >= 2, D], got {jnp.shape(z)=}")


def uniformity_loss(z: jax.Array, t: float = 2.0) -> jax.Array:
  """log mean_{i != j} exp(-t ||z_i - z_j||^2) (Wang & Isola 2020). z [N, D] (L2-normalise first). Scalar."""
  _check_z(z)
  validation.check_positive(t, "t")
  sq = jnp.sum(z * z, -1)
  d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)
  n = z.shape[0]
  off = ~jnp.eye(n, dtype=bool)
  return jax.nn.logsumexp(jnp.where(off, -t * d2, -jnp.inf)) - jnp.log(n * (n - 1.0))


def uniformity(z: jax.Array, t: float = 2.0) -> jax.Array:
  """Wang & Liu 2021's uniformity metric: -uniformity_loss (higher = more uniform). z [N, D] -> scalar."""
  return -uniformity_loss(z, t)


def tolerance(z: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean cosine similarity z_i . z_j over pairs i != j with the same label (Wang & Liu 2021, Sec. 4).

  Args:
    z: [N, D] L2-normalised embeddings; labels: [N] int.

  Returns:
    Scalar (NaN if no class has two members).
  """
  _check_z(z)
  if jnp.shape(labels) != (z.shape[0],):
    raise ValueError(f"labels must have shape [N], got {jnp.shape(labels)=}, {z.shape=}")
  same = (labels[:, None] == labels[None, :]) & ~jnp.eye(z.shape[0], dtype=bool)
  return jnp.sum(jnp.where(same, z @ z.T, 0.0)) / jnp.sum(same)
