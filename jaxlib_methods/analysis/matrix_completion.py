"""Low-rank matrix completion by alternating minimization, with exact or approximate (conjugate-gradient) updates.

[101] Yuzhou Gu, Zhao Song, Junze Yin, Lichen Zhang, "Low Rank Matrix Completion via Robust Alternating Minimization
in Nearly Linear Time", ICLR 2024, arXiv:2302.11068. AltMin (Jain, Netrapalli, Sanghavi 2013) alternates the
least-squares problems U <- argmin_U ||P_Omega(U V^T - M)||_F^2 and V <- argmin_V (the same in V), each a set of
independent k-dimensional regressions, one per row, on that row's observed entries. Solved exactly (normal equations)
they cost O(|Omega| k^2) per iteration; the paper shows AltMin is *robust* to approximate solves, so a fast
high-accuracy regression solver (a sketched preconditioner plus an iterative method, O(|Omega| k) per solve up to
log factors) keeps the linear convergence at nearly linear time.

Here the approximate solver is conjugate gradient on each row's normal equations, warm-started at the previous
iterate and stopped once every row's residual has shrunk by the factor `cg_tol` (an eps-accurate solve in the
paper's sense, relative to the warm start; the rows are well conditioned under incoherent uniform sampling,
so no preconditioner is built; the paper's sketched preconditioner is what guarantees this in the worst case). The
operation counts in `history` are the multiply-adds of a sparse implementation (the code itself uses dense masked
arithmetic): exact = sum_i (|Omega_i| (k^2 + k) + k^3 / 3 + 2 k^2); CG = sum_i |Omega_i| k (1 + 2 (T + 1)) + 6 k T
with T the CG iterations run (the batch runs until every row has converged, so T is the max over rows).
"""

from __future__ import annotations

import functools
from typing import Literal, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation

_SOLVERS = ("exact", "cg")


def _solve_exact(m_obs, mask, v):
  """Row-wise least squares, exactly: (V^T D_i V) u_i = V^T D_i m_i for every row i. Returns (U, multiply-adds).

  Solved by the eigendecomposition of each k x k Gram as u_i = G_i^+ V^T D_i m_i, eigenvalues <= k eps lambda_max
  dropped: the minimum-norm least-squares solution, equal to G_i^{-1} V^T D_i m_i (up to rounding) for a
  well-conditioned G_i, and finite where G_i is singular (M of rank < k, an all-zero M: an LU solve gave NaN there).
  (An LU solve next to the eigendecomposition, in the scan, deadlocked jax 0.10.2 on CPU.)
  """
  k = v.shape[1]
  gram = jnp.einsum("ij,jk,jl->ikl", mask, v, v)
  rhs = (mask * m_obs) @ v
  w, q = jnp.linalg.eigh(gram)                                  # ascending eigenvalues, [n, k] and [n, k, k]
  keep = w > jnp.finfo(gram.dtype).eps * k * w[:, -1:]
  inv = jnp.where(keep, 1.0 / jnp.where(keep, w, 1.0), 0.0)
  pinv_apply = lambda b: jnp.einsum("ikl,il->ik", q, inv * jnp.einsum("iml,im->il", q, b))
  u = pinv_apply(rhs)
  u = u + pinv_apply(rhs - jnp.einsum("ikl,il->ik", gram, u))   # one step of iterative refinement: LU's accuracy
  counts = jnp.sum(mask, axis=1)
  # The paper's cost model of an exact solve (LU/Cholesky of each k x k Gram), not the eigendecomposition above.
  flops = jnp.sum(counts * (k * k + k) + k ** 3 / 3 + 2 * k * k)
  return u, flops


