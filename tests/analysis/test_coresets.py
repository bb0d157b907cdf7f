"""[153] Data-efficient augmentation (arXiv:2210.08363): the greedy facility-location coreset against brute force
(the (1 - 1/e) guarantee, checked on many random instances) and the Jacobian spectrum against NumPy's SVD of an
explicitly written Jacobian."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.analysis import coresets


def _f(sim, subset):
  return sim[:, list(subset)].max(1).sum()


def test_greedy_facility_location_is_within_1_minus_1_over_e_of_brute_force():
  rng = np.random.default_rng(0)
  ratios = []
  for _ in range(15):
    g = rng.normal(size=(9, 3)) * rng.uniform(0.2, 2.0, size=(9, 1))
    d = np.linalg.norm(g[:, None] - g[None], axis=-1)
    sim = d.max() - d
    idx, w = coresets.facility_location_coreset(g.astype(np.float32), 3)
    best = max(_f(sim, s) for s in itertools.combinations(range(9), 3))
    ratios.append(_f(sim, idx) / best)
    assert w.sum() == 9 and len(set(idx.tolist())) == 3
    assert w.tolist() == np.bincount(np.argmin(d[:, idx], 1), minlength=3).tolist()
  assert min(ratios) >= 1 - 1 / np.e and np.mean(ratios) > 0.95, ratios
  with pytest.raises(ValueError, match="k must"):
    coresets.facility_location_coreset(np.zeros((4, 2), np.float32), 5)


@pytest.mark.slow  # compile-heavy (the experiment theory_wave3 exercises it at every cpu run)
def test_jacobian_spectrum_matches_numpy_svd():
  rng = np.random.default_rng(1)
  params = {"w": rng.normal(size=(3, 5)).astype(np.float32), "v": rng.normal(size=5).astype(np.float32)}
  x = rng.normal(size=(6, 3)).astype(np.float32)
  apply = lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"]
  s, u = coresets.jacobian_spectrum(apply, params, x)
  t = np.tanh(x @ params["w"])                                     # d f / d w_ab = x_a (1 - t_b^2) v_b; d f / d v = t
  jw = x[:, :, None] * ((1 - t ** 2) * params["v"])[:, None, :]
  jac = np.concatenate([t, jw.reshape(6, -1)], 1)                  # ravel_pytree order: v, then w
  np.testing.assert_allclose(s, np.linalg.svd(jac, compute_uv=False), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.abs(u.T @ u), np.eye(6), atol=1e-5)


def test_jacobian_spectrum_half_precision():
  # float16 parameters and inputs used to crash in the SVD (no half-precision kernel); the SVD runs in float32.
  x = np.random.default_rng(0).normal(size=(4, 3))
  s, u = coresets.jacobian_spectrum(lambda p, x: x @ p, jnp.ones(3, jnp.float16), jnp.asarray(x, jnp.float16))
  assert s.dtype == jnp.float32
  want = np.linalg.svd(np.asarray(jnp.asarray(x, jnp.float16), np.float64), compute_uv=False)
  np.testing.assert_allclose(np.asarray(s), want, rtol=1e-3)
