"""Teacher-student regression tasks with Gaussian inputs.

Used by [192] Kumar, Bordelon, Gershman, Pehlevan, "Grokking as the Transition from Lazy to Rich Training
Dynamics", ICLR 2024, arXiv:2310.06110 (Sec. 3: a single-index polynomial target y = H_k(beta.x) on Gaussian x)
and by [92] ("Why do Learning Rates Transfer?", Noci et al. 2024, arXiv:2402.17457) as a cheap regression task.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


class RegressionTask(NamedTuple):
  """x [N, D] float32, y [N] float32 and the teacher direction beta [D] (unit norm).

  The task of Kumar et al., "Grokking as the Transition from Lazy to Rich Training Dynamics", ICLR 2024,
  arXiv:2310.06110, Sec. 3, and of Noci et al., "Why do Learning Rates Transfer? Reconciling Optimization and Scaling
  Limits for Deep Learning", 2024, arXiv:2402.17457.
  """
  x: jax.Array
  y: jax.Array
  beta: jax.Array


def _hermite(k: int, z: jax.Array) -> jax.Array:
  """Probabilists' Hermite polynomial He_k(z) by the three-term recurrence (He_0 = 1, He_1 = z)."""
  h0, h1 = jnp.ones_like(z), z
  if k == 0:
    return h0
  for n in range(1, k):
    h0, h1 = h1, z * h1 - n * h0
  return h1


def teacher_student(key: jax.Array, n: int, dim: int, *, teacher: Literal["linear", "hermite"] = "linear",
                    degree: int = 2, noise_std: float = 0.0, beta: jax.Array | None = None) -> RegressionTask:
  """x ~ N(0, I_D); y = beta.x (linear) or He_degree(beta.x) (single-index polynomial) + noise.

  Train and test sets from the same teacher: draw the test set with another key and pass the train task's `beta`
  (the same key would also repeat x).

  The task of Kumar et al., "Grokking as the Transition from Lazy to Rich Training Dynamics", ICLR 2024,
  arXiv:2310.06110, Sec. 3 (the Hermite single-index target), and of Noci et al., "Why do Learning Rates Transfer?
  Reconciling Optimization and Scaling Limits for Deep Learning", 2024, arXiv:2402.17457. Returns a `RegressionTask`
  (x [n, dim], y [n], beta [dim]).

  Args:
    key: PRNG key (split three ways: x, the teacher direction unless `beta` is given, and the label noise).
    n, dim: number of samples and input dimension (> 0).
    teacher: 'linear' or 'hermite' (probabilists' Hermite He_k, E[He_k(z)^2] = k!).
    degree: k for 'hermite' (>= 0).
    noise_std: std of additive Gaussian label noise (>= 0).
    beta: optional teacher direction [D] (normalised here).
  """
  if n <= 0 or dim <= 0:
    raise ValueError(f"n and dim must be positive, got {n=}, {dim=}")
  if teacher not in ("linear", "hermite"):
    raise ValueError(f"teacher must be 'linear' or 'hermite', got {teacher=}")
  if degree < 0:
    raise ValueError(f"degree must be >= 0, got {degree=}")
  validation.check_nonnegative(noise_std, "noise_std")
  kx, kb, kn = jax.random.split(key, 3)
  if beta is None:
    beta = jax.random.normal(kb, (dim,))
  beta = jnp.asarray(beta, jnp.float32)
  if beta.shape != (dim,):
    raise ValueError(f"beta must have shape ({dim},), got {beta.shape=}")
  norm = jnp.linalg.norm(beta)
  if not validation.is_traced(norm) and not (np.isfinite(float(norm)) and float(norm) > 0):
    raise ValueError(f"beta must be finite and non-zero (it is normalised to a unit direction), got norm {float(norm)}")
  beta = beta / norm
  x = jax.random.normal(kx, (n, dim))
  z = x @ beta
  y = z if teacher == "linear" else _hermite(degree, z)
  y = y + noise_std * jax.random.normal(kn, (n,))
  return RegressionTask(x, y, beta)


def hermite(k: int, z: jax.Array) -> jax.Array:
  """Public probabilists' Hermite polynomial He_k(z) (elementwise).

  The single-index target H_k(beta.x) of Kumar et al., "Grokking as the Transition from Lazy to Rich Training Dynamics",
  ICLR 2024, arXiv:2310.06110, Sec. 3. k: a Python int; z: any shape; returns an array of z's shape.
  """
  if k < 0:
    raise ValueError(f"k must be >= 0, got {k=}")
  return _hermite(k, jnp.asarray(z))


