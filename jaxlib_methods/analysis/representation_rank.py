"""Matrix Nuclear-Norm and Matrix Entropy of a sequence's hidden states (compression metrics for LLM evaluation).

Li, Xia, Chang, Wu, "Large Language Model Evaluation via Matrix Nuclear-Norm", Findings of EMNLP 2025,
arXiv:2410.10672 (Sec. 3; definitions as in the authors' released code). For hidden states H [L, d] of L tokens:

- normalisation: centre over tokens (H - mean_tokens H), then scale every row to unit L2 norm;
- Matrix Nuclear-Norm: the nuclear norm ||X||_* approximated without an SVD by the L_{1,2} norm restricted to the
  D = min(L, d) largest column norms, sum_{j in top-D} ||X[:, j]||_2, divided by L. It equals ||X||_* / L exactly
  when the columns of X are orthogonal (its singular values are then the column norms);
- Matrix Entropy (the O(d^3) baseline): with Z the normalised rows, Sigma = Z^T Z / L (trace 1), the von Neumann
  entropy -sum_k lambda_k ln lambda_k of Sigma divided by ln d (so it lies in [0, 1]).
"""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp

from jaxlib_methods import validation


def _check_hidden(hidden):
  H = validation.check_floating(hidden, "hidden")
  if H.ndim != 2 or H.shape[0] < 1 or H.shape[1] < 1:
    raise ValueError(f"hidden must be a non-empty [L, d] matrix (tokens x features), got hidden.shape={H.shape}")
  return H.astype(validation.compute_dtype_for(H.dtype))


def _normalize(H):
  X = H - jnp.mean(H, axis=0, keepdims=True)
  n = jnp.linalg.norm(X, axis=1, keepdims=True)
  return X / jnp.where(n > 0, n, 1.0)


def matrix_nuclear_norm(hidden, *, D: Optional[int] = None, normalize: bool = True):
  """The Matrix Nuclear-Norm: sum of the D largest column L2 norms of the (normalised) hidden states, divided by the
  number of tokens L (Li et al. 2025, arXiv:2410.10672, Sec. 3, the L_{1,2} approximation of ||X||_*; O(L d)).

  Args:
    hidden: [L, d] float hidden states of one sequence.
    D: int in [1, d] columns kept, default min(L, d).
    normalize: centre over tokens and unit-normalise rows first (the paper's protocol); False scores `hidden` as is.

  Returns:
    scalar float.
  """
  H = _check_hidden(hidden)
  L, d = H.shape
  if D is None:
    D = min(L, d)
  if isinstance(D, bool) or not isinstance(D, int):
    raise TypeError(f"D must be an int, got {D=}")
  if not 1 <= D <= d:
    raise ValueError(f"D must lie in [1, d={d}], got {D=}")
  X = _normalize(H) if normalize else H
  norms = jnp.sqrt(jnp.sum(X * X, axis=0))
  return jnp.sum(jnp.sort(norms)[::-1][:D]) / L


def matrix_entropy(hidden, *, normalize: bool = True):
  """Matrix Entropy: the von Neumann entropy of Sigma = Z^T Z / L (Z the unit-normalised rows), divided by ln d
  (Li et al. 2025, arXiv:2410.10672, Sec. 2, the baseline metric; an O(d^3) eigendecomposition).

  Args:
    hidden: [L, d] float hidden states of one sequence.
    normalize: centre over tokens first (the paper's protocol); rows are always unit-normalised.

  Returns:
    scalar float in [0, 1] (requires d >= 2).
  """
  H = _check_hidden(hidden)
  L, d = H.shape
  if d < 2:
    raise ValueError(f"matrix_entropy needs d >= 2 features (it divides by ln d), got hidden.shape={H.shape}")
  X = _normalize(H) if normalize else H / jnp.maximum(jnp.linalg.norm(H, axis=1, keepdims=True), 1e-30)
  S = X.T @ X / L
  S = S / jnp.trace(S)
  lam = jnp.clip(jnp.linalg.eigvalsh(S), 0.0, None)
  ent = -jnp.sum(jnp.where(lam > 0, lam * jnp.log(jnp.where(lam > 0, lam, 1.0)), 0.0))
  return ent / jnp.log(jnp.asarray(d, S.dtype))
