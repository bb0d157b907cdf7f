"""Byzantine-robust gradient aggregation: the Flag Aggregator (flag-median subspace by IRLS) and the usual baselines.

Paper [123]: Hamidreza Almasi, Harsh Mishra, Balajee Vamanan, Sathya N. Ravi, "Flag Aggregator: Scalable Distributed
Training under Failures and Augmented Losses using Convex Optimization", 2023, arXiv:2302.05865.

p workers send gradients g_1..g_p in R^n (some may be Byzantine). With the columns normalised, x_i = g_i / ||g_i||,
the Flag Aggregator (FA) finds an m-dimensional subspace Y (n x m, Y^T Y = I) minimising the flag-median objective

    F(Y) = sum_i sqrt(1 - ||Y^T x_i||^2)  [+ lambda / (p (p - 1)) sum_{i != j} sqrt(||d_ij||^2 - ||Y^T d_ij||^2)],
    d_ij = x_i - x_j,

i.e. the sum of the sines of the angles between Y and each worker's gradient (a robust, median-like fit), by
iteratively reweighted least squares: with w_i = (1 - ||Y^T x_i||^2 + eps)^(-1/4),

    Y <- the top-m left singular vectors of [w_1 x_1, ..., w_p x_p (, pairwise columns)],

a majorise-minimise step (sqrt(s) <= sqrt(s0) + (s - s0) / (2 sqrt(s0))), so F (with eps inside the square root)
never increases. The aggregate is sum_i Y Y^T x_i / m (the official code returns this sum of projected normalised
gradients; note it carries no gradient magnitude: scale it with the step size, or use `rescale="median_norm"`).
The official code runs 4 IRLS iterations from a random orthonormal start and keeps the previous Y when an iteration
does not decrease F. lambda = 0 (the default) is the official "flag_median" aggregator; the pairwise term here uses
the residual energy ||d||^2 - ||Y^T d||^2 of each difference vector, which keeps the MM guarantee (the official code
uses |1 - ||Y^T d||^2|, equal to it only for unit d).

Baselines for the experiments: `mean_aggregate`, `coordinate_median`, `multi_krum` (Blanchard et al. 2017).
All aggregators take G as [p, n] (one worker per row) and return [n]; `aggregate_pytrees` applies one to per-worker
gradient pytrees (leading worker axis).
"""

from __future__ import annotations

from typing import Any, Callable, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


class FlagSubspace(NamedTuple):
  """The result of `flag_subspace`: the basis Y [n, m] and the objective F after each iteration [iters + 1].

  Almasi et al., "Flag Aggregator: Scalable Distributed Training under Failures and Augmented Losses using Convex
  Optimization", 2023, arXiv:2302.05865.

  basis: [n, m] float; objective: [iters + 1] float.
  """
  basis: jax.Array
  objective: jax.Array


def _check_workers(grads: Any, name: str = "grads") -> jax.Array:
  g = validation.check_floating(grads, name)
  if g.ndim != 2:
    raise ValueError(f"{name} must be [num_workers, dim] (one gradient per row), got {name}.shape={g.shape}")
  if g.shape[0] < 1 or g.shape[1] < 1:
    raise ValueError(f"{name} needs at least one worker and one coordinate, got {name}.shape={g.shape}")
  return g


def _normalise_rows(g: jax.Array) -> jax.Array:
  norm = jnp.linalg.norm(g, axis=1, keepdims=True)
  return g / jnp.maximum(norm, 1e-12)


