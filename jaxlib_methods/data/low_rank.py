"""Incoherent low-rank matrices, uniformly sampled observation masks and outlier-corrupted Gaussian measurements
(matrix completion / robust recovery toys).

Used by [101] Gu, Song, Yin, Zhang, "Low Rank Matrix Completion via Robust Alternating Minimization in Nearly Linear
Time", 2023, arXiv:2302.11068 (its setting: a rank-k incoherent M observed on a uniformly random Omega).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def _haar_columns(key: jax.Array, n: int, k: int, dtype) -> jax.Array:
  """k Haar-distributed orthonormal columns in R^n: Q of the QR of a Gaussian matrix with the signs of diag(R) made
  positive (Mezzadri, "How to generate random matrices from the classical compact groups", 2007, Sec. 5). Without
  the correction Householder QR ties each column's sign to the data (its first column always has Q[0, 0] < 0)."""
  q, r = jnp.linalg.qr(jax.random.normal(key, (n, k), dtype))
  return q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(dtype)


def low_rank_matrix(key: jax.Array, n1: int, n2: int, k: int, *, condition_number: float = 1.0,
                    dtype=jnp.float32) -> jax.Array:
  """M = U diag(s) V^T with U [n1, k], V [n2, k] Haar-random orthonormal (incoherent with high probability) and
  singular values s spaced evenly from condition_number down to 1.

  The rank-k incoherent M of the setting of Gu et al., "Low Rank Matrix Completion via Robust Alternating Minimization
  in Nearly Linear Time", 2023, arXiv:2302.11068.

  Args:
    key: PRNG key.
    n1: rows (>= k).
    n2: columns (>= k).
    k: rank (>= 1).
    condition_number: s_max / s_min (>= 1).
    dtype: floating dtype of the result.

  Returns:
    [n1, n2] matrix of rank k, ||M||_2 = condition_number.
  """
  n1, n2, k = (validation.check_int(v, name, 1, value_error=True) for name, v in (("n1", n1), ("n2", n2), ("k", k)))
  if k > min(n1, n2):
    raise ValueError(f"k must be <= min(n1, n2) = {min(n1, n2)}, got {k=}")
  validation.check_in_interval(condition_number, "condition_number", 1.0, float("inf"), closed_high=False)
  ct = validation.compute_dtype_for(dtype)              # QR has no float16 / bfloat16 kernel
  ku, kv = jax.random.split(key)
  u, v = _haar_columns(ku, n1, k, ct), _haar_columns(kv, n2, k, ct)
  s = jnp.linspace(condition_number, 1.0, k).astype(ct)
  return ((u * s) @ v.T).astype(dtype)


def observation_mask(key: jax.Array, shape: tuple[int, int], p: float) -> jax.Array:
  """Omega: each entry observed independently with probability p (Bernoulli sampling).

  The uniformly random Omega of the setting of Gu et al., "Low Rank Matrix Completion via Robust Alternating
  Minimization in Nearly Linear Time", 2023, arXiv:2302.11068.

  Args:
    key: PRNG key.
    shape: (n1, n2).
    p: observation probability in (0, 1].

  Returns:
    [n1, n2] bool mask.
  """
  validation.check_in_interval(p, "p", 0.0, 1.0, closed_low=False)
  return jax.random.bernoulli(key, p, tuple(shape))


class RobustSensingProblem(NamedTuple):
  """Gaussian linear measurements of a PSD low-rank matrix, a fraction of them replaced by outliers.

  The setting of Ma & Fattahi, "Global Convergence of Sub-gradient Method for Robust Matrix Recovery: Small
  Initialization, Noisy Measurements, and Over-parameterization", JMLR 2023, arXiv:2202.08788, Eq. 1 with the outlier
  noise model.

  Attributes:
    a: [m, d, d] measurement matrices A_i (i.i.d. N(0, 1) entries).
    y: [m] measurements y_i = <A_i, X*> + s_i.
    x_star: [d, d] the PSD ground truth X* (rank r).
    outliers: [m] bool, True where s_i != 0.
  """
  a: jax.Array
  y: jax.Array
  x_star: jax.Array
  outliers: jax.Array


def robust_sensing_problem(key: jax.Array, d: int, r: int, m: int, *, outlier_fraction: float = 0.2,
                           outlier_scale: float = 10.0, condition_number: float = 1.0,
                           dtype=jnp.float32) -> RobustSensingProblem:
  """y = A(X*) + s: the robust matrix recovery setting of [188] (Ma & Fattahi, "Global Convergence of Sub-gradient
  Method for Robust Matrix Recovery: Small Initialization, Noisy Measurements, and Over-parameterization", JMLR 2023,
  arXiv:2202.08788, Eq. 1 with the outlier noise model): X* = Q diag(s) Q^T with Q [d, r] Haar-random orthonormal and
  s spaced evenly from condition_number down to 1; A_i with i.i.d. N(0, 1) entries; each s_i is, independently with
  probability outlier_fraction, an outlier N(0, outlier_scale^2), and 0 otherwise.

  Args:
    key: PRNG key.
    d: matrix size (>= r).
    r: rank of X* (>= 1).
    m: number of measurements (>= 1).
    outlier_fraction: probability p in [0, 1) that a measurement is an outlier.
    outlier_scale: standard deviation of the outliers (> 0).
    condition_number: s_max / s_min of X* (>= 1).
    dtype: floating dtype of the arrays.

  Returns:
    A `RobustSensingProblem` (a [m, d, d], y [m], x_star [d, d], outliers [m] bool).
  """
  d, r, m = (validation.check_int(v, name, 1, value_error=True) for name, v in (("d", d), ("r", r), ("m", m)))
  if r > d:
    raise ValueError(f"r must be <= d = {d}, got {r=}")
  validation.check_in_interval(outlier_fraction, "outlier_fraction", 0.0, 1.0, closed_high=False)
  validation.check_positive(outlier_scale, "outlier_scale")
  validation.check_in_interval(condition_number, "condition_number", 1.0, float("inf"), closed_high=False)
  return _robust_sensing_problem(key, jnp.asarray(outlier_fraction), jnp.asarray(outlier_scale, dtype),
                                 jnp.asarray(condition_number, dtype), d=d, r=r, m=m, dtype=jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnames=("d", "r", "m", "dtype"))
def _robust_sensing_problem(key, outlier_fraction, outlier_scale, condition_number, *, d, r, m, dtype):
  kq, ka, ko, ks = jax.random.split(key, 4)
  ct = validation.compute_dtype_for(dtype)              # QR has no float16 / bfloat16 kernel
  q = jnp.linalg.qr(jax.random.normal(kq, (d, r), ct))[0]
  x_star = ((q * jnp.linspace(condition_number, 1.0, r).astype(ct)) @ q.T).astype(dtype)
  a = jax.random.normal(ka, (m, d, d), ct).astype(dtype)   # bfloat16 normals take 128 values, none beyond |z| = 2.9
  outliers = jax.random.bernoulli(ko, outlier_fraction, (m,))
  s = jnp.where(outliers, outlier_scale.astype(ct) * jax.random.normal(ks, (m,), ct), 0.0)
  y = (jnp.einsum("mij,ij->m", a.astype(ct), x_star.astype(ct)) + s).astype(dtype)
  return RobustSensingProblem(a, y, x_star, outliers)
