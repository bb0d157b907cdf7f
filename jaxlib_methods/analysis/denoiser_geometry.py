"""Denoiser Jacobian eigenbasis (the adaptive shrinkage basis) and the agreement of two denoisers.

Paper [179]: Zahra Kadkhodaie, Florentin Guth, Eero P. Simoncelli, Stephane Mallat, "Generalization in diffusion
models arises from geometry-adaptive harmonic representations", ICLR 2024, arXiv:2310.02557 (abstract): two denoisers
trained on non-overlapping training sets of size N memorise for small N (different outputs) and converge to the same
function as N grows; a denoiser acts locally as f(y) ~ J(y) y with J = df/dy nearly symmetric, so
f(y) ~ sum_k lambda_k(y) <e_k(y), y> e_k(y): a shrinkage in the eigenbasis {e_k(y)} of J with eigenvalues in
[0, 1] (for the MMSE denoiser, J = Cov[x | y] / sigma^2 is exactly symmetric positive semi-definite).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def denoiser_jacobian_eig(denoiser: Callable[[jax.Array], jax.Array], y: Any) -> tuple[jax.Array, jax.Array,
                                                                                         jax.Array]:
  """The eigen-decomposition of the symmetric part of a denoiser's Jacobian at one noisy input, and how far the
  Jacobian is from symmetric (Kadkhodaie et al., ICLR 2024, arXiv:2310.02557, the "geometry-adaptive"
  shrinkage basis).

  Run it eagerly or in float32 (a float64 eigh inside `jit` can deadlock XLA:CPU).

  Args:
    denoiser: maps a [d] noisy input to a [d] estimate of the clean input.
    y: [d] float noisy input.

  Returns:
    (eigenvalues [d] decreasing, eigenvectors [d, d] (columns), asymmetry ||J - J^T||_F / ||J||_F scalar).
  """
  y = validation.check_floating(y, "y")
  if y.ndim != 1:
    raise ValueError(f"y must be one flattened input [d], got y.shape={y.shape}")
  jac = jax.jacfwd(denoiser)(y)
  if jac.shape != (y.shape[0], y.shape[0]):
    raise ValueError(f"denoiser must map [d] to [d], got a Jacobian of shape {jac.shape}")
  jac = jac.astype(validation.compute_dtype_for(jac.dtype))   # eigh has no float16/bfloat16 kernel
  sym = (jac + jac.T) / 2
  lam, vec = jnp.linalg.eigh(sym)
  norm = jnp.linalg.norm(jac)
  asym = jnp.linalg.norm(jac - jac.T) / jnp.where(norm > 0, norm, 1)   # a zero Jacobian is symmetric: 0, not 0 / 0
  return lam[::-1], vec[:, ::-1], asym


def denoiser_agreement(out1: Any, out2: Any) -> jax.Array:
  """Relative disagreement of two denoisers on the same noisy inputs, E||f_1(y) - f_2(y)||^2 / E||f_1(y)||^2
  (Kadkhodaie et al., ICLR 2024, arXiv:2310.02557: denoisers trained on disjoint sets agree as
  N grows). Batch-level.

  Args:
    out1: [B, ...] float outputs of the first denoiser.
    out2: [B, ...] float outputs of the second denoiser on the same inputs.

  Returns:
    float scalar >= 0 (0: identical functions on these inputs).
  """
  a = validation.check_floating(out1, "out1")
  b = validation.check_floating(out2, "out2")
  validation.check_same_shape_and_dtype("out1", a, "out2", b)
  if a.ndim < 1:
    raise ValueError(f"out1 must have a leading batch axis, got out1.shape={a.shape}")
  validation.check_min_size(a, "out1", 1)
  dt = validation.compute_dtype_for(a.dtype)
  a, b = a.astype(dt), b.astype(dt)
  return jnp.sum((a - b) ** 2) / jnp.sum(a ** 2)
