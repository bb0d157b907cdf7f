"""Density-based pruning (DBP) of a data set by the complexity of its concept clusters [37].

Amro Abbas, Evgenia Rusak, Kushal Tirumala, Wieland Brendel, Kamalika Chaudhuri, Ari S. Morcos, "Effective pruning of
web-scale datasets based on complexity of concept clusters", ICLR 2024, arXiv:2401.04578 (Sec. 3, DBP): k-means
clusters of the embeddings; the complexity of cluster j is C_j = d_intra(j) d_inter(j) (d_intra: the mean distance of
its members to the centroid; d_inter: the mean distance of its centroid to the `n_neighbors` nearest other
centroids); cluster j keeps N_j = budget softmax(C / tau)_j samples (capped at its size, the rest redistributed), and
within a cluster the least prototypical samples (farthest from the centroid, as in SSP pruning) are kept. The
quotas are integers that sum to the budget, so they are computed on the host (NumPy); k-means runs under jit.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def dbp_quotas(complexity, cluster_sizes, budget: int, tau: float):
  """Per-cluster sample quotas N_j ~ budget softmax(C / tau)_j, capped at the cluster sizes, summing to the budget.

  Abbas et al., ICLR 2024, arXiv:2401.04578, Sec. 3 (the number of samples kept per cluster). Clusters whose share
  exceeds their size keep all their samples and the excess is redistributed over the others in proportion to their
  softmax weights; the integer quotas use largest-remainder rounding.

  Args:
    complexity: [K] float cluster complexities C_j.
    cluster_sizes: [K] int cluster sizes (>= 0).
    budget: int, 0 <= budget <= sum of the sizes, the total number of samples to keep.
    tau: float > 0, the softmax temperature.

  Returns:
    int64 NumPy [K] quotas, 0 <= N_j <= size_j, sum N_j = budget.
  """
  c = np.asarray(complexity, np.float64)
  sizes = np.asarray(cluster_sizes)
  if c.ndim != 1 or sizes.shape != c.shape or not np.issubdtype(sizes.dtype, np.integer):
    raise ValueError(f"complexity must be [K] floats and cluster_sizes [K] ints, got {c.shape}, {sizes.shape} "
                     f"({sizes.dtype})")
  if not np.all(np.isfinite(c)) or np.any(sizes < 0):
    raise ValueError("complexity must be finite and cluster_sizes >= 0")
  budget = validation.check_int(budget, "budget", 0)
  if budget > sizes.sum():
    raise ValueError(f"budget must be <= the number of samples ({sizes.sum()}), got budget={budget}")
  if isinstance(tau, bool) or not np.isfinite(tau) or not tau > 0:
    raise ValueError(f"tau must be a finite float > 0, got {tau=}")
  w = np.exp((c - c.max()) / tau) * (sizes > 0)
  quota = np.zeros(c.shape)
  free = sizes > 0
  remaining = float(budget)
  while remaining > 1e-9 and free.any():
    share = remaining * w * free / np.sum(w * free)
    over = free & (quota + share >= sizes)
    if not over.any():
      quota += share
      break
    remaining -= np.sum(sizes[over] - quota[over])
    quota[over] = sizes[over]
    free &= ~over
  base = np.floor(quota + 1e-9).astype(np.int64)
  short = budget - base.sum()
  order = np.argsort(-(quota - base) + 1e-12 * np.arange(len(c)))          # largest remainder first (stable)
  order = [j for j in order if base[j] < sizes[j]]
  base[order[:short]] += 1
  return base


@functools.partial(jax.jit, static_argnums=(2, 3))
def _kmeans(x, init_idx, k, iters):
  c0 = x[init_idx]

  def step(c, _):
    a = jnp.argmin(jnp.sum(x * x, 1)[:, None] - 2 * x @ c.T + jnp.sum(c * c, 1)[None], axis=1)
    oh = jax.nn.one_hot(a, k, dtype=x.dtype)
    cnt = oh.sum(0)
    new = (oh.T @ x) / jnp.maximum(cnt, 1.0)[:, None]
    return jnp.where(cnt[:, None] > 0, new, c), None

  c, _ = jax.lax.scan(step, c0, None, length=iters)
  a = jnp.argmin(jnp.sum(x * x, 1)[:, None] - 2 * x @ c.T + jnp.sum(c * c, 1)[None], axis=1)
  return c, a.astype(jnp.int32)


def dbp_prune(embs, n_clusters: int, keep_frac: float, tau: float, *, key, iters: int = 50,
              n_neighbors: int = 20):
  """Density-based pruning: which samples to keep (a [N] mask), by cluster complexity.

  Abbas et al., "Effective pruning of web-scale datasets based on complexity of concept clusters", ICLR 2024,
  arXiv:2401.04578, Sec. 3: k-means (Lloyd, `iters` steps from `n_clusters` distinct random samples), Euclidean
  d_intra (mean member-to-centroid distance) and d_inter (mean distance to the min(n_neighbors, K - 1) nearest other
  centroids), C_j = d_intra d_inter, quotas from `dbp_quotas` with budget round(keep_frac N), and in each cluster the
  quota of samples farthest from the centroid.

  Args:
    embs: [N, D] float embeddings (normalise them first for cosine geometry).
    n_clusters: int, 2 <= K <= N.
    keep_frac: float in (0, 1], the fraction of samples kept.
    tau: float > 0, the softmax temperature over complexities.
    key: a jax PRNG key (the k-means initialisation).
    iters: int >= 1 Lloyd iterations.
    n_neighbors: int >= 1 neighbouring centroids of d_inter.

  Returns:
    (keep [N] bool NumPy mask, info dict with "assign" [N], "complexity" [K], "quotas" [K], "centroids" [K, D]).
  """
  x = validation.check_floating(embs, "embs")
  if x.ndim != 2 or x.shape[0] < 2:
    raise ValueError(f"embs must be [N, D] with N >= 2, got embs.shape={x.shape}")
  n = x.shape[0]
  k = validation.check_int(n_clusters, "n_clusters", 2)
  if k > n:
    raise ValueError(f"n_clusters must be <= N = {n}, got n_clusters={k}")
  if isinstance(keep_frac, bool) or not 0 < float(keep_frac) <= 1:
    raise ValueError(f"keep_frac must be in (0, 1], got {keep_frac=}")
  iters = validation.check_int(iters, "iters", 1)
  nn = min(validation.check_int(n_neighbors, "n_neighbors", 1), k - 1)
  init = jax.random.choice(key, n, (k,), replace=False)
  cent, assign = _kmeans(x.astype(validation.compute_dtype_for(x.dtype)), init, k, iters)
  xn, cn, an = np.asarray(x, np.float64), np.asarray(cent, np.float64), np.asarray(assign)
  dist = np.linalg.norm(xn - cn[an], axis=1)
  sizes = np.bincount(an, minlength=k)
  d_intra = np.bincount(an, weights=dist, minlength=k) / np.maximum(sizes, 1)
  dc = np.linalg.norm(cn[:, None] - cn[None], axis=-1)
  np.fill_diagonal(dc, np.inf)
  d_inter = np.sort(dc, axis=1)[:, :nn].mean(1)
  complexity = d_intra * d_inter
  quotas = dbp_quotas(complexity, sizes, int(round(float(keep_frac) * n)), tau)
  keep = np.zeros(n, bool)
  for j in range(k):
    members = np.flatnonzero(an == j)
    keep[members[np.argsort(-dist[members], kind="stable")[: quotas[j]]]] = True
  return keep, {"assign": an, "complexity": complexity, "quotas": quotas, "centroids": cn}