def _solve_cg(m_obs, mask, v, u0, tol, max_iters):
  """Row-wise least squares by batched conjugate gradient on the normal equations, from u0. Returns (U, flops, T).

  A row whose search direction p has Rayleigh quotient p^T G_i p / p^T p <= eps tr(G_i) (a numerically null
  direction of a singular Gram: M of rank < k) stops there, and no longer holds the others' loop: stepping along it
  blew the iterate up (to ~1e12). A well-conditioned row never meets the test, so its steps are unchanged.
  """
  k = v.shape[1]
  apply = lambda u: ((u @ v.T) * mask) @ v                      # row i: V^T D_i V u_i
  floor = jnp.finfo(v.dtype).eps * (mask @ jnp.sum(v * v, axis=1))     # eps tr(V^T D_i V), O(|Omega_i| k)
  b = (mask * m_obs) @ v
  r = b - apply(u0)
  r0_norm = jnp.maximum(jnp.linalg.norm(r, axis=1), jnp.finfo(b.dtype).tiny)
  p = r
  rs = jnp.sum(r * r, axis=1)

  def cond(c):
    _, r, _, _, t, stopped = c
    rel = jnp.where(stopped, 0.0, jnp.linalg.norm(r, axis=1) / r0_norm)
    return (t < max_iters) & (jnp.max(rel) > tol)

  def body(c):
    u, r, p, rs, t, stopped = c
    ap = apply(p)
    denom = jnp.sum(p * ap, axis=1)
    ok = (denom > floor * jnp.sum(p * p, axis=1)) & ~stopped
    alpha = jnp.where(ok, rs / jnp.where(ok, denom, 1.0), 0.0)
    u = u + alpha[:, None] * p
    r = r - alpha[:, None] * ap
    rs_new = jnp.sum(r * r, axis=1)
    beta = jnp.where(rs > 0, rs_new / jnp.where(rs > 0, rs, 1.0), 0.0)
    return u, r, r + beta[:, None] * p, rs_new, t + 1, stopped | ~ok

  u, r, _, _, t, _ = jax.lax.while_loop(cond, body, (u0, r, p, rs, jnp.zeros((), jnp.int32),
                                                     jnp.zeros(r.shape[:1], bool)))
  counts = jnp.sum(mask, axis=1)
  flops = jnp.sum(counts * k * (1 + 2 * (t + 1)) + 6 * k * t)
  return u, flops, t


