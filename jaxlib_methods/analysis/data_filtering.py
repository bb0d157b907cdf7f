"""Scaling laws for data filtering with repetition: the quality-quantity trade-off (QQT).

Goyal, Maini, Lipton, Raghunathan, Kolter, "Scaling Laws for Data Filtering -- Data Curation cannot be Compute
Agnostic", CVPR 2024, arXiv:2404.07177 (Sec. 3). A data pool of N samples with utility b (< 0: the error falls as a
power of the samples seen) trained on for n samples (n / N epochs):

    fresh data (n <= N):          y(n) = a n^b
    the k-th epoch (n in ((k-1)N, kN]):   y(n) = y((k-1)N) * (n / ((k-1)N))^(b_k),   b_k = b * 2^(-(k-1)/tau),

i.e. the utility of a sample halves every tau repetitions (tau: the half-life). Several pools used together (the
union, sampled uniformly) act as one pool of N = sum N_i with utility per epoch the share-weighted mean
b_k = sum_i (N_i / N) b_i 2^(-(k-1)/tau) (the paper's rule for combining pools without training on the mix).
NOTE: the paper's own equations could not be retrieved here; the forms above are the catalog's reading ("utility b
decays with repetition, half-life tau (?)") and may differ in detail (e.g. an additive floor).

For a fixed tau, log y is linear in (log a, b), so `fit_qqt` solves the least-squares fit in closed form per tau
and picks tau on a log-spaced grid refined by golden-section search.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def _log_design(n: jax.Array, pool_size: float, tau: float, utilities: jax.Array, max_epochs: int, xp=jnp) -> jax.Array:
  """sum over epochs of (relative utility of the epoch) x (log-length of its part of [1, n]): log y = log a + b * this,
  for utilities `utilities` [E] (b_k / b for a single pool)."""
  k = xp.arange(1, max_epochs + 1, dtype=n.dtype)                       # epoch index
  start = xp.where(k == 1, 1.0, (k - 1) * pool_size)                     # the first epoch's law starts at n = 1
  end = xp.minimum(n[..., None], k * pool_size)
  seg = xp.where(end > start, xp.log(xp.maximum(end, start) / start), 0.0)
  return xp.sum(utilities * seg, axis=-1)


def _check_common(n: Any, pool_size: Any, tau: Any, max_epochs: Any):
  n = validation.check_floating(n, "n")
  validation.check_positive(pool_size, "pool_size")
  if not (validation.is_concrete_number(tau) and float(tau) > 0):
    raise ValueError(f"tau must be a number > 0 (float('inf'): no decay with repetition), got {tau=}")
  if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
    raise ValueError(f"max_epochs must be a Python int >= 1, got {max_epochs=}")
  if not validation.is_traced(n):
    v = np.asarray(n)
    if (v < 1).any() or not np.isfinite(v).all():
      raise ValueError("n must be finite sample counts >= 1")
    if (v > max_epochs * float(pool_size) * (1 + 1e-9)).any():
      raise ValueError(f"n exceeds max_epochs * pool_size = {max_epochs * float(pool_size):g}: raise max_epochs")
  return n.astype(validation.compute_dtype_for(n.dtype))


def _decay(tau: float, max_epochs: int, dtype, xp=jnp) -> jax.Array:
  k = xp.arange(max_epochs, dtype=dtype)
  return xp.ones_like(k) if np.isinf(float(tau)) else 2.0 ** (-k / float(tau))


def qqt_error(n: Any, pool_size: float, a: float, b: float, tau: float, *, max_epochs: int = 64) -> jax.Array:
  """The error after n samples from one pool repeated as needed (Goyal et al. 2024, arXiv:2404.07177, Sec. 3; see
  the module docstring for the law and its NOTE).

  Args:
    n: [...] float samples seen (>= 1, <= max_epochs * pool_size).
    pool_size: > 0, the pool's N.
    a: > 0 scale.
    b: utility (< 0 for an error that falls with data).
    tau: > 0 half-life of the utility in repetitions (inf: repeated data is as useful as fresh data).
    max_epochs: int >= 1, the most epochs n may cover.

  Returns:
    [...] float errors y(n).
  """
  n = _check_common(n, pool_size, tau, max_epochs)
  validation.check_positive(a, "a")
  return a * jnp.exp(b * _log_design(n, float(pool_size), tau, _decay(tau, max_epochs, n.dtype), max_epochs))


def qqt_mix_error(n: Any, pool_sizes: Sequence[float], a: float, utilities: Sequence[float], tau: float, *,
                  max_epochs: int = 64) -> jax.Array:
  """The error after n samples from the union of several pools (Goyal et al. 2024, arXiv:2404.07177, Sec. 3, the
  combination of pools): one pool of N = sum N_i whose utility in epoch k is sum_i (N_i / N) b_i 2^(-(k-1)/tau).

  Args:
    n: [...] float samples seen.
    pool_sizes: the pools' sizes N_i (> 0).
    a: > 0 scale (shared).
    utilities: the pools' utilities b_i.
    tau: > 0 half-life in repetitions.
    max_epochs: int >= 1.

  Returns:
    [...] float errors.
  """
  sizes = np.asarray(pool_sizes, np.float64)
  bs = np.asarray(utilities, np.float64)
  if sizes.ndim != 1 or sizes.shape != bs.shape or sizes.size < 1 or (sizes <= 0).any():
    raise ValueError(f"pool_sizes (> 0) and utilities must be equal-length 1-d sequences, got {pool_sizes=}, "
                     f"{utilities=}")
  total = float(sizes.sum())
  n = _check_common(n, total, tau, max_epochs)
  validation.check_positive(a, "a")
  b_eff = float(np.sum(sizes / total * bs))
  return a * jnp.exp(b_eff * _log_design(n, total, tau, _decay(tau, max_epochs, n.dtype), max_epochs))


def fit_qqt(n: Any, y: Any, pool_size: float, *, max_epochs: int = 64, tau_range: tuple[float, float] = (0.1, 1e3)
            ) -> dict:
  """Fit (a, b, tau) of `qqt_error` to an observed error curve (Goyal et al. 2024, arXiv:2404.07177, Sec. 3): for each
  tau the least-squares fit of log y = log a + b D_tau(n) is closed-form; tau minimises the residual (log grid,
  then golden-section search on log tau). Runs eagerly in float64 NumPy.

  Args:
    n: [P] samples seen (P >= 3 points, some beyond one epoch for tau to be identifiable).
    y: [P] observed errors (> 0).
    pool_size: > 0 the pool's N.
    max_epochs: int >= 1.
    tau_range: (lo, hi) search range of tau, 0 < lo < hi.

  Returns:
    dict with float "a", "b", "tau" and "rmse" (of log y).
  """
  nn = np.asarray(n, np.float64)
  yy = np.asarray(y, np.float64)
  if nn.ndim != 1 or nn.shape != yy.shape or nn.size < 3:
    raise ValueError(f"n and y must be [P] with P >= 3, got n.shape={nn.shape}, y.shape={yy.shape}")
  if (yy <= 0).any() or not np.isfinite(yy).all():
    raise ValueError("y must be finite errors > 0")
  lo, hi = (float(t) for t in tau_range)
  if not 0 < lo < hi:
    raise ValueError(f"tau_range must be (lo, hi) with 0 < lo < hi, got {tau_range=}")
  if (nn < 1).any() or (nn > max_epochs * float(pool_size)).any() or not np.isfinite(nn).all():
    raise ValueError(f"n must be finite sample counts in [1, max_epochs * pool_size = {max_epochs * float(pool_size):g}]")
  validation.check_positive(pool_size, "pool_size")
  logy = np.log(yy)

  def solve(log_tau):
    tau = float(np.exp(log_tau))
    d = _log_design(nn, float(pool_size), tau, _decay(tau, max_epochs, np.float64, np), max_epochs, np)
    x = np.stack([np.ones_like(d), d], 1)
    coef, *_ = np.linalg.lstsq(x, logy, rcond=None)
    r = logy - x @ coef
    return float(np.sqrt(np.mean(r ** 2))), coef

  grid = np.linspace(np.log(lo), np.log(hi), 41)
  errs = [solve(t)[0] for t in grid]
  i = int(np.argmin(errs))
  left, right = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
  g = (np.sqrt(5) - 1) / 2
  c, d = right - g * (right - left), left + g * (right - left)
  for _ in range(60):
    if solve(c)[0] < solve(d)[0]:
      right = d
    else:
      left = c
    c, d = right - g * (right - left), left + g * (right - left)
  t = (left + right) / 2
  rmse, coef = solve(t)
  return {"a": float(np.exp(coef[0])), "b": float(coef[1]), "tau": float(np.exp(t)), "rmse": rmse}
