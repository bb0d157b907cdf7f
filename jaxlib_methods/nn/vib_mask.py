"""Variational-information-bottleneck masks for structured pruning (attention heads, neurons, embedding dimensions).

Paper [16]: Oshin Dutta, Ritvik Gupta, Sumeet Agarwal, "VTrans: Accelerating Transformer Compression with Variational
Information Bottleneck based Pruning", 2024, arXiv:2406.05276 (Sec. 3), which prunes with the VIB masks of VIBNet
(Dai, Zhu, Guo, Wipf, "Compressing Neural Networks using the Variational Information Bottleneck", ICML 2018,
arXiv:1802.10399, Sec. 3). Each prunable unit i (a head, a neuron, an embedding dimension) gets a stochastic
multiplicative mask z_i = mu_i + sigma_i eps_i, eps_i ~ N(0, 1) (reparameterised), applied to its output during
training; the information-bottleneck term is the upper bound sum_i log(1 + mu_i^2 / sigma_i^2) of the layer's KL,
added to the task loss with a weight gamma. A unit is pruned when log alpha_i = log(mu_i^2 / sigma_i^2) falls below a
threshold; to meet a size budget the threshold is raised until only the `keep` units of largest log alpha remain
(VTrans' iterative prune-to-budget step). At inference the mask is deterministic: z_i = mu_i on kept units, 0 on
pruned ones, so the pruned layer (kept rows only, mu folded into the next layer's weights, `vib_prune_dense`) computes
exactly what the masked one does.

The same mask is CVIB's self-pruning layer (catalog [11]: Mingshan Chang, Min Yang, Qingshan Jiang, Ruifeng Xu,
"Contrastive Variational Information Bottleneck for Aspect-Based Sentiment Analysis", 2023, arXiv:2303.02846,
Sec. 3.2; official code shesshan/CVIB `model_utils.InformationBottleneck`): there the means and log variances start
randomly (`init_std`), the evaluation mask keeps a unit when log sigma^2 - log(mu^2 + 1e-8) < `threshold` (no size
budget), one z is drawn per example (`per_example=True`), and the KL term carries the official factor 1/2
(`vib_mask_kl`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation

_EPS = 1e-8   # CVIB's official epsilon in the KL term and the threshold rule


class VIBMask(nnx.Module):
  """A VIB mask over `num_units` units on the last axis (Dutta et al. 2024, arXiv:2406.05276, Sec. 3; Dai et al. 2018,
  arXiv:1802.10399, eqs. 7-9).

  Args:
    num_units: n, the units on the masked axis.
    init_mu: initial mu (every unit kept, scale 1).
    init_log_sigma2: initial log sigma^2 (small noise at the start; CVIB's official -9).
    init_std: std of Gaussian jitter added to the initial mu and log sigma^2 (CVIB's official 0.01; 0: none, and
      `rngs` is not drawn from).
    threshold: None (default): the deterministic mask is mu on the units `keep` holds (all until `prune_to_budget`);
      a float: CVIB's evaluation rule, mu where log sigma^2 - log(mu^2 + 1e-8) < threshold (and `keep`), else 0.
    rngs: PRNG streams (`params` is drawn from only when init_std > 0).
    param_dtype: dtype of mu and log sigma^2.

  Shapes: __call__ h [..., n] -> [..., n]; `mask` -> [n]; `kl` -> scalar; `log_alpha` -> [n].
  """

  def __init__(self, num_units: int, *, init_mu: float = 1.0, init_log_sigma2: float = -9.0, init_std: float = 0.0,
               threshold: float | None = None, rngs: nnx.Rngs, param_dtype=jnp.float32):
    if isinstance(num_units, bool) or not isinstance(num_units, int) or num_units < 1:
      raise ValueError(f"num_units must be an int >= 1, got {num_units=!r}")
    validation.check_nonnegative(init_std, "init_std")
    if threshold is not None and not np.isfinite(threshold):
      raise ValueError(f"threshold must be None or a finite float, got {threshold=!r}")
    self.num_units = num_units
    self.threshold = None if threshold is None else float(threshold)
    mu = jnp.full((num_units,), init_mu, jnp.float32)
    log_sigma2 = jnp.full((num_units,), init_log_sigma2, jnp.float32)
    if init_std > 0:
      k1, k2 = jax.random.split(rngs.params())
      mu = mu + init_std * jax.random.normal(k1, (num_units,))
      log_sigma2 = log_sigma2 + init_std * jax.random.normal(k2, (num_units,))
    self.mu = nnx.Param(mu.astype(param_dtype))
    self.log_sigma2 = nnx.Param(log_sigma2.astype(param_dtype))
    self.keep = nnx.Variable(jnp.ones((num_units,), bool))        # the pruning decision (all kept until pruned)

  def mask(self) -> jax.Array:
    """[n] the deterministic (evaluation) mask: mu on kept units (and, with `threshold`, where log sigma^2 -
    log(mu^2 + 1e-8) < threshold), 0 elsewhere."""
    mu = self.mu[...]
    kept = self.keep[...]
    if self.threshold is not None:
      kept = kept & (self.log_sigma2[...] - jnp.log(mu * mu + _EPS) < self.threshold)
    return jnp.where(kept, mu, 0.0)

  def __call__(self, h: jax.Array, *, key: jax.Array | None = None, per_example: bool = False) -> jax.Array:
    """With `key`: the stochastic training mask mu + sigma eps (eps per element of h, or with `per_example` one z per
    example on the leading axis, shared over the middle axes, as CVIB's code); without: h * `mask()`."""
    h = validation.check_floating(h, "h")
    if h.ndim < 1 or h.shape[-1] != self.num_units:
      raise ValueError(f"h must be [..., n={self.num_units}] (the masked features on its last axis), got "
                       f"h.shape={h.shape}")
    if key is None:
      return h * self.mask().astype(h.dtype)
    mu = self.mu[...]
    shape = h.shape
    if per_example and h.ndim >= 2:
      shape = (h.shape[0],) + (1,) * (h.ndim - 2) + (self.num_units,)
    eps = jax.random.normal(key, shape, mu.dtype)
    z = (mu + jnp.exp(0.5 * self.log_sigma2[...]) * eps) * self.keep[...]
    return h * z.astype(h.dtype)

  def log_alpha(self) -> jax.Array:
    """[n] log(mu^2 / sigma^2), the pruning score."""
    mu = self.mu[...].astype(jnp.float32)
    return jnp.log(mu ** 2 + 1e-30) - self.log_sigma2[...].astype(jnp.float32)

  def kl(self) -> jax.Array:
    """The VIB term sum_i log(1 + mu_i^2 / sigma_i^2) over the kept units (scalar, float32)."""
    mu = self.mu[...].astype(jnp.float32)
    return jnp.sum(jnp.log1p(mu ** 2 * jnp.exp(-self.log_sigma2[...].astype(jnp.float32))) * self.keep[...])

  def prune_to_budget(self, keep: int) -> None:
    """Keep the `keep` units of largest log alpha (ties: the lower index), prune the rest (mutates `keep`)."""
    self.keep[...] = vib_keep_mask(self.log_alpha(), keep)


def vib_mask_kl(mu: jax.Array, log_var: jax.Array) -> jax.Array:
  """The VIB mask's KL term with CVIB's official normalisation, 0.5 * sum_k log(1 + mu_k^2 / (sigma_k^2 + 1e-8)) (Dai
  et al., ICML 2018, arXiv:1802.10399, the bound behind Eq. (9); CVIB, Chang et al. 2023, arXiv:2303.02846, Sec. 3.2;
  official `kl_closed_form` without its sequence-length factor). `VIBMask.kl()` is the same bound without the 1/2 and
  the epsilon, over the kept units (the form VTrans/VIBNet weight with gamma): the factor only rescales the weight.

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


def vib_keep_mask(log_alpha: jax.Array, keep: int) -> jax.Array:
  """The prune-to-budget decision: True for the `keep` largest log alpha (ties: the lower index) (Dutta et al. 2024,
  arXiv:2406.05276, Sec. 3, the threshold raised until the budget is met).

  Args:
    log_alpha: [n] pruning scores.
    keep: units to keep, in [0, n].

  Returns:
    [n] bool mask.
  """
  la = validation.check_floating(log_alpha, "log_alpha")
  if la.ndim != 1:
    raise ValueError(f"log_alpha must be [n], got log_alpha.shape={la.shape}")
  if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or not 0 <= keep <= la.shape[0]:
    raise ValueError(f"keep must be an int in [0, {la.shape[0]}], got {keep=!r}")
  order = jnp.argsort(-la, stable=True)
  return jnp.zeros(la.shape, bool).at[order[:keep]].set(True)


def vib_prune_dense(kernel_in: jax.Array, bias_in: jax.Array, kernel_out: jax.Array, mu: jax.Array,
                    keep: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Physically prune the hidden units of Dense -> act -> VIB mask -> Dense: keep the columns of the first layer and the
  rows of the second for the kept units, with mu folded into the second layer (exact for any activation, since the
  mask multiplies after it) (Dai et al. 2018, arXiv:1802.10399, Sec. 3; Dutta et al. 2024, arXiv:2406.05276).

  Args:
    kernel_in: [D, n] first layer's kernel.
    bias_in: [n] first layer's bias.
    kernel_out: [n, D_out] second layer's kernel.
    mu: [n] the mask's means.
    keep: [n] bool, the units to keep (concrete, not traced: the output shapes depend on it).

  Returns:
    (kernel_in [D, n_kept], bias_in [n_kept], kernel_out [n_kept, D_out] with row i scaled by mu_i).
  """
  k_in = validation.check_floating(kernel_in, "kernel_in")
  b_in = validation.check_floating(bias_in, "bias_in")
  k_out = validation.check_floating(kernel_out, "kernel_out")
  mu = validation.check_floating(mu, "mu")
  if validation.is_traced(keep):
    raise TypeError("keep must be concrete (the pruned shapes depend on it), got a traced array")
  keep = np.asarray(keep)
  n = mu.shape[0] if mu.ndim == 1 else -1
  if (keep.dtype != bool or keep.shape != (n,) or k_in.ndim != 2 or k_in.shape[1] != n or b_in.shape != (n,)
      or k_out.ndim != 2 or k_out.shape[0] != n):
    raise ValueError(f"need kernel_in [D, n], bias_in [n], kernel_out [n, D_out], mu [n], keep [n] bool; got "
                     f"{k_in.shape=}, {b_in.shape=}, {k_out.shape=}, {mu.shape=}, keep {keep.shape} {keep.dtype}")
  idx = np.flatnonzero(keep)
  return k_in[:, idx], b_in[idx], k_out[idx] * mu[idx, None].astype(k_out.dtype)


__all__ = ["VIBMask", "vib_keep_mask", "vib_mask_kl", "vib_prune_dense"]
