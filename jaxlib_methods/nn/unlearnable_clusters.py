"""Unlearnable Clusters: one perturbation per K-means cluster of the data, kept in an epsilon-ball, and the
generator objective that pushes a cluster's perturbed features toward another cluster's centre.

Paper [158]: Jiaming Zhang, Xingjun Ma, Qi Yi, Jitao Sang, Yu-Gang Jiang, Yaowei Wang, Changsheng Xu, "Unlearnable
Clusters: Towards Label-agnostic Unlearnable Examples", CVPR 2023, arXiv:2301.01217 (Sec. 4: the data are clustered
with K-means on a surrogate's (e.g. CLIP's) features; cluster i gets one perturbation delta_i from its own generator,
bounded in l_inf (or l_2) norm by epsilon; the generator is trained so that the surrogate's features of the perturbed
images of cluster i match the centre of cluster (i + offset) mod p, which disrupts the uniformity and discrepancy of
the clusters). Details follow the authors' code (github.com/jiamingzhang94/Unlearnable-Clusters, main.py:
`delta = clamp(delta, -eps, eps)` for l_inf or `delta * eps / ||delta||_2` for l_2, then `clamp(x + delta, 0, 1)`;
the loss is `KLDivLoss(reduction='batchmean')(feat.log_softmax(-1), centre.softmax(-1))`). epsilon is in the image's
units (the authors' configs give it in 1/255 steps).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.validation import check_floating, check_integer, is_traced


def project_perturbation(deltas: jax.Array, *, eps: float, norm: Literal["linf", "l2"] = "linf") -> jax.Array:
  """Bound each cluster's perturbation as the authors do (Zhang et al. 2023, arXiv:2301.01217, Sec. 4): clip to
  [-eps, eps] for 'linf'; rescale to l_2 norm exactly eps for 'l2' (the authors' `delta * eps / ||delta||`).

  Args:
    deltas: [K, ...] one perturbation per cluster.
    eps: the bound, > 0.
    norm: 'linf' or 'l2'.

  Returns:
    [K, ...] bounded perturbations.
  """
  d = check_floating(deltas, "deltas")
  if not (isinstance(eps, (int, float)) and eps > 0):
    raise ValueError(f"eps must be a number > 0, got {eps=!r}")
  if norm == "linf":
    return jnp.clip(d, -eps, eps)
  if norm == "l2":
    flat = d.reshape(d.shape[0], -1)
    n = jnp.linalg.norm(flat, axis=1).reshape((-1,) + (1,) * (d.ndim - 1))
    return d * (eps / jnp.maximum(n, 1e-12))
  raise ValueError(f"norm must be 'linf' or 'l2', got {norm=!r}")


def cluster_wise_perturbation(images: jax.Array, cluster_ids: jax.Array, deltas: jax.Array, *, eps: float,
                              norm: Literal["linf", "l2"] = "linf", bounds: tuple[float, float] = (0.0, 1.0)
                              ) -> jax.Array:
  """Unlearnable Clusters' perturbed images x' = clip(x + P(delta_{c(x)}), bounds) (Zhang et al. 2023,
  arXiv:2301.01217, Sec. 4), P = `project_perturbation`. Every image of a cluster gets the same perturbation, and
  ||x' - x|| <= eps in the chosen norm (clipping to the image range only shrinks the change).

  Args:
    images: [N, ...] images in `bounds`.
    cluster_ids: [N] integer cluster of each image, in [0, K).
    deltas: [K, ...] unbounded cluster perturbations (e.g. generator outputs), one per cluster.
    eps: the bound, > 0.
    norm: 'linf' or 'l2'.
    bounds: valid pixel range (low, high).

  Returns:
    [N, ...] perturbed images, `images`'s dtype.
  """
  x = check_floating(images, "images")
  c = check_integer(cluster_ids, "cluster_ids")
  d = check_floating(deltas, "deltas")
  if c.shape != x.shape[:1] or d.shape[1:] != x.shape[1:]:
    raise ValueError(f"need images [N, ...], cluster_ids [N], deltas [K, ...] of the images' shape; got {x.shape}, "
                     f"{c.shape}, {d.shape}")
  if not is_traced(c) and c.size and (int(np.min(np.asarray(c))) < 0 or int(np.max(np.asarray(c))) >= d.shape[0]):
    raise ValueError(f"cluster_ids must be in [0, {d.shape[0]})")
  lo, hi = bounds
  if not lo < hi:
    raise ValueError(f"bounds must be (low, high) with low < high, got {bounds}")
  p = project_perturbation(d, eps=eps, norm=norm)
  return jnp.clip(x + p[c].astype(x.dtype), lo, hi)


def unlearnable_cluster_loss(features: jax.Array, centers: jax.Array, cluster_index: jax.Array, *,
                             offset: int = 1) -> jax.Array:
  """Generator objective of Unlearnable Clusters (Zhang et al. 2023, arXiv:2301.01217, Sec. 4; the authors'
  `KLDivLoss(batchmean)`): (1 / B) sum_b KL(softmax(c_{t_b}) || softmax(f_b)), t_b = (cluster_index_b + offset) mod p,
  pulling the surrogate features of cluster i's perturbed images to another cluster's centre.

  Args:
    features: [B, D] surrogate features of the perturbed images.
    centers: [p, D] K-means centres.
    cluster_index: [B] integer cluster of each image, in [0, p).
    offset: target shift (the authors' `target_offset`).

  Returns:
    scalar loss (batch-level).
  """
  f, ctr = check_floating(features, "features"), check_floating(centers, "centers")
  i = check_integer(cluster_index, "cluster_index")
  if f.ndim != 2 or ctr.ndim != 2 or f.shape[1] != ctr.shape[1] or i.shape != f.shape[:1]:
    raise ValueError(f"need features [B, D], centers [p, D], cluster_index [B]; got {f.shape}, {ctr.shape}, {i.shape}")
  t = (i + offset) % ctr.shape[0]
  logp = jax.nn.log_softmax(ctr[t], axis=-1)
  logq = jax.nn.log_softmax(f, axis=-1)
  return jnp.sum(jnp.exp(logp) * (logp - logq)) / f.shape[0]


__all__ = ["cluster_wise_perturbation", "project_perturbation", "unlearnable_cluster_loss"]
