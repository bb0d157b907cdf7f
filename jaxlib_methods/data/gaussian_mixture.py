"""Gaussian mixtures with closed-form densities, scores and Bayes posteriors.

Shared by [178] Alain & Bengio, "What Regularized Auto-Encoders Learn from the Data Generating Distribution",
JMLR 2014, arXiv:1211.4246 (needs the true score d/dx log p(x)) and [18] "On the Limitations of Temperature Scaling
for Distributions with Overlaps" (Chidambaram & Ge, 2023, arXiv:2306.00740; needs classes whose supports overlap by
a controllable amount and their Bayes-optimal posterior).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


class GaussianMixture(NamedTuple):
  """Isotropic mixture: weights [K] (sum 1), means [K, D], stds [K] (> 0).

  The data of Alain & Bengio, "What Regularized Auto-Encoders Learn from the Data Generating Distribution", JMLR 2014,
  arXiv:1211.4246, and of Chidambaram & Ge, "On the Limitations of Temperature Scaling for Distributions with Overlaps",
  2023, arXiv:2306.00740.
  """
  weights: jax.Array
  means: jax.Array
  stds: jax.Array


def make_gaussian_mixture(weights, means, stds) -> GaussianMixture:
  """Validate and pack a mixture. weights [K] >= 0 (normalised here), means [K, D], stds [K] > 0.

  The data of Alain & Bengio, "What Regularized Auto-Encoders Learn from the Data Generating Distribution", JMLR 2014,
  arXiv:1211.4246, and of Chidambaram & Ge, "On the Limitations of Temperature Scaling for Distributions with Overlaps",
  2023, arXiv:2306.00740. Returns a `GaussianMixture` (weights [K], means [K, D], stds [K], float32).
  """
  w = jnp.asarray(weights, jnp.float32)
  m = jnp.asarray(means, jnp.float32)
  s = jnp.asarray(stds, jnp.float32)
  if m.ndim != 2 or w.shape != (m.shape[0],) or s.shape != (m.shape[0],):
    raise ValueError(f"need weights [K], means [K, D], stds [K]; got {w.shape=}, {m.shape=}, {s.shape=}")
  if not np.all(np.isfinite(np.asarray(w))) or np.any(np.asarray(w) < 0) or float(jnp.sum(w)) <= 0:
    raise ValueError(f"weights must be finite and >= 0 with a positive sum, got {weights=}")
  if not np.all(np.isfinite(np.asarray(m))):
    raise ValueError(f"means must be finite, got {means=}")
  if not np.all(np.isfinite(np.asarray(s))) or np.any(np.asarray(s) <= 0):
    raise ValueError(f"stds must be finite and > 0, got {stds=}")
  return GaussianMixture(w / jnp.sum(w), m, s)


def sample_gaussian_mixture(key: jax.Array, mixture: GaussianMixture, n: int) -> tuple[jax.Array, jax.Array]:
  """Draw n points. Returns (x [n, D] float32, component index [n] int32).

  The data of Alain & Bengio, "What Regularized Auto-Encoders Learn from the Data Generating Distribution", JMLR 2014,
  arXiv:1211.4246, and of Chidambaram & Ge, "On the Limitations of Temperature Scaling for Distributions with Overlaps",
  2023, arXiv:2306.00740.
  """
  if n <= 0:
    raise ValueError(f"n must be positive, got {n=}")
  k1, k2 = jax.random.split(key)
  comp = jax.random.choice(k1, mixture.weights.shape[0], (n,), p=mixture.weights)
  eps = jax.random.normal(k2, (n, mixture.means.shape[1]))
  return mixture.means[comp] + mixture.stds[comp, None] * eps, comp.astype(jnp.int32)


def _check_points(mixture: GaussianMixture, x) -> jax.Array:
  x = validation.check_floating(x, "x")
  if x.ndim != 2 or x.shape[1] != mixture.means.shape[1]:
    raise ValueError(f"x must be [N, D] = [N, {mixture.means.shape[1]}] (the mixture's dimension), got {x.shape=}")
  return x


def _component_log_densities(mixture: GaussianMixture, x: jax.Array) -> jax.Array:
  x = _check_points(mixture, x)                                   # [N, 1] would broadcast silently against [K, D]
  d = mixture.means.shape[1]
  diff = x[:, None, :] - mixture.means[None]                      # [N, K, D]
  sq = jnp.sum(diff * diff, -1) / mixture.stds ** 2                # [N, K]
  return (jnp.log(mixture.weights) - 0.5 * sq - d * jnp.log(mixture.stds) - 0.5 * d * jnp.log(2 * jnp.pi))


def gaussian_mixture_log_density(mixture: GaussianMixture, x: jax.Array) -> jax.Array:
  """log p(x), x [N, D] -> [N].

  The data of Alain & Bengio, "What Regularized Auto-Encoders Learn from the Data Generating Distribution", JMLR 2014,
  arXiv:1211.4246, and of Chidambaram & Ge, "On the Limitations of Temperature Scaling for Distributions with Overlaps",
  2023, arXiv:2306.00740.
  """
  return jax.nn.logsumexp(_component_log_densities(mixture, x), axis=-1)


def gaussian_mixture_score(mixture: GaussianMixture, x: jax.Array) -> jax.Array:
  """The true score grad_x log p(x) in closed form: sum_k r_k(x) (mu_k - x) / s_k^2. x [N, D] -> [N, D].

  The true score that Alain & Bengio, "What Regularized Auto-Encoders Learn from the Data Generating Distribution",
  JMLR 2014, arXiv:1211.4246, compare a denoising auto-encoder with.
  """
  x = _check_points(mixture, x)
  r = jax.nn.softmax(_component_log_densities(mixture, x), axis=-1)  # responsibilities [N, K]
  return jnp.einsum("nk,nkd->nd", r / mixture.stds ** 2, mixture.means[None] - x[:, None, :])


def gaussian_mixture_posterior(mixture: GaussianMixture, x: jax.Array) -> jax.Array:
  """Bayes posterior P(component = k | x), x [N, D] -> [N, K].

  The Bayes-optimal posterior of the overlapping classes of Chidambaram & Ge, "On the Limitations of Temperature Scaling
  for Distributions with Overlaps", 2023, arXiv:2306.00740.
  """
  return jax.nn.softmax(_component_log_densities(mixture, x), axis=-1)


def overlapping_classes(num_classes: int, dim: int, separation: float) -> GaussianMixture:
  """K equally likely unit-variance classes with means at `separation` * e_k (k < dim): overlap falls with it.

  Classes whose supports overlap by a controllable amount, for Chidambaram & Ge, "On the Limitations of Temperature
  Scaling for Distributions with Overlaps", 2023, arXiv:2306.00740. Returns a `GaussianMixture` (weights [K],
  means [K, dim], stds [K]).

  Args:
    num_classes: K >= 2 (<= dim).
    dim: input dimension D.
    separation: distance scale between class means (>= 0); 0 = identical classes (maximal overlap).
  """
  if num_classes < 2 or num_classes > dim:
    raise ValueError(f"need 2 <= num_classes <= dim, got {num_classes=}, {dim=}")
  validation.check_nonnegative(separation, "separation")
  means = separation * np.eye(num_classes, dim)
  return make_gaussian_mixture(np.ones(num_classes), means, np.ones(num_classes))
