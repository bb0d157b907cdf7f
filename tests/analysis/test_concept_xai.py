"""[25] concept XAI metrics on hand-checkable inputs and vs float64 NumPy (np.corrcoef, argsort, set IoU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.analysis import (
    concept_activation_map,
    concept_existence_metric,
    concept_global_importance,
    concept_location_metric,
)


cgim = jax.jit(concept_global_importance)
cem = jax.jit(concept_existence_metric, static_argnames=("k",))
clm = jax.jit(concept_location_metric, static_argnames=("threshold",))


def test_concept_metrics_vs_numpy_and_by_hand():
  rng = np.random.default_rng(0)
  # CGIM vs np.corrcoef row by row; perfectly aligned weights give 1, anti-aligned -1.
  W = rng.normal(size=(4, 6))
  G = rng.random(size=(4, 6)) > 0.5
  G[:, 0], G[:, 1] = True, False  # no constant rows
  ref = [np.corrcoef(W[k], G[k].astype(float))[0, 1] for k in range(4)]
  np.testing.assert_allclose(cgim(jnp.asarray(W, jnp.float32), jnp.asarray(G)), ref,
                             rtol=1e-5, atol=1e-6)
  a = jnp.asarray([[0.0, 1.0, 0.0, 1.0]])
  assert float(cgim(2 * a + 1, a)[0]) == pytest.approx(1.0, abs=1e-6)
  assert float(cgim(-a, a)[0]) == pytest.approx(-1.0, abs=1e-6)
  # CEM by hand: image 0's top-2 are concepts 3 and 0 (present: 3 yes, 0 no) -> 1/2; image 1's top-2 are 1, 2 -> 1.
  imp = jnp.asarray([[0.5, 0.1, 0.2, 0.9], [0.0, 3.0, 2.0, 1.0]])
  present = jnp.asarray([[False, True, True, True], [False, True, True, False]])
  np.testing.assert_allclose(cem(imp, present, k=2), [0.5, 1.0])
  imp_r = rng.normal(size=(5, 7))
  pres_r = rng.random(size=(5, 7)) > 0.4
  top = np.argsort(-imp_r, axis=1)[:, :3]
  np.testing.assert_allclose(cem(jnp.asarray(imp_r, jnp.float32), jnp.asarray(pres_r), k=3),
                             np.take_along_axis(pres_r, top, 1).mean(1), atol=1e-6)
  # CoAM: a feature map whose concept-0 direction is on in a 2x2 patch: the normalised map is that patch's indicator,
  # and its CLM with the patch mask is 1; with a shifted mask (overlap 2 of 6 cells) it is 2/6.
  F = np.zeros((5, 5, 3))
  F[1:3, 1:3, 0] = 2.0
  F[..., 1] = rng.normal(size=(5, 5))
  V = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  maps = jax.jit(concept_activation_map)(jnp.asarray(F, jnp.float32), jnp.asarray(V, jnp.float32))  # [2, 5, 5]
  patch = np.zeros((5, 5), bool)
  patch[1:3, 1:3] = True
  np.testing.assert_allclose(maps[0], patch.astype(float), atol=1e-6)
  m1 = np.asarray(maps[1])
  np.testing.assert_allclose(m1, (F[..., 1] - F[..., 1].min()) / np.ptp(F[..., 1]), rtol=1e-5, atol=1e-6)
  shifted = np.zeros((5, 5), bool)
  shifted[1:3, 2:4] = True
  clm_v = clm(jnp.asarray(np.stack([np.asarray(maps[0])] * 2)), jnp.asarray(np.stack([patch, shifted])), threshold=0.5)
  np.testing.assert_allclose(clm_v, [1.0, 2.0 / 6.0], rtol=1e-6)
  hot = m1 > 0.3
  np.testing.assert_allclose(clm(jnp.asarray(m1), jnp.asarray(shifted), threshold=0.3),
                             (hot & shifted).sum() / (hot | shifted).sum(), rtol=1e-6)


def test_concept_metrics_errors():
  with pytest.raises(ValueError, match="k must"):
    concept_existence_metric(jnp.zeros((2, 3)), jnp.zeros((2, 3), bool), k=4)
  with pytest.raises(TypeError, match="concept_present"):
    concept_existence_metric(jnp.zeros((2, 3)), jnp.zeros((2, 3)), k=1)
  with pytest.raises(ValueError, match="threshold"):
    concept_location_metric(jnp.zeros((2, 2)), jnp.zeros((2, 2), bool), threshold=1.0)
  with pytest.raises(ValueError, match="concept_vectors"):
    concept_activation_map(jnp.zeros((2, 2, 3)), jnp.zeros((1, 4)))