def flag_objective(basis: jax.Array, x: jax.Array, lam: float = 0.0, eps: float = 0.0) -> jax.Array:
  """F(Y) = sum_i sqrt(1 - ||Y^T x_i||^2 + eps) [+ lam / (p (p-1)) sum_{i!=j} sqrt(||d_ij||^2 - ||Y^T d_ij||^2 + eps)].

  Args:
    basis: Y [n, m] with orthonormal columns.
    x: unit-norm worker gradients [p, n].
    lam: weight of the pairwise term (>= 0).
    eps: added inside each square root (the IRLS weights use the same eps).

  Returns:
    A scalar.

  References:
    Almasi, Mishra, Vamanan, Ravi. "Flag Aggregator". 2023. arXiv:2302.05865, Sec. 3 (flag-median objective and its
    regularised form).
  """
  proj = x @ basis
  s = jnp.maximum(jnp.sum(x * x, axis=1) - jnp.sum(proj * proj, axis=1), 0.0)
  f = jnp.sum(jnp.sqrt(s + eps))
  if lam:
    p = x.shape[0]
    d = x[:, None, :] - x[None, :, :]
    pd = d @ basis
    sd = jnp.maximum(jnp.sum(d * d, -1) - jnp.sum(pd * pd, -1), 0.0)
    off = 1.0 - jnp.eye(p, dtype=x.dtype)
    f = f + lam / (p * (p - 1)) * jnp.sum(off * jnp.sqrt(sd + eps))
  return f


def flag_subspace(grads: jax.Array, rank: int = 1, *, lam: float = 0.0, iters: int = 4, eps: float = 1e-7,
                  key: Optional[jax.Array] = None, init: Optional[jax.Array] = None) -> FlagSubspace:
  """The flag-median subspace of the workers' normalised gradients by IRLS (Almasi et al. 2023, Sec. 3 / Alg. 1).

  Args:
    grads: G [p, n], one worker gradient per row (normalised to unit norm inside).
    rank: m >= 1, the subspace dimension (<= min(p, n) is useful).
    lam: weight of the pairwise-difference term (0: the plain flag median, as the official aggregator).
    iters: IRLS iterations (>= 1; the official code uses 4).
    eps: added to each sine^2 in the weights (w_i = (s_i + eps)^(-1/4)), 1e-7 as the official code.
    key: PRNG key of the random orthonormal start (default key(1), the official seed); ignored with `init`.
    init: optional starting basis [n, rank].

  Returns:
    FlagSubspace(basis [n, m], objective [iters + 1]): the objective F (with eps) at the start and after each
    iteration; an iteration that would increase F is rejected (the previous Y is kept), so it never increases.

  References:
    Almasi, Mishra, Vamanan, Ravi. "Flag Aggregator: Scalable Distributed Training under Failures and Augmented
    Losses using Convex Optimization". 2023. arXiv:2302.05865, Sec. 3 (IRLS for the regularised flag median).
    Mankovich, King, Peterson, Kirby. "The Flag Median and FlagIRLS". CVPR 2022. arXiv:2203.04437.
  """
  g = _check_workers(grads)
  p, n = g.shape
  rank = validation.check_int(rank, "rank", 1, value_error=True)
  iters = validation.check_int(iters, "iters", 1, value_error=True)
  validation.check_nonnegative(lam, "lam")
  validation.check_positive(eps, "eps")
  if rank > n:
    raise ValueError(f"rank must be <= the gradient dimension {n}, got {rank=}")
  dtype = jnp.promote_types(g.dtype, jnp.float32)
  x = _normalise_rows(g.astype(dtype))
  if init is not None:
    if np.shape(init) != (n, rank):
      raise ValueError(f"init must have shape (dim, rank) = {(n, rank)}, got {np.shape(init)}")
    y0 = jnp.linalg.qr(jnp.asarray(init, dtype))[0]
  else:
    key = jax.random.key(1) if key is None else key
    y0 = jnp.linalg.qr(jax.random.uniform(key, (n, rank), dtype) - 0.5)[0]
  pairs = None
  if lam:
    d = (x[:, None, :] - x[None, :, :]).reshape(p * p, n)
    keep = np.array([i != j for i in range(p) for j in range(p)])
    pairs = d[keep]

  def objective(y):
    return flag_objective(y, x, lam, eps)

  def step(y, _):
    proj = x @ y
    s = jnp.maximum(jnp.sum(x * x, axis=1) - jnp.sum(proj * proj, axis=1), 0.0)
    cols = [x * ((s + eps) ** -0.25)[:, None]]
    if pairs is not None:
      pp = pairs @ y
      sd = jnp.maximum(jnp.sum(pairs * pairs, 1) - jnp.sum(pp * pp, 1), 0.0)
      cols.append(pairs * (jnp.sqrt(lam / (p * (p - 1))) * (sd + eps) ** -0.25)[:, None])
    a = jnp.concatenate(cols, axis=0)                 # rows are the weighted vectors; Y = top-m right sing. vecs
    # With more directions than weighted vectors (rank > rows), the thin SVD has too few right singular vectors: the
    # full one completes the basis with orthonormal directions (any completion leaves F unchanged).
    _, _, vt = jnp.linalg.svd(a, full_matrices=rank > a.shape[0])
    y_new = vt[:rank].T
    f_old, f_new = objective(y), objective(y_new)
    y_next = jnp.where(f_new <= f_old, y_new, y)
    return y_next, jnp.minimum(f_new, f_old)

  y, fs = jax.lax.scan(step, y0, None, length=iters)
  return FlagSubspace(basis=y.astype(dtype), objective=jnp.concatenate([objective(y0)[None], fs]))


