"""Metropolis-Hastings selection of generator samples with the discriminator's density ratio (MH-GAN).

Turner, Hung, Frank, Saatci, Yosinski, "Metropolis-Hastings Generative Adversarial Networks", ICML 2019,
arXiv:1811.11357 (its acceptance ratio and sampling algorithm), the selection step of [138] "Enhancing Few-Shot Learning with
Integrated Data and GAN Model Approaches" (2024): an independence sampler whose proposal is the generator p_G and whose
target is the data density p_D. For the optimal discriminator D = p_D / (p_D + p_G), p_D / p_G = D / (1 - D)
= exp(logit D), so a proposal x' from the chain's state x is accepted with probability

    alpha(x, x') = min(1, (1/D(x) - 1) / (1/D(x') - 1)) = min(1, exp(logit D(x') - logit D(x))),

and the chain's stationary distribution is p_D whenever D is optimal.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def mh_gan_acceptance(logit_current: jax.Array, logit_proposal: jax.Array) -> jax.Array:
  """MH-GAN's acceptance probability min(1, exp(logit D(x') - logit D(x))) (Turner et al. 2019, arXiv:1811.11357,
  written with discriminator logits so that D near 0 or 1 stays finite).

  Args:
    logit_current: discriminator logits of the chain's current state, any shape.
    logit_proposal: logits of the proposals, broadcastable against `logit_current`.

  Returns:
    Acceptance probabilities in [0, 1], the broadcast shape.
  """
  a = validation.check_floating(logit_current, "logit_current")
  b = validation.check_floating(logit_proposal, "logit_proposal")
  return jnp.exp(jnp.minimum(b - a, 0.0))


def mh_gan_select(key: jax.Array, logit_init: jax.Array, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Run MH-GAN's independence chain over K generator samples and return the selected one.

  Turner et al., "Metropolis-Hastings Generative Adversarial Networks", 2019, arXiv:1811.11357: the
  chain starts at an initial state (the paper uses a real example, so no burn-in is needed) and visits the
  candidates x_1..x_K in order, moving to x_k with probability `mh_gan_acceptance`. The final state is the sample.
  Used by [138] to pick generated few-shot samples.

  Args:
    key: a PRNG key.
    logit_init: discriminator logits of the initial state [...].
    logits: discriminator logits of the K candidates [..., K] (K >= 1).

  Returns:
    (index [...] int32 of the selected candidate, -1 if the chain never left the initial state (the paper then
    restarts from a generated sample); the chain's final logit [...]).
  """
  logit_init = validation.check_floating(logit_init, "logit_init")
  logits = validation.check_floating(logits, "logits")
  if logits.ndim < 1 or logits.shape[-1] < 1 or logits.shape[:-1] != logit_init.shape:
    raise ValueError(f"need logit_init [...] and logits [..., K >= 1] with the same batch shape, got "
                     f"{logit_init.shape=}, {logits.shape=}")
  k = logits.shape[-1]
  ct = validation.compute_dtype_for(logits.dtype)   # a bfloat16 uniform lies on a 1/128 grid: P(u < 0.002) = 1/128
  u = jax.random.uniform(key, logits.shape, ct)

  def step(carry, inputs):
    idx, cur = carry
    i, lg, ui = inputs
    accept = ui < mh_gan_acceptance(cur.astype(ct), lg.astype(ct))
    return (jnp.where(accept, i, idx), jnp.where(accept, lg, cur)), None

  init = (jnp.full(logit_init.shape, -1, jnp.int32), logit_init)
  xs = (jnp.arange(k, dtype=jnp.int32), jnp.moveaxis(logits, -1, 0), jnp.moveaxis(u, -1, 0))
  (idx, cur), _ = jax.lax.scan(step, init, xs)
  return idx, cur
