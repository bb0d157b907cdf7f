"""Gradient subspace projectors shared by GaLore, Q-GaLore and FRUGAL.

A projector maps an m x n gradient G to a low-dimensional "state-full" representation R and back:

    side "left":  Q is m x r with (near-)orthonormal columns,  R = Q^T G  (r x n),  back(R) = Q R
    side "right": Q is n x r with (near-)orthonormal columns,  R = G Q    (m x r),  back(R) = R Q^T

so back(project(G)) = Q Q^T G (left) or G Q Q^T (right) is the part of G inside the subspace, and
G - back(project(G)) is its complement (FRUGAL's state-free part). Projector kinds (`PROJECTORS`):

- "svd": Q = the top-r left (U[:, :r]) or right (V[:, :r] = Vh[:r].T) singular vectors of G, computed in float32
  (GaLore, Zhao et al. 2024, the "Adam with GaLore" algorithm; Q-GaLore; FRUGAL's `proj_type='svd'`).
- "randomized_svd": the same subspace from a Halko-Martinsson-Tropp randomized range finder (oversampling and power
  iterations; "Finding structure with randomness", 2011, Algorithm 4.4 + 5.1), cheaper than a full SVD.
- "random_orthogonal": a Haar-random orthonormal Q (QR of a Gaussian matrix; FRUGAL's `proj_type='random'`).
- "random_gaussian": Q with i.i.d. N(0, 1/r) entries (a Johnson-Lindenstrauss sketch; E[Q Q^T] = I, not orthogonal).
- "coordinates": Q = r random columns of the identity, stored as r int32 indices: a random subset of columns
  (side "right") or rows (side "left") of G (FRUGAL's `coord_choice='columns'` / `'rows'`; RandK on a dimension).
- "randk": r random entries of the flattened matrix; R is the 1-D vector of those entries (FRUGAL's `randk`).

Sides (`SIDES`), for G of shape m x n:

- "std" (GaLore's official code and paper): right if m >= n, else left. The projector sits on the *smaller*
  dimension and the optimizer state on the larger: state m*r + 2*r*n for m <= n (Adam), the paper's formula.
- "reverse_std" (`optax.contrib.galore`): left if m >= n, else right. The optimizer state sits on the smaller
  dimension (less state: max(m,n)*r + 2*r*min(m,n)).
- "left" / "right": forced.

FRUGAL's blockwise selection (whole parameter tensors, BAdam-like) is `block_selection`.

Everything here is a pure function of (gradient, PRNG key, rank); `SubspaceSpec` is a static (hashable) description
of one leaf's projector, and the only array state is the basis Q (or its indices).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

PROJECTORS = ("svd", "randomized_svd", "random_orthogonal", "random_gaussian", "coordinates", "randk")
SIDES = ("std", "reverse_std", "left", "right")
BLOCK_ORDERS = ("descending", "ascending", "random")

# Kinds whose basis is a float matrix Q (d x r); the others store int32 indices.
DENSE_PROJECTORS = ("svd", "randomized_svd", "random_orthogonal", "random_gaussian")


def check_projector(projector: str, allowed: Sequence[str] = PROJECTORS) -> None:
  """Raise ValueError for an unknown projector name."""
  if projector not in allowed:
    raise ValueError(f"unknown projector {projector=!r}; choose one of {tuple(allowed)}")


def check_side(side: str) -> None:
  """Raise ValueError for an unknown side name."""
  if side not in SIDES:
    raise ValueError(f"unknown side {side=!r}; choose one of {SIDES}")


def resolve_side(shape: Sequence[int], side: str) -> str:
  """'left' or 'right' for a gradient of `shape` (m, n) under the side rule `side` (see module docstring)."""
  check_side(side)
  m, n = shape
  if side == "std":
    return "right" if m >= n else "left"
  if side == "reverse_std":
    return "left" if m >= n else "right"
  return side


@dataclasses.dataclass(frozen=True)
class SubspaceSpec:
  """Static description of one m x n leaf's projector: kind, resolved side ('left'/'right'), effective rank r.

  For "randk", `rank` is the number of selected entries (<= m*n) and `side` is ignored.

  The projectors of GaLore (Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection", ICML
  2024, arXiv:2403.03507, the "Adam with GaLore" algorithm), Q-GaLore (Zhang et al. 2024, arXiv:2407.08296) and FRUGAL
  (Zmushko et al. 2025, arXiv:2411.07837).

  All fields are static Python values: `shape` = (m, n); the basis Q it describes is m x r (left) or n x r (right), or r
  int32 indices for the coordinate projectors.
  """
  kind: str
  side: str
  rank: int
  shape: tuple[int, int]
  oversample: int = 8
  n_iter: int = 2

  @property
  def reduced_dim(self) -> int:
    """The dimension the basis spans: m for side 'left', n for side 'right'."""
    return self.shape[0] if self.side == "left" else self.shape[1]

  @property
  def basis_shape(self) -> tuple[int, ...]:
    """Shape of the stored basis: (d, r) for dense kinds, (r,) indices for coordinate kinds."""
    if self.kind in DENSE_PROJECTORS:
      return (self.reduced_dim, self.rank)
    return (self.rank,)

  def basis_dtype(self, param_dtype: Any) -> Any:
    """The dense basis is kept in the parameter's dtype (as both GaLore anchors do); indices are int32."""
    return jnp.dtype(param_dtype) if self.kind in DENSE_PROJECTORS else jnp.dtype(jnp.int32)

  @property
  def low_shape(self) -> tuple[int, ...]:
    """Shape of the projected gradient R."""
    m, n = self.shape
    if self.kind == "randk":
      return (self.rank,)
    return (self.rank, n) if self.side == "left" else (m, self.rank)

  def compute(self, g: jax.Array, key: Optional[jax.Array]) -> jax.Array:
    """A fresh basis from the current gradient `g` (m x n) and `key` (unused by "svd")."""
    dtype = self.basis_dtype(g.dtype)
    if self.kind == "svd":
      return svd_basis(g, self.rank, self.side).astype(dtype)
    if self.kind == "randomized_svd":
      return randomized_svd_basis(g, key, self.rank, self.side, oversample=self.oversample,
                                  n_iter=self.n_iter).astype(dtype)
    if self.kind == "random_orthogonal":
      return random_orthogonal_basis(key, self.reduced_dim, self.rank).astype(dtype)
    if self.kind == "random_gaussian":
      return random_gaussian_basis(key, self.reduced_dim, self.rank).astype(dtype)
    if self.kind == "coordinates":
      return coordinate_indices(key, self.reduced_dim, self.rank)
    if self.kind == "randk":
      return coordinate_indices(key, self.shape[0] * self.shape[1], self.rank)
    raise ValueError(f"unknown projector kind={self.kind!r}")

  def project(self, basis: jax.Array, g: jax.Array) -> jax.Array:
    """R = Q^T G (left) or G Q (right); a gather for coordinate kinds. Shape `low_shape`."""
    if self.kind in DENSE_PROJECTORS:
      return basis.T @ g if self.side == "left" else g @ basis
    if self.kind == "coordinates":
      return g[basis, :] if self.side == "left" else g[:, basis]
    return g.reshape(-1)[basis]

  def project_back(self, basis: jax.Array, low: jax.Array, out: Optional[jax.Array] = None) -> jax.Array:
    """Q R (left) or R Q^T (right); a scatter into zeros (`out`, m x n, when given: e.g. zeros sharded like the
    gradient) for coordinate kinds. Shape `shape`."""
    if self.kind in DENSE_PROJECTORS:
      return basis @ low if self.side == "left" else low @ basis.T
    m, n = self.shape
    zeros = jnp.zeros((m, n), low.dtype) if out is None else out.astype(low.dtype)
    if self.kind == "coordinates":
      return zeros.at[basis, :].set(low) if self.side == "left" else zeros.at[:, basis].set(low)
    return zeros.reshape(m * n).at[basis].set(low).reshape(m, n)

  def top_vector(self, basis: jax.Array) -> jax.Array:
    """The basis vector of the largest singular value (Q[:, 0]), which Q-GaLore compares between refreshes."""
    return basis[:, 0]


