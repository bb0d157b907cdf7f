"""The shared sparse-concept generator (issue 20): known sparsity, known atoms, exact composition, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.data import sparse_concept_embeddings


def test_sparse_concept_embeddings_known_sparsity_and_atoms():
  key = jax.random.key(0)
  n, k, d = 4000, 12, 8
  clean = sparse_concept_embeddings(key, n, num_atoms=k, dim=d, min_active=1, max_active=4, coef_low=0.5)
  x, c, a, s = (np.asarray(v, np.float64) for v in clean)
  np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)               # unit-norm atoms
  np.testing.assert_array_equal((c != 0).sum(1), s)                                     # exactly s_n active
  assert s.min() == 1 and s.max() == 4
  # s ~ U{1..4}: mean 2.5, sd 1.118; |mean - 2.5| > 5 sd / sqrt(n) has probability < 1e-6
  assert abs(s.mean() - 2.5) < 5 * 1.118 / np.sqrt(n)
  on = c[c != 0]
  assert on.min() >= 0.5 and on.max() <= 1.0                                            # U[coef_low, 1]
  np.testing.assert_allclose(x, c @ a, atol=1e-5)                                       # noise=0: exact mix
  # every atom is used about equally (uniform supports): counts ~ n * 2.5 / 12 ~ 833, sd < 29
  use = (c != 0).sum(0)
  assert np.all(np.abs(use - n * 2.5 / k) < 6 * np.sqrt(n * 2.5 / k))
  # same key -> same atoms and codes; the noisy sample differs by noise of root-mean-square norm sigma (noise is traced:
  # the same compiled program)
  noisy = sparse_concept_embeddings(key, n, num_atoms=k, dim=d, min_active=1, max_active=4, coef_low=0.5, noise=0.3)
  np.testing.assert_array_equal(np.asarray(noisy.atoms), np.asarray(clean.atoms))
  np.testing.assert_array_equal(np.asarray(noisy.codes), np.asarray(clean.codes))
  eps = np.asarray(noisy.embeddings, np.float64) - c @ a
  assert abs(np.mean(np.sum(eps ** 2, 1)) - 0.09) < 0.01                                # E||eps||^2 = sigma^2


def test_sparse_concept_embeddings_errors():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="max_active"):
    sparse_concept_embeddings(key, 4, num_atoms=3, dim=2, max_active=5)
  with pytest.raises(ValueError, match="num_samples"):
    sparse_concept_embeddings(key, 0, num_atoms=3, dim=2)
  with pytest.raises(ValueError, match="coef_low"):
    sparse_concept_embeddings(key, 4, num_atoms=3, dim=2, coef_low=1.5)
  with pytest.raises(ValueError, match="noise"):
    sparse_concept_embeddings(key, 4, num_atoms=3, dim=2, noise=-1.0)
  with pytest.raises(ValueError, match="atoms"):
    sparse_concept_embeddings(key, 4, num_atoms=3, dim=2, atoms=jnp.ones((3, 5)))
