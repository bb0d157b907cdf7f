"""Learning unnormalised models by compositional optimisation of the negative log-likelihood, and the NCE baseline.

Paper [201]: Wei Jiang, Jiayu Qin, Lingyu Wu, Changyou Chen, Tianbao Yang, Lijun Zhang, "Learning Unnormalized
Statistical Models via Compositional Optimization", ICML 2023, arXiv:2306.07485 (Sec. 3: with a noise
distribution q, log Z(theta) = log E_{x'~q}[exp(-E_theta(x')) / q(x')] is a compositional function f(g(theta)) with
outer f = log and inner g estimated from noise samples; the algorithm tracks g with a moving average u and uses
grad = grad E_theta(x) + grad g_hat(theta) / u). Baseline: noise-contrastive estimation, Gutmann & Hyvarinen,
"Noise-contrastive estimation of unnormalized statistical models", JMLR 2012 (Sec. 2).

For a model p_theta(x) = exp(-E_theta(x)) / Z(theta), the NLL of a data point is E_theta(x) + log Z(theta).

The moving average is kept in the log domain, log u, so that energies of any scale neither overflow nor underflow.
The paper's moving-average weight is not fixed here: `gamma` is required (we could not confirm the paper's value).
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import jax
import jax.numpy as jnp
import optax

from jaxlib_methods import validation
from jaxlib_methods.validation import check_in_interval, check_positive


class CompositionalState(NamedTuple):
  """Moving-average estimate of the inner function g = E_q[exp(-E) / q] (Jiang et al. 2023, arXiv:2306.07485, Sec. 3).

  Jiang et al., "Learning Unnormalized Statistical Models via Compositional Optimization", ICML 2023.

  log_u: scalar, log of the moving average u of g.
  count: int32 scalar, updates so far.
  """
  log_u: jax.Array
  count: jax.Array


def compositional_init(dtype=jnp.float32) -> CompositionalState:
  """Empty state for `compositional_nll_loss` (Jiang et al. 2023, arXiv:2306.07485, Sec. 3): the first update sets u
  to the batch estimate (as a moving average started at the estimate). dtype: a floating dtype."""
  if not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
    raise TypeError(f"dtype must be a floating dtype, got {dtype=}")
  return CompositionalState(log_u=jnp.zeros((), dtype), count=jnp.zeros((), jnp.int32))


def _check_1d(name, a):
  a = validation.check_floating(a, name)
  if a.ndim != 1 or a.shape[0] < 1:
    raise ValueError(f"{name} must be a non-empty vector [n], got {name}.shape={a.shape}")
  return a.astype(validation.compute_dtype_for(a.dtype))


def log_partition_estimate(energy_noise: jax.Array, log_q_noise: jax.Array) -> jax.Array:
  """log g_hat = log (1/M) sum_j exp(-E(x'_j) - log q(x'_j)), x'_j ~ q (importance-sampling estimate of log Z;
  Jiang et al. 2023, arXiv:2306.07485, Sec. 3).

  Args:
    energy_noise: [M] energies of the noise samples; log_q_noise: [M] their noise log-densities.

  Returns:
    Scalar (a biased, consistent estimate of log Z).
  """
  energy_noise = _check_1d("energy_noise", energy_noise)
  log_q_noise = _check_1d("log_q_noise", log_q_noise)
  if energy_noise.shape != log_q_noise.shape:
    raise ValueError(f"energy_noise and log_q_noise must match, got {energy_noise.shape=}, {log_q_noise.shape=}")
  m = energy_noise.shape[0]
  return jax.nn.logsumexp(-energy_noise - log_q_noise) - jnp.log(jnp.asarray(m, energy_noise.dtype))


def unnormalized_nll(energy_data: jax.Array, energy_noise: jax.Array, log_q_noise: jax.Array) -> jax.Array:
  """Per-example NLL estimate E(x_i) + log g_hat (Jiang et al. 2023, arXiv:2306.07485, Sec. 3).

  energy_data: [B] floating (B >= 1); energy_noise, log_q_noise: [M]. Returns [B] in energy_data's dtype (float16/
  bfloat16 computed in float32 and cast back, per docs/conventions.md)."""
  dtype = validation.check_floating(energy_data, "energy_data").dtype
  energy_data = _check_1d("energy_data", energy_data)
  return (energy_data + log_partition_estimate(energy_noise, log_q_noise)).astype(dtype)


def compositional_nll_loss(energy_data: jax.Array, energy_noise: jax.Array, log_q_noise: jax.Array,
                           state: CompositionalState, *, gamma: float) -> Tuple[jax.Array, CompositionalState]:
  """Surrogate loss whose gradient is the compositional NLL estimator (Jiang et al. 2023, Sec. 3, the moving-average
  algorithm):

    u <- (1 - gamma) u + gamma g_hat      (u = g_hat on the first call)
    loss_i = E(x_i) + g_hat(theta) / sg(u)   =>   grad = grad E(x_i) + grad g_hat / u

  Its value is not the NLL (use `unnormalized_nll` to monitor). With gamma = 1 (no averaging), its gradient equals
  the gradient of the plug-in NLL E(x) + log g_hat exactly.

  Args:
    energy_data: [B] energies E_theta(x_i) of a data batch (differentiable in theta).
    energy_noise: [M] energies of noise samples x'_j ~ q; log_q_noise: [M] log q(x'_j) (constants).
    state: `CompositionalState`. gamma: in (0, 1], the moving-average weight.

  Returns:
    (loss [B], new_state).
  """
  dtype = validation.check_floating(energy_data, "energy_data").dtype
  energy_data = _check_1d("energy_data", energy_data)
  check_in_interval(gamma, "gamma", 0.0, 1.0, closed_low=False)
  if not isinstance(state, CompositionalState) or jnp.ndim(state.log_u) != 0:
    raise TypeError(f"state must be a CompositionalState from compositional_init, got {type(state).__name__}")
  log_g = log_partition_estimate(energy_noise, log_q_noise)
  log_g_sg = jax.lax.stop_gradient(log_g).astype(state.log_u.dtype)
  gamma = jnp.asarray(gamma, log_g_sg.dtype)
  # log((1 - gamma) u + gamma g); at gamma = 1, log1p(-1) = -inf and logaddexp returns log g.
  averaged = jnp.logaddexp(jnp.log1p(-gamma) + state.log_u, jnp.log(gamma) + log_g_sg)
  log_u = jnp.where(state.count == 0, log_g_sg, averaged)
  ratio = jnp.exp(log_g - log_u.astype(log_g.dtype))  # g_hat / u, value ~ 1, gradient grad(g_hat) / u
  return (energy_data + ratio).astype(dtype), CompositionalState(log_u=log_u, count=state.count + 1)


def nce_loss(log_model_data: jax.Array, log_model_noise: jax.Array, log_q_data: jax.Array, log_q_noise: jax.Array,
             nu: float = 1.0) -> jax.Array:
  """Noise-contrastive estimation objective (Gutmann & Hyvarinen 2012, Sec. 2), to minimise:

    G(x) = log p_model(x) - log q(x) - log nu
    J = -mean_i log sigma(G(x_i)) - nu mean_j log(1 - sigma(G(x'_j)))

  where log p_model = -E_theta(x) - c includes a learnt normaliser c. Computed with optax's sigmoid binary
  cross-entropy (stable for any logit).

  Args:
    log_model_data: [B]; log_q_data: [B]; log_model_noise: [M]; log_q_noise: [M]. nu: noise-to-data ratio > 0
      (the paper's M / B; 1 by default).

  Returns:
    Scalar objective.
  """
  log_model_data = _check_1d("log_model_data", log_model_data)
  log_model_noise = _check_1d("log_model_noise", log_model_noise)
  log_q_data = _check_1d("log_q_data", log_q_data)
  log_q_noise = _check_1d("log_q_noise", log_q_noise)
  if log_model_data.shape != log_q_data.shape or log_model_noise.shape != log_q_noise.shape:
    raise ValueError(f"model and noise log-densities must be paired, got {log_model_data.shape=}, "
                     f"{log_q_data.shape=}, {log_model_noise.shape=}, {log_q_noise.shape=}")
  check_positive(nu, "nu")
  log_nu = jnp.log(jnp.asarray(nu, log_model_data.dtype))
  g_data = log_model_data - log_q_data - log_nu
  g_noise = log_model_noise - log_q_noise - log_nu
  bce = optax.losses.sigmoid_binary_cross_entropy
  return jnp.mean(bce(g_data, jnp.ones_like(g_data))) + nu * jnp.mean(bce(g_noise, jnp.zeros_like(g_noise)))
