"""The multi-class toy model of Lin et al. with a few invariant and many spurious features.

Paper [112]: Yong Lin et al., "Spurious Feature Diversification Improves Out-of-distribution Generalization", ICLR
2024, arXiv:2309.17230, Sec. 4 (the data generation process). Each example has F = d_v + d_s features, each a
d-dimensional vector x_i = mu_i(c_i) + z_i with z_i ~ N(0, sigma^2 I_d); feature i's K class means mu_i(1..K) are
orthonormal (d >= K; here signed coordinate vectors in a random order per feature: the noise is isotropic, so the
law of every score <x_i, mu_i(k)> is the same for any orthonormal choice). In distribution every feature
carries the label (c_i = y). Out of distribution the invariant features still do, while each spurious feature
independently, with probability p, carries a uniformly random class c_i instead (the spurious correlation fails).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


class SpuriousFeatureData(NamedTuple):
  """A sample of the toy model: x [n, F, d] float32 (rows 0..d_v-1 the invariant features, then the spurious ones),
  y [n] int32 in [0, K), classes [n, F] int32 (the class each feature carries; = y except for flipped spurious
  features).

  The data generation process of Lin et al., "Spurious Feature Diversification Improves Out-of-distribution
  Generalization", ICLR 2024, arXiv:2309.17230, Sec. 4.
  """
  x: jax.Array
  y: jax.Array
  classes: jax.Array


def spurious_feature_means(key: jax.Array, num_features: int, num_classes: int, dim: int) -> jax.Array:
  """Random orthonormal class means of every feature (Lin et al., ICLR 2024, arXiv:2309.17230, Sec. 4).

  Args:
    key: PRNG key.
    num_features: F = d_v + d_s >= 1.
    num_classes: K >= 2.
    dim: d >= K, each feature's dimension.

  Returns:
    means [F, K, d] float32; means[i] has orthonormal rows (mu_i(1), ..., mu_i(K)): K distinct coordinate vectors
    of d, chosen at random per feature, with random signs.
  """
  num_features, num_classes, dim = (validation.check_int(v, name, lo, value_error=True) for name, v, lo in (
      ("num_features", num_features, 1), ("num_classes", num_classes, 2), ("dim", dim, 2)))
  if dim < num_classes:
    raise ValueError(f"dim must be >= num_classes (K orthonormal means per feature), got {dim=}, {num_classes=}")
  k_p, k_s = jax.random.split(key)
  coords = jnp.argsort(jax.random.uniform(k_p, (num_features, dim)), axis=-1)[:, :num_classes]   # [F, K] distinct
  signs = jnp.where(jax.random.bernoulli(k_s, 0.5, (num_features, num_classes)), 1.0, -1.0)
  return signs[..., None] * jax.nn.one_hot(coords, dim, dtype=jnp.float32)


def spurious_feature_data(key: jax.Array, n: int, means: jax.Array, *, num_invariant: int, flip_prob: float = 0.0,
                          noise_std: float = 1.0) -> SpuriousFeatureData:
  """Sample n examples of the toy model (Lin et al., ICLR 2024, arXiv:2309.17230, Sec. 4).

  Args:
    key: PRNG key.
    n: number of examples (>= 1).
    means: [F, K, d] class means from `spurious_feature_means` (shared by the train, ID and OOD sets).
    num_invariant: d_v in [0, F], the first d_v features are invariant (never flipped).
    flip_prob: p in [0, 1], the probability that each spurious feature carries a uniformly random class (0: in
      distribution).
    noise_std: sigma >= 0, the Gaussian noise per coordinate.

  Returns:
    SpuriousFeatureData with x [n, F, d], y [n], classes [n, F].
  """
  means = validation.check_floating(means, "means")
  if means.ndim != 3:
    raise ValueError(f"means must be [F, K, d], got means.shape={means.shape}")
  f, k, d = means.shape
  n = validation.check_int(n, "n", 1, value_error=True)
  if isinstance(num_invariant, bool) or not isinstance(num_invariant, (int, np.integer)) or not 0 <= num_invariant <= f:
    raise ValueError(f"num_invariant must be an int in [0, F={f}], got {num_invariant=!r}")
  validation.check_in_interval(flip_prob, "flip_prob", 0.0, 1.0)
  validation.check_nonnegative(noise_std, "noise_std")
  k_y, k_f, k_c, k_z = jax.random.split(key, 4)
  y = jax.random.randint(k_y, (n,), 0, k, jnp.int32)
  spurious = jnp.arange(f) >= num_invariant
  flip = jax.random.bernoulli(k_f, flip_prob, (n, f)) & spurious
  random_class = jax.random.randint(k_c, (n, f), 0, k, jnp.int32)
  classes = jnp.where(flip, random_class, y[:, None])
  mu = means[jnp.arange(f)[None, :], classes]                # [n, F, d]
  ct = validation.compute_dtype_for(means.dtype)     # bfloat16 normals take 128 values, none beyond |z| = 2.9
  x = (mu.astype(ct) + noise_std * jax.random.normal(k_z, (n, f, d), ct)).astype(means.dtype)
  return SpuriousFeatureData(x, y, classes)
