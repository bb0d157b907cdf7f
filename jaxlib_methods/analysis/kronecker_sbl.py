"""Kronecker-structured sparse Bayesian learning (KroSBL): EM with a Kronecker-structured hyperparameter.

He, Joseph, "Bayesian Algorithms for Kronecker-structured Sparse Vector Recovery With Application to IRS-MIMO Channel
Estimation", IEEE Trans. Signal Process. 2024, arXiv:2307.14719 (Sec. III). The model is

    y = (A_1 kron A_2) x + n,   n ~ N(0, sigma^2 I),   x ~ N(0, diag(gamma_1 kron gamma_2)),

with A_i of shape [m_i, n_i] and x of length n_1 n_2 (row-major: x[i n_2 + j] pairs column i of A_1 with column j of
A_2). Each EM iteration computes the posterior (E-step)

    Sigma = (Gamma^{-1} + A^T A / sigma^2)^{-1} = Gamma - Gamma A^T (sigma^2 I + A Gamma A^T)^{-1} A Gamma,
    mu = Sigma A^T y / sigma^2,

and then minimises sum_k d_k / gamma_k + ln gamma_k over gamma = gamma_1 kron gamma_2, with d = mu^2 + diag(Sigma)
reshaped to D [n_1, n_2] (M-step). KroSBL-AM alternates the exact coordinate minimisers

    gamma_1[i] = (1 / n_2) sum_j D[i, j] / gamma_2[j],      gamma_2[j] = (1 / n_1) sum_i D[i, j] / gamma_1[i];

KroSBL-SVD takes the rank-1 approximation of D (its top singular pair), the unconstrained minimiser gamma = d
projected onto Kronecker products. The Kronecker identity (A_1 kron A_2) vec_r(X) = vec_r(A_1 X A_2^T) is what makes
the structure cheap to apply (`kron_matvec`).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


class KronSBLResult(NamedTuple):
  """What `kron_sbl` returns: the posterior mean `mu` [n_1 n_2] (the estimate of x) and the two hyperparameter
  factors `gamma_1` [n_1], `gamma_2` [n_2] (the prior variance of x is gamma_1 kron gamma_2; He & Joseph 2024,
  arXiv:2307.14719, Sec. III)."""
  mu: jax.Array
  gamma_1: jax.Array
  gamma_2: jax.Array


def kron_matvec(A1, A2, x):
  """(A_1 kron A_2) x without forming the Kronecker product, as A_1 X A_2^T with X = x reshaped [n_1, n_2] row-major
  (He & Joseph 2024, arXiv:2307.14719, Sec. III; the standard vec identity).

  Args:
    A1: [m_1, n_1] float.
    A2: [m_2, n_2] float.
    x: [..., n_1 n_2] float (leading axes batch).

  Returns:
    [..., m_1 m_2], equal to np.kron(A1, A2) @ x.
  """
  A1 = validation.check_floating(A1, "A1")
  A2 = validation.check_floating(A2, "A2")
  x = validation.check_floating(x, "x")
  if A1.ndim != 2 or A2.ndim != 2:
    raise ValueError(f"A1 and A2 must be matrices, got A1.shape={A1.shape}, A2.shape={A2.shape}")
  n1, n2 = A1.shape[1], A2.shape[1]
  if x.ndim < 1 or x.shape[-1] != n1 * n2:
    raise ValueError(f"x must have a last axis of size n_1 n_2 = {n1 * n2}, got x.shape={x.shape}")
  X = x.reshape(x.shape[:-1] + (n1, n2))
  out = jnp.einsum("ai,...ij,bj->...ab", A1, X, A2)
  return out.reshape(x.shape[:-1] + (A1.shape[0] * A2.shape[0],))


def kron_sbl_m_step_am(D, gamma_2, num_sweeps: int = 1):
  """The KroSBL-AM M-step (He & Joseph 2024, arXiv:2307.14719, Algorithm 1): `num_sweeps` alternating exact
  minimisations of sum_ij D_ij / (gamma_1[i] gamma_2[j]) + n_2 sum_i ln gamma_1[i] + n_1 sum_j ln gamma_2[j].

  Args:
    D: [n_1, n_2] float > 0, the E-step statistics mu^2 + diag(Sigma) reshaped row-major.
    gamma_2: [n_2] float > 0, the current second factor.
    num_sweeps: int >= 1, alternations (gamma_1 then gamma_2).

  Returns:
    (gamma_1 [n_1], gamma_2 [n_2]).
  """
  D = validation.check_floating(D, "D")
  g2 = validation.check_floating(gamma_2, "gamma_2")
  if D.ndim != 2 or g2.shape != (D.shape[1],):
    raise ValueError(f"D must be [n_1, n_2] and gamma_2 [n_2], got D.shape={D.shape}, gamma_2.shape={g2.shape}")
  if isinstance(num_sweeps, bool) or not isinstance(num_sweeps, int) or num_sweeps < 1:
    raise ValueError(f"num_sweeps must be an int >= 1, got {num_sweeps=}")
  g1 = None
  for _ in range(num_sweeps):
    g1 = jnp.mean(D / g2[None, :], axis=1)
    g2 = jnp.mean(D / g1[:, None], axis=0)
  return g1, g2


def kron_sbl_m_step_svd(D):
  """The KroSBL-SVD M-step (He & Joseph 2024, arXiv:2307.14719, Algorithm 2): gamma_1 kron gamma_2 = the best rank-1
  (Frobenius) approximation sigma_1 u_1 v_1^T of D, split as gamma_1 = sqrt(sigma_1) |u_1|, gamma_2 =
  sqrt(sigma_1) |v_1| (D > 0 makes the top singular vectors single-signed, Perron-Frobenius).

  Args:
    D: [n_1, n_2] float > 0.

  Returns:
    (gamma_1 [n_1], gamma_2 [n_2]).
  """
  D = validation.check_floating(D, "D")
  if D.ndim != 2:
    raise ValueError(f"D must be [n_1, n_2], got D.shape={D.shape}")
  u, s, vt = jnp.linalg.svd(D.astype(validation.compute_dtype_for(D.dtype)), full_matrices=False)  # no f16 SVD
  r = jnp.sqrt(s[0])
  return r * jnp.abs(u[:, 0]), r * jnp.abs(vt[0])


def _sbl_posterior(A, y, gamma, noise_var):
  """The SBL E-step: posterior mean mu [n] and diag(Sigma) [n] of x given y = A x + n, x ~ N(0, diag(gamma))
  (Tipping 2001; He & Joseph 2024, arXiv:2307.14719, Eq. (5)), via the m x m Woodbury form.

  Args:
    A: [m, n] float dictionary.
    y: [m] float measurements.
    gamma: [n] float >= 0 prior variances.
    noise_var: float > 0, sigma^2.

  Returns:
    (mu [n], sigma_diag [n]).
  """
  G = gamma
  AG = A * G[None, :]
  C = noise_var * jnp.eye(A.shape[0], dtype=A.dtype) + AG @ A.T
  Cf = jax.scipy.linalg.cho_factor(C)
  mu = AG.T @ jax.scipy.linalg.cho_solve(Cf, y)
  sigma_diag = G - jnp.sum(AG * jax.scipy.linalg.cho_solve(Cf, AG), axis=0)
  return mu, sigma_diag


def kron_sbl(y, A1, A2, *, noise_var: float, method: Literal["am", "svd"] = "am", num_iters: int = 100,
             floor: float = 1e-10) -> KronSBLResult:
  """Kronecker-structured SBL by EM (He & Joseph 2024, arXiv:2307.14719, Algorithms 1 (AM) and 2 (SVD)).

  Args:
    y: [m_1 m_2] float measurements of (A_1 kron A_2) x + noise.
    A1: [m_1, n_1] float.
    A2: [m_2, n_2] float.
    noise_var: float > 0, the noise variance sigma^2 (known, as in the paper's experiments).
    method: "am" (alternating minimisation M-step, one sweep per EM iteration) or "svd" (rank-1 SVD M-step).
    num_iters: int >= 1, EM iterations (a fixed count: jit-friendly).
    floor: float > 0, lower clip of the hyperparameters (keeps pruned entries numerically at ~0).

  Returns:
    KronSBLResult(mu [n_1 n_2], gamma_1 [n_1], gamma_2 [n_2]), float32 or wider (half precision is computed in
    float32).
  """
  y = validation.check_floating(y, "y")
  A1 = validation.check_floating(A1, "A1")
  A2 = validation.check_floating(A2, "A2")
  if A1.ndim != 2 or A2.ndim != 2:
    raise ValueError(f"A1 and A2 must be matrices, got A1.shape={A1.shape}, A2.shape={A2.shape}")
  m, n1, n2 = A1.shape[0] * A2.shape[0], A1.shape[1], A2.shape[1]
  if y.shape != (m,):
    raise ValueError(f"y must be [m_1 m_2] = [{m}], got y.shape={y.shape}")
  validation.check_positive(noise_var, "noise_var")
  validation.check_positive(floor, "floor")
  if method not in ("am", "svd"):
    raise ValueError(f"method must be 'am' or 'svd', got {method=}")
  if isinstance(num_iters, bool) or not isinstance(num_iters, int):
    raise TypeError(f"num_iters must be an int, got {num_iters=}")
  if num_iters < 1:
    raise ValueError(f"num_iters must be >= 1, got {num_iters=}")
  # float16/bfloat16 are computed in float32 (Cholesky has no half-precision kernel, and `floor` would round to 0).
  dtype = validation.compute_dtype_for(jnp.promote_types(jnp.promote_types(y.dtype, A1.dtype), A2.dtype))
  A = jnp.kron(A1.astype(dtype), A2.astype(dtype))
  y = y.astype(dtype)

  def em(_, carry):
    g1, g2 = carry
    mu, sd = _sbl_posterior(A, y, jnp.kron(g1, g2), noise_var)
    D = jnp.maximum((mu * mu + sd).reshape(n1, n2), floor)
    if method == "am":
      g1, g2 = kron_sbl_m_step_am(D, g2)
    else:
      g1, g2 = kron_sbl_m_step_svd(D)
    return jnp.maximum(g1, floor), jnp.maximum(g2, floor)

  g1, g2 = jax.lax.fori_loop(0, num_iters, em, (jnp.ones(n1, dtype), jnp.ones(n2, dtype)))
  mu, _ = _sbl_posterior(A, y, jnp.kron(g1, g2), noise_var)
  return KronSBLResult(mu, g1, g2)
