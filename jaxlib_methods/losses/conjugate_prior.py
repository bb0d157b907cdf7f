"""Closed-form negative ELBO of a Gaussian observation model with conjugate priors on its mean and variance.

[180] Jierun Chen, Song Wen, S.-H. Gary Chan, "Joint Demosaicking and Denoising in the Wild: The Case of Training
Under Ground Truth Uncertainty" (Wild-JDD), AAAI 2021, arXiv:2101.04442: the observation is degraded from an
uncertain ground truth in two stages, a conjugate prior imposed on a base Gaussian distribution, and a network
predicts the parameters of the variational (conjugate-family) posterior, trained with the ELBO. The per-pixel model
written here is the variational-denoising form that construction follows (Yue et al., "Variational Denoising
Network", NeurIPS 2019, arXiv:1908.11314):

    x | z, s2 ~ N(z, s2)            base distribution of the degraded observation x
    z ~ N(y, eps2)                  conjugate prior on the clean value around the uncertain ground truth y
    s2 ~ InvGamma(alpha0, beta0)    conjugate prior on the variance
    q(z) q(s2) = N(mu, m2) InvGamma(alpha, beta)   (the network's outputs)

    ELBO = E_q[log N(x; z, s2)] - KL(N(mu, m2) || N(y, eps2)) - KL(IG(alpha, beta) || IG(alpha0, beta0)),
    E_q[log N(x; z, s2)] = -log(2 pi)/2 - (log beta - digamma(alpha))/2 - (alpha / beta) ((x - mu)^2 + m2) / 2.

The exact prior parametrisation of Wild-JDD could not be checked against its text here (see the registry note).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln

from jaxlib_methods import validation


def conjugate_prior_elbo_loss(x: jax.Array, mu: jax.Array, m2: jax.Array, alpha: jax.Array, beta: jax.Array,
                              y: jax.Array, *, eps2=1e-2, alpha0=2.0, beta0=1e-2) -> jax.Array:
  """Per-element negative ELBO of the Gaussian / conjugate-prior model above ([180] Chen, Wen, Chan 2021,
  arXiv:2101.04442, its ELBO loss; closed form as in Yue et al. 2019, arXiv:1908.11314).

  Args:
    x: the degraded observation, any shape [...].
    mu: mean of q(z); this and the next four broadcast to the shape of `x`.
    m2: variance of q(z) (> 0).
    alpha: shape of q(s2) = InvGamma(alpha, beta) (> 0).
    beta: scale of q(s2) (> 0).
    y: the (uncertain) ground truth the prior on z is centred on.
    eps2: prior variance of z around y (> 0): how much the ground truth is trusted.
    alpha0: prior shape of s2 (> 0).
    beta0: prior scale of s2 (> 0).

  Returns:
    -ELBO per element, the shape of `x` (sum or average outside; the float dtype of `x`, computed in at least
    float32). m2, alpha, beta <= 0: ValueError when concrete, NaN elements (value and gradient) when traced.
  """
  names = ("x", "mu", "m2", "alpha", "beta", "y")
  arrs = [validation.check_floating(a, n) for a, n in zip((x, mu, m2, alpha, beta, y), names)]
  shape = arrs[0].shape
  for n, a in zip(names[1:], arrs[1:]):
    try:
      ok = jnp.broadcast_shapes(shape, a.shape) == shape
    except ValueError:
      ok = False
    if not ok:
      raise ValueError(f"{n} must broadcast to the shape of x {shape} (one value per element), got {n}.shape="
                       f"{a.shape}")
  for n, a in zip(("m2", "alpha", "beta"), arrs[2:5]):
    if not validation.is_traced(a) and a.size and bool(jnp.any(a <= 0)):
      raise ValueError(f"{n} must be > 0 (a variance, shape or scale), got min {float(jnp.nanmin(a))}")
  for n, v in (("eps2", eps2), ("alpha0", alpha0), ("beta0", beta0)):
    if validation.is_concrete_number(v):
      validation.check_positive(v, n)
  dt = jnp.promote_types(arrs[0].dtype, jnp.float32)
  x, mu, m2, alpha, beta, y = (a.astype(dt) for a in arrs)
  eps2, alpha0, beta0 = (jnp.asarray(v, dt) for v in (eps2, alpha0, beta0))
  e_inv_s2 = alpha / beta
  e_log_s2 = jnp.log(beta) - digamma(alpha)
  expected_loglik = -0.5 * math.log(2 * math.pi) - 0.5 * e_log_s2 - 0.5 * e_inv_s2 * ((x - mu) ** 2 + m2)
  kl_z = 0.5 * (jnp.log(eps2) - jnp.log(m2)) + (m2 + (mu - y) ** 2) / (2 * eps2) - 0.5
  kl_s2 = ((alpha - alpha0) * digamma(alpha) - gammaln(alpha) + gammaln(alpha0)
           + alpha0 * (jnp.log(beta) - jnp.log(beta0)) + alpha * (beta0 - beta) / beta)
  out = -(expected_loglik - kl_z - kl_s2)
  # Traced m2, alpha, beta (or priors) <= 0 are not checked above: NaN in value and gradient, per the library's rule
  # (e.g. alpha = -0.5 otherwise gave a plausible finite loss, m2 = 0 gave +inf).
  valid = (m2 > 0) & (alpha > 0) & (beta > 0) & (eps2 > 0) & (alpha0 > 0) & (beta0 > 0)
  out = validation.nan_where_invalid(jnp.broadcast_to(out, shape), jnp.broadcast_to(valid, shape))
  return out.astype(jnp.asarray(arrs[0]).dtype)
