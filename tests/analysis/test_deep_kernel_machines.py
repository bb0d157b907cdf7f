"""[196] Deep kernel machines (arXiv:2108.13097): the objective against SciPy's Gaussian log-density and a NumPy
transcription of the Gaussian KL and the arc-cosine kernel; the optimiser's Grams tend to the NNGP as nu grows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from jaxlib_methods.analysis import deep_kernel_machines as D


def _arccos_np(g):
  d = np.sqrt(np.diag(g))
  n = np.outer(d, d)
  c = np.clip(g / n, -1, 1)
  t = np.arccos(c)
  return n * (np.sqrt(1 - c ** 2) + (np.pi - t) * c) / np.pi


def _kl_np(a, b):
  return 0.5 * (np.trace(np.linalg.solve(b, a)) - len(a) + np.linalg.slogdet(b)[1] - np.linalg.slogdet(a)[1])


@pytest.mark.slow  # compile-heavy (the experiment theory_wave3 exercises it at every cpu run)
def test_objective_matches_numpy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 3))
  y = rng.normal(size=(8, 2))
  g0 = x @ x.T / 3
  a = rng.normal(size=(8, 8))
  grams = [_arccos_np(g0) + 0.1 * a @ a.T / 8, _arccos_np(_arccos_np(g0))]
  nu = np.array([2.0, 0.5])
  ref = sum(st.multivariate_normal(np.zeros(8), _arccos_np(grams[1]) + 0.1 * np.eye(8)).logpdf(y[:, c])
            for c in range(2))
  ref -= nu[0] * _kl_np(grams[0], _arccos_np(g0)) + nu[1] * _kl_np(grams[1], _arccos_np(grams[0]))
  nngp = D.dkm_nngp_grams(g0.astype(np.float32), 2)
  np.testing.assert_allclose(nngp[1], _arccos_np(_arccos_np(g0)), rtol=1e-4, atol=1e-5)
  f32 = lambda t: [np.asarray(v, np.float32) for v in t]
  g0f, yf = g0.astype(np.float32), y.astype(np.float32)
  obj = jax.jit(lambda gs: D.dkm_objective(gs, g0f, yf, nu, jitter=0.0))(f32(grams))
  np.testing.assert_allclose(obj, ref, rtol=1e-3)


@pytest.mark.slow
def test_fit_tends_to_nngp_as_nu_grows():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 3)).astype(np.float32)
  y = rng.normal(size=(8, 2)).astype(np.float32)
  g0 = x @ x.T / 3
  nngp = D.dkm_nngp_grams(g0, 2)
  fitted = jax.jit(lambda: D.dkm_fit(g0, y, depth=2, nu=100.0, steps=1500, learning_rate=0.003))()
  err = [float(jnp.linalg.norm(g - n) / jnp.linalg.norm(n)) for g, n in zip(fitted, nngp)]
  assert 1e-3 < max(err) < 0.05, err     # offset ~ 1/nu from the NNGP: moved by the likelihood, pinned by the KL


def test_dkm_objective_rejects_non_positive_nu():
  # nu <= 0 (documented "> 0") used to be accepted silently, flipping or dropping the KL terms.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(5, 3))
  g0 = jnp.asarray(x @ x.T / 3, jnp.float32)
  y = jnp.asarray(rng.normal(size=(5, 1)), jnp.float32)
  gs = D.dkm_nngp_grams(g0, 2)
  for nu in (-1.0, 0.0, [1.0, -2.0]):
    with pytest.raises(ValueError, match="nu"):
      D.dkm_objective(gs, g0, y, nu)
  assert np.isnan(float(jax.jit(lambda nu: D.dkm_objective(gs, g0, y, nu))(-1.0)))
  assert np.isfinite(float(jax.jit(lambda nu: D.dkm_objective(gs, g0, y, nu))(1.0)))