# ----------------------------------------------------------------------------------------------------------------------
# Basis constructors: pure functions of (gradient or shape, key, rank).
# ----------------------------------------------------------------------------------------------------------------------

def svd_basis(g: jax.Array, rank: int, side: str) -> jax.Array:
  """Top-`rank` singular vectors of g (m x n) in float32: U[:, :r] (m x r) for 'left', Vh[:r].T (n x r) for 'right'.

  GaLore (Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection", 2024,
  arXiv:2403.03507, "Adam with GaLore": P_t from SVD(G_t) every T steps). Written exactly as `optax.contrib.galore` does it
  (same slicing, same transpose) so the two agree bit for bit.
  """
  g32 = g.astype(jnp.float32)
  u, _, vh = jnp.linalg.svd(g32, full_matrices=False)
  if side == "left":
    return u[:, :rank]
  return vh[:rank, :].T


def randomized_svd_basis(g: jax.Array, key: jax.Array, rank: int, side: str, *, oversample: int = 8,
                         n_iter: int = 2) -> jax.Array:
  """Approximate top-`rank` singular vectors of g by a randomized range finder with power iterations.

  Halko, Martinsson, Tropp, "Finding structure with randomness", SIAM Review 2011 (Algorithms 4.4 and 5.1): sample
  Y = A Omega with l = r + oversample Gaussian columns, orthonormalise with QR between n_iter power iterations, then an
  exact SVD of the small l x (other dim) matrix. A = g for side 'left' (returns m x r), g^T for 'right' (n x r).
  """
  a = g.astype(jnp.float32)
  if side == "right":
    a = a.T
  d, other = a.shape
  if rank == 0:
    return jnp.zeros((d, 0), jnp.float32)
  l = min(rank + oversample, d, other)
  omega = jax.random.normal(key, (other, l), jnp.float32)
  q, _ = jnp.linalg.qr(a @ omega)
  for _ in range(n_iter):
    z, _ = jnp.linalg.qr(a.T @ q)
    q, _ = jnp.linalg.qr(a @ z)
  b = q.T @ a  # l x other
  ub, _, _ = jnp.linalg.svd(b, full_matrices=False)
  return (q @ ub)[:, :rank]


