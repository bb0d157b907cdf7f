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
from jaxlib_methods._norms import l2_normalize
from jaxlib_methods.losses.stablemax import softmax_cross_entropy_with_integer_labels


def _unit(x: jax.Array) -> jax.Array:
  return l2_normalize(x)


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


# ----------------------------------------------------------------------------------------------------------------
# [87] SuSana Distancia: Proto-Triplet and ICNN losses (ls19b, issue 19)
# ----------------------------------------------------------------------------------------------------------------

def _pair_dist(a: jax.Array, b: jax.Array) -> jax.Array:
  """sqrt(||a_i - b_j||^2 + 1e-6), the authors' `nearest_neighbors` distance (the 1e-6 keeps the gradient finite)."""
  return jnp.sqrt(jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, -1) + 1e-6)


def proto_triplet_loss(queries: jax.Array, query_labels: jax.Array, prototypes: jax.Array, *,
                       margin: float = 0.5) -> jax.Array:
  """Proto-Triplet loss per query (Mendez-Ruiz et al., "SuSana Distancia is all you need: Enforcing class
  separability in metric learning via two novel distance-based loss functions for few-shot image classification",
  2023, arXiv:2305.09062, Sec. 3; authors' code `proto_triplet_loss`): a triplet loss whose positive is the query's
  class prototype and whose negative is the nearest other prototype,

    L_i = max(0, d(q_i, p_{y_i}) - min_{c != y_i} d(q_i, p_c) + margin),   d(a, b) = sqrt(||a - b||^2 + 1e-6).

  Args:
    queries: [B, d] query embeddings.
    query_labels: [B] int classes in [0, N) (ValueError eagerly, NaN rows under jit).
    prototypes: [N, d] class prototypes (N >= 2: one negative at least), e.g. the support means of ProtoNet.
    margin: >= 0 (authors: 0.5).

  Returns:
    [B] per-query losses (the authors' batch loss is their mean; queries' dtype, half precision in float32).
  """
  q = validation.check_floating(queries, "queries")
  p = validation.check_floating(prototypes, "prototypes")
  if q.ndim != 2:
    raise ValueError(f"queries must be [B, d], got queries.shape={q.shape}")
  if p.ndim != 2 or p.shape[1] != q.shape[1] or p.shape[0] < 2:
    raise ValueError(f"prototypes must be [N >= 2, d={q.shape[1]}], got prototypes.shape={p.shape}")
  y = validation.check_integer(query_labels, "query_labels")
  if y.shape != q.shape[:1]:
    raise ValueError(f"query_labels must have shape [B]={q.shape[:1]}, got query_labels.shape={y.shape}")
  valid = validation.check_labels(y, p.shape[0], "query_labels")
  validation.check_nonnegative(margin, "margin")
  ct = validation.compute_dtype_for(jnp.result_type(q, p))
  d = _pair_dist(q.astype(ct), p.astype(ct))                        # [B, N]
  own = jax.nn.one_hot(jnp.clip(y, 0, p.shape[0] - 1), p.shape[0], dtype=bool)
  pos = jnp.sum(jnp.where(own, d, 0.0), -1)
  neg = jnp.min(jnp.where(own, jnp.inf, d), -1)
  return validation.nan_where_invalid(jax.nn.relu(pos - neg + margin), valid).astype(q.dtype)


def icnn_score(features: jax.Array, labels: jax.Array, *, k: int = 4, ipc: int | None = None) -> jax.Array:
  """The ICNN score of a labelled batch of embeddings, in [0, 1], higher when classes are compact and apart
  (Mendez-Ruiz et al. 2023, arXiv:2305.09062, Sec. 3, the inter/intra-class nearest-neighbour score; authors' code
  `modified_score`, transcribed step by step). The ICNN loss is -log(icnn_score).

  With the ipc + 1 nearest neighbours of each sample (itself first, dropped; distances as in
  `proto_triplet_loss`): lambda_same = 1 - mean over samples of the mean distance to its same-class neighbours
  among the first k (each divided by the sample's nearest different-class neighbour distance, then by
  max(1, their max)); lambda_diff = mean over samples of the mean distance to its different-class neighbours
  among the first k (divided by the batch's largest such distance); lambda = (lambda_same + lambda_diff) / 2;
  gamma = the mean fraction of same-class samples among the k nearest (1 when k + 2 >= n, with k clipped to
  n - 2); score = (lambda + gamma) / 2. A batch-level value (a scalar).

  Args:
    features: [n, d] embeddings (n >= 3).
    labels: [n] int class of each (any integers; only equality matters).
    k: the neighbours scored (authors: 4); clipped to n - 2.
    ipc: the neighbours searched (authors: shots + queries per class; default k + 1), ipc + 1 <= n.

  Returns:
    The score, a float32 (or wider) scalar.
  """
  x = validation.check_floating(features, "features")
  if x.ndim != 2:
    raise ValueError(f"features must be [n, d], got features.shape={x.shape}")
  validation.check_min_size(x, "features", 3)
  y = validation.check_integer(labels, "labels")
  if y.shape != x.shape[:1]:
    raise ValueError(f"labels must have shape [n]={x.shape[:1]}, got labels.shape={y.shape}")
  n = x.shape[0]
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"k must be a positive int, got {k=}")
  k = n - 2 if k + 2 >= n else k
  ipc = k + 1 if ipc is None else ipc
  if isinstance(ipc, bool) or not isinstance(ipc, int) or not k <= ipc <= n - 1:
    raise ValueError(f"ipc must be an int in [k={k}, n - 1={n - 1}], got {ipc=}")
  eps = 1e-7
  ct = validation.compute_dtype_for(x.dtype)
  dist = _pair_dist(x.astype(ct), x.astype(ct))
  neg_top, idx = jax.lax.top_k(-dist, ipc + 1)
  dists, idx = -neg_top[:, 1:], idx[:, 1:]                           # [n, ipc], self dropped
  same = y[idx] == y[:, None]
  diff = ~same
  dcnd_all = jnp.where(diff, dists, 0.0)
  nn_dc = jnp.min(jnp.where(dcnd_all == 0, jnp.inf, dcnd_all), axis=1)   # nearest different-class neighbour
  nd = (dists / (nn_dc[:, None] + eps))[:, :k]
  nd = nd / jnp.maximum(1.0, jnp.max(nd, axis=1, keepdims=True))
  sc = same[:, :k]
  sc_counts = sc.sum(1)
  scndsum = jnp.sum(jnp.where(sc, nd, 0.0), 1) / (sc_counts + eps)
  sclamb = 1 - scndsum.sum() / (jnp.count_nonzero(sc_counts) + eps)
  dc = diff[:, :k]
  dcnd = dcnd_all[:, :k]
  dcnd = dcnd / (jnp.max(dcnd) + eps)
  dcop = jnp.where(jnp.all(~dc), -1.0, 0.0)
  dc_counts = dc.sum(1)
  dclamb = jnp.abs(jnp.sum(dcnd.sum(1) / (dc_counts + eps)) / (jnp.count_nonzero(dc_counts) + eps) + dcop)
  lamb = (sclamb + dclamb) / 2
  gamma = jnp.sum(sc_counts / k) / n if k + 2 < n else jnp.asarray(1.0, ct)
  return (lamb + gamma) / 2
