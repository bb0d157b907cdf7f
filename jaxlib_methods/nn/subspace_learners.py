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
cluster (no distance-weighted sampling).

The attention module (`SubspaceAttention`) makes the learners' spatial attention maps, which the paper shows as
visual explanations and uses as proxy labels for weakly supervised segmentation. It is the trainable attention of
Jetley et al., "Learn To Pay Attention", ICLR 2018, arXiv:1804.02391 (Sec. 3, Eqs. 1-3, the parametrised
compatibility c_i = <u, l_i + g>), on which the paper builds; its text was not available here, so the module
follows Jetley et al.'s equations and their released code (a linear map of the global descriptor to the local
features' width when the two differ, then a 1x1 convolution u, a softmax over the H W positions, and the
attention-weighted sum of the local features).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods._norms import l2_normalize
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
  return l2_normalize(s)


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


class SubspaceAttention(nnx.Module):
  """Spatial attention of a subspace learner: a softmax map over the H x W positions of a local feature map, guided
  by the global descriptor, and the attended feature (Adiga Vasudeva et al., "Attention-based Dynamic Subspace
  Learners for Medical Image Analysis", IEEE JBHI 2022, arXiv:2206.09068, Sec. III; the module of Jetley et al.,
  "Learn To Pay Attention", ICLR 2018, arXiv:1804.02391, Eqs. 1-3).

  With local features l_i [C] at the N = H W positions and the global descriptor g (mapped to width C by a linear
  layer when its width G differs from C):

    c_i = <u, l_i + g>,   a_i = exp(c_i) / sum_j exp(c_j),   g_a = sum_i a_i l_i.

  u = 0 gives the uniform map a_i = 1 / N, i.e. global average pooling; the map is equivariant to permuting the
  positions. Use one module per learner for per-learner maps.

  Args:
    local_dim: C, channels of the local feature map.
    global_dim: G, width of the global descriptor.
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, local_dim: int, global_dim: int, *, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    for name, v in (("local_dim", local_dim), ("global_dim", global_dim)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
    self.local_dim, self.global_dim = local_dim, global_dim
    self.global_proj = (nnx.Linear(global_dim, local_dim, param_dtype=param_dtype, rngs=rngs)
                        if global_dim != local_dim else None)
    # u: the 1x1 convolution to one channel (no bias, as a bias cancels in the softmax)
    self.u = nnx.Param(jax.random.normal(rngs.params(), (local_dim,), param_dtype) / jnp.sqrt(local_dim))

  def __call__(self, local_features: jax.Array, global_features: jax.Array) -> tuple[jax.Array, jax.Array]:
    """local_features [B, H, W, C], global_features [B, G] -> (attended features g_a [B, C], attention map
    a [B, H, W], each map summing to 1)."""
    l = check_floating(local_features, "local_features")
    g = check_floating(global_features, "global_features")
    if l.ndim != 4 or l.shape[-1] != self.local_dim:
      raise ValueError(f"local_features must be [B, H, W, {self.local_dim}], got local_features.shape={l.shape}")
    if g.shape != (l.shape[0], self.global_dim):
      raise ValueError(f"global_features must be [B, {self.global_dim}] with local_features' B={l.shape[0]}, got "
                       f"global_features.shape={g.shape}")
    if self.global_proj is not None:
      g = self.global_proj(g)
    c = jnp.einsum("bhwc,c->bhw", l + g[:, None, None, :].astype(l.dtype), self.u[...].astype(l.dtype))
    b, h, w = c.shape
    a = jax.nn.softmax(c.reshape(b, h * w), axis=-1).reshape(b, h, w)
    return jnp.einsum("bhw,bhwc->bc", a, l), a


__all__ = ["SubspaceAttention", "kmeans_assign", "split_subspaces", "subspace_margin_loss"]
