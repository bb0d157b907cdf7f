"""CVIB's self-pruning layer: a VIB multiplicative Gaussian mask on features (ls19d, issue 19, catalog [11]).

Paper: Mingshan Chang, Min Yang, Qingshan Jiang, Ruifeng Xu, "Contrastive Variational Information Bottleneck for
Aspect-Based Sentiment Analysis" (first titled "Reducing Spurious Correlations for Aspect-Based Sentiment Analysis
with Variational Information Bottleneck and Contrastive Learning"), 2023, arXiv:2303.02846 (Sec. 3.2, the
self-pruned network), whose masking layer is Dai et al.'s VIB pruning ("Compressing Neural Networks using the
Variational Information Bottleneck", ICML 2018, arXiv:1802.10399, Eq. (9)); official code shesshan/CVIB
`model_utils.InformationBottleneck`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import validation

_EPS = 1e-8   # the official epsilon


def vib_mask_kl(mu: jax.Array, log_var: jax.Array) -> jax.Array:
  """The VIB mask's KL term, 0.5 * sum_k log(1 + mu_k^2 / sigma_k^2) (Dai et al., ICML 2018, arXiv:1802.10399,
  Eq. (9); CVIB, arXiv:2303.02846, Sec. 3.2; official `kl_closed_form` without its sequence-length factor).

  The upper bound on I(x; h) of the masked features h = x * z, z ~ N(mu, sigma^2) per feature (up to terms without
  parameters); it vanishes as mu -> 0, which prunes the feature.

  Args:
    mu: [d] the mask's means.
    log_var: [d] log sigma^2 of the mask.

  Returns:
    Scalar float32 (or wider).
  """
  mu = validation.check_floating(mu, "mu")
  log_var = validation.check_floating(log_var, "log_var")
  if mu.shape != log_var.shape or mu.ndim != 1:
    raise ValueError(f"mu and log_var must be [d] vectors of one shape, got mu.shape={mu.shape}, log_var.shape="
                     f"{log_var.shape}")
  ct = jnp.promote_types(validation.compute_dtype_for(mu.dtype), validation.compute_dtype_for(log_var.dtype))
  m, lv = mu.astype(ct), log_var.astype(ct)
  return 0.5 * jnp.sum(jnp.log1p(m * m / (jnp.exp(lv) + _EPS)))


class VIBMask(nnx.Module):
  """A learnt multiplicative Gaussian mask h = x * z, z ~ N(mu, sigma^2) per feature (CVIB's self-pruned network,
  Chang et al. 2023, arXiv:2303.02846, Sec. 3.2; Dai et al. 2018, arXiv:1802.10399; official
  `InformationBottleneck`).

  Training (`key` given): one z per example, z = mu + sigma * eps. Evaluation (`key=None`): the official pruned
  mask, mu where log alpha = log sigma^2 - log(mu^2 + 1e-8) < `threshold`, else 0. `kl()` is `vib_mask_kl(mu,
  log_var)`; the self-pruned network minimises CE + kl_weight * kl() + the self-pruning contrastive loss.

  Args:
    dim: d, the number of features masked (the last axis of x).
    init_mag: log sigma^2 starts at -init_mag (official 9).
    init_var: std of the initial N(1, .) means and N(-init_mag, .) log variances (official 0.01).
    threshold: the log alpha threshold of the evaluation mask (official 0).
    rngs: nnx.Rngs with a 'params' stream.
  """

  def __init__(self, dim: int, *, init_mag: float = 9.0, init_var: float = 0.01, threshold: float = 0.0,
               rngs: nnx.Rngs):
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
      raise ValueError(f"dim must be a positive int, got dim={dim!r}")
    validation.check_nonnegative(init_var, "init_var")
    self.dim, self.threshold = dim, float(threshold)
    k1, k2 = jax.random.split(rngs.params())
    self.mu = nnx.Param(1.0 + init_var * jax.random.normal(k1, (dim,)))
    self.log_var = nnx.Param(-init_mag + init_var * jax.random.normal(k2, (dim,)))

  def mask(self) -> jax.Array:
    """[d] the evaluation mask: mu where log alpha < threshold, else 0."""
    mu, lv = self.mu[...], self.log_var[...]
    log_alpha = lv - jnp.log(mu * mu + _EPS)
    return jnp.where(log_alpha < self.threshold, mu, 0.0)

  def kl(self) -> jax.Array:
    """Scalar: `vib_mask_kl(mu, log_var)`."""
    return vib_mask_kl(self.mu[...], self.log_var[...])

  def __call__(self, x: Any, *, key: Any = None) -> jax.Array:
    """x [..., d] -> x * z: a fresh sampled z per example (leading axis) with `key`, the pruned mask without."""
    x = validation.check_floating(x, "x")
    if x.ndim < 1 or x.shape[-1] != self.dim:
      raise ValueError(f"x must have {self.dim} features on its last axis, got x.shape={x.shape}")
    if key is None:
      return x * self.mask().astype(x.dtype)
    z_shape = (x.shape[0], self.dim) if x.ndim >= 2 else (self.dim,)
    z = self.mu[...] + jnp.exp(0.5 * self.log_var[...]) * jax.random.normal(key, z_shape)
    z = z.reshape(z.shape[:1] + (1,) * (x.ndim - 2) + z.shape[-1:]) if x.ndim > 2 else z
    return (x * z.astype(x.dtype))
