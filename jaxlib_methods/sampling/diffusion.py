"""A deterministic DDIM sampler in the variance-exploding parametrisation, and the closed-form denoiser of a
Gaussian mixture (the analytic toy model the sampling papers are checked on).

DDIM (Song, Meng, Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502, Eq. 12 with eta = 0)
written for x_sigma = x_0 + sigma * eps (Karras et al. 2022, arXiv:2206.00364, Algorithm 1 without the
second-order correction): x_next = D + (sigma_next / sigma) (x - D), which is also the Euler step of the probability
flow ODE dx/dsigma = (x - D(x, sigma)) / sigma. A variance-preserving model (x_t = sqrt(abar) x_0 + sqrt(1 - abar)
eps) maps to it by x = x_t / sqrt(abar), sigma = sqrt((1 - abar) / abar).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation
from jaxlib_methods.data.gaussian_mixture import GaussianMixture, gaussian_mixture_score


def gaussian_mixture_denoiser(mixture: GaussianMixture, x: jax.Array, sigma) -> jax.Array:
  """E[x_0 | x_0 + sigma eps = x] for x_0 from an isotropic Gaussian mixture, in closed form (Tweedie's formula).

  The noised data are the mixture with stds sqrt(s_k^2 + sigma^2), and D(x, sigma) = x + sigma^2 grad log p_sigma(x)
  (Efron 2011; Karras et al. 2022, arXiv:2206.00364, Eq. 3), the optimal denoiser the guidance papers assume, e.g.
  [136] Sadat et al. 2024, arXiv:2410.02416.

  Args:
    mixture: a `GaussianMixture` (weights [K], means [K, D], stds [K]).
    x: noisy points [N, D].
    sigma: noise level >= 0 (a scalar).

  Returns:
    The posterior mean [N, D], x's dtype.
  """
  x = validation.check_floating(x, "x")
  if x.ndim != 2 or x.shape[1] != mixture.means.shape[1]:
    raise ValueError(f"x must be [N, {mixture.means.shape[1]}], got {x.shape=}")
  validation.check_nonnegative(sigma, "sigma")
  ct = validation.compute_dtype_for(x.dtype)             # half precision: computed in float32, returned in x's dtype
  xc, sigma = x.astype(ct), jnp.asarray(sigma, ct)
  noised = mixture._replace(stds=jnp.sqrt(mixture.stds ** 2 + sigma ** 2).astype(mixture.stds.dtype))
  return (xc + sigma ** 2 * gaussian_mixture_score(noised, xc)).astype(x.dtype)


def ddim_sample(denoiser: Callable[[jax.Array, jax.Array, Any], tuple[jax.Array, Any]], x_init: jax.Array,
                sigmas: jax.Array, carry: Any = None) -> tuple[jax.Array, Any]:
  """Deterministic DDIM (eta = 0) from sigmas[0] down to sigmas[-1], in one `lax.scan`.

  Song, Meng, Ermon, "Denoising Diffusion Implicit Models", 2021, arXiv:2010.02502, Eq. 12 (eta = 0), in the VE form
  x_next = D + (sigma_next / sigma) (x - D) (the Euler step of Karras et al. 2022, arXiv:2206.00364, Algorithm 1).

  Args:
    denoiser: `(x, sigma, carry) -> (D, carry)` with x and D of shape [B, ...] and sigma a scalar: the denoised
      prediction; `carry` passes state
      between steps (e.g. `apg_guidance`'s momentum buffer).
    x_init: the starting point at sigmas[0], e.g. sigmas[0] * N(0, I), [B, ...].
    sigmas: [S] decreasing noise levels, sigmas[0] > 0, sigmas[-1] >= 0 (0 ends on the last denoised prediction).
    carry: the denoiser's initial state (any pytree, None allowed).

  Returns:
    (the samples at the last noise level, shape [B, ...]; the final carry).
  """
  x_init = validation.check_floating(x_init, "x_init")
  sigmas = validation.check_floating(sigmas, "sigmas")
  if sigmas.ndim != 1 or sigmas.shape[0] < 2:
    raise ValueError(f"sigmas must be 1-D with >= 2 levels, got {sigmas.shape=}")
  if not validation.is_traced(sigmas):
    s = np.asarray(sigmas)
    if not (np.all(np.diff(s) < 0) and s[-1] >= 0 and np.all(np.isfinite(s))):
      raise ValueError(f"sigmas must be finite, strictly decreasing and end >= 0, got {sigmas=}")

  def step(state, pair):
    x, c = state
    sigma, sigma_next = pair
    d, c = denoiser(x, sigma, c)
    x = d + (sigma_next / sigma) * (x - d)
    return (x.astype(x_init.dtype), c), None

  (x, carry), _ = jax.lax.scan(step, (x_init, carry), (sigmas[:-1], sigmas[1:]))
  return x, carry
