"""Robust low-rank matrix recovery with the l1 loss by the sub-gradient method (SubGM) from a small initialization.

[188] Jianhao Ma, Salar Fattahi, "Global Convergence of Sub-gradient Method for Robust Matrix Recovery: Small
Initialization, Noisy Measurements, and Over-parameterization", JMLR 2023, arXiv:2202.08788.

The problem (the paper's Eq. 1-2): recover a rank-r PSD X* [d, d] from y = A(X*) + s, A(X)_i = <A_i, X>, s sparse
and arbitrarily large (outliers), through the over-parameterized Burer-Monteiro factor U [d, r'] (r' >= r, the rank
unknown and over-estimated) and the nonconvex, nonsmooth l1 loss

    f_l1(U) = (1/m) ||y - A(U U^T)||_1 = (1/m) sum_i |<A_i, U U^T> - y_i|.

SubGM (the paper's Algorithm 1): U_0 = alpha B (small alpha), then U_{t+1} = U_t - eta_t Q_t with the sub-gradient

    Q_t = (1/m) sum_i sign(<A_i, U_t U_t^T> - y_i) (A_i + A_i^T) U_t    in  df_l1(U_t)

(sign(0) = 0, an element of the sub-differential) and the exponentially decaying step size eta_t = eta_0 rho^t: the
l1 sub-gradient does not shrink as U_t approaches the solution (by the paper's Sign-RIP it is close to a multiple of
the *normalised* gradient of ||U U^T - X*||_F^2), so a geometric step size is what makes the error decrease
geometrically. The paper's result: from a small alpha, ||U_t U_t^T - X*||_F decreases geometrically to a level set by
alpha, whatever r' (over-parameterization costs nothing), and with outliers that may be dense; a large initialization
in the over-parameterized regime does not have this guarantee and fits the outliers.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def _check_measurements(a, y):
  a = validation.check_floating(a, "a")
  if a.ndim != 3 or a.shape[1] != a.shape[2] or a.shape[0] < 1:
    raise ValueError(f"a must be [m, d, d] measurement matrices (m >= 1), got shape {a.shape}")
  y = validation.check_floating(y, "y")
  if y.shape != a.shape[:1]:
    raise ValueError(f"y must be [m] = {a.shape[:1]} (one measurement per A_i), got shape {y.shape}")
  return a, y


def _check_factor(u, d, name="u"):
  u = validation.check_floating(u, name)
  if u.ndim != 2 or u.shape[0] != d or u.shape[1] < 1:
    raise ValueError(f"{name} must be a [d, r'] factor with d = {d} rows and r' >= 1 columns, got shape {u.shape}")
  return u


def l1_recovery_loss(u: jax.Array, a: jax.Array, y: jax.Array) -> jax.Array:
  """The paper's l1 objective f_l1(U) = (1/m) sum_i |<A_i, U U^T> - y_i| (Ma & Fattahi 2023, arXiv:2202.08788, Eq. 2).

  Args:
    u: [d, r'] factor.
    a: [m, d, d] measurement matrices.
    y: [m] measurements.

  Returns:
    Scalar loss (u's dtype).
  """
  a, y = _check_measurements(a, y)
  u = _check_factor(u, a.shape[1])
  return jnp.mean(jnp.abs(jnp.einsum("mij,ij->m", a, u @ u.T) - y))


def small_initialization(key: jax.Array, d: int, r_over: int, alpha: float, *, dtype=jnp.float32) -> jax.Array:
  """U_0 = alpha B, B = G / ||G||_F with G [d, r'] i.i.d. N(0, 1): a random direction of Frobenius norm alpha (the
  paper's small initialization U_0 = alpha B of Algorithm 1, Ma & Fattahi 2023, arXiv:2202.08788).

  Args:
    key: PRNG key.
    d: rows (>= 1).
    r_over: the over-parameterized rank r' (>= 1).
    alpha: initialization scale (> 0); ||U_0||_F = alpha.
    dtype: floating dtype.

  Returns:
    [d, r_over] initial factor.
  """
  for name, val in (("d", d), ("r_over", r_over)):
    if isinstance(val, bool) or not isinstance(val, int) or val < 1:
      raise ValueError(f"{name} must be a positive int, got {name}={val!r}")
  validation.check_positive(alpha, "alpha")
  return _small_initialization(key, jnp.asarray(alpha, dtype), d=d, r_over=r_over, dtype=jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnames=("d", "r_over", "dtype"))
def _small_initialization(key, alpha, *, d, r_over, dtype):
  g = jax.random.normal(key, (d, r_over), dtype)
  return alpha * g / jnp.linalg.norm(g)


def subgm_recovery(a: jax.Array, y: jax.Array, u0: jax.Array, *, steps: int, eta0: float, rho: float,
                   reference: Optional[jax.Array] = None) -> tuple[jax.Array, dict]:
  """SubGM on the l1 loss with the exponentially decaying step size eta_t = eta0 rho^t (Ma & Fattahi, "Global
  Convergence of Sub-gradient Method for Robust Matrix Recovery", JMLR 2023, arXiv:2202.08788, Algorithm 1).

  U_{t+1} = U_t - eta0 rho^t Q_t, Q_t = (1/m) sum_i sign(<A_i, U_t U_t^T> - y_i) (A_i + A_i^T) U_t. Zero columns of
  u0 stay zero, so a [d, d] factor whose last d - r' columns are 0 runs exactly the rank-r' method (a vmapped sweep
  over r' can share one shape). jit- and vmap-safe in (a, y, u0, reference); eta0 and rho may be traced.

  Args:
    a: [m, d, d] measurement matrices A_i.
    y: [m] measurements.
    u0: [d, r'] initial factor (`small_initialization` for the paper's U_0 = alpha B).
    steps: iterations T (>= 1).
    eta0: initial step size (> 0).
    rho: step-size decay per iteration, in (0, 1] (1: a constant step size).
    reference: optional [d, d] ground truth X*: history then holds 'error' = ||U_t U_t^T - X*||_F.

  Returns:
    (U_T [d, r'], history) with history arrays of length `steps`, entry t measured at U_t before its update:
    'loss' (f_l1(U_t)), 'step_size' (eta_t) and, with `reference`, 'error'.
  """
  a, y = _check_measurements(a, y)
  u0 = _check_factor(u0, a.shape[1], "u0")
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
    raise ValueError(f"steps must be a positive int, got {steps=!r}")
  if not validation.is_traced(eta0):
    validation.check_positive(eta0, "eta0")
  if not validation.is_traced(rho):
    validation.check_in_interval(rho, "rho", 0.0, 1.0, closed_low=False)
  if reference is not None:
    reference = validation.check_floating(reference, "reference")
    if reference.shape != (a.shape[1],) * 2:
      raise ValueError(f"reference must be [d, d] = {(a.shape[1],) * 2}, got shape {reference.shape}")
  return _subgm(a, y, u0, jnp.asarray(eta0, u0.dtype), jnp.asarray(rho, u0.dtype), reference, steps=steps)


@functools.partial(jax.jit, static_argnames=("steps",))
def _subgm(a, y, u0, eta0, rho, reference, *, steps):
  a_sym = a + jnp.swapaxes(a, 1, 2)
  m = a.shape[0]

  def step(u, t):
    residual = jnp.einsum("mij,ij->m", a, u @ u.T) - y
    s = jnp.einsum("m,mij->ij", jnp.sign(residual), a_sym) / m        # (1/m) sum_i sign(r_i) (A_i + A_i^T)
    eta = eta0 * rho ** t.astype(u.dtype)
    hist = {"loss": jnp.mean(jnp.abs(residual)), "step_size": eta}
    if reference is not None:
      hist["error"] = jnp.linalg.norm(u @ u.T - reference)
    return u - eta * (s @ u), hist

  return jax.lax.scan(step, u0, jnp.arange(steps))
