"""A synthetic language with a known entropy rate: a random first-order Markov chain over a vocabulary.

The entropy rate H = -sum_i pi_i sum_j P_ij log P_ij (pi the stationary distribution) is the best cross-entropy
per token any model can reach, so an LM's loss on this language has a known floor. Used by the small-transformer
experiments ([189] Wortsman et al. 2023, arXiv:2309.14322, run here on synthetic text instead of C4).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


class MarkovLanguage(NamedTuple):
  """transition [V, V] (rows sum to 1), stationary [V].

  The synthetic text of our runs of Wortsman et al., "Small-scale proxies for large-scale Transformer training
  instabilities", ICLR 2024, arXiv:2309.14322 (in place of C4).
  """
  transition: jax.Array
  stationary: jax.Array


def random_markov_language(key: jax.Array, vocab_size: int, *, concentration: float = 0.1) -> MarkovLanguage:
  """Rows of the transition matrix ~ Dirichlet(concentration * 1): small concentration -> low entropy rate.

  The synthetic text of our runs of Wortsman et al., "Small-scale proxies for large-scale Transformer training
  instabilities", ICLR 2024, arXiv:2309.14322 (in place of C4). Returns a `MarkovLanguage` (transition [V, V],
  stationary [V]).

  Args:
    key: PRNG key.
    vocab_size: V >= 2.
    concentration: Dirichlet parameter (> 0).
  """
  if vocab_size < 2:
    raise ValueError(f"vocab_size must be >= 2, got {vocab_size=}")
  validation.check_positive(concentration, "concentration")
  p = np.asarray(jax.random.dirichlet(key, jnp.full((vocab_size,), concentration), (vocab_size,)), np.float64)
  p = np.maximum(p, 1e-12)
  p = p / p.sum(-1, keepdims=True)
  # Stationary distribution: left eigenvector of P for eigenvalue 1.
  w, vecs = np.linalg.eig(p.T)
  pi = np.real(vecs[:, np.argmin(np.abs(w - 1))])
  pi = np.abs(pi) / np.abs(pi).sum()
  return MarkovLanguage(jnp.asarray(p, jnp.float32), jnp.asarray(pi, jnp.float32))


def entropy_rate(language: MarkovLanguage) -> float:
  """H = -sum_i pi_i sum_j P_ij log P_ij, in nats per token (float64 on the host).

  The loss floor of the synthetic text of our runs of Wortsman et al., "Small-scale proxies for large-scale Transformer
  training instabilities", ICLR 2024, arXiv:2309.14322. language: transition [V, V], stationary [V]; returns a Python
  float.
  """
  p = np.asarray(language.transition, np.float64)
  pi = np.asarray(language.stationary, np.float64)
  return float(-(pi[:, None] * p * np.log(np.maximum(p, 1e-300))).sum())


def sample_markov_sequences(key: jax.Array, language: MarkovLanguage, batch: int, length: int) -> jax.Array:
  """Sequences [batch, length] int32 started from the stationary distribution.

  Validated eagerly, then sampled by one jitted `lax.scan` (compiled once per (batch, length, V)), so calling it in
  a Python loop costs milliseconds, not a retrace per call.

  The synthetic text of our runs of Wortsman et al., "Small-scale proxies for large-scale Transformer training
  instabilities", ICLR 2024, arXiv:2309.14322 (in place of C4).
  """
  batch, length = (validation.check_int(v, name, 1, value_error=True) for name, v in (("batch", batch),
                                                                                       ("length", length)))
  return _sample_markov_sequences(key, language, batch, length)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _sample_markov_sequences(key: jax.Array, language: MarkovLanguage, batch: int, length: int) -> jax.Array:
  k0, ks = jax.random.split(key)
  logp = jnp.log(language.transition)
  x0 = jax.random.choice(k0, language.stationary.shape[0], (batch,), p=language.stationary)

  def step(x, k):
    nxt = jax.random.categorical(k, logp[x])
    return nxt, nxt

  _, rest = jax.lax.scan(step, x0, jax.random.split(ks, length - 1))
  return jnp.concatenate([x0[:, None], rest.T], axis=1).astype(jnp.int32)