def flag_aggregate(grads: jax.Array, rank: int = 1, *, lam: float = 0.0, iters: int = 4, eps: float = 1e-7,
                   key: Optional[jax.Array] = None,
                   rescale: Literal["none", "median_norm"] = "none") -> jax.Array:
  """The Flag Aggregator: sum_i Y Y^T x_i / m with Y the flag-median subspace of the normalised gradients x_i.

  Args:
    grads: G [p, n], one worker gradient per row.
    rank: m, the subspace dimension.
    lam: pairwise-term weight (see `flag_subspace`).
    iters: IRLS iterations (see `flag_subspace`).
    eps: IRLS weight floor (see `flag_subspace`).
    key: PRNG key of the random orthonormal start (see `flag_subspace`).
    rescale: "none" returns the official aggregate (a sum of unit-norm projections, of norm up to p / m);
      "median_norm" rescales it to the median of the workers' gradient norms (a robust magnitude).

  Returns:
    The aggregate [n] (G's dtype promoted to at least float32).

  Examples:
    >>> import jax.numpy as jnp
    >>> g = jnp.array([[1.0, 0.0], [1.0, 0.1], [0.9, -0.1], [-5.0, 5.0]])   # one Byzantine row
    >>> a = flag_aggregate(g, rescale="median_norm")
    >>> bool(a[0] > 0.9 and abs(a[1]) < 0.2)
    True

  References:
    Almasi, Mishra, Vamanan, Ravi. "Flag Aggregator: Scalable Distributed Training under Failures and Augmented
    Losses using Convex Optimization". 2023. arXiv:2302.05865, Sec. 3 and the official `flag_median` aggregator.
  """
  if rescale not in ("none", "median_norm"):
    raise ValueError(f"rescale must be 'none' or 'median_norm', got {rescale=!r}")
  g = _check_workers(grads)
  sub = flag_subspace(g, rank, lam=lam, iters=iters, eps=eps, key=key)
  dtype = sub.basis.dtype
  x = _normalise_rows(g.astype(dtype))
  y = sub.basis
  agg = (x.sum(0) @ y) @ y.T / rank
  if rescale == "median_norm":
    med = jnp.median(jnp.linalg.norm(g.astype(dtype), axis=1))
    agg = agg * med / jnp.maximum(jnp.linalg.norm(agg), 1e-12)
  return agg


