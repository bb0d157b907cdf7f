"""Synthetic embeddings that are a sparse, non-negative mix of known ground-truth concept atoms plus noise.

The toy shared by the concept-bottleneck and sparse-dictionary papers of issue 20 ([166] mutual / feature choice SAEs,
[20] discover-then-name, [35] codebook features, [1] sparse CBMs, [17] post-hoc CBMs, [58] energy-based CBMs): every
example is x = sum_j c_j a_j + sigma * eps with K unit-norm atoms a_j in R^d (the "concepts" or "features"; K may exceed
d, superposition), a support of s active atoms drawn uniformly, s itself uniform in [min_active, max_active] (a
variable number of active features per token, the setting of Ayonrinde 2024, arXiv:2411.02124, Sec. 3), coefficients
c_j ~ U[coef_low, 1] on the support and 0 off it, and eps ~ N(0, I_d / d) (so sigma is the noise's root-mean-square
norm, E||sigma eps||^2 = sigma^2; its mean norm is slightly less, sigma sqrt(2/pi) at d = 1).
Because codes and atoms are returned, a method's recovered dictionary or concept scores can be scored exactly.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


class SparseConcepts(NamedTuple):
  """A sample of `sparse_concept_embeddings`.

  The toy of Ayonrinde, "Adaptive Sparse Allocation with Mutual Choice & Feature Choice Sparse Autoencoders", 2024,
  arXiv:2411.02124, Sec. 3 (a variable number of active features per token).

  Attributes:
    embeddings: [N, d] x = codes @ atoms + noise.
    codes: [N, K] the non-negative ground-truth concept coefficients (exactly `num_active[n]` non-zeros in row n).
    atoms: [K, d] unit-norm ground-truth directions.
    num_active: [N] int32 number of active atoms per example.
  """
  embeddings: jax.Array
  codes: jax.Array
  atoms: jax.Array
  num_active: jax.Array


def sparse_concept_embeddings(key: jax.Array, num_samples: int, *, num_atoms: int, dim: int, min_active: int = 1,
                              max_active: int = 3, coef_low: float = 0.5, noise: float = 0.0,
                              atoms: jax.Array | None = None, dtype=jnp.float32) -> SparseConcepts:
  """Embeddings = sparse non-negative mix of K ground-truth atoms + isotropic noise (module docstring).

  Pure function of `key` (jit-able with the integer arguments static). Supports are uniform s-subsets: the s atoms with
  the smallest of K i.i.d. uniform scores. Pass `atoms` to draw a second sample (e.g. a test set) over the same
  dictionary.

  The toy of Ayonrinde, "Adaptive Sparse Allocation with Mutual Choice & Feature Choice Sparse Autoencoders", 2024,
  arXiv:2411.02124, Sec. 3 (a variable number of active features per token).

  Args:
    key: PRNG key.
    num_samples: N, examples (>= 1).
    num_atoms: K, ground-truth atoms (>= 1; K > dim gives superposition).
    dim: d, embedding dimension (>= 1).
    min_active: smallest number of active atoms per example, in [0, max_active].
    max_active: largest number of active atoms per example, in [min_active, num_atoms].
    coef_low: active coefficients are U[coef_low, 1], coef_low in [0, 1].
    noise: sigma >= 0, the root-mean-square norm of the additive Gaussian noise N(0, sigma^2 I_d / d).
    atoms: optional [K, d] dictionary to reuse (rows are used as given); default: K i.i.d. uniform unit vectors.
    dtype: floating dtype of the arrays.

  Returns:
    A `SparseConcepts` (embeddings [N, d], codes [N, K], atoms [K, d], num_active [N]).
  """
  num_samples = validation.check_int(num_samples, "num_samples", 1, value_error=True)
  num_atoms = validation.check_int(num_atoms, "num_atoms", 1, value_error=True)
  dim = validation.check_int(dim, "dim", 1, value_error=True)
  min_active = validation.check_int(min_active, "min_active", 0, value_error=True)
  max_active = validation.check_int(max_active, "max_active", 1, value_error=True)
  if not min_active <= max_active <= num_atoms:
    raise ValueError(f"need 0 <= min_active <= max_active <= num_atoms, got {min_active=}, {max_active=}, "
                     f"{num_atoms=}")
  validation.check_in_interval(coef_low, "coef_low", 0.0, 1.0)
  validation.check_nonnegative(noise, "noise")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"dtype must be a floating dtype, got {dtype=}")
  if atoms is not None:
    atoms = validation.check_floating(atoms, "atoms")
    if atoms.shape != (num_atoms, dim):
      raise ValueError(f"atoms must be [num_atoms, dim] = {(num_atoms, dim)}, got atoms.shape={atoms.shape}")
  return _sample(key, atoms, num_samples, num_atoms, dim, min_active, max_active, coef_low, noise, jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6, 9))
def _sample(key, atoms, num_samples, num_atoms, dim, min_active, max_active, coef_low, noise, dtype):
  k_atoms, k_count, k_support, k_coef, k_noise = jax.random.split(key, 5)
  if atoms is None:
    a = jax.random.normal(k_atoms, (num_atoms, dim), jnp.float32)
    atoms = (a / jnp.linalg.norm(a, axis=1, keepdims=True)).astype(dtype)
  else:
    atoms = atoms.astype(dtype)
  count = jax.random.randint(k_count, (num_samples,), min_active, max_active + 1, jnp.int32)
  scores = jax.random.uniform(k_support, (num_samples, num_atoms))
  rank = jnp.argsort(jnp.argsort(scores, axis=1), axis=1)          # rank of each atom's score in its row
  support = rank < count[:, None]
  coef = jax.random.uniform(k_coef, (num_samples, num_atoms), jnp.float32, coef_low, 1.0)
  codes = jnp.where(support, coef, 0.0).astype(dtype)
  eps = jax.random.normal(k_noise, (num_samples, dim), jnp.float32) * (noise / jnp.sqrt(dim))
  x = (codes.astype(jnp.float32) @ atoms.astype(jnp.float32) + eps).astype(dtype)
  return SparseConcepts(x, codes, atoms, count)


__all__ = ["SparseConcepts", "sparse_concept_embeddings"]
