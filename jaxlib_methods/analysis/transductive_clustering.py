"""Transductive few-shot inference as regularised clustering: a block-coordinate bound optimizer.

[67] Imtiaz Masud Ziko, Malik Boudiaf, Jose Dolz, Eric Granger, Ismail Ben Ayed, "Transductive Few-Shot Learning:
Clustering is All You Need?", 2021, arXiv:2106.09516 (Sec. 3: the general model and its concave-convex relaxation;
Sec. 3/4: the bound optimizer and its convergence). The model joins a prototype (K-means) term, a Laplacian term
and supervision constraints (the labelled support points keep their labels). Relaxed to soft assignments
s_p in the simplex, with the negative entropy s_p^T log s_p as the simplex barrier, the objective over all N points
(supports first, then queries) is

  E(S, m) = sum_p sum_k s_pk ||x_p - m_k||^2 + sum_p s_p^T log s_p - lam sum_{p,q} w_pq s_p^T s_q .

With a positive semi-definite affinity W (the Gaussian kernel is one) the Laplacian part -lam tr(S^T W S) is concave,
so its tangent at the current S^i bounds it from above; the bound is separable over points and its minimiser on the
simplex is the independent (parallel) per-point update

  s_p <- softmax_k( -||x_p - m_k||^2 + 2 lam sum_q w_pq s_q^i ) ,

which cannot increase E (E(S^{i+1}) <= bound(S^{i+1}) <= bound(S^i) = E(S^i)). The prototype block
m_k <- sum_p s_pk x_p / sum_p s_pk minimises the K-means term exactly for fixed S, so alternating the two blocks
gives a non-increasing objective. lam = 0 is soft K-means seeded at the support prototypes (the paper's observation:
even K-means is a strong transductive few-shot learner).

The kernel diagonal (w_pp = 1) is kept: removing it can make W indefinite and void the bound.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


class TransductiveResult(NamedTuple):
  """Output of `bound_optimizer` (Ziko et al., "Transductive Few-Shot Learning: Clustering is All You Need?", 2021,
  arXiv:2106.09516, Sec. 3).

  Attributes:
    assignments: soft query assignments S_Q, [Nq, K] (rows on the simplex).
    prototypes: final prototypes m, [K, D].
    objective: E after the initialisation and after every half-step (S-block, then m-block), [2 * iters + 1].
  """
  assignments: jax.Array
  prototypes: jax.Array
  objective: jax.Array


def gaussian_affinity(x: jax.Array, sigma: float) -> jax.Array:
  """Gaussian-kernel affinity w_pq = exp(-||x_p - x_q||^2 / (2 sigma^2)), a PSD matrix (diagonal 1).

  The affinity of the Laplacian term of [67] (Ziko et al., "Transductive Few-Shot Learning: Clustering is All You
  Need?", 2021, arXiv:2106.09516, Sec. 3); positive semi-definiteness is what makes its bound optimizer monotone.

  Args:
    x: features, [N, D].
    sigma: kernel width (> 0).

  Returns:
    [N, N] affinity matrix.
  """
  x = validation.check_floating(x, "x")
  if x.ndim != 2:
    raise ValueError(f"x must be [N, D], got shape {x.shape}")
  validation.check_positive(sigma, "sigma")
  x = x - jnp.mean(x, axis=0)       # shift invariant; centred, ||a||^2 + ||b||^2 - 2ab keeps its precision
  sq = jnp.sum(x * x, -1)
  d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
  return jnp.exp(-d2 / (2 * sigma ** 2))


def _sq_dist(x, m):
  """||x_p - m_k||^2, [N, K], by ||x||^2 + ||m||^2 - 2 x.m: callers centre x and m first (it cancels far from 0)."""
  return jnp.maximum(jnp.sum(x * x, -1)[:, None] + jnp.sum(m * m, -1)[None, :] - 2 * x @ m.T, 0.0)


def _objective(s, feats, prototypes, affinity, lam):
  """E(S, m) of `transductive_objective` for feats and prototypes already centred (no checks)."""
  neg_ent = jnp.sum(jnp.where(s > 0, s * jnp.log(jnp.where(s > 0, s, 1.0)), 0.0))
  unary = jnp.sum(s * _sq_dist(feats, prototypes))
  return unary + neg_ent - lam * jnp.sum(s * (affinity @ s))


def transductive_objective(assignments: jax.Array, feats: jax.Array, prototypes: jax.Array, affinity: jax.Array,
                           lam: float) -> jax.Array:
  """The relaxed objective E(S, m) of [67] over all points (supports and queries).

  E = sum_pk s_pk ||x_p - m_k||^2 + sum_p s_p^T log s_p - lam sum_pq w_pq s_p^T s_q (Ziko et al., "Transductive
  Few-Shot Learning: Clustering is All You Need?", 2021, arXiv:2106.09516, Sec. 3, the concave-convex relaxation),
  with 0 log 0 = 0.

  Args:
    assignments: soft assignments of all N points, [N, K] (rows on the simplex).
    feats: features, [N, D].
    prototypes: prototypes, [K, D].
    affinity: affinity matrix, [N, N].
    lam: Laplacian weight (>= 0).

  Returns:
    scalar objective.
  """
  s = validation.check_floating(assignments, "assignments")
  feats = validation.check_floating(feats, "feats")
  prototypes = validation.check_floating(prototypes, "prototypes")
  affinity = validation.check_floating(affinity, "affinity")
  if feats.ndim != 2 or s.ndim != 2 or s.shape[0] != feats.shape[0]:
    raise ValueError(f"assignments and feats must be [N, K] and [N, D], got {s.shape} and {feats.shape}")
  if prototypes.shape != (s.shape[1], feats.shape[1]):
    raise ValueError(f"prototypes must be [K, D] = {(s.shape[1], feats.shape[1])}, got {prototypes.shape}")
  if affinity.shape != (feats.shape[0],) * 2:
    raise ValueError(f"affinity must be [N, N] = {(feats.shape[0],) * 2}, got {affinity.shape}")
  validation.check_nonnegative(lam, "lam")
  mu = jnp.mean(feats, axis=0)      # E is shift invariant: distances of centred points keep their precision
  return _objective(s, feats - mu, prototypes - mu, affinity, lam)


@functools.partial(jax.jit, static_argnames=("num_classes", "iters", "update_prototypes"))
def _run(support, support_labels, query, affinity, lam, *, num_classes, iters, update_prototypes):
  # Everything below is shift invariant: work on features centred at their mean (restored on the prototypes), so
  # the squared distances ||x||^2 + ||m||^2 - 2 x.m keep their precision for features far from the origin.
  mu = jnp.mean(jnp.concatenate([support, query], 0), axis=0)
  support, query = support - mu, query - mu
  feats = jnp.concatenate([support, query], 0)
  s_sup = jax.nn.one_hot(support_labels, num_classes, dtype=feats.dtype)
  counts = jnp.sum(s_sup, 0)
  m0 = (s_sup.T @ support) / counts[:, None]
  ns = support.shape[0]
  w_qall = affinity[ns:]

  def s_step(s_q, m):
    s_all = jnp.concatenate([s_sup, s_q], 0)
    return jax.nn.softmax(-_sq_dist(query, m) + 2 * lam * (w_qall @ s_all), axis=-1)

  def m_step(s_q, m):
    if not update_prototypes:
      return m
    s_all = jnp.concatenate([s_sup, s_q], 0)
    return (s_all.T @ feats) / jnp.sum(s_all, 0)[:, None]

  def energy(s_q, m):
    return _objective(jnp.concatenate([s_sup, s_q], 0), feats, m, affinity, lam)

  s0 = jax.nn.softmax(-_sq_dist(query, m0), axis=-1)

  def body(carry, _):
    s_q, m = carry
    s_q = s_step(s_q, m)
    e1 = energy(s_q, m)
    m = m_step(s_q, m)
    e2 = energy(s_q, m)
    return (s_q, m), jnp.stack([e1, e2])

  (s_q, m), es = jax.lax.scan(body, (s0, m0), None, length=iters)
  objective = jnp.concatenate([energy(s0, m0)[None], es.reshape(-1)])
  return TransductiveResult(s_q, m + mu, objective)


def bound_optimizer(support: jax.Array, support_labels: jax.Array, query: jax.Array, affinity: jax.Array, *,
                    num_classes: int, lam: float, iters: int = 20, update_prototypes: bool = True
                    ) -> TransductiveResult:
  """Block-coordinate bound optimizer of [67] for transductive few-shot inference.

  Ziko, Boudiaf, Dolz, Granger, Ben Ayed, "Transductive Few-Shot Learning: Clustering is All You Need?", 2021,
  arXiv:2106.09516, Sec. 3 (bound optimizer). Supports keep their one-hot labels (supervision constraints);
  prototypes start at the support class means and queries at softmax(-||x - m||^2). Each iteration does the
  parallel per-point bound update s_p <- softmax(-||x_p - m_k||^2 + 2 lam (W S)_p) of every query, then (if
  `update_prototypes`) m_k <- weighted mean of all points. With a PSD `affinity` the recorded objective
  (`transductive_objective`) is non-increasing after every half-step. lam = 0 is soft K-means seeded at the supports;
  lam = 0 with update_prototypes=False and iters=1 is the inductive nearest-prototype rule (argmax of the result).

  Args:
    support: support features, [Ns, D].
    support_labels: support labels in [0, num_classes), [Ns]; every class needs at least one support point.
    query: query features, [Nq, D].
    affinity: PSD affinity over concat(support, query), [Ns + Nq, Ns + Nq] (e.g. `gaussian_affinity`).
    num_classes: number of classes K (static).
    lam: Laplacian weight (>= 0).
    iters: number of block iterations (>= 1, static).
    update_prototypes: whether to run the prototype block (static).

  Returns:
    `TransductiveResult` with query assignments [Nq, K], prototypes [K, D] and the objective history
    [2 * iters + 1].
  """
  support = validation.check_floating(support, "support")
  query = validation.check_floating(query, "query")
  affinity = validation.check_floating(affinity, "affinity")
  support_labels = validation.check_integer(support_labels, "support_labels")
  if support.ndim != 2 or query.ndim != 2 or support.shape[1] != query.shape[1]:
    raise ValueError(f"support and query must be [Ns, D] and [Nq, D] with the same D, got {support.shape} and "
                     f"{query.shape}")
  n = support.shape[0] + query.shape[0]
  if affinity.shape != (n, n):
    raise ValueError(f"affinity must be [Ns + Nq, Ns + Nq] = {(n, n)}, got {affinity.shape}")
  if support_labels.shape != (support.shape[0],):
    raise ValueError(f"support_labels must be [Ns] = {(support.shape[0],)}, got {support_labels.shape}")
  if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
    raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
  if not isinstance(iters, (int, np.integer)) or iters < 1:
    raise ValueError(f"iters must be an int >= 1, got {iters!r}")
  validation.check_nonnegative(lam, "lam")
  if not validation.is_traced(support_labels):
    labels = np.asarray(support_labels)
    if labels.min() < 0 or labels.max() >= num_classes:
      raise ValueError(f"support_labels must lie in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]")
    if np.unique(labels).size != num_classes:
      raise ValueError(f"every class needs a support point: support_labels cover {np.unique(labels).size} of "
                       f"{num_classes} classes")
  dtype = jnp.result_type(support.dtype, query.dtype, affinity.dtype)
  return _run(support.astype(dtype), support_labels, query.astype(dtype), affinity.astype(dtype),
              jnp.asarray(lam, dtype), num_classes=int(num_classes), iters=int(iters),
              update_prototypes=bool(update_prototypes))
