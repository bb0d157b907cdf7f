"""The augmentation kernel of augmentation-based self-supervised learning on a finite input space, its top-d
eigenspace encoder, and the augmentation complexity.

Paper [197]: Runtian Zhai, Bingbin Liu, Andrej Risteski, Zico Kolter, Pradeep Ravikumar, "Understanding
Augmentation-based Self-Supervised Representation Learning via RKHS Approximation and Regression", ICLR 2024,
arXiv:2306.00788. An augmentation A(a | x) maps inputs x ~ p_X to views a with marginal
p_A(a) = sum_x p_X(x) A(a | x); it induces the kernel

    K_X(x, x') = sum_a A(a | x) A(a | x') / p_A(a),

whose integral operator (T f)(x) = sum_x' K_X(x, x') p_X(x') f(x') on L^2(p_X) has top eigenvalue 1 with the
constant eigenfunction. The optimal d-dimensional encoder spans its top-d eigenfunctions; a linear probe on it
leaves the target's energy outside that eigenspace as the approximation error. The augmentation complexity is
kappa = sqrt(max_x K_X(x, x)) (our reading of the paper's bound constant: K_X(x, x) <= kappa^2); it is large for
weak augmentation (the identity gives kappa^2 = 1 / min p_X) and shrinks as the augmentation gets stronger.
Everything is exact linear algebra on the host (float64 NumPy): inputs are finite spaces, not traced arrays.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np


def _check_prob(a: Any, name: str, ndim: int) -> np.ndarray:
  arr = np.asarray(a)
  if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.floating):
    raise TypeError(f"{name} must be a floating array, got {name}.dtype={arr.dtype}")
  arr = arr.astype(np.float64)
  if arr.ndim != ndim:
    raise ValueError(f"{name} must have {ndim} dimension(s), got {name}.shape={arr.shape}")
  if not np.all(np.isfinite(arr)) or np.any(arr < 0) or not np.allclose(arr.sum(-1), 1.0, atol=1e-6):
    raise ValueError(f"{name} must hold probabilities (finite, >= 0, summing to 1 along its last axis)")
  return arr


def augmentation_kernel(aug: Any, px: Any) -> np.ndarray:
  """K_X(x, x') = sum_a A(a | x) A(a | x') / p_A(a) (Zhai et al., ICLR 2024, arXiv:2306.00788).

  Args:
    aug: [N, M] float, row x the augmentation distribution A(. | x) over M views (rows sum to 1).
    px: [N] float input distribution p_X (sums to 1).

  Returns:
    [N, N] float64 kernel (views with p_A(a) = 0 are dropped).
  """
  a = _check_prob(aug, "aug", 2)
  p = _check_prob(px, "px", 1)
  if p.shape[0] != a.shape[0]:
    raise ValueError(f"px must have one entry per row of aug ({a.shape[0]}), got px.shape={p.shape}")
  pa = p @ a
  keep = pa > 0
  return (a[:, keep] / pa[keep]) @ a[:, keep].T


def top_d_encoder(kernel: Any, px: Any, d: int) -> tuple[np.ndarray, np.ndarray]:
  """The top-d eigenpairs of the kernel's integral operator on L^2(p_X): the optimal encoder of augmentation-based
  SSL (Zhai et al., ICLR 2024, arXiv:2306.00788), from the eigendecomposition of
  diag(sqrt p) K diag(sqrt p).

  Args:
    kernel: [N, N] symmetric PSD float kernel.
    px: [N] float input distribution, all entries > 0.
    d: 1 <= d <= N.

  Returns:
    (eigenvalues [d] decreasing, encoder [N, d]: eigenfunctions orthonormal in L^2(p_X), i.e. Phi^T diag(p) Phi = I).
  """
  k = np.asarray(kernel, np.float64)
  p = _check_prob(px, "px", 1)
  if k.shape != (p.shape[0], p.shape[0]):
    raise ValueError(f"kernel must be [N, N] with N = len(px) = {p.shape[0]}, got kernel.shape={k.shape}")
  if not np.all(np.isfinite(k)) or not np.allclose(k, k.T, atol=1e-9 * max(1.0, np.abs(k).max())):
    raise ValueError("kernel must be finite and symmetric")
  if np.any(p <= 0):
    raise ValueError("px must be > 0 everywhere (L^2(p_X) needs every point)")
  if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 1 <= d <= p.shape[0]:
    raise ValueError(f"d must be a Python int in [1, N={p.shape[0]}], got {d=}")
  s = np.sqrt(p)
  lam, u = np.linalg.eigh(s[:, None] * k * s[None, :])
  order = np.argsort(lam)[::-1][:d]
  return lam[order], u[:, order] / s[:, None]


def augmentation_complexity(kernel: Any) -> float:
  """kappa = sqrt(max_x K_X(x, x)), the bound constant of the augmentation's RKHS (Zhai et al., ICLR 2024,
  arXiv:2306.00788; our reading: K_X(x, x) <= kappa^2).

  Args:
    kernel: [N, N] float kernel with a non-negative diagonal.

  Returns:
    Python float.
  """
  k = np.asarray(kernel, np.float64)
  if k.ndim != 2 or k.shape[0] != k.shape[1]:
    raise ValueError(f"kernel must be square [N, N], got kernel.shape={k.shape}")
  diag = np.diagonal(k)
  if not np.all(np.isfinite(diag)) or np.any(diag < 0):
    raise ValueError("kernel's diagonal must be finite and >= 0")
  return float(np.sqrt(diag.max()))


def masking_augmentation(length: int, mask_prob: float) -> tuple[np.ndarray, np.ndarray]:
  """Random masking of binary strings (Zhai et al., ICLR 2024, arXiv:2306.00788, the masking augmentation of masked
  language models, on a toy): each of the `length` bits is replaced by a mask token independently with probability
  mask_prob. Inputs are all 2^length strings (row i = the binary digits of i), views all 3^length strings over
  {0, 1, mask}.

  Args:
    length: L >= 1 (2^L x 3^L matrix: keep L <= 8).
    mask_prob: in [0, 1).

  Returns:
    (strings [2^L, L] int, aug [2^L, 3^L] float64 with rows summing to 1).
  """
  if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or not 1 <= length <= 8:
    raise ValueError(f"length must be a Python int in [1, 8], got {length=}")
  if not 0 <= mask_prob < 1:
    raise ValueError(f"mask_prob must be in [0, 1), got {mask_prob=}")
  strings = np.array(list(itertools.product((0, 1), repeat=length)))
  views = np.array(list(itertools.product((0, 1, 2), repeat=length)))          # 2 = mask
  masked = views[None] == 2
  match = views[None] == strings[:, None]
  per_bit = np.where(masked, mask_prob, np.where(match, 1 - mask_prob, 0.0))
  return strings, per_bit.prod(-1)
