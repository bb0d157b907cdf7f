"""[55] Xue et al. 2024: `layerwise_feature_weights` against a float64 NumPy transcription and the balanced-layer
closed form, and the projection-head experiment's spectral contrastive loss against its pairwise definition."""

import jax
import numpy as np
import pytest

from experiments import projection_head_weighting as exp
from jaxlib_methods.analysis import layerwise_feature_weights


def test_layerwise_feature_weights_numpy_and_balanced_closed_form():
  rng = np.random.default_rng(0)
  w1, w2, f = rng.normal(size=(5, 4)), rng.normal(size=(3, 5)), rng.normal(size=(4, 2))
  got = np.asarray(layerwise_feature_weights([w1.astype(np.float32), w2.astype(np.float32)], f.astype(np.float32)))
  ref = np.stack([np.linalg.norm(w1 @ f, axis=0), np.linalg.norm(w2 @ w1 @ f, axis=0)])
  np.testing.assert_allclose(got, ref, rtol=1e-5)
  # balanced layers W1 = R diag(c^(1/2)), W2 = diag(c^(1/2)) R^T (R orthogonal): weights c^(1/2) then c (l/L law)
  c = np.array([4.0, 1.0, 0.25])
  q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
  bal = layerwise_feature_weights([q @ np.diag(np.sqrt(c)), np.diag(np.sqrt(c)) @ q.T], np.eye(3))
  np.testing.assert_allclose(np.asarray(bal), np.stack([np.sqrt(c), c]), rtol=1e-5)
  jitted = jax.jit(lambda a, b, x: layerwise_feature_weights([a, b], x))(w1, w2, f)
  np.testing.assert_allclose(jitted, ref, rtol=1e-5)
  with pytest.raises(ValueError, match=r"weights\[1\] must be"):
    layerwise_feature_weights([w1, w2.T], f)
  with pytest.raises(TypeError, match="non-empty list"):
    layerwise_feature_weights([], f)
  with pytest.raises(ValueError, match="features must be"):
    layerwise_feature_weights([w1], f[:, 0])


def test_spectral_contrastive_loss_matches_its_pairwise_definition():
  rng = np.random.default_rng(1)
  z1, z2 = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
  ref = -2 * np.mean([z1[i] @ z2[i] for i in range(6)])
  ref += np.mean([(z1[i] @ z2[j]) ** 2 for i in range(6) for j in range(6) if i != j])
  np.testing.assert_allclose(float(exp.spectral_contrastive_loss(z1.astype(np.float32), z2.astype(np.float32))), ref,
                             rtol=1e-5)
