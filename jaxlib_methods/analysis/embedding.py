"""Uniformity, tolerance and Recall@1 of embeddings (on the hypersphere).

Uniformity: Wang & Isola, "Understanding Contrastive Representation Learning through Alignment and Uniformity on the
Hypersphere", ICML 2020, arXiv:2005.10242 (Sec. 4.1.2): L_uniform = log E_{i != j} exp(-t ||z_i - z_j||^2), t = 2
(lower = more uniform). Wang & Liu, "Understanding the Behaviour of Contrastive Loss", CVPR 2021, arXiv:2012.09740
([22], Sec. 4) report the negative of it as uniformity (higher = more uniform) and define tolerance as the mean
similarity of pairs from the same class, T = E_{i != j, l_i = l_j} [z_i . z_j] (Sec. 4, Eq. 12 in that paper's
numbering as we read it; we cite the section).

`uniformity_loss` is the library's single implementation, `jaxlib_methods.losses.contrastive.uniformity_loss`,
re-exported here.

Recall@1: the retrieval metric of deep metric learning (Oh Song, Xiang, Jegelka, Savarese, "Deep Metric Learning via
Lifted Structured Feature Embedding", CVPR 2016, arXiv:1511.06452, the retrieval evaluation of its experiments: "each
test image (query) first retrieves K nearest neighbors from the test set and receives score 1 if an image of the same
class is retrieved", averaged over all queries), here with K = 1, the query itself excluded (leave-one-out), as the TCM
([10], arXiv:2307.04047) and Metrix ([200], arXiv:2106.04990) experiments measure it.
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


def recall_at_1(sim: jax.Array, labels: jax.Array) -> jax.Array:
  """Leave-one-out Recall@1 (Oh Song et al. 2016, arXiv:1511.06452, Recall@K with K = 1): the fraction of points
  whose nearest neighbour among the OTHER points has their label,

      R@1 = (1/N) sum_i 1[labels[j*(i)] = labels[i]],   j*(i) = argmax_{j != i} sim[i, j].

  For the cosine nearest neighbour pass the cosine similarities, e.g. z @ z.T of L2-normalised embeddings z [N, D]
  (`jaxlib_methods.losses.tcm.cosine_similarity_matrix(z)`); any similarity (larger = closer) works. A tie goes to
  the lowest index j, as `np.argmax`. Jit- and vmap-safe. For the exact float64 value of the count over N (e.g. to
  match a NumPy evaluation bit for bit), call it eagerly with float64 `sim` under `jax.enable_x64(True)`: compiled
  (jit, or a `jnp.mean`), XLA divides by the constant N as a multiplication by 1/N, which can be one ulp off.

  Args:
    sim: [N, N] floating similarity matrix, N >= 2; the diagonal is ignored.
    labels: [N] integer labels (any values: only equality matters).

  Returns:
    Scalar in [0, 1], float32 (float64 for float64 `sim` under x64). NaN if an off-diagonal entry of `sim` is NaN
    (+Inf is a valid, unbeatable similarity).
  """
  sim = validation.check_floating(sim, "sim")
  labels = validation.check_integer(labels, "labels")
  if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
    raise ValueError(f"sim must be a square [N, N] similarity matrix, got sim.shape={sim.shape}")
  validation.check_min_size(sim, "sim", 2, what="points")
  if labels.shape != (sim.shape[0],):
    raise ValueError(f"labels must have shape [N]=({sim.shape[0]},), got labels.shape={labels.shape}")
  s = sim.astype(validation.compute_dtype_for(sim.dtype))
  off_diagonal = ~jnp.eye(s.shape[0], dtype=bool)
  neighbour = jnp.argmax(jnp.where(off_diagonal, s, -jnp.inf), axis=1)
  r = jnp.sum(labels[neighbour] == labels, dtype=s.dtype) / s.shape[0]   # not jnp.mean: see the docstring
  return validation.nan_where_invalid(r, ~jnp.any(jnp.isnan(s) & off_diagonal))


__all__ = ["recall_at_1", "tolerance", "uniformity", "uniformity_loss"]
