"""Light Schrodinger Bridge (LightSB): a Gaussian-mixture parameterisation of the Schrodinger potential whose
conditional plans are Gaussian mixtures in closed form.

Paper [133]: Alexander Korotin, Nikita Gushchin, Evgeny Burnaev, "Light Schrodinger Bridge", ICLR 2024,
arXiv:2310.01174 (Sec. 3). With the Wiener prior of variance eps (entropic OT with cost ||x - y||^2 / 2 and
regulariser eps), the adjusted Schrodinger potential is a K-component mixture

    v_theta(y) = sum_k alpha_k N(y | r_k, eps S_k)                                    (S_k symmetric positive definite)
    c_theta(x) = int exp(<x, y>/eps) v_theta(y) dy = sum_k alpha_k exp((<r_k, x> + x^T S_k x / 2) / eps)
    pi_theta(y | x) = sum_k w_k(x) N(y | r_k + S_k x, eps S_k),   w_k(x) ~ alpha_k exp((<r_k, x> + x^T S_k x/2)/eps)

and the learning objective (the KL to the true bridge up to a constant) is

    L(theta) = E_{x ~ p0} log c_theta(x) - E_{y ~ p1} log v_theta(y).

Here S_k = L_k L_k^T with L_k lower triangular, positive diagonal (a full S), parameterised by `s_tril`.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import validation


class LightSBParams(NamedTuple):
  """log_alpha [K], r [K, D], s_tril [K, D, D] (strict lower part free, diagonal = exp of the stored diagonal).

  The K-component mixture v_theta(y) = sum_k alpha_k N(y | r_k, eps S_k), S_k = L_k L_k^T, of Korotin et al.,
  "Light Schrodinger Bridge", ICLR 2024, arXiv:2310.01174, Sec. 3.
  """
  log_alpha: jax.Array
  r: jax.Array
  s_tril: jax.Array


def _cholesky(s_tril: jax.Array) -> jax.Array:
  d = s_tril.shape[-1]
  eye = jnp.eye(d, dtype=bool)
  return jnp.where(eye, jnp.exp(s_tril), jnp.tril(s_tril, -1))


def _check(params: LightSBParams, x: jax.Array, name: str) -> None:
  k, d = params.r.shape
  if params.log_alpha.shape != (k,) or params.s_tril.shape != (k, d, d):
    raise ValueError(f"LightSB params must be log_alpha [K], r [K, D], s_tril [K, D, D]; got "
                     f"{params.log_alpha.shape}, {params.r.shape}, {params.s_tril.shape}")
  if x.ndim != 2 or x.shape[1] != d:
    raise ValueError(f"{name} must be [B, D] with D = {d}, got {name}.shape={x.shape}")


def lightsb_log_c(params: LightSBParams, x: jax.Array, epsilon: float) -> jax.Array:
  """log c_theta(x) = logsumexp_k [log alpha_k + (<r_k, x> + x^T S_k x / 2) / eps] (Korotin et al. 2024,
  arXiv:2310.01174, Sec. 3). x [B, D] -> [B]."""
  x = jnp.asarray(x)
  _check(params, x, "x")
  lk = _cholesky(params.s_tril)                                               # [K, D, D]
  lx = jnp.einsum("kji,bj->bki", lk, x)                                         # L_k^T x: [B, K, D]
  quad = 0.5 * jnp.sum(lx * lx, -1)                                             # x^T S_k x / 2
  return jax.nn.logsumexp(params.log_alpha + (x @ params.r.T + quad) / epsilon, axis=-1)


def lightsb_log_potential(params: LightSBParams, y: jax.Array, epsilon: float) -> jax.Array:
  """log v_theta(y) = logsumexp_k [log alpha_k + log N(y | r_k, eps S_k)] (Korotin et al. 2024, arXiv:2310.01174,
  Sec. 3). y [B, D] -> [B]."""
  y = jnp.asarray(y)
  _check(params, y, "y")
  lk = _cholesky(params.s_tril) * math.sqrt(epsilon)                            # chol of eps S_k
  d = y.shape[1]
  diff = y[:, None, :] - params.r[None]                                          # [B, K, D]
  lk_inv = jax.scipy.linalg.solve_triangular(lk, jnp.broadcast_to(jnp.eye(d, dtype=lk.dtype), lk.shape), lower=True)
  z = jnp.einsum("kij,bkj->bki", lk_inv, diff)                                  # L_k^-1 (y - r_k)
  logdet = jnp.sum(jnp.log(jnp.diagonal(lk, axis1=-2, axis2=-1)), -1)           # [K]
  logn = -0.5 * jnp.sum(z * z, -1) - logdet - 0.5 * d * math.log(2 * math.pi)
  return jax.nn.logsumexp(params.log_alpha + logn, axis=-1)


def lightsb_loss(params: LightSBParams, x0: jax.Array, x1: jax.Array, epsilon: float) -> jax.Array:
  """Per-example LightSB objective log c_theta(x0_i) - log v_theta(x1_i); its mean estimates
  L(theta) = E_p0 log c_theta - E_p1 log v_theta (Korotin et al. 2024, arXiv:2310.01174, Sec. 3, the learning
  objective). x0 [B, D] ~ p0 and x1 [B, D] ~ p1 (independent samples) -> [B]."""
  validation.check_positive(epsilon, "epsilon")
  x0, x1 = jnp.asarray(x0), jnp.asarray(x1)
  if x0.shape != x1.shape:
    raise ValueError(f"x0 and x1 must have the same shape [B, D], got {x0.shape=}, {x1.shape=}")
  return lightsb_log_c(params, x0, epsilon) - lightsb_log_potential(params, x1, epsilon)


def lightsb_conditional(params: LightSBParams, x: jax.Array, epsilon: float):
  """The conditional plan pi_theta(. | x) = sum_k w_k(x) N(r_k + S_k x, eps S_k) (Korotin et al. 2024,
  arXiv:2310.01174, Sec. 3).

  Args:
    params: LightSBParams.
    x: [B, D].
    epsilon: eps > 0.

  Returns:
    (log_weights [B, K], means [B, K, D], covariances [K, D, D]).
  """
  validation.check_positive(epsilon, "epsilon")
  x = jnp.asarray(x)
  _check(params, x, "x")
  lk = _cholesky(params.s_tril)
  s = lk @ jnp.swapaxes(lk, -1, -2)
  quad = 0.5 * jnp.einsum("bi,kij,bj->bk", x, s, x)
  logits = params.log_alpha + (x @ params.r.T + quad) / epsilon
  means = params.r[None] + jnp.einsum("kij,bj->bki", s, x)
  return jax.nn.log_softmax(logits, -1), means, epsilon * s


def lightsb_sample(params: LightSBParams, key: jax.Array, x: jax.Array, epsilon: float) -> jax.Array:
  """One sample y ~ pi_theta(. | x) per row of x [B, D] -> [B, D]: a component k ~ w(x), then
  y = r_k + S_k x + sqrt(eps) L_k z (Korotin et al. 2024, arXiv:2310.01174, Sec. 3, sampling)."""
  logw, means, _ = lightsb_conditional(params, x, epsilon)
  k_comp, k_noise = jax.random.split(key)
  comp = jax.random.categorical(k_comp, logw, axis=-1)                          # [B]
  lk = _cholesky(params.s_tril)[comp]                                           # [B, D, D]
  z = jax.random.normal(k_noise, x.shape, means.dtype)
  mean = jnp.take_along_axis(means, comp[:, None, None], axis=1)[:, 0]
  return mean + math.sqrt(epsilon) * jnp.einsum("bij,bj->bi", lk, z)


class LightSB(nnx.Module):
  """Light Schrodinger Bridge (Korotin, Gushchin, Burnaev 2024, arXiv:2310.01174): K Gaussian components
  (log alpha_k, r_k, S_k = L_k L_k^T) of the adjusted Schrodinger potential for the Wiener prior of variance eps.

  Args:
    dim: D.
    num_components: K.
    epsilon: eps > 0 (the bridge's noise variance; entropic OT regulariser for the cost ||x - y||^2 / 2).
    init_scale: std of the initial r_k.
    param_dtype: parameter dtype.
    rngs: nnx.Rngs with a 'params' stream (S_k start at the identity, alpha uniform).

  Methods: `loss(x0, x1)` (mean objective, scalar), `sample(key, x)` ([B, D] -> [B, D]), `conditional(x)`,
  `params()`; `__call__(x, key)` is `sample`, `__call__(x)` the conditional mean E[y | x].
  """

  def __init__(self, dim: int, num_components: int, epsilon: float, *, init_scale: float = 1.0,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    for name, v in (("dim", dim), ("num_components", num_components)):
      if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ValueError(f"{name} must be a positive int, got {name}={v!r}")
    validation.check_positive(epsilon, "epsilon")
    validation.check_positive(init_scale, "init_scale")
    self.epsilon = float(epsilon)
    self.log_alpha = nnx.Param(jnp.zeros((num_components,), param_dtype))
    self.r = nnx.Param((init_scale * jax.random.normal(rngs.params(), (num_components, dim))).astype(param_dtype))
    self.s_tril = nnx.Param(jnp.zeros((num_components, dim, dim), param_dtype))

  def params(self) -> LightSBParams:
    """The parameters as float32 (or wider) arrays."""
    f = lambda v: v[...].astype(jnp.promote_types(v[...].dtype, jnp.float32))
    return LightSBParams(f(self.log_alpha), f(self.r), f(self.s_tril))

  def loss(self, x0: jax.Array, x1: jax.Array) -> jax.Array:
    """Mean LightSB objective over the batch: x0, x1 [B, D] -> scalar."""
    return jnp.mean(lightsb_loss(self.params(), x0, x1, self.epsilon))

  def conditional(self, x: jax.Array):
    """(log_weights [B, K], means [B, K, D], covariances [K, D, D]) of pi_theta(. | x)."""
    return lightsb_conditional(self.params(), x, self.epsilon)

  def sample(self, key: jax.Array, x: jax.Array) -> jax.Array:
    """y ~ pi_theta(. | x): x [B, D] -> [B, D]."""
    return lightsb_sample(self.params(), key, x, self.epsilon)

  def __call__(self, x: jax.Array, key: Optional[jax.Array] = None) -> jax.Array:
    """With a key, `sample(key, x)`; without, the conditional mean E[y | x] = sum_k w_k(x) (r_k + S_k x) [B, D]."""
    if key is not None:
      return self.sample(key, x)
    logw, means, _ = self.conditional(x)
    return jnp.einsum("bk,bkd->bd", jnp.exp(logw), means)


__all__ = ["LightSB", "LightSBParams", "lightsb_conditional", "lightsb_log_c", "lightsb_log_potential",
           "lightsb_loss", "lightsb_sample"]
