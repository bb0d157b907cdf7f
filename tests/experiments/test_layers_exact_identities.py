"""The layers_exact_identities experiment [73] [61]: its retrieval metric and class means against NumPy loops."""

import jax.numpy as jnp
import numpy as np

from experiments import layers_exact_identities as exp


def test_retrieval_accuracy_and_class_means_match_numpy():
  rng = np.random.default_rng(0)
  fq, fg = rng.normal(size=(9, 3)), rng.normal(size=(11, 3))
  yq, yg = rng.integers(0, 3, 9), rng.integers(0, 3, 11)
  nq = fq / np.linalg.norm(fq, axis=1, keepdims=True)
  ng = fg / np.linalg.norm(fg, axis=1, keepdims=True)
  hits = [yg[np.argmin([np.linalg.norm(q - g) for g in ng])] == y for q, y in zip(nq, yq)]
  np.testing.assert_allclose(exp.retrieval_accuracy(jnp.asarray(fq), jnp.asarray(yq), jnp.asarray(fg),
                                                    jnp.asarray(yg)), np.mean(hits), rtol=1e-6)
  means = np.stack([fg[yg == k].mean(0) for k in range(3)])
  np.testing.assert_allclose(exp.class_means(jnp.asarray(fg), jnp.asarray(yg), 3), means, rtol=1e-5, atol=1e-6)