def mean_aggregate(grads: jax.Array) -> jax.Array:
  """The plain average of the worker gradients [p, n] -> [n] (no robustness: one Byzantine worker moves it freely).

  The baseline of Almasi et al., "Flag Aggregator: Scalable Distributed Training under Failures and Augmented Losses
  using Convex Optimization", 2023, arXiv:2302.05865. grads: [p, n]; returns [n].
  """
  g = _check_workers(grads)
  return jnp.mean(g, axis=0)


def coordinate_median(grads: jax.Array) -> jax.Array:
  """Coordinate-wise median of the worker gradients [p, n] -> [n] (Yin et al. 2018)."""
  g = _check_workers(grads)
  return jnp.median(g, axis=0)


def multi_krum(grads: jax.Array, num_byzantine: int, num_selected: Optional[int] = None) -> jax.Array:
  """Multi-Krum (Blanchard et al. 2017): average of the `num_selected` gradients with the smallest Krum scores.

  score_i = sum of squared distances from g_i to its p - f - 2 nearest other gradients.

  Args:
    grads: G [p, n].
    num_byzantine: f >= 0, with p - f - 2 >= 1.
    num_selected: how many to average (default p - f).

  Returns:
    [n].

  References:
    Blanchard, El Mhamdi, Guerraoui, Stainer. "Machine Learning with Adversaries: Byzantine Tolerant Gradient
    Descent". NeurIPS 2017, Sec. 4 (Krum and Multi-Krum).
  """
  g = _check_workers(grads)
  p = g.shape[0]
  f = validation.check_int(num_byzantine, "num_byzantine", 0, value_error=True)
  k = p - f - 2
  if k < 1:
    raise ValueError(f"multi_krum needs num_workers - num_byzantine - 2 >= 1, got {p} workers and {f=}")
  sel = p - f if num_selected is None else validation.check_int(num_selected, "num_selected", 1, value_error=True)
  if sel > p:
    raise ValueError(f"num_selected must be <= num_workers = {p}, got {sel}")
  sq = jnp.sum((g[:, None, :] - g[None, :, :]) ** 2, axis=-1)
  sq = sq + jnp.diag(jnp.full((p,), jnp.inf, sq.dtype))
  scores = jnp.sum(jnp.sort(sq, axis=1)[:, :k], axis=1)
  chosen = jnp.argsort(scores)[:sel]
  return jnp.mean(g[chosen], axis=0)


def aggregate_pytrees(aggregator: Callable[[jax.Array], jax.Array], worker_grads: Any) -> Any:
  """Apply an aggregator of [p, n] matrices to per-worker gradient pytrees (each leaf with a leading worker axis).

  The leaves are flattened and concatenated per worker, aggregated, and split back into the params' structure.

  Used with the Flag Aggregator of Almasi et al., "Flag Aggregator: Scalable Distributed Training under Failures and
  Augmented Losses using Convex Optimization", 2023, arXiv:2302.05865, and its baselines.

  Args:
    aggregator: e.g. `functools.partial(flag_aggregate, rank=1)`.
    worker_grads: pytree whose leaves are [p, ...].

  Returns:
    A pytree like one worker's gradients.
  """
  leaves, treedef = jax.tree.flatten(worker_grads)
  if not leaves:
    raise ValueError("worker_grads has no leaves")
  p = leaves[0].shape[0]
  if any(np.ndim(l) < 1 or l.shape[0] != p for l in leaves):
    raise ValueError("every leaf of worker_grads needs the same leading worker axis")
  flat = jnp.concatenate([l.reshape(p, -1) for l in leaves], axis=1)
  agg = aggregator(flat)
  out, i = [], 0
  for l in leaves:
    size = int(np.prod(l.shape[1:]))
    out.append(agg[i:i + size].reshape(l.shape[1:]).astype(l.dtype))
    i += size
  return jax.tree.unflatten(treedef, out)


__all__ = ["FlagSubspace", "aggregate_pytrees", "coordinate_median", "flag_aggregate", "flag_objective",
           "flag_subspace", "mean_aggregate", "multi_krum"]
