"""Shuffled group whitening (WhitenedCSE): ZCA-whiten random groups of embedding dimensions over the batch.

Paper [152]: Wenjie Zhuo, Yifan Sun, Xiaohan Wang, Linchao Zhu, Yi Yang, "WhitenedCSE: Whitening-based Contrastive
Learning of Sentence Embeddings", ACL 2023, arXiv:2305.17746 (Sec. 3, shuffled group whitening, SGW).

SGW permutes the D embedding dimensions at random, splits them into G groups of D / G consecutive (shuffled)
dimensions, and ZCA-whitens each group over the batch of N embeddings,

    Z_g <- (Z_g - mean) W_g,    W_g = U diag(lambda)^(-1/2) U^T,
    Sigma_g = (Z_g - mean)^T (Z_g - mean) / N = U diag(lambda) U^T,

then undoes the permutation. Each whitened group has exactly the identity covariance (tested); different
permutations give different whitened views of the same embeddings, which WhitenedCSE uses as extra positives of a
contrastive (InfoNCE, `jaxlib_methods.losses.contrastive`) loss. The whitening matrix follows the official code:
no epsilon (eps = 0; a positive eps regularises Sigma_g + eps I for near-singular groups, at the cost of exactness).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def shuffled_group_whitening(z: jax.Array, key: jax.Array, num_groups: int, *, eps: Any = 0.0) -> jax.Array:
  """WhitenedCSE's shuffled group whitening of a batch of embeddings (Zhuo et al. 2023, arXiv:2305.17746, Sec. 3).

  A batch-level transform (each output row depends on the whole batch). Differentiable (through `eigh`; the
  gradient is undefined where a group's covariance has repeated eigenvalues).

  Args:
    z: [N, D] floating embeddings (N > D / num_groups for a full-rank group covariance).
    key: a PRNG key for the permutation of the D dimensions (same key, same groups).
    num_groups: G >= 1, dividing D.
    eps: >= 0 added to each group covariance's diagonal (0: the paper's exact whitening).

  Returns:
    [N, D] whitened embeddings (float32 for half-precision input), in the original dimension order.
  """
  z = validation.check_floating(z, "z")
  if z.ndim != 2:
    raise ValueError(f"z must be [N, D], got z.shape={z.shape}")
  if (isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) or num_groups < 1
      or z.shape[1] % num_groups):
    raise ValueError(f"num_groups must be an int >= 1 dividing D = {z.shape[1]}, got {num_groups=}")
  num_groups = int(num_groups)
  validation.check_nonnegative(eps, "eps")
  validation.check_min_size(z, "z", 2)
  n, d = z.shape
  k = d // num_groups
  if n <= k and validation.is_concrete_number(eps) and float(eps) == 0.0:
    raise ValueError(f"z has N = {n} rows and each group D / num_groups = {k} dimensions: a centred group covariance "
                     f"has rank <= N - 1 < {k}, so exact whitening (eps=0) is undefined (it would return NaN); pass "
                     f"more than {k} rows, more groups, or eps > 0")
  x = z.astype(jnp.promote_types(validation.compute_dtype_for(z.dtype), jnp.float32))
  perm = jax.random.permutation(key, d)
  g = x[:, perm].reshape(n, num_groups, k).transpose(1, 0, 2)            # [G, N, k]
  g = g - jnp.mean(g, axis=1, keepdims=True)
  cov = jnp.einsum("gnk,gnl->gkl", g, g) / n + eps * jnp.eye(k, dtype=x.dtype)
  lam, u = jnp.linalg.eigh(cov)
  w = jnp.einsum("gkl,gl,gml->gkm", u, jax.lax.rsqrt(lam), u)            # U diag(lam^-1/2) U^T
  out = jnp.einsum("gnk,gkm->gnm", g, w).transpose(1, 0, 2).reshape(n, d)
  return out[:, jnp.argsort(perm)]
