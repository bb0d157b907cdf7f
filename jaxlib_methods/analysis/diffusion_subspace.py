"""Diffusion denoisers of a mixture of low-rank Gaussians (MoLRG), their denoising score-matching loss, and the
principal-angle metric of subspace recovery.

[129] Peng Wang, Huijie Zhang, Zekai Zhang, Siyi Chen, Yi Ma, Qing Qu, "Diffusion Models Learn Low-Dimensional
Distributions via Subspace Clustering", 2024, arXiv:2409.02426.

Data (the paper's MoLRG, Sec. 2): x_0 = U*_k a with probability pi_k, a ~ N(0, I_d), U*_k [n, d] orthonormal. The
forward process x_t = s_t x_0 + gamma_t eps, eps ~ N(0, I_n). Because the k-th component of x_t is N(0, s_t^2 U_k U_k^T
+ gamma_t^2 I), the optimal denoiser E[x_0 | x_t] (the minimiser of the DSM loss) is in closed form:

    x*(x_t) = s_t / (s_t^2 + gamma_t^2) sum_k w_k(x_t) U_k U_k^T x_t,
    w_k(x_t) = softmax_k( log pi_k + s_t^2 ||U_k^T x_t||^2 / (2 gamma_t^2 (s_t^2 + gamma_t^2)) ),

and the paper's network parameterization is this same form with learnable bases U_k (orthonormal columns): training
it with the DSM loss E ||x_theta(s_t x_0 + gamma_t eps) - x_0||^2 on N samples is equivalent to subspace clustering of
the samples (for K = 1: PCA), which is why the sample complexity is linear in the intrinsic dimension d and not
exponential in the ambient n.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def _check_bases(bases, x_t):
  bases = validation.check_floating(bases, "bases")
  if bases.ndim != 3 or min(bases.shape) < 1:
    raise ValueError(f"bases must be [K, n, d] (K subspace bases with orthonormal columns), got shape {bases.shape}")
  x_t = validation.check_floating(x_t, "x_t")
  if x_t.ndim < 1 or x_t.shape[-1] != bases.shape[1]:
    raise ValueError(f"x_t must be [..., n] with n = {bases.shape[1]} (the bases' rows), got shape {x_t.shape}")
  return bases, x_t


def _check_noise(sigma, scale):
  for name, val in (("sigma", sigma), ("scale", scale)):
    if validation.is_concrete_number(val):
      validation.check_positive(val, name)


def molrg_denoiser(x_t: jax.Array, bases: jax.Array, *, sigma, scale=1.0,
                   log_weights: Optional[jax.Array] = None) -> jax.Array:
  """E[x_0 | x_t] for the MoLRG with bases U_k, or the paper's low-rank denoiser parameterization with learnable U_k
  (Wang et al., "Diffusion Models Learn Low-Dimensional Distributions via Subspace Clustering", 2024,
  arXiv:2409.02426, Sec. 3: the optimal denoiser of a mixture of low-rank Gaussians and the network parameterized
  after it).

  x_theta(x_t) = s / (s^2 + gamma^2) sum_k w_k U_k U_k^T x_t with w = softmax_k(log pi_k + s^2 ||U_k^T x_t||^2 /
  (2 gamma^2 (s^2 + gamma^2))), for x_t = s x_0 + gamma eps. Exact posterior mean when the U_k have orthonormal
  columns and equal d (the Gaussians' determinants are then equal and cancel from w).

  Args:
    x_t: [..., n] noisy inputs.
    bases: [K, n, d] bases U_k (orthonormal columns).
    sigma: the noise level gamma_t (> 0; scalar or broadcastable to x_t's batch shape [...]).
    scale: the signal scale s_t (> 0; 1 for the variance-exploding process).
    log_weights: optional [K] log mixture weights log pi_k (default: equal weights).

  Returns:
    [..., n] denoised estimate.
  """
  bases, x_t = _check_bases(bases, x_t)
  _check_noise(sigma, scale)
  if log_weights is not None:
    log_weights = validation.check_floating(log_weights, "log_weights")
    if log_weights.shape != bases.shape[:1]:
      raise ValueError(f"log_weights must be [K] = {bases.shape[:1]}, got shape {log_weights.shape}")
  sigma = jnp.asarray(sigma, x_t.dtype)[..., None]                           # [..., 1]
  scale = jnp.asarray(scale, x_t.dtype)[..., None]
  proj = jnp.einsum("knd,...n->...kd", bases, x_t)                          # U_k^T x_t
  energy = jnp.sum(proj * proj, axis=-1)                                    # [..., K]
  logits = scale ** 2 * energy / (2 * sigma ** 2 * (scale ** 2 + sigma ** 2))
  if log_weights is not None:
    logits = logits + log_weights
  w = jax.nn.softmax(logits, axis=-1)
  return scale / (scale ** 2 + sigma ** 2) * jnp.einsum("...k,knd,...kd->...n", w, bases, proj)


def molrg_dsm_loss(bases: jax.Array, x_0: jax.Array, noise: jax.Array, *, sigma, scale=1.0,
                   log_weights: Optional[jax.Array] = None) -> jax.Array:
  """Per-example denoising score-matching loss ||x_theta(s x_0 + gamma eps) - x_0||^2 of the low-rank MoLRG denoiser
  (Wang et al. 2024, arXiv:2409.02426, the DSM training objective of Sec. 2-3 at one noise level; average it over
  examples and noise levels for the training loss).

  Args:
    bases: [K, n, d] the denoiser's bases U_k (the trained parameters).
    x_0: [..., n] clean samples.
    noise: [..., n] standard normal eps.
    sigma: noise level gamma (> 0; scalar or broadcastable to [...]).
    scale: signal scale s (> 0).
    log_weights: optional [K] log mixture weights.

  Returns:
    [...] per-example squared error.
  """
  x_0 = validation.check_floating(x_0, "x_0")
  noise = validation.check_floating(noise, "noise")
  if noise.shape != x_0.shape:
    raise ValueError(f"noise must have x_0's shape {x_0.shape}, got {noise.shape}")
  sig = jnp.asarray(sigma, x_0.dtype)[..., None]
  sc = jnp.asarray(scale, x_0.dtype)[..., None]
  out = molrg_denoiser(sc * x_0 + sig * noise, bases, sigma=sigma, scale=scale, log_weights=log_weights)
  return jnp.sum((out - x_0) ** 2, axis=-1)


def principal_angles(u: jax.Array, v: jax.Array) -> jax.Array:
  """Principal angles between span(u) and span(v): arccos of the singular values of u^T v (Bjorck & Golub 1973), the
  subspace-recovery metric used for [129] (Wang et al. 2024, arXiv:2409.02426).

  Args:
    u: [..., n, d] orthonormal columns.
    v: [..., n, d] orthonormal columns (same d).

  Returns:
    [..., d] angles in [0, pi/2], ascending.
  """
  u = validation.check_floating(u, "u")
  v = validation.check_floating(v, "v")
  if u.ndim < 2 or u.shape[-2:] != v.shape[-2:]:
    raise ValueError(f"u and v must be [..., n, d] with the same n and d, got {u.shape} and {v.shape}")
  ct = validation.compute_dtype_for(jnp.result_type(u, v))         # svd has no float16/bfloat16 kernel
  s = jnp.linalg.svd(jnp.swapaxes(u, -1, -2).astype(ct) @ v.astype(ct), compute_uv=False)
  return jnp.arccos(jnp.clip(s, 0.0, 1.0))


def subspace_distance(u: jax.Array, v: jax.Array) -> jax.Array:
  """Mean squared sine of the principal angles, ||U U^T - V V^T||_F^2 / (2 d) = (d - ||U^T V||_F^2) / d: 0 for the same
  subspace, 1 for orthogonal ones (the subspace-recovery error of [129], Wang et al. 2024, arXiv:2409.02426). Computed
  without an SVD, so it is cheap and safe under jit and vmap.

  Args:
    u: [..., n, d] orthonormal columns.
    v: [..., n, d] orthonormal columns (same n and d).

  Returns:
    [...] distance in [0, 1].
  """
  u = validation.check_floating(u, "u")
  v = validation.check_floating(v, "v")
  if u.ndim < 2 or u.shape[-2:] != v.shape[-2:]:
    raise ValueError(f"u and v must be [..., n, d] with the same n and d, got {u.shape} and {v.shape}")
  d = u.shape[-1]
  return 1.0 - jnp.sum((jnp.swapaxes(u, -1, -2) @ v) ** 2, axis=(-2, -1)) / d
