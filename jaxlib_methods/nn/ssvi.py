"""Sparse Subspace Variational Inference (SSVI) layers ([126]).

Junbo Li, Zichen Miao, Qiang Qiu, Ruqi Zhang, "Training Bayesian Neural Networks with Sparse Subspace Variational
Inference", ICLR 2024, arXiv:2402.11025. A mean-field Gaussian posterior q(w) = N(mu, sigma^2), sigma =
softplus(rho), lives on a sparse subspace given by a binary mask with a fixed number of nonzeros from the start;
training alternates ELBO steps on (mu, rho) inside the subspace with subspace updates that remove the n_swap
active weights of lowest score (|mu|, or the signal-to-noise ratio |mu| / sigma) and add as many inactive ones
(Sec. 3, Alg. 1), so the number of nonzeros is constant through training (`ssvi_update_mask`,
`SparseMeanFieldDense`). NOTE: added weights are drawn uniformly from the previously inactive ones and start at
mu = 0, rho = rho_init; the paper also studies gradient-informed addition.
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation


class SparseMask(nnx.Variable):
  """The binary subspace mask of an SSVI layer: carried by `nnx.split` / orbax, never trained. Value: bool [in, out],
  the layer weight's shape, with a fixed number of True entries.

  Li et al., "Training Bayesian Neural Networks with Sparse Subspace Variational Inference", ICLR 2024,
  arXiv:2402.11025, Sec. 3, Alg. 1.
  """


def ssvi_update_mask(key: jax.Array, mu: jax.Array, sigma: jax.Array, mask: jax.Array, n_swap: int, *,
                     criterion: Literal["abs_mu", "snr"] = "snr") -> tuple[jax.Array, jax.Array]:
  """One SSVI subspace update: remove the n_swap active weights of lowest score, add n_swap inactive ones.

  Li et al., "Training Bayesian Neural Networks with Sparse Subspace Variational Inference", ICLR 2024,
  arXiv:2402.11025, Sec. 3.2 (removal and addition, Alg. 1): score = |mu| ("abs_mu") or |mu| / sigma ("snr");
  the n_swap active entries with the lowest scores leave the subspace, and n_swap entries chosen uniformly at random
  among those inactive before the update join it. The number of nonzeros is unchanged exactly.

  Args:
    key: PRNG key for the additions.
    mu: [...] floating posterior means.
    sigma: [...] positive posterior standard deviations (same shape).
    mask: [...] bool subspace mask (same shape).
    n_swap: static int >= 0, at most the number of active and of inactive entries (checked eagerly when the mask
      is concrete; otherwise the caller's responsibility).
    criterion: "abs_mu" or "snr".

  Returns:
    (new_mask, added): [...] bool arrays, `added` marking the entries that joined the subspace.
  """
  mu = validation.check_floating(mu, "mu")
  sigma = validation.check_floating(sigma, "sigma")
  m = validation.check_bool(mask, "mask")
  if mu.shape != sigma.shape or mu.shape != m.shape:
    raise ValueError(f"mu, sigma and mask must have one shape, got mu.shape={mu.shape}, sigma.shape={sigma.shape}, "
                     f"mask.shape={m.shape}")
  if criterion not in ("abs_mu", "snr"):
    raise ValueError(f"criterion must be 'abs_mu' or 'snr', got {criterion=}")
  if isinstance(n_swap, bool) or not isinstance(n_swap, (int, np.integer)) or n_swap < 0:
    raise ValueError(f"n_swap must be a static int >= 0, got {n_swap=}")
  if not validation.is_traced(m):
    nnz = int(np.sum(np.asarray(m)))
    if n_swap > min(nnz, m.size - nnz):
      raise ValueError(f"n_swap must be <= the active ({nnz}) and inactive ({m.size - nnz}) counts, got {n_swap=}")
  if n_swap == 0:
    return m, jnp.zeros_like(m)
  flat_m = m.reshape(-1)
  score = jnp.abs(mu) if criterion == "abs_mu" else jnp.abs(mu) / sigma
  score = jnp.where(flat_m, score.reshape(-1), jnp.inf)
  _, remove = jax.lax.top_k(-score, n_swap)                          # lowest scores among the active
  rand = jnp.where(flat_m, -jnp.inf, jax.random.uniform(key, flat_m.shape))
  _, add = jax.lax.top_k(rand, n_swap)                               # uniformly among the previously inactive
  new = flat_m.at[remove].set(False).at[add].set(True)
  added = jnp.zeros_like(flat_m).at[add].set(True)
  return new.reshape(m.shape), added.reshape(m.shape)


class SparseMeanFieldDense(nnx.Module):
  """Dense layer with a mean-field Gaussian posterior on a sparse subspace: w = mask * (mu + softplus(rho) eps).

  Li et al., "Training Bayesian Neural Networks with Sparse Subspace Variational Inference", ICLR 2024,
  arXiv:2402.11025, Sec. 3: the posterior has nonzero mass only on the mask's entries; the forward pass samples the
  pre-activations with the local reparameterisation trick (mean x (mask mu), variance x^2 (mask sigma^2)); `kl`
  is KL(q || N(0, prior_std^2)) over the active entries; `update_mask` is one subspace update (`ssvi_update_mask`),
  resetting the added entries to mu = 0, rho = rho_init. The bias is deterministic.

  Attributes:
    mu: [in, out] `nnx.Param` posterior means.
    rho: [in, out] `nnx.Param`, sigma = softplus(rho).
    bias: [out] `nnx.Param`.
    mask: [in, out] bool `SparseMask`, exactly round(density * in * out) entries True.
  """

  def __init__(self, in_features: int, out_features: int, *, density: float, rho_init: float = -5.0,
               prior_std: float = 1.0, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    """Builds the layer with a uniformly random initial subspace.

    Args:
      in_features: >= 1.
      out_features: >= 1.
      density: the fraction of active weights, in (0, 1].
      rho_init: initial rho (sigma = softplus(rho_init)).
      prior_std: std of the N(0, prior_std^2) prior in `kl`.
      param_dtype: the dtype of mu, rho and bias.
      rngs: the random streams (`params`).
    """
    for name, v in (("in_features", in_features), ("out_features", out_features)):
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
    validation.check_in_interval(density, "density", 0.0, 1.0, closed_low=False)
    validation.check_positive(prior_std, "prior_std")
    self.in_features, self.out_features = int(in_features), int(out_features)
    self.rho_init, self.prior_std = float(rho_init), float(prior_std)
    self.nnz = max(1, int(round(density * in_features * out_features)))
    k_mu, k_mask = jax.random.split(rngs.params())
    order = jax.random.permutation(k_mask, in_features * out_features)
    mask = jnp.zeros(in_features * out_features, bool).at[order[:self.nnz]].set(True).reshape(in_features,
                                                                                             out_features)
    self.mask = SparseMask(mask)
    mu = jax.random.normal(k_mu, (in_features, out_features), param_dtype) / np.sqrt(in_features * density)
    self.mu = nnx.Param(jnp.where(mask, mu, 0.0).astype(param_dtype))
    self.rho = nnx.Param(jnp.full((in_features, out_features), rho_init, param_dtype))
    self.bias = nnx.Param(jnp.zeros((out_features,), param_dtype))

  def sigma(self) -> jax.Array:
    """[in, out] posterior standard deviations softplus(rho)."""
    return jax.nn.softplus(self.rho[...])

  def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """A sampled (local reparameterisation) or mean forward pass.

    Args:
      x: [..., in] floating inputs.
      key: PRNG key for the sample; None gives the posterior-mean output x (mask mu) + b.

    Returns:
      [..., out] pre-activations.
    """
    x = validation.check_floating(x, "x")
    if x.ndim < 1 or x.shape[-1] != self.in_features:
      raise ValueError(f"x must be [..., {self.in_features}], got x.shape={x.shape}")
    m = self.mask[...]
    mean = x @ jnp.where(m, self.mu[...], 0.0) + self.bias[...]
    if key is None:
      return mean
    var = (x * x) @ jnp.where(m, self.sigma() ** 2, 0.0)
    return mean + jnp.sqrt(var + 1e-16) * jax.random.normal(key, mean.shape, mean.dtype)

  def kl(self) -> jax.Array:
    """KL(q || N(0, prior_std^2)) summed over the active weights (a scalar)."""
    s, mu, p = self.sigma(), self.mu[...], self.prior_std
    kl = jnp.log(p / s) + (s ** 2 + mu ** 2) / (2 * p ** 2) - 0.5
    return jnp.sum(jnp.where(self.mask[...], kl, 0.0))

  def update_mask(self, key: jax.Array, n_swap: int, *, criterion: Literal["abs_mu", "snr"] = "snr") -> None:
    """One subspace update in place (see `ssvi_update_mask`); removed entries get mu = 0, added ones mu = 0 and
    rho = rho_init.

    Args:
      key: PRNG key.
      n_swap: static int, the number of entries swapped.
      criterion: "abs_mu" or "snr".
    """
    new, added = ssvi_update_mask(key, self.mu[...], self.sigma(), self.mask[...], n_swap, criterion=criterion)
    self.mask[...] = new
    self.mu[...] = jnp.where(new & ~added, self.mu[...], 0.0)
    self.rho[...] = jnp.where(added, self.rho_init, self.rho[...])
