"""[188] SubGM for robust matrix recovery (Ma & Fattahi 2023, arXiv:2202.08788): the sub-gradient equals autodiff of
the l1 objective, the iteration equals a float64 NumPy transcription of Algorithm 1, the data generator's statistics,
and input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.analysis import l1_recovery_loss, small_initialization, subgm_recovery
from jaxlib_methods.data import robust_sensing_problem


def _numpy_subgm(a, y, u0, steps, eta0, rho, x_star):
  """Algorithm 1 transcribed in float64 NumPy, one measurement at a time. Returns (U_T, losses, errors, Q_0)."""
  u = np.array(u0, np.float64)
  losses, errors, qs = [], [], []
  for t in range(steps):
    q = np.zeros_like(u)
    res = []
    for ai, yi in zip(a, y):
      ri = float(np.sum(ai * (u @ u.T))) - yi
      res.append(ri)
      q += np.sign(ri) * (ai + ai.T) @ u
    losses.append(np.mean(np.abs(res)))
    errors.append(np.linalg.norm(u @ u.T - x_star))
    qs.append(q / len(y))
    u = u - eta0 * rho ** t * q / len(y)
  return u, np.array(losses), np.array(errors), qs[0]


def test_subgm_matches_numpy_and_autodiff_and_jit():
  rng = np.random.default_rng(0)
  d, m = 5, 40
  q = np.linalg.qr(rng.normal(size=(d, 2)))[0]
  x_star = q @ q.T
  a = rng.normal(size=(m, d, d))
  y = np.einsum("mij,ij->m", a, x_star) + (rng.random(m) < 0.25) * rng.normal(size=m) * 10
  u0 = 0.5 * rng.normal(size=(d, 3))
  u_np, loss_np, err_np, q0_np = _numpy_subgm(a, y, u0, 6, 0.05, 0.9, x_star)
  with jax.enable_x64(True):
    # Q_t is the gradient of f_l1 wherever no residual is 0 (almost everywhere): autodiff of the paper's objective.
    q_auto = jax.jit(jax.grad(l1_recovery_loss))(u0, a, y)
    np.testing.assert_allclose(q_auto, q0_np, rtol=1e-10, atol=1e-12)
    # zero-padded columns stay zero: the [d, d] factor padded from rank 3 runs the rank-3 method exactly (this is how
    # the experiment vmaps its r' sweep)
    u, hist = jax.jit(lambda a, y, u0, x: subgm_recovery(a, y, u0, steps=6, eta0=0.05, rho=0.9, reference=x))(
        a, y, np.pad(u0, ((0, 0), (0, 2))), x_star)
  np.testing.assert_allclose(u[:, :3], u_np, rtol=1e-10, atol=1e-12)
  assert np.max(np.abs(np.asarray(u)[:, 3:])) == 0.0
  np.testing.assert_allclose(hist["loss"], loss_np, rtol=1e-10)
  np.testing.assert_allclose(hist["error"], err_np, rtol=1e-10)
  np.testing.assert_allclose(hist["step_size"], 0.05 * 0.9 ** np.arange(6), rtol=1e-12)
  # the generator: X* PSD of rank r with unit eigenvalues, y = A(X*) + s with s != 0 exactly on the outliers
  prob = robust_sensing_problem(jax.random.key(0), d, 2, m, outlier_fraction=0.25)
  eig = np.linalg.eigvalsh(np.asarray(prob.x_star, np.float64))
  np.testing.assert_allclose(eig, [0, 0, 0, 1, 1], atol=1e-5)
  s = np.asarray(prob.y, np.float64) - np.einsum("mij,ij->m", np.asarray(prob.a, np.float64),
                                                 np.asarray(prob.x_star, np.float64))
  np.testing.assert_array_equal(np.abs(s) > 1e-3, np.asarray(prob.outliers))
  assert 0 < int(np.sum(prob.outliers)) < m
  u_init = small_initialization(jax.random.key(1), d, 3, 0.5)
  assert u_init.shape == (d, 3) and abs(float(jnp.linalg.norm(u_init)) - 0.5) < 1e-6


def test_subgm_bad_inputs():
  a, y, u0 = jnp.zeros((4, 3, 3)), jnp.zeros(4), jnp.ones((3, 2))
  with pytest.raises(ValueError, match="a must be"):
    subgm_recovery(jnp.zeros((4, 3, 2)), y, u0, steps=2, eta0=0.1, rho=0.9)
  with pytest.raises(ValueError, match="y must be"):
    subgm_recovery(a, jnp.zeros(5), u0, steps=2, eta0=0.1, rho=0.9)
  with pytest.raises(ValueError, match="u0 must be"):
    subgm_recovery(a, y, jnp.ones((4, 2)), steps=2, eta0=0.1, rho=0.9)
  with pytest.raises(ValueError, match="rho"):
    subgm_recovery(a, y, u0, steps=2, eta0=0.1, rho=1.5)
  with pytest.raises(ValueError, match="eta0"):
    subgm_recovery(a, y, u0, steps=2, eta0=0.0, rho=0.9)
  with pytest.raises(ValueError, match="steps"):
    subgm_recovery(a, y, u0, steps=0, eta0=0.1, rho=0.9)
  with pytest.raises(ValueError, match="reference"):
    subgm_recovery(a, y, u0, steps=2, eta0=0.1, rho=0.9, reference=jnp.zeros((2, 2)))
  with pytest.raises(ValueError, match="alpha"):
    small_initialization(jax.random.key(0), 3, 2, 0.0)
  with pytest.raises(ValueError, match="outlier_fraction"):
    robust_sensing_problem(jax.random.key(0), 4, 2, 10, outlier_fraction=1.0)
  with pytest.raises(ValueError, match="r must be"):
    robust_sensing_problem(jax.random.key(0), 4, 5, 10)
