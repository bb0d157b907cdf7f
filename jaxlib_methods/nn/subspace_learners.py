"""Dynamic subspace learners: the embedding split into K subspaces, each trained with a metric loss on its own data
cluster, and the K-means assignment that routes examples to learners.

Paper [102]: Sukesh Adiga Vasudeva, Jose Dolz, Herve Lombaert, "Attention-based Dynamic Subspace Learners for Medical
Image Analysis", IEEE JBHI 2022, arXiv:2206.09068 (Sec. III: the D-dimensional embedding is divided into K subspaces
of D / K dimensions, one learner each; the training data are clustered with K-means in the full embedding and each
cluster trains one learner with a metric loss, the divide-and-conquer scheme of Sanakoyeu et al., "Divide and Conquer
the Embedding Space for Metric Learning", CVPR 2019, arXiv:1906.05990; new learners are added during training, so K
need not be known in advance). The metric loss is the margin loss the divide-and-conquer scheme uses (Wu et al.,
"Sampling Matters in Deep Embedding Learning", ICCV 2017, arXiv:1706.07567, Eq. 3: l_ij = max(0, alpha + y_ij
(D_ij - beta)), y_ij = +1 for a positive pair and -1 otherwise, alpha = 0.2, beta = 1.2), here over all pairs of a
cluster (no distance-weighted sampling). The attention module of the paper (spatial attention maps on the backbone's
features) is not built here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlib_methods.validation import check_floating, check_integer


def split_subspaces(embeddings: jax.Array, num_learners: int) -> jax.Array:
  """Split embeddings into K equal subspaces, each L2-normalised (Adiga Vasudeva et al. 2022, arXiv:2206.09068,
  Sec. III; Sanakoyeu et al. 2019, Sec. 3).

  Args:
    embeddings: [B, D] embeddings, D divisible by K.
    num_learners: K >= 1.

  Returns:
    [B, K, D / K] unit-norm subspace embeddings (learner k owns dimensions k D / K ... (k + 1) D / K - 1).
  """
  e = check_floating(embeddings, "embeddings")
  if isinstance(num_learners, bool) or not isinstance(num_learners, int) or num_learners < 1:
    raise ValueError(f"num_learners must be an int >= 1, got {num_learners=!r}")
  if e.ndim != 2 or e.shape[1] % num_learners:
    raise ValueError(f"embeddings must be [B, D] with D divisible by num_learners={num_learners}, got {e.shape}")
  s = e.reshape(e.shape[0], num_learners, e.shape[1] // num_learners)
  return s / jnp.maximum(jnp.linalg.norm(s, axis=-1, keepdims=True), 1e-12)


def kmeans_assign(embeddings: jax.Array, centroids: jax.Array) -> jax.Array:
  """Cluster of each example: its nearest centroid in Euclidean distance (the K-means step that routes examples to
  learners; Adiga Vasudeva et al. 2022, arXiv:2206.09068, Sec. III). Ties go to the lower index.

  Args:
    embeddings: [B, D] full embeddings.
    centroids: [K, D] cluster centres.

  Returns:
    [B] int32 cluster ids in [0, K).
  """
  e, c = check_floating(embeddings, "embeddings"), check_floating(centroids, "centroids")
  if e.ndim != 2 or c.ndim != 2 or e.shape[1] != c.shape[1]:
    raise ValueError(f"need embeddings [B, D] and centroids [K, D], got {e.shape} and {c.shape}")
  d2 = jnp.sum(e * e, 1, keepdims=True) - 2 * e @ c.T + jnp.sum(c * c, 1)[None]
  return jnp.argmin(d2, axis=1).astype(jnp.int32)


def subspace_margin_loss(embeddings: jax.Array, labels: jax.Array, cluster_ids: jax.Array, num_learners: int, *,
                         alpha: float = 0.2, beta: float = 1.2) -> jax.Array:
  """Per-learner margin loss of dynamic subspace learners (Adiga Vasudeva et al. 2022, arXiv:2206.09068, Sec. III;
  margin loss of Wu et al. 2017, arXiv:1706.07567, Eq. 3).

  Learner k sees only the pairs (i, j), i != j, with cluster_ids[i] = cluster_ids[j] = k, on its own normalised
  subspace: L_k = mean over those pairs of max(0, alpha + y_ij (||s_ik - s_jk|| - beta)), y_ij = +1 if
  labels[i] = labels[j] else -1; a learner with no pair gets 0.

  Args:
    embeddings: [B, D] embeddings, D divisible by K.
    labels: [B] integer class (or group) ids; only equality matters.
    cluster_ids: [B] integer learner of each example, in [0, K) (from `kmeans_assign`).
    num_learners: K.
    alpha: margin, >= 0.
    beta: boundary between positive and negative distances.

  Returns:
    [K] losses, one per learner (batch-level: sum or average them).
  """
  s = split_subspaces(embeddings, num_learners)
  y, c = check_integer(labels, "labels"), check_integer(cluster_ids, "cluster_ids")
  if y.shape != (s.shape[0],) or c.shape != (s.shape[0],):
    raise ValueError(f"labels and cluster_ids must be [B={s.shape[0]}], got {y.shape} and {c.shape}")
  if not alpha >= 0:
    raise ValueError(f"alpha must be >= 0, got {alpha=}")
  diff = s[:, None] - s[None]                                             # [B, B, K, d]
  dist = jnp.sqrt(jnp.maximum(jnp.sum(diff * diff, -1), 1e-12))          # [B, B, K]
  sign = jnp.where(y[:, None] == y[None], 1.0, -1.0)[..., None]
  loss = jnp.maximum(0.0, alpha + sign * (dist - beta))
  k = jnp.arange(num_learners)
  pair = (c[:, None] == c[None])[..., None] & (c[:, None, None] == k) & ~jnp.eye(s.shape[0], dtype=bool)[..., None]
  count = pair.sum((0, 1))
  return jnp.where(count > 0, jnp.sum(jnp.where(pair, loss, 0.0), (0, 1)) / jnp.maximum(count, 1), 0.0)


__all__ = ["kmeans_assign", "split_subspaces", "subspace_margin_loss"]