def random_orthogonal_basis(key: jax.Array, dim: int, rank: int) -> jax.Array:
  """A Haar-random dim x rank matrix with orthonormal columns (QR of a Gaussian, signs fixed by diag(R))."""
  if rank == 0:
    return jnp.zeros((dim, 0), jnp.float32)
  z = jax.random.normal(key, (dim, rank), jnp.float32)
  q, r = jnp.linalg.qr(z)
  d = jnp.sign(jnp.diagonal(r))
  return q * jnp.where(d == 0, 1.0, d)[None, :]


def random_gaussian_basis(key: jax.Array, dim: int, rank: int) -> jax.Array:
  """A dim x rank Gaussian sketch with i.i.d. N(0, 1/rank) entries, so that E[Q Q^T] = I_dim."""
  if rank == 0:
    return jnp.zeros((dim, 0), jnp.float32)
  return jax.random.normal(key, (dim, rank), jnp.float32) / math.sqrt(rank)


def coordinate_indices(key: jax.Array, dim: int, k: int) -> jax.Array:
  """k distinct indices drawn uniformly from range(dim) (torch.randperm(dim)[:k] in FRUGAL's code), int32."""
  return jax.random.permutation(key, dim)[:k].astype(jnp.int32)


def block_selection(num_blocks: int, num_active: int, refresh_index: jax.Array, order: str,
                    key: Optional[jax.Array] = None) -> jax.Array:
  """FRUGAL's blockwise subspace: a bool mask over `num_blocks` parameter tensors, `num_active` of them True.

  Zmushko et al., "FRUGAL" (2024, arXiv:2411.07837), the BAdam-like block selection of its code: a block is one
  whole parameter tensor. `refresh_index` k (traced int) counts subspace refreshes. Orders:
  'descending' (the paper's pre-training runs): the cyclic window {L-1-(k*a+j) mod L : j < a}, starting at the last
  tensor; 'ascending': {(k*a+j) mod L}; 'random': a fresh uniform subset from `key` at each refresh.
  """
  if order not in BLOCK_ORDERS:
    raise ValueError(f"unknown block order {order=!r}; choose one of {BLOCK_ORDERS}")
  if num_blocks == 0:
    return jnp.zeros((0,), bool)
  if order == "random":
    chosen = jax.random.permutation(key, num_blocks)[:num_active]
  else:
    j = jnp.arange(num_active)
    pos = (refresh_index * num_active + j) % num_blocks
    chosen = (num_blocks - 1 - pos) if order == "descending" else pos
  return jnp.zeros((num_blocks,), bool).at[chosen].set(True)


def block_indices(num_blocks: int, num_active: int, refresh_index: jax.Array, order: str,
                  key: Optional[jax.Array] = None) -> jax.Array:
  """The int32 indices of the `num_active` state-full blocks among `num_blocks` (the positions `block_selection`
  marks True, in window order): FRUGAL's BAdam-like cyclic selection (Zmushko et al. 2024, arXiv:2411.07837).

  'descending': L-1-((k*a + j) mod L) for j < a (the paper's pre-training order); 'ascending': (k*a + j) mod L;
  'random': a fresh uniform subset from `key` at each refresh. `refresh_index` k counts refreshes (traced int).
  """
  if order not in BLOCK_ORDERS:
    raise ValueError(f"unknown block order {order=!r}; choose one of {BLOCK_ORDERS}")
  if num_active == 0:
    return jnp.zeros((0,), jnp.int32)
  if order == "random":
    return jax.random.permutation(key, num_blocks)[:num_active].astype(jnp.int32)
  pos = (refresh_index * num_active + jnp.arange(num_active)) % num_blocks
  return ((num_blocks - 1 - pos) if order == "descending" else pos).astype(jnp.int32)


# ----------------------------------------------------------------------------------------------------------------------
# Shared helpers for the transforms.
# ----------------------------------------------------------------------------------------------------------------------

RankSpec = Union[int, Callable[[str, tuple[int, ...]], int]]


def leaf_paths(tree: Any) -> list[str]:
  """`jax.tree_util.keystr` of every leaf of `tree`, in flatten order (for error messages)."""
  return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def check_projectable_dtype(dtype: Any, path: str) -> None:
  """The projectors need a floating-point leaf; ValueError naming the leaf otherwise."""
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"leaf {path} has dtype {jnp.dtype(dtype)}, which the projector cannot handle; "
                     f"project only floating-point leaves (exclude it with the projection mask)")


def refresh_key(seed: int, leaf_index: int, count: jax.Array) -> jax.Array:
  """The PRNG key of one leaf's refresh at step `count`: fold_in(fold_in(PRNGKey(seed), leaf), count)."""
  return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), leaf_index), count)


def all_finite(x: jax.Array) -> jax.Array:
  """True iff every entry of x is finite (True for integer arrays)."""
  if not jnp.issubdtype(x.dtype, jnp.inexact):
    return jnp.asarray(True)
  return jnp.all(jnp.isfinite(x))
