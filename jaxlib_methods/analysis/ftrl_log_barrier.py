"""FTRL with the log-barrier regulariser over a linear MDP's action simplex, and its linear Q-function estimator.

Dai, Luo, Wei, Zimmert, "Refined Regret for Adversarial MDPs with Linear Function Approximation", ICML 2023,
arXiv:2301.12942 (Algorithm 1). In every state s the policy is the FTRL iterate with the log-barrier
Psi(pi) = (1 / eta) sum_a ln(1 / pi(a)) over the cumulative estimated losses L(s, .) = sum_{tau < k} Qhat_tau(s, .):

    pi_k(. | s) = argmin_{pi in Delta(A)}  <pi, L(s, .)> + (1 / eta) sum_a ln(1 / pi(a))

whose KKT conditions give the closed form pi(a) = 1 / (eta (L(s, a) + lambda)), with the unique lambda > -min_a L(s, a)
that makes pi sum to one (solved here by Newton's method, monotone from the left since the constraint is convex and
decreasing in lambda). The loss estimates are the linear-MDP estimator Qhat(s, a) = phi(s, a)^T Sigma^{-1}
phi(s_h, a_h) L_h (Sigma the policy's feature covariance, L_h the observed loss-to-go), unbiased when Sigma is exact.
The refined analysis of the paper is what lets these estimates be arbitrarily negative: the log-barrier iterate is
defined for any real L.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def ftrl_log_barrier_policy(cumulative_losses, eta, *, num_iters: int = 60):
  """The log-barrier FTRL policy over the last axis (Dai et al. 2023, arXiv:2301.12942, Algorithm 1, line "pi_k").

  pi = argmin_{pi in simplex} <pi, L> + (1 / eta) sum_a ln(1 / pi_a), i.e. pi_a = 1 / (eta (L_a + lambda)) with
  lambda the normaliser (found by `num_iters` Newton steps started at lambda = 1 / eta - min_a L, where the constraint
  is >= 1; the iterates increase monotonically to the root). Any real L is valid, negative entries included.

  Args:
    cumulative_losses: [..., A] float, the cumulative (estimated) losses of the A >= 1 actions (leading axes: states).
    eta: learning rate, a float > 0.
    num_iters: Newton iterations (int >= 1); 60 reach float32 round-off for any L.

  Returns:
    [..., A] policy, the same dtype as cumulative_losses, each row on the simplex.
  """
  L = validation.check_floating(cumulative_losses, "cumulative_losses")
  if L.ndim < 1 or L.shape[-1] < 1:
    raise ValueError(f"cumulative_losses must have a last (action) axis of size >= 1, got shape {L.shape}")
  validation.check_positive(eta, "eta")
  if isinstance(num_iters, bool) or not isinstance(num_iters, int):
    raise TypeError(f"num_iters must be an int, got {num_iters=}")
  if num_iters < 1:
    raise ValueError(f"num_iters must be >= 1, got {num_iters=}")
  dtype = L.dtype
  x = L.astype(validation.compute_dtype_for(dtype))
  x = x - jnp.min(x, axis=-1, keepdims=True)  # shift: L >= 0 with min 0, mu = lambda + min L > 0
  eta = jnp.asarray(eta, x.dtype)

  def newton(_, mu):
    r = 1.0 / (eta * (x + mu))  # pi(mu)
    g = jnp.sum(r, axis=-1, keepdims=True) - 1.0
    dg = -eta * jnp.sum(r * r, axis=-1, keepdims=True)
    return mu - g / dg

  mu0 = jnp.full(x.shape[:-1] + (1,), 1.0, x.dtype) / eta
  mu = jax.lax.fori_loop(0, num_iters, newton, mu0)
  pi = 1.0 / (eta * (x + mu))
  return (pi / jnp.sum(pi, axis=-1, keepdims=True)).astype(dtype)


def linear_q_estimate(features, covariance, taken_feature, loss_to_go):
  """The linear-MDP loss estimator Qhat(s, a) = phi(s, a)^T Sigma^{-1} phi(s_h, a_h) L_h (Dai et al. 2023,
  arXiv:2301.12942, Algorithm 1, the estimator of theta_k,h; Neu & Olkhovskaya 2020).

  Unbiased for Q(s, a) = phi(s, a)^T theta when (s_h, a_h) is drawn from the policy and Sigma = E[phi phi^T] under it.

  Args:
    features: [..., d] float, phi(s, a) of the state-action pairs to evaluate (e.g. [S, A, d]).
    covariance: [d, d] float, the symmetric positive-definite feature covariance Sigma of the policy at step h.
    taken_feature: [d] float, phi(s_h, a_h) of the visited pair.
    loss_to_go: float scalar, the observed loss L_h from step h to the end of the episode.

  Returns:
    [...] estimates Qhat(s, a), in the dtype of features.
  """
  phi = validation.check_floating(features, "features")
  cov = validation.check_floating(covariance, "covariance")
  v = validation.check_floating(taken_feature, "taken_feature")
  ell = validation.check_floating(loss_to_go, "loss_to_go")
  d = phi.shape[-1] if phi.ndim else None
  if phi.ndim < 1:
    raise ValueError(f"features must have a last (feature) axis, got shape {phi.shape}")
  if cov.shape != (d, d):
    raise ValueError(f"covariance must be [d, d] with d = features.shape[-1] = {d}, got shape {cov.shape}")
  if v.shape != (d,):
    raise ValueError(f"taken_feature must be [d] with d = {d}, got shape {v.shape}")
  if ell.ndim != 0:
    raise ValueError(f"loss_to_go must be a scalar, got shape {ell.shape}")
  ct = validation.compute_dtype_for(jnp.result_type(phi, cov, v, ell))  # solve has no float16/bfloat16 kernel
  theta = jnp.linalg.solve(cov.astype(ct), v.astype(ct)) * ell.astype(ct)
  return (phi.astype(ct) @ theta).astype(phi.dtype)