def altmin_complete(m_obs: jax.Array, mask: jax.Array, k: int, *, iters: int = 30,
                    solver: Literal["exact", "cg"] = "exact", cg_tol: float = 1e-3, cg_max_iters: int = 50,
                    warm_start: bool = True, reference: Optional[jax.Array] = None
                    ) -> tuple[jax.Array, jax.Array, dict]:
  """Rank-k completion of the observed entries of M by alternating minimization (exact or approximate updates).

  [101] Gu, Song, Yin, Zhang, "Low Rank Matrix Completion via Robust Alternating Minimization in Nearly Linear Time",
  2023, arXiv:2302.11068: initialise U with the top-k left singular vectors of P_Omega(M) / p (p the observed
  fraction), then per iteration V <- argmin_V ||P_Omega(U V^T - M)||_F, U <- argmin_U ||P_Omega(U V^T - M)||_F, each
  solved row by row, exactly ('exact', O(|Omega| k^2)) or approximately ('cg', conjugate gradient until each row's
  residual has shrunk by the factor `cg_tol`, O(|Omega| k) per CG step). See the module docstring for the operation
  counts.

  Args:
    m_obs: [n1, n2] floating matrix; entries outside `mask` are ignored (may be anything finite).
    mask: [n1, n2] bool, True where M is observed; every row and column needs >= k observed entries.
    k: target rank (1 <= k <= min(n1, n2)).
    iters: AltMin iterations (>= 1).
    solver: 'exact' or 'cg'.
    cg_tol: CG stops when every row's residual is <= cg_tol times its initial residual (> 0; 'cg' only).
    cg_max_iters: cap on CG steps per solve (>= 1; 'cg' only).
    warm_start: start CG from the previous iterate (False: from zero).
    reference: optional [n1, n2] matrix (the true M): history then reports ||U V^T - reference||_F / ||reference||_F.

  Returns:
    (U [n1, k], V [n2, k], history) with history arrays of length `iters`: 'residual' (||P_Omega(U V^T - M)||_F /
    ||P_Omega(M)||_F), 'flops' (multiply-adds of the iteration in the paper's cost model: for 'exact', forming
    each row's Gram and right-hand side, #Omega_i (k^2 + k), plus a k x k LU or Cholesky solve, k^3 / 3 + 2 k^2,
    not the eigendecomposition used here for robustness; for 'cg', the CG steps taken), 'cg_iters' (CG steps of
    the iteration, both halves; 0 for 'exact'), and 'error' when `reference` is given. A zero denominator
    (all-zero observed M or reference) reports the absolute norm instead. Degenerate input (M of rank < k,
    all-zero M) stays finite: the exact solver takes minimum-norm least-squares solutions, CG stops along
    numerically null directions.
  """
  m_obs = validation.check_floating(m_obs, "m_obs")
  if m_obs.ndim != 2 or min(m_obs.shape) < 1:
    raise ValueError(f"m_obs must be a non-empty matrix [n1, n2], got shape {m_obs.shape}")
  mask = validation.check_bool(mask, "mask")
  if mask.shape != m_obs.shape:
    raise ValueError(f"mask must have m_obs's shape {m_obs.shape}, got {mask.shape}")
  for name, val, lo in (("k", k, 1), ("iters", iters, 1), ("cg_max_iters", cg_max_iters, 1)):
    if isinstance(val, bool) or not isinstance(val, int):
      raise TypeError(f"{name} must be an int, got {name}={val!r}")
    if val < lo:
      raise ValueError(f"{name} must be >= {lo}, got {name}={val!r}")
  if k > min(m_obs.shape):
    raise ValueError(f"k must be <= min(n1, n2) = {min(m_obs.shape)}, got {k=}")
  if solver not in _SOLVERS:
    raise ValueError(f"solver must be one of {_SOLVERS}, got {solver=}")
  validation.check_positive(cg_tol, "cg_tol")
  if not validation.is_traced(mask):
    counts = np.asarray(mask)
    if counts.sum(1).min() < k or counts.sum(0).min() < k:
      raise ValueError(f"mask must observe >= k = {k} entries in every row and column (the row-wise least-squares "
                       f"problems are singular otherwise), got min row count {int(counts.sum(1).min())}, min column "
                       f"count {int(counts.sum(0).min())}")
  if reference is not None:
    reference = validation.check_floating(reference, "reference")
    if reference.shape != m_obs.shape:
      raise ValueError(f"reference must have m_obs's shape {m_obs.shape}, got {reference.shape}")
  if solver == "exact":  # the CG settings do not apply: one compilation whatever they are
    cg_tol, cg_max_iters, warm_start = 1.0, 1, True
  return _altmin(m_obs, mask, reference, jnp.asarray(bool(warm_start)), k=k, iters=iters, solver=solver,
                 cg_tol=cg_tol, cg_max_iters=cg_max_iters)


def _relative(num, den):
  """num / den, or num itself (the absolute error) when den = 0 (an all-zero M or reference): never 0 / 0."""
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), num)


@functools.partial(jax.jit, static_argnames=("k", "iters", "solver", "cg_max_iters"))
def _altmin(m_obs, mask, reference, warm_start, *, k, iters, solver, cg_tol, cg_max_iters):
  dtype = m_obs.dtype
  maskf = mask.astype(dtype)
  m_obs = jnp.where(mask, m_obs, 0.0)
  p = jnp.mean(maskf)
  u0 = jnp.linalg.svd(m_obs / p, full_matrices=False)[0][:, :k]
  obs_norm = jnp.linalg.norm(m_obs)

  def half(m, msk, fixed, prev):
    if solver == "exact":
      new, flops = _solve_exact(m, msk, fixed)
      return new, flops, jnp.zeros((), jnp.int32)
    start = jnp.where(warm_start, prev, jnp.zeros_like(prev))
    return _solve_cg(m, msk, fixed, start, cg_tol, cg_max_iters)

  def step(carry, _):
    u, v = carry
    v, f1, t1 = half(m_obs.T, maskf.T, u, v)
    u, f2, t2 = half(m_obs, maskf, v, u)
    pred = u @ v.T
    hist = {"residual": _relative(jnp.linalg.norm(maskf * (pred - m_obs)), obs_norm), "flops": f1 + f2,
            "cg_iters": t1 + t2}
    if reference is not None:
      hist["error"] = _relative(jnp.linalg.norm(pred - reference), jnp.linalg.norm(reference))
    return (u, v), hist

  v0 = jnp.zeros((m_obs.shape[1], k), dtype)
  (u, v), hist = jax.lax.scan(step, (u0, v0), None, length=iters)
  return u, v, hist
