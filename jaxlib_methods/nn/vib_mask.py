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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation


class VIBMask(nnx.Module):
  """A VIB mask over `num_units` units on the last axis (Dutta et al. 2024, arXiv:2406.05276, Sec. 3; Dai et al. 2018,
  arXiv:1802.10399, eqs. 7-9).

  Args:
    num_units: n, the units on the masked axis.
    init_mu: initial mu (every unit kept, scale 1).
    init_log_sigma2: initial log sigma^2 (small noise at the start).
    rngs: PRNG streams (`params`, unused beyond the constructor contract).
    param_dtype: dtype of mu and log sigma^2.

  Shapes: __call__ h [..., n] -> [..., n]; `kl` -> scalar; `log_alpha` -> [n].
  """

  def __init__(self, num_units: int, *, init_mu: float = 1.0, init_log_sigma2: float = -9.0, rngs: nnx.Rngs,
               param_dtype=jnp.float32):
    if isinstance(num_units, bool) or not isinstance(num_units, int) or num_units < 1:
      raise ValueError(f"num_units must be an int >= 1, got {num_units=!r}")
    del rngs
    self.num_units = num_units
    self.mu = nnx.Param(jnp.full((num_units,), init_mu, param_dtype))
    self.log_sigma2 = nnx.Param(jnp.full((num_units,), init_log_sigma2, param_dtype))
    self.keep = nnx.Variable(jnp.ones((num_units,), bool))        # the pruning decision (all kept until pruned)

  def __call__(self, h: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
    """With `key`: the stochastic training mask mu + sigma eps; without: the deterministic mu * keep."""
    h = validation.check_floating(h, "h")
    if h.ndim < 1 or h.shape[-1] != self.num_units:
      raise ValueError(f"h must be [..., n={self.num_units}], got h.shape={h.shape}")
    mu = self.mu[...]
    if key is None:
      z = jnp.where(self.keep[...], mu, 0.0)
    else:
      eps = jax.random.normal(key, h.shape, mu.dtype)
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


__all__ = ["VIBMask", "vib_keep_mask", "vib_prune_dense"]
