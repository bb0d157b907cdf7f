"""Minibatch indices drawn by random reshuffling: one fresh permutation of the training set per epoch, cut into
batches (the last incomplete batch of each epoch dropped), instead of an independent draw per step.

Random reshuffling is how SGD is run in practice (Bottou, "Curiously fast convergence of some stochastic gradient
descent algorithms", 2009; Gurbuzbalaban, Ozdaglar, Parrilo, "Why random reshuffling beats stochastic gradient
descent", Math. Programming 2021). Besides, it is cheap on every backend: `jax.random.choice(key, n, (B,),
replace=False)` permutes all n indices to keep B, so drawing every step's batch that way sorts n keys per step; here
one permutation serves n // B steps.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def epoch_minibatch_indices(key: jax.Array, num_examples: int, batch_size: int, steps: int) -> jax.Array:
  """Row indices of `steps` minibatches by random reshuffling (without replacement within each epoch).

  Epoch e (steps e * m .. e * m + m - 1, m = num_examples // batch_size batches per epoch) takes consecutive slices of
  `jax.random.permutation(fold_in(key, e), num_examples)`; the num_examples - m * batch_size indices left over in an
  epoch are not used in it (drop-last, as in PyTorch's DataLoader(drop_last=True)). So no index repeats within a
  batch, nor within an epoch; every index is used in every epoch when batch_size divides num_examples.

  Reference: Bottou, "Curiously fast convergence of some stochastic gradient descent algorithms", 2009 (random
  reshuffling: one permutation per epoch).

  Args:
    key: PRNG key.
    num_examples: n, the training set size (static, >= batch_size).
    batch_size: B (static, >= 1).
    steps: number of minibatches (static, >= 1).

  Returns:
    [steps, batch_size] int32 indices into range(num_examples). Pure function of its arguments; jit-safe (the sizes
    are static), vmap-safe over `key`.
  """
  num_examples = validation.check_int(num_examples, "num_examples", 1, value_error=True)
  batch_size = validation.check_int(batch_size, "batch_size", 1, value_error=True)
  steps = validation.check_int(steps, "steps", 1, value_error=True)
  if batch_size > num_examples:
    raise ValueError(f"batch_size must be <= num_examples, got batch_size={batch_size}, num_examples={num_examples}")
  return _indices(key, num_examples, batch_size, steps)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _indices(key, n, b, steps):
  per_epoch = n // b
  epochs = -(-steps // per_epoch)
  perms = jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, e), n))(jnp.arange(epochs))
  batches = perms[:, :per_epoch * b].reshape(epochs * per_epoch, b)
  return batches[:steps].astype(jnp.int32)
