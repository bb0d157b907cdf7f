"""Graph contrastive losses: PamC's meta-node block contrastive loss and the node-level loss it approximates.

Papers:
  [89] Gayan K. Kulatilleke, Marius Portmann, Shekhar S. Chandra, "Efficient block contrastive learning via
       parameter-free meta-node approximation", 2022, arXiv:2209.14067 (the PamC loss; official code
       gayanku/PAMC `NcontrastCCSP`, the sparse-positive version, with meta-nodes from `q.argmax` one-hots).
  The node-level loss it approximates is Graph-MLP's neighbour contrastive loss (Hu et al., "Graph-MLP: Node
  Classification without Message Passing in Graph", 2021, arXiv:2106.04051, Eq. (4); official `Ncontrast`), which
  PamC's code builds on (`NcontrastCC`).

Both compare cosine similarities s_ij = cos(z_i, z_j) scaled by 1 / `temperature`. As in the official code, the
self-similarity s_ii is set to 0 before the exponential (so a node, and a meta-node, contributes exp(0) = 1 to its own
sum) rather than excluded.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation
from jaxlib_methods._norms import l2_normalize
from jaxlib_methods.validation import check_positive


def _cosine_masked(a: jax.Array) -> jax.Array:
  """[n, n] cosine similarities of the rows of `a` with the diagonal set to 0 (the official `get_feature_dis`)."""
  u = l2_normalize(a)
  s = u @ u.T
  return jnp.where(jnp.eye(a.shape[0], dtype=bool), jnp.zeros((), s.dtype), s)


def _check_z(z: Any) -> jax.Array:
  z = validation.check_floating(z, "z")
  if z.ndim != 2:
    raise ValueError(f"z must be [N, d] node embeddings, got z.shape={z.shape}")
  validation.check_min_size(z, "z", 1, what="nodes")
  return z


def graph_ncontrast_loss(z: jax.Array, adjacency: jax.Array, *, temperature: float = 1.0) -> jax.Array:
  """Graph-MLP's node-level neighbour contrastive loss, the O(N^2) loss that PamC approximates (Hu et al.,
  "Graph-MLP: Node Classification without Message Passing in Graph", 2021, arXiv:2106.04051, Eq. (4); as used by
  Kulatilleke et al., "Efficient block contrastive learning via parameter-free meta-node approximation", 2022,
  arXiv:2209.14067, Sec. 3).

    l_i = -log( sum_j A_ij exp(s_ij / temperature) / sum_j exp(s_ij / temperature) ),   s_ij = cos(z_i, z_j), s_ii = 0

  every other node is a negative of node i (N^2 similarities); positives are weighted by the adjacency row
  (e.g. the r-hop A^r of the official code).

  Args:
    z: [N, d] node embeddings.
    adjacency: [N, N] non-negative positive weights gamma_ij (dense); every row needs a positive entry.
    temperature: > 0; similarities are divided by it (the official code's `tau` multiplies: temperature = 1 / tau).

  Returns:
    [N] per-node losses (z's dtype; half precision computed in float32).
  """
  z = _check_z(z)
  n = z.shape[0]
  adjacency = validation.check_floating(adjacency, "adjacency")
  if adjacency.shape != (n, n):
    raise ValueError(f"adjacency must be [N, N] = {(n, n)} for z.shape={z.shape}, got adjacency.shape="
                     f"{adjacency.shape}")
  check_positive(temperature, "temperature")
  xp = jnp if validation.is_traced(adjacency) else np   # concrete: checked in NumPy (nothing to compile)
  a_np = xp.asarray(adjacency, dtype=xp.float32)
  ok = xp.all(xp.isfinite(a_np) & (a_np >= 0), axis=1) & xp.any(a_np > 0, axis=1)
  valid = validation.check_values(ok, adjacency, "adjacency",
                                  "finite and >= 0 with a positive entry in every row (each node needs a positive)")
  ct = validation.compute_dtype_for(z.dtype)
  logits = _cosine_masked(z.astype(ct)) / temperature
  a = adjacency.astype(ct)
  pos = jax.nn.logsumexp(logits, axis=1, b=a)
  loss = jax.nn.logsumexp(logits, axis=1) - pos
  return validation.nan_where_invalid(loss, valid).astype(z.dtype)


def pamc_loss(z: jax.Array, edges: jax.Array, assignments: jax.Array, *, edge_weights: Optional[jax.Array] = None,
              temperature: float = 1.0) -> jax.Array:
  """PamC, the proxy-approximated meta-node contrastive loss (Kulatilleke et al., "Efficient block contrastive
  learning via parameter-free meta-node approximation", 2022, arXiv:2209.14067, Sec. 3; official `NcontrastCCSP`).

  Positives are the graph's edges (sparse, O(|E|)); the N^2 node-pair negatives are replaced by the k^2 pairs of
  meta-nodes M = C^T Z (M_c = sum of the embeddings assigned to cluster c), so the cost is O(|E| + N k + k^2):

    L = -(1/N) sum_i log sum_{(i, j) in E} w_ij exp(s_ij / T) + (1/k) sum_c log sum_c' exp(cos(M_c, M_c') / T)

  with s_ij = cos(z_i, z_j), s_ii = 0 and cos(M_c, M_c) = 0 (as in the official code). With N meta-nodes, one per
  node (C = I), it equals `graph_ncontrast_loss(z, A).mean()` for A the edges' weighted adjacency (tested), and
  with one-hot C, M_c . M_c' is the sum of z_i . z_j over every node pair across clusters c and c' (additivity).
  A batch-level loss: one scalar per graph (the negative term lives on clusters, not nodes).

  Args:
    z: [N, d] node embeddings.
    edges: [E, 2] int (i, j) positive pairs, node indices in [0, N) (self-loops allowed: their similarity is 0);
      every node needs at least one edge as its first entry, else its positive sum is 0.
    assignments: [N, k] non-negative cluster assignments C (the official code: one-hot argmax of the DEC soft
      assignment q, detached; soft rows are allowed).
    edge_weights: [E] non-negative weights w_ij (the adjacency values), default 1.
    temperature: > 0; similarities are divided by it (the official `tau` multiplies: temperature = 1 / tau).

  Returns:
    Scalar loss in float32 (or wider).
  """
  z = _check_z(z)
  n = z.shape[0]
  edges = validation.check_integer(edges, "edges")
  if edges.ndim != 2 or edges.shape[1] != 2 or edges.shape[0] < 1:
    raise ValueError(f"edges must be [E, 2] node-index pairs with E >= 1, got edges.shape={edges.shape}")
  assignments = validation.check_floating(assignments, "assignments")
  if assignments.ndim != 2 or assignments.shape[0] != n or assignments.shape[1] < 1:
    raise ValueError(f"assignments must be [N, k] = [{n}, k >= 1] for z.shape={z.shape}, got assignments.shape="
                     f"{assignments.shape}")
  if edge_weights is None:
    edge_weights = jnp.ones(edges.shape[:1], jnp.float32)
  edge_weights = validation.check_floating(edge_weights, "edge_weights")
  if edge_weights.shape != edges.shape[:1]:
    raise ValueError(f"edge_weights must be [E] = {edges.shape[:1]}, got edge_weights.shape={edge_weights.shape}")
  check_positive(temperature, "temperature")
  xp = jnp if any(validation.is_traced(x) for x in (edges, edge_weights, assignments)) else np   # no compile eagerly
  e_np = xp.asarray(edges)
  v_edges = validation.check_values((e_np >= 0) & (e_np < n), edges, "edges", f"node indices in [0, {n})")
  w_np = xp.asarray(edge_weights)
  v_w = validation.check_values(xp.isfinite(w_np) & (w_np >= 0), edge_weights, "edge_weights", "finite and >= 0")
  c_np = xp.asarray(assignments)
  v_c = validation.check_values(xp.isfinite(c_np) & (c_np >= 0), assignments, "assignments", "finite and >= 0")
  first = xp.clip(e_np[:, 0], 0, n - 1)
  if xp is np:
    has_pos = np.bincount(first, weights=(w_np > 0).astype(np.float64), minlength=n)[:n] > 0
  else:
    has_pos = jax.ops.segment_sum((w_np > 0).astype(jnp.int32), first, num_segments=n) > 0
  v_pos = validation.check_values(has_pos, edges, "edges",
                                  "a set of pairs giving every node at least one positive-weight edge (i, .)")
  i, j = jnp.clip(edges[:, 0], 0, n - 1), jnp.clip(edges[:, 1], 0, n - 1)
  ct = jnp.promote_types(validation.compute_dtype_for(z.dtype), validation.compute_dtype_for(assignments.dtype))
  zc = z.astype(ct)
  u = l2_normalize(zc)
  s = jnp.where(i == j, jnp.zeros((), ct), jnp.sum(u[i] * u[j], axis=-1))            # [E]
  logit = s / temperature
  shift = jax.lax.stop_gradient(jax.ops.segment_max(logit, i, num_segments=n))      # log-sum-exp per node
  shift = jnp.where(jnp.isfinite(shift), shift, jnp.zeros((), ct))
  pos = jax.ops.segment_sum(edge_weights.astype(ct) * jnp.exp(logit - shift[i]), i, num_segments=n)
  meta = assignments.astype(ct).T @ zc                                               # [k, d]
  neg = jax.nn.logsumexp(_cosine_masked(meta) / temperature, axis=1)                # [k]
  loss = -jnp.mean(jnp.log(pos) + shift) + jnp.mean(neg)
  valid = validation.combine_valid(*(None if v is None else jnp.all(v) for v in (v_edges, v_w, v_c, v_pos)))
  return validation.nan_where_invalid(loss, valid)
