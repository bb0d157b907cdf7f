"""PCA [145] Prune + Combine against NumPy: per-class easiest selection and the 2x2 / 3x3 patch combination (each cell a
block-mean downsampled image, row-major)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.data.dataset_compression import combine_patches, select_easy_per_class


def test_select_easy_per_class():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 4, 60)
  s = rng.normal(size=60)
  got = select_easy_per_class(s, y, 3)
  for k, c in enumerate(np.unique(y)):
    block = got[3 * k:3 * k + 3]
    assert np.all(y[block] == c)
    others = np.flatnonzero(y == c)
    assert s[block].max() <= np.sort(s[others])[2] and np.all(np.diff(s[block]) >= 0)
  with pytest.raises(ValueError, match="per_class"):
    select_easy_per_class(s, y, 100)


def test_combine_patches_vs_numpy():
  rng = np.random.default_rng(1)
  for f in (2, 3):
    x = rng.normal(size=(2 * f * f, 6, 12, 3)).astype(np.float32)
    got = np.asarray(jax.jit(combine_patches, static_argnums=1)(jnp.asarray(x), f))
    assert got.shape == (2, 6, 12, 3)
    hs, ws = 6 // f, 12 // f
    for g in range(2):
      for cell in range(f * f):
        img = x[g * f * f + cell]
        small = np.array([[img[i * f:(i + 1) * f, j * f:(j + 1) * f].mean((0, 1)) for j in range(ws)]
                          for i in range(hs)])
        r, c = divmod(cell, f)
        np.testing.assert_allclose(got[g, r * hs:(r + 1) * hs, c * ws:(c + 1) * ws], small, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(combine_patches(jnp.asarray(x), 1)), x)
  with pytest.raises(ValueError, match="divisible"):
    combine_patches(jnp.ones((3, 4, 4, 1)), 2)


def test_combine_patches_accepts_a_numpy_integer_factor():
  """factor=np.int64(2) (e.g. from a NumPy config grid) was rejected as "must be an int"."""
  x = jax.random.uniform(jax.random.key(0), (4, 4, 4, 1))
  np.testing.assert_array_equal(np.asarray(combine_patches(x, np.int64(2))), np.asarray(combine_patches(x, 2)))
  with pytest.raises(ValueError, match="factor"):
    combine_patches(x, 2.0)
