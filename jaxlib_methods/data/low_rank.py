"""Incoherent low-rank matrices and uniformly sampled observation masks (matrix completion / recovery toys).

Used by [101] Gu, Song, Yin, Zhang, "Low Rank Matrix Completion via Robust Alternating Minimization in Nearly Linear
Time", 2023, arXiv:2302.11068 (its setting: a rank-k incoherent M observed on a uniformly random Omega).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def low_rank_matrix(key: jax.Array, n1: int, n2: int, k: int, *, condition_number: float = 1.0,
                    dtype=jnp.float32) -> jax.Array:
  """M = U diag(s) V^T with U [n1, k], V [n2, k] Haar-random orthonormal (incoherent with high probability) and
  singular values s spaced evenly from condition_number down to 1.

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
  for name, val in (("n1", n1), ("n2", n2), ("k", k)):
    if isinstance(val, bool) or not isinstance(val, int) or val < 1:
      raise ValueError(f"{name} must be a positive int, got {name}={val!r}")
  if k > min(n1, n2):
    raise ValueError(f"k must be <= min(n1, n2) = {min(n1, n2)}, got {k=}")
  validation.check_in_interval(condition_number, "condition_number", 1.0, float("inf"), closed_high=False)
  ku, kv = jax.random.split(key)
  u = jnp.linalg.qr(jax.random.normal(ku, (n1, k), dtype))[0]
  v = jnp.linalg.qr(jax.random.normal(kv, (n2, k), dtype))[0]
  s = jnp.linspace(condition_number, 1.0, k).astype(dtype)
  return (u * s) @ v.T


def observation_mask(key: jax.Array, shape: tuple[int, int], p: float) -> jax.Array:
  """Omega: each entry observed independently with probability p (Bernoulli sampling).

  Args:
    key: PRNG key.
    shape: (n1, n2).
    p: observation probability in (0, 1].

  Returns:
    [n1, n2] bool mask.
  """
  validation.check_in_interval(p, "p", 0.0, 1.0, closed_low=False)
  return jax.random.bernoulli(key, p, tuple(shape))
