"""ell_p sensitivities, ell_p Lewis weights, and importance sampling of rows by them.

Woodruff, Yasuda, "Sharper Bounds for ell_p Sensitivity Sampling", ICML 2023, arXiv:2306.00732 (Sec. 1, Definitions
1.1 and 1.4). For A [n, d] and p >= 1:

- the ell_p sensitivity of row i is s_i = sup_x |a_i^T x|^p / ||A x||_p^p = 1 / min{ ||A x||_p^p : a_i^T x = 1 },
  and the total sensitivity is S = sum_i s_i, which satisfies S <= d^max(1, p/2) (S = d exactly at p = 2);
- the ell_p Lewis weights are the unique w > 0 with w_i = (a_i^T (A^T W^{1 - 2/p} A)^{-1} a_i)^{p/2}; sum_i w_i = d,
  and at p = 2 they are the leverage scores. The fixed-point iteration of Cohen & Peng (2015) converges for p < 4;
- sampling m rows i.i.d. with probabilities q_i proportional to a score and weighting each by 1 / (m q_i) gives an
  unbiased estimate of ||A x||_p^p for every x; with sensitivities (or Lewis weights) and m ~ eps^-2 S^(2/p) (p < 2)
  rows (up to log factors) it is a (1 +- eps) ell_p subspace embedding (the paper's main theorem).

The exact sensitivities solve one convex program per row; here by iteratively reweighted least squares on the
constrained problem (a Newton step, damped by 1 / (p - 1) when p > 2, undamped majorisation-minimisation when
p <= 2), vmapped over rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def _check_A_p(A, p, name="A"):
  A = validation.check_floating(A, name)
  if A.ndim != 2 or A.shape[0] < 1 or A.shape[1] < 1:
    raise ValueError(f"{name} must be a non-empty [n, d] matrix, got {name}.shape={A.shape}")
  if not validation.is_concrete_number(p):
    raise TypeError(f"p must be a concrete number >= 1, got {p!r}")
  validation.check_in_interval(p, "p", 1.0, float("inf"), closed_high=False)
  return A


def _check_iters(num_iters):
  if isinstance(num_iters, bool) or not isinstance(num_iters, int):
    raise TypeError(f"num_iters must be an int, got {num_iters=}")
  if num_iters < 1:
    raise ValueError(f"num_iters must be >= 1, got {num_iters=}")


def lewis_weights(A, p: float, *, num_iters: int = 50):
  """ell_p Lewis weights by the fixed-point iteration w <- (a_i^T (A^T W^{1 - 2/p} A)^{-1} a_i)^{p/2} (Woodruff &
  Yasuda 2023, arXiv:2306.00732, Definition 1.4; Cohen & Peng 2015, converging for p < 4). At p = 2 one step gives
  the leverage scores exactly.

  Args:
    A: [n, d] float of rank d.
    p: float in [1, 4).
    num_iters: int >= 1 fixed-point iterations.

  Returns:
    [n] weights (sum = d at the fixed point).
  """
  A = _check_A_p(A, p)
  if p >= 4:
    raise ValueError(f"the Lewis-weight fixed-point iteration converges for p < 4, got {p=}")
  _check_iters(num_iters)
  dtype = validation.compute_dtype_for(A.dtype)
  X = A.astype(dtype)

  def step(_, w):
    M = X.T @ (X * (w ** (1.0 - 2.0 / p))[:, None])
    tau = jnp.sum(X * jnp.linalg.solve(M, X.T).T, axis=1)
    return jnp.maximum(tau, 0.0) ** (p / 2.0)

  w = jax.lax.fori_loop(0, num_iters, step, jnp.ones(X.shape[0], dtype))
  return w.astype(A.dtype)


def lp_sensitivities(A, p: float, *, num_iters: int = 100, smoothing: float = 1e-4):
  """Exact ell_p sensitivities s_i = 1 / min{||A x||_p^p : a_i^T x = 1} (Woodruff & Yasuda 2023, arXiv:2306.00732,
  Definition 1.1), each constrained minimum by IRLS (see the module docstring); rows with a_i = 0 get 0.

  Args:
    A: [n, d] float.
    p: float >= 1 (p = 1 converges linearly through the smoothing; p = 2 is the leverage score after one step).
    num_iters: int >= 1 IRLS iterations.
    smoothing: float > 0, the relative residual floor: weights (r_j^2 + e^2)^{(p - 2)/2} with e = smoothing times
      the root-mean-square residual (keeps the weighted system well conditioned in float32 for p < 2).

  Returns:
    [n] sensitivities in [0, 1].
  """
  A = _check_A_p(A, p)
  _check_iters(num_iters)
  validation.check_positive(smoothing, "smoothing")
  dtype = validation.compute_dtype_for(A.dtype)
  X = A.astype(dtype)
  d = X.shape[1]
  step_size = 1.0 if p <= 2 else 1.0 / (p - 1.0)
  ridge = 1e-12 * jnp.trace(X.T @ X) / d

  def weighted_solution(w, a):  # argmin sum_j w_j (a_j^T x)^2 s.t. a^T x = 1
    M = X.T @ (X * w[:, None]) + ridge * jnp.eye(d, dtype=dtype)
    v = jnp.linalg.solve(M, a)
    return v / jnp.dot(a, v)

  def one_row(a):
    nz = jnp.dot(a, a) > 0
    a_safe = jnp.where(nz, a, jnp.ones_like(a))
    x = weighted_solution(jnp.ones(X.shape[0], dtype), a_safe)

    def body(_, x):
      r = X @ x
      e2 = smoothing ** 2 * jnp.mean(r * r)
      w = (r * r + e2) ** ((p - 2.0) / 2.0)
      return x + step_size * (weighted_solution(w, a_safe) - x)

    x = jax.lax.fori_loop(0, num_iters, body, x)
    return jnp.where(nz, 1.0 / jnp.sum(jnp.abs(X @ x) ** p), 0.0)

  return jax.vmap(one_row)(X).astype(A.dtype)


def sensitivity_sample(key, scores, m: int):
  """Sample m rows i.i.d. with probabilities q_i = scores_i / sum(scores) and weights 1 / (m q_i), so that
  sum_j weights_j |a_{idx_j}^T x|^p is an unbiased estimate of ||A x||_p^p (Woodruff & Yasuda 2023,
  arXiv:2306.00732, Sec. 1: sensitivity sampling).

  Args:
    key: jax PRNG key.
    scores: [n] float >= 0, not all zero (sensitivities or Lewis weights).
    m: int >= 1 samples.

  Returns:
    (indices [m] int32, weights [m] float): the sketch is ||S A x||_p^p = sum_j weights_j |a_{indices_j}^T x|^p.
  """
  s = validation.check_floating(scores, "scores")
  if s.ndim != 1 or s.shape[0] < 1:
    raise ValueError(f"scores must be a non-empty [n] vector, got scores.shape={s.shape}")
  if isinstance(m, bool) or not isinstance(m, int):
    raise TypeError(f"m must be an int, got {m=}")
  if m < 1:
    raise ValueError(f"m must be >= 1, got {m=}")
  if not validation.is_traced(s):
    sv = np.asarray(s, np.float64)
    if not np.all(np.isfinite(sv)) or np.any(sv < 0) or not np.any(sv > 0):
      raise ValueError("scores must be finite, >= 0 and not all zero")
  q = s / jnp.sum(s)
  idx = jax.random.choice(key, s.shape[0], (m,), replace=True, p=q)
  return idx.astype(jnp.int32), 1.0 / (m * q[idx])
