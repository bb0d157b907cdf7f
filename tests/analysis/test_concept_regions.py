"""Tests of [32]: `analysis.attribution_on_region` against float64 NumPy, and `data.concept_patch_images`'
co-occurrence statistics (binomial tests, fixed seeds, failure probability < 1e-5 each) and patch placement."""

import jax
import numpy as np
import pytest

from jaxlib_methods.analysis import concept_regions
from jaxlib_methods.data import concept_patches


def test_attribution_on_region_reference_and_jit():
  rng = np.random.default_rng(0)
  s = rng.normal(size=(5, 6, 6)).astype(np.float32)
  m = rng.uniform(size=(6, 6)) < 0.3
  ref = (np.abs(s) * m).reshape(5, -1).sum(1) / np.abs(s).reshape(5, -1).sum(1)
  np.testing.assert_allclose(jax.jit(concept_regions.attribution_on_region)(s, m), ref, rtol=1e-5)
  per = rng.uniform(size=(5, 6, 6)) < 0.5                              # a mask per example
  ref = (np.abs(s) * per).reshape(5, -1).sum(1) / np.abs(s).reshape(5, -1).sum(1)
  np.testing.assert_allclose(concept_regions.attribution_on_region(s, per), ref, rtol=1e-5)
  s[0] = 0.0
  assert float(concept_regions.attribution_on_region(s, m)[0]) == 0.0
  with pytest.raises(ValueError, match="mask"):
    concept_regions.attribution_on_region(s, m[:5])


def test_concept_patch_images_co_occurrence_and_patches():
  n = 4000
  for rho, p_equal in ((0.0, 0.5), (0.6, 0.8), (1.0, 1.0)):
    d = concept_patches.concept_patch_images(jax.random.key(1), n, num_concepts=3, co_occurrence=rho)
    c = np.asarray(d.concepts)
    for k in (1, 2):
      eq = np.mean(c[:, k] == c[:, 0])
      assert abs(eq - p_equal) <= 4.5 * np.sqrt(p_equal * (1 - p_equal) / n) + 1e-12, (rho, k, eq)
    assert abs(c.mean() - 0.5) < 4.5 * np.sqrt(0.25 / (3 * n)) * 2
  masks = concept_patches.concept_patch_masks(3, size=12, patch=4)
  assert masks.sum() == 48 and not np.any(masks.sum(0) > 1)
  img, c = np.asarray(d.images), np.asarray(d.concepts)
  for k in range(3):                                                   # the region is bright iff the concept is on
    mean_in = img[:, masks[k]].mean(1)
    np.testing.assert_array_equal(mean_in > 0.5, c[:, k] == 1)
  background = img[:, ~masks.any(0)]
  assert abs(background.std() - 0.1) < 0.01
  with pytest.raises(ValueError, match="co_occurrence"):
    concept_patches.concept_patch_images(jax.random.key(0), 4, co_occurrence=1.5)
  with pytest.raises(ValueError, match="size"):
    concept_patches.concept_patch_masks(4, size=12, patch=4)
