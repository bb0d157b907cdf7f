"""Synthetic concept-patch images with controlled concept co-occurrence [32].

Jack Furby, Daniel Cunnington, Dave Braines, Alun Preece, "Can we Constrain Concept Bottleneck Models to Learn
Semantically Meaningful Input Features?", 2024, arXiv:2402.00912: a concept bottleneck model can only tie each concept
to its own input region when the concepts do not always co-occur. Here (our synthetic stand-in for the paper's
playing-card images): concept c, when present, draws a bright square patch at its own fixed location of a noisy
image; concept 0 is Bernoulli(p_concept) and every other concept copies it with probability `co_occurrence`, else is
an independent Bernoulli(p_concept) draw. The per-concept region masks come with the data, for
`analysis.attribution_on_region`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


class ConceptPatchData(NamedTuple):
  """images [n, size, size] float32; concepts [n, C] int32 in {0, 1}; masks [C, size, size] bool (concept regions).

  The data of Furby et al., "Can we Constrain Concept Bottleneck Models to Learn Semantically Meaningful Input
  Features?", 2024, arXiv:2402.00912 (our synthetic stand-in for its playing-card images).
  """
  images: jax.Array
  concepts: jax.Array
  masks: jax.Array


def concept_patch_masks(num_concepts: int, *, size: int = 12, patch: int = 4):
  """The fixed, disjoint region of each concept: squares of side `patch` along the image's diagonal (Furby et al.
  2024, arXiv:2402.00912: each concept has its own input features).

  Args:
    num_concepts: int >= 1 concepts.
    size: image side (>= num_concepts * patch).
    patch: patch side >= 1.

  Returns:
    bool NumPy [num_concepts, size, size] masks.
  """
  c = validation.check_int(num_concepts, "num_concepts", 1)
  size, patch = validation.check_int(size, "size", 1), validation.check_int(patch, "patch", 1)
  if c * patch > size:
    raise ValueError(f"size must be >= num_concepts * patch = {c * patch}, got size={size}")
  m = np.zeros((c, size, size), bool)
  for k in range(c):
    m[k, k * patch:(k + 1) * patch, k * patch:(k + 1) * patch] = True
  return m


def concept_patch_images(key, num_samples: int, *, num_concepts: int = 2, size: int = 12, patch: int = 4,
                         p_concept: float = 0.5, co_occurrence: float = 0.0, noise: float = 0.1):
  """Noisy images with a bright patch per present concept; concepts co-occur with a controlled probability.

  Furby et al. 2024, arXiv:2402.00912 (the co-occurrence manipulation of their synthetic data): concept 0 ~
  Bernoulli(p_concept); concept c > 0 equals concept 0 with probability `co_occurrence`, else is an independent
  Bernoulli(p_concept). Image = N(0, noise^2) pixels + 1 on the region of every present concept.

  Args:
    key: a jax PRNG key.
    num_samples: int >= 1 images.
    num_concepts: int >= 1 concepts.
    size: image side.
    patch: patch side.
    p_concept: probability in (0, 1) that a concept is present.
    co_occurrence: probability in [0, 1] that concept c > 0 copies concept 0 (1: they always co-occur).
    noise: pixel noise standard deviation >= 0.

  Returns:
    `ConceptPatchData`.
  """
  n = validation.check_int(num_samples, "num_samples", 1)
  masks = concept_patch_masks(num_concepts, size=size, patch=patch)
  for name, v, lo, hi in (("p_concept", p_concept, 0.0, 1.0), ("co_occurrence", co_occurrence, 0.0, 1.0)):
    if isinstance(v, bool) or not np.isfinite(v) or not lo <= float(v) <= hi:
      raise ValueError(f"{name} must be in [{lo}, {hi}], got {name}={v}")
  if not 0 < float(p_concept) < 1:
    raise ValueError(f"p_concept must be in (0, 1), got {p_concept=}")
  if isinstance(noise, bool) or not np.isfinite(noise) or noise < 0:
    raise ValueError(f"noise must be a finite float >= 0, got {noise=}")
  return _sample(key, jnp.asarray(masks), n, float(p_concept), float(co_occurrence), float(noise))


@functools.partial(jax.jit, static_argnums=2)
def _sample(key, masks, n, p, rho, noise):
  c = masks.shape[0]
  k0, k1, k2, k3 = jax.random.split(key, 4)
  first = jax.random.bernoulli(k0, p, (n, 1))
  indep = jax.random.bernoulli(k1, p, (n, c))
  copy = jax.random.bernoulli(k2, rho, (n, c))
  concepts = jnp.where(copy, first, indep).at[:, 0].set(first[:, 0]).astype(jnp.int32)
  images = noise * jax.random.normal(k3, (n,) + masks.shape[1:]) + jnp.einsum(
      "nc,chw->nhw", concepts.astype(jnp.float32), masks.astype(jnp.float32))
  return ConceptPatchData(images.astype(jnp.float32), concepts, masks)
