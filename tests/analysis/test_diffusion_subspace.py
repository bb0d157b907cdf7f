"""[129] MoLRG denoiser (Wang et al. 2024, arXiv:2409.02426): the closed form equals Tweedie's formula applied to the
score of the mixture density (central differences of a NumPy float64 density with full covariances, not the closed
form's simplifications);
the DSM loss is its squared error; principal angles and the subspace distance against constructed subspaces."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.analysis import molrg_denoiser, molrg_dsm_loss, principal_angles, subspace_distance


def _log_density(x_t, bases, log_pi, scale, sigma):
  """log sum_k pi_k N(x_t; 0, s^2 U_k U_k^T + gamma^2 I) with explicit covariances (NumPy float64)."""
  n = x_t.shape[-1]
  out = []
  for b, lp in zip(bases, log_pi):
    cov = scale ** 2 * b @ b.T + sigma ** 2 * np.eye(n)
    _, logdet = np.linalg.slogdet(cov)
    out.append(lp - 0.5 * (logdet + x_t @ np.linalg.solve(cov, x_t) + n * np.log(2 * np.pi)))
  return np.logaddexp.reduce(out)


def _tweedie(x_t, bases, log_pi, scale, sigma, h=1e-5):
  """E[x_0 | x_t] = (x_t + gamma^2 grad log p_t(x_t)) / s, the score by central differences of the density."""
  grad = np.array([(_log_density(x_t + h * e, bases, log_pi, scale, sigma) -
                    _log_density(x_t - h * e, bases, log_pi, scale, sigma)) / (2 * h) for e in np.eye(x_t.shape[0])])
  return (x_t + sigma ** 2 * grad) / scale


def test_denoiser_is_tweedie_of_the_mixture_and_dsm_loss_and_metrics():
  rng = np.random.default_rng(0)
  n, d, k = 6, 2, 3
  q = np.linalg.qr(rng.normal(size=(n, k * d)))[0]
  bases = np.stack([q[:, i * d:(i + 1) * d] for i in range(k)])              # orthogonal subspaces
  log_pi = np.log(np.array([0.5, 0.3, 0.2]))
  x_t = rng.normal(size=(4, n)) * 2
  scale, sigma = 0.8, 0.6
  tweedie = np.stack([_tweedie(x, bases, log_pi, scale, sigma) for x in x_t])
  sig = np.array([0.3, 0.6, 1.0, 2.0])
  tweedie_eq = np.stack([_tweedie(x, bases, np.zeros(k), 1.0, s) for x, s in zip(x_t, sig)])
  with jax.enable_x64(True):
    ours = molrg_denoiser(jnp.asarray(x_t), jnp.asarray(bases), sigma=sigma, scale=scale, log_weights=log_pi)
    np.testing.assert_allclose(ours, tweedie, rtol=1e-6, atol=1e-8)
    # under jit, with a per-example sigma; equal weights by default
    jitted = jax.jit(lambda x, b, s: molrg_denoiser(x, b, sigma=s))(x_t, bases, sig)
    np.testing.assert_allclose(jitted, tweedie_eq, rtol=1e-6, atol=1e-8)
    # DSM loss: the squared error of the denoiser at x_t = s x_0 + gamma eps
    x0, eps = rng.normal(size=(4, n)), rng.normal(size=(4, n))
    loss = molrg_dsm_loss(jnp.asarray(bases), x0, eps, sigma=sigma, scale=scale)
    den = molrg_denoiser(jnp.asarray(scale * x0 + sigma * eps), jnp.asarray(bases), sigma=sigma, scale=scale)
    np.testing.assert_allclose(loss, np.sum((np.asarray(den) - x0) ** 2, -1), rtol=1e-12)
  # principal angles: span(e1, e2) vs span(e1, cos t e2 + sin t e3) has angles (0, t); distance = mean sin^2
  t = 0.7
  u = np.eye(4)[:, :2]
  v = np.stack([np.eye(4)[0], np.cos(t) * np.eye(4)[1] + np.sin(t) * np.eye(4)[2]], 1)
  np.testing.assert_allclose(principal_angles(u, v), [0.0, t], atol=1e-3)
  np.testing.assert_allclose(subspace_distance(u, v), np.sin(t) ** 2 / 2, rtol=1e-5)
  pu, pv = u @ u.T, v @ v.T
  np.testing.assert_allclose(subspace_distance(u, v), np.sum((pu - pv) ** 2) / 4, rtol=1e-5)
  assert float(subspace_distance(u, u)) == pytest.approx(0.0, abs=1e-6)


def test_bad_inputs():
  b = jnp.zeros((2, 5, 2))
  with pytest.raises(ValueError, match="bases must be"):
    molrg_denoiser(jnp.zeros(5), jnp.zeros((5, 2)), sigma=1.0)
  with pytest.raises(ValueError, match="x_t must be"):
    molrg_denoiser(jnp.zeros(4), b, sigma=1.0)
  with pytest.raises(ValueError, match="sigma"):
    molrg_denoiser(jnp.zeros(5), b, sigma=0.0)
  with pytest.raises(ValueError, match="log_weights"):
    molrg_denoiser(jnp.zeros(5), b, sigma=1.0, log_weights=jnp.zeros(3))
  with pytest.raises(ValueError, match="noise must have"):
    molrg_dsm_loss(b, jnp.zeros((3, 5)), jnp.zeros((2, 5)), sigma=1.0)
  with pytest.raises(ValueError, match="u and v"):
    subspace_distance(jnp.zeros((5, 2)), jnp.zeros((5, 3)))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_principal_angles_half_precision(dtype):
  # Half-precision bases used to crash in the SVD (no float16/bfloat16 kernel); computed in float32 now.
  u = jnp.eye(3, 2, dtype=dtype)
  v = jnp.asarray([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]], dtype)
  ang = principal_angles(u, v)
  assert ang.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(ang), [0.0, np.pi / 2], atol=1e-3)
