"""[179] Denoiser geometry (arXiv:2310.02557): the Jacobian eigenbasis of the Wiener (MMSE, Gaussian-data) denoiser
is the data covariance's eigenbasis with the shrinkage factors lambda / (lambda + sigma^2), exactly; the Jacobian of
a non-symmetric linear map reports its asymmetry; the agreement metric against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.analysis import denoiser_geometry as G


@pytest.mark.slow  # compile-heavy (the experiment theory_wave3 exercises it at every cpu run)
def test_wiener_denoiser_eigenbasis_and_agreement():
  rng = np.random.default_rng(0)
  q = np.linalg.qr(rng.normal(size=(5, 5)))[0]
  lam = np.array([4.0, 2.0, 1.0, 0.5, 0.1])
  cov = q @ np.diag(lam) @ q.T
  sigma2 = 0.5
  h = (cov @ np.linalg.inv(cov + sigma2 * np.eye(5))).astype(np.float32)
  ev, vec, asym = G.denoiser_jacobian_eig(lambda y: h @ y, jnp.asarray(rng.normal(size=5),
                                                                                            jnp.float32))
  np.testing.assert_allclose(ev, lam / (lam + sigma2), atol=1e-5)
  np.testing.assert_allclose(np.abs(np.sum(np.asarray(vec) * q, 0)), 1.0, atol=1e-4)   # same eigenvectors
  assert float(asym) < 1e-5
  m = np.triu(np.ones((5, 5), np.float32))
  _, _, asym_m = G.denoiser_jacobian_eig(lambda y: m @ y, jnp.ones(5))
  np.testing.assert_allclose(asym_m, np.linalg.norm(m - m.T) / np.linalg.norm(m), rtol=1e-5)
  a, b = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
  np.testing.assert_allclose(G.denoiser_agreement(a, b), np.sum((a - b) ** 2) / np.sum(a ** 2), rtol=1e-5)
  with pytest.raises(ValueError, match="y must"):
    G.denoiser_jacobian_eig(lambda y: y, jnp.ones((2, 2)))


def test_denoiser_jacobian_eig_constant_denoiser_and_half_precision():
  # A constant denoiser (zero Jacobian) used to give asymmetry 0 / 0 = NaN, and float16/bfloat16 inputs crashed in
  # eigh (no half-precision kernel): the decomposition now runs in float32.
  _, _, asym = G.denoiser_jacobian_eig(lambda y: jnp.zeros_like(y), jnp.ones(3))
  assert float(asym) == 0.0
  m = np.random.default_rng(0).normal(size=(3, 3))
  want = np.sort(np.linalg.eigvalsh((m + m.T) / 2))[::-1]
  for dt in (jnp.float16, jnp.bfloat16):
    lam, vec, _ = G.denoiser_jacobian_eig(lambda y: jnp.asarray(m, y.dtype) @ y, jnp.ones(3, dt))
    assert lam.dtype == jnp.float32 and vec.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(lam), want, atol=2e-2)
