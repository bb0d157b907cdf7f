"""The feature-noise data model of Zou et al.: common and rare class features, label-independent feature noise and
Gaussian noise patches.

Paper [41]: Difan Zou, Yuan Cao, Yuanzhi Li, Quanquan Gu, "The Benefits of Mixup for Feature Learning", ICML 2023,
arXiv:2303.08433, Sec. 3 (the data distribution). Each example is P patches of dimension d and a label y in
{-1, +1} (equiprobable):
  - one feature patch: the common feature v_y with probability 1 - rho, the rare feature u_y with probability rho;
  - one feature-noise patch alpha * v_s, s in {-1, +1} uniform and independent of y (a common feature of a random
    class, so a rare-feature example carries a misleading common feature);
  - P - 2 Gaussian noise patches xi ~ N(0, sigma_p^2 (I - projection onto the features)).
The four features are orthogonal with norm `feature_norm` (coordinates 0..3 here; the noise lives in the other d - 4
coordinates, which is the projection). Patches are returned in that fixed order: the two-layer CNN the paper trains
sums over patches, so the order does not matter to it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


class FeatureNoiseData(NamedTuple):
  """A sample of the feature-noise model: x [n, P, d] float32, y [n] int32 in {-1, +1}, rare [n] bool (the feature
  patch is the rare feature u_y), features [4, d] (rows v_{+1}, v_{-1}, u_{+1}, u_{-1}).

  The data distribution of Zou et al., "The Benefits of Mixup for Feature Learning", ICML 2023, arXiv:2303.08433,
  Sec. 3.
  """
  x: jax.Array
  y: jax.Array
  rare: jax.Array
  features: jax.Array


def feature_noise_features(dim: int, feature_norm: float = 1.0) -> jax.Array:
  """The model's four orthogonal features [4, dim]: rows v_{+1}, v_{-1} (common), u_{+1}, u_{-1} (rare), each of norm
  `feature_norm` (coordinate vectors 0..3 scaled).

  The features of the data distribution of Zou et al., "The Benefits of Mixup for Feature Learning", ICML 2023,
  arXiv:2303.08433, Sec. 3. Returns float32 [4, dim].
  """
  dim = validation.check_int(dim, "dim", 5, value_error=True)  # 4 feature coordinates and >= 1 noise coordinate
  validation.check_positive(feature_norm, "feature_norm")
  return feature_norm * jnp.eye(4, int(dim), dtype=jnp.float32)


def feature_noise_data(key: jax.Array, n: int, *, dim: int, num_patches: int = 3, rare_prob: float = 0.1,
                       noise_std: float = 1.0, feature_noise: float = 0.5, feature_norm: float = 1.0,
                       rare: bool | None = None) -> FeatureNoiseData:
  """Sample n examples of the feature-noise model (Zou et al., ICML 2023, arXiv:2303.08433, Sec. 3).

  Args:
    key: PRNG key.
    n: number of examples (>= 0).
    dim: patch dimension d (>= 5).
    num_patches: P >= 2 (one feature patch, one feature-noise patch, P - 2 Gaussian noise patches).
    rare_prob: rho in [0, 1], the probability that the feature patch is the rare feature u_y.
    noise_std: sigma_p >= 0, the Gaussian noise patches' standard deviation per (non-feature) coordinate.
    feature_noise: alpha >= 0, the scale of the label-independent feature-noise patch alpha * v_s.
    feature_norm: the norm of each feature (> 0).
    rare: None to draw rare examples with probability rho; True / False to sample only rare / only common examples
      (the rare-feature and common-feature test sets).

  Returns:
    FeatureNoiseData with x [n, P, dim] float32, y [n] int32 in {-1, +1}, rare [n] bool, features [4, dim].
  """
  n = validation.check_int(n, "n", 0, value_error=True)
  num_patches = validation.check_int(num_patches, "num_patches", 2, value_error=True)
  validation.check_in_interval(rare_prob, "rare_prob", 0.0, 1.0)
  validation.check_nonnegative(noise_std, "noise_std")
  validation.check_nonnegative(feature_noise, "feature_noise")
  feats = feature_noise_features(dim, feature_norm)
  dim = int(dim)
  k_y, k_r, k_s, k_xi = jax.random.split(key, 4)
  y = jnp.where(jax.random.bernoulli(k_y, 0.5, (n,)), 1, -1).astype(jnp.int32)
  is_rare = jax.random.bernoulli(k_r, rare_prob, (n,)) if rare is None else jnp.full((n,), bool(rare))
  cls = (y == -1).astype(jnp.int32)                                    # row 0: v_{+1}, row 1: v_{-1}
  feature_patch = feats[jnp.where(is_rare, 2 + cls, cls)]             # [n, d]
  s = jax.random.bernoulli(k_s, 0.5, (n,)).astype(jnp.int32)          # a random class's common feature
  noise_feature_patch = feature_noise * feats[s]
  xi = noise_std * jax.random.normal(k_xi, (n, num_patches - 2, dim), jnp.float32)
  xi = xi.at[..., :4].set(0.0)                                         # (I - P_features) xi
  x = jnp.concatenate([feature_patch[:, None], noise_feature_patch[:, None], xi], axis=1)
  return FeatureNoiseData(x=x, y=y, rare=is_rare, features=feats)
