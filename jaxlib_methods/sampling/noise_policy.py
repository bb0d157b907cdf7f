"""A Beta-distributed noise-mask policy and its REINFORCE (score-function) gradient.

[177] Mehmet Can Yavuz, Yang Yang, "Policy Gradient-Driven Noise Mask", 2024, arXiv:2406.14568: a light policy
network outputs per-pixel Beta(alpha, beta) parameters, a noise mask m ~ Beta(alpha, beta) regularises the
classifier, and the policy is trained with REINFORCE on the classifier's reward:
grad E_m[R(m)] = E_m[R(m) grad log Beta(m; alpha, beta)] (Williams 1992), estimated from samples with a baseline b:
(R - b) grad log p(m). The surrogate `reinforce_surrogate` has this estimator as its gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def beta_noise_policy(key: jax.Array, alpha: jax.Array, beta: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Sample a noise mask m ~ Beta(alpha, beta) elementwise and return its log-density (the policy of [177] Yavuz &
  Yang 2024, arXiv:2406.14568).

  The sample is drawn from stop-gradient copies of alpha and beta, so gradients reach them only through the
  log-density (the score function), as REINFORCE requires.

  Args:
    key: a PRNG key.
    alpha: concentration alpha > 0, any shape (e.g. [B, H, W] from the policy network).
    beta: concentration beta > 0, broadcastable against `alpha`.

  Returns:
    (mask in (0, 1) of the broadcast shape, log Beta(mask; alpha, beta) of the same shape).
  """
  alpha = validation.check_floating(alpha, "alpha")
  beta = validation.check_floating(beta, "beta")
  for name, v in (("alpha", alpha), ("beta", beta)):
    if not validation.is_traced(v) and v.size and not (np.all(np.isfinite(np.asarray(v, np.float64)))
                                                       and float(jnp.min(v)) > 0):
      raise ValueError(f"{name} must be finite and > 0 (a Beta concentration), got min {float(jnp.min(v))}, "
                       f"max {float(jnp.max(v))}")
  shape = jnp.broadcast_shapes(alpha.shape, beta.shape)
  dt = jnp.promote_types(jnp.result_type(alpha, beta), jnp.float32)
  sg = jax.lax.stop_gradient      # the sampler sees constants: no derivative is traced through its rejection loops
  m = jax.random.beta(key, sg(alpha).astype(dt), sg(beta).astype(dt), shape, dt)
  eps = jnp.finfo(dt).tiny
  m = jnp.clip(m, eps, 1 - jnp.finfo(dt).epsneg)
  return m, jax.scipy.stats.beta.logpdf(m, alpha.astype(dt), beta.astype(dt))


def reinforce_surrogate(log_prob: jax.Array, reward: jax.Array, baseline=0.0) -> jax.Array:
  """Per-sample REINFORCE surrogate -(R - b) log p(m), whose gradient is minus the score-function estimate of
  grad E[R] (Williams 1992; the policy update of [177] Yavuz & Yang 2024, arXiv:2406.14568). Minimise its mean.

  Args:
    log_prob: log-density of the sampled action (e.g. summed over a mask's pixels) [...].
    reward: R per sample [...] (gradients are stopped).
    baseline: b, a scalar or [...] (gradients stopped); reduces variance without bias when independent of the
      sample.

  Returns:
    [...] per-sample surrogate losses.
  """
  log_prob = validation.check_floating(log_prob, "log_prob")
  reward = validation.check_floating(reward, "reward")
  try:
    shape = jnp.broadcast_shapes(log_prob.shape, reward.shape)
  except ValueError:
    shape = None
  if shape != log_prob.shape:
    raise ValueError(f"reward must broadcast to log_prob's shape {log_prob.shape}, got {reward.shape=}")
  adv = jax.lax.stop_gradient(reward - baseline)
  return -(adv * log_prob)
