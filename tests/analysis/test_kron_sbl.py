"""[207] Kronecker SBL: the Kronecker identity vs dense np.kron, the AM M-step is the exact coordinate minimiser
(its gradient in log-gamma vanishes, by autodiff of the objective), the SVD M-step is the rank-1 SVD of D (NumPy),
the E-step equals the dense float64 posterior, and a Kronecker-supported sparse x is recovered on a toy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.analysis import kron_matvec, kron_sbl, kron_sbl_m_step_am, kron_sbl_m_step_svd
from jaxlib_methods.analysis.kronecker_sbl import _sbl_posterior


def test_kron_identities_and_m_steps_exact():
  rng = np.random.default_rng(0)
  A1, A2 = rng.normal(size=(3, 4)), rng.normal(size=(5, 2))
  x = rng.normal(size=(2, 8))
  np.testing.assert_allclose(jax.jit(kron_matvec)(jnp.asarray(A1), jnp.asarray(A2), jnp.asarray(x)),
                             x @ np.kron(A1, A2).T, rtol=1e-5, atol=1e-5)
  # AM: each half-step is the exact minimiser of f(g1, g2) = sum D/(g1 g2) + n2 sum ln g1 + n1 sum ln g2 in its block.
  D = jnp.asarray(rng.uniform(0.1, 2.0, size=(4, 3)))
  g2 = jnp.asarray(rng.uniform(0.5, 2.0, size=3))
  f = lambda lg1, lg2: (jnp.sum(D / jnp.outer(jnp.exp(lg1), jnp.exp(lg2))) + 3 * lg1.sum() + 4 * lg2.sum())
  g1n, g2n = jax.jit(kron_sbl_m_step_am)(D, g2)
  g1a = g1n  # the first half-step: gamma_1 given the old gamma_2 (one sweep updates gamma_1, then gamma_2)
  grads = jax.jit(lambda a, b, c: (jax.grad(f, 1)(a, b), jax.grad(f, 0)(a, c), f(a, b), f(a, c)))
  g_2, g_1, f_new, f_half = grads(jnp.log(g1n), jnp.log(g2n), jnp.log(g2))
  np.testing.assert_allclose(g_2, 0.0, atol=1e-5)  # last half-step exact: grad in gamma_2 vanishes
  np.testing.assert_allclose(g_1, 0.0, atol=1e-5)  # first half-step exact: grad in gamma_1 (at old gamma_2) vanishes
  assert f_new <= f_half + 1e-6  # monotone
  # SVD: gamma_1 gamma_2^T is the best rank-1 approximation of D.
  s1, s2 = jax.jit(kron_sbl_m_step_svd)(D)
  u, s, vt = np.linalg.svd(np.asarray(D, np.float64))
  np.testing.assert_allclose(np.outer(s1, s2), s[0] * np.outer(u[:, 0], vt[0]), rtol=1e-4)
  assert np.all(np.asarray(s1) > 0) and np.all(np.asarray(s2) > 0)
  # E-step vs the dense float64 inverse.
  A = rng.normal(size=(6, 8))
  y = rng.normal(size=6)
  gam = rng.uniform(0.1, 2.0, size=8)
  Sig = np.linalg.inv(np.diag(1 / gam) + A.T @ A / 0.3)
  mu, sd = jax.jit(_sbl_posterior, static_argnums=3)(jnp.asarray(A), jnp.asarray(y), jnp.asarray(gam), 0.3)
  np.testing.assert_allclose(mu, Sig @ A.T @ y / 0.3, rtol=1e-3, atol=1e-4)
  np.testing.assert_allclose(sd, np.diag(Sig), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("method", ["am", pytest.param("svd", marks=pytest.mark.slow)])
def test_kron_sbl_recovers_kronecker_supported_sparse_vector(method):
  """x = x1 kron x2 with 2-sparse x1 (n1=12) and 2-sparse x2 (n2=10): 4 nonzeros in 120, from 8 x 7 = 56
  Gaussian measurements at SNR ~ 40 dB; NMSE = ||mu - x||^2 / ||x||^2 must fall below 1e-2 (typical: 1e-4)."""
  rng = np.random.default_rng(1)
  n1, n2, m1, m2 = 12, 10, 8, 7
  A1, A2 = rng.normal(size=(m1, n1)) / np.sqrt(m1), rng.normal(size=(m2, n2)) / np.sqrt(m2)
  x1, x2 = np.zeros(n1), np.zeros(n2)
  x1[[2, 7]] = rng.choice([-1, 1], 2) * rng.uniform(1, 2, 2)
  x2[[0, 5]] = rng.choice([-1, 1], 2) * rng.uniform(1, 2, 2)
  x = np.kron(x1, x2)
  noise_var = 1e-4
  y = np.kron(A1, A2) @ x + rng.normal(size=m1 * m2) * np.sqrt(noise_var)
  res = jax.jit(lambda y, a, b: kron_sbl(y, a, b, noise_var=noise_var, method=method, num_iters=60))(
      jnp.asarray(y, jnp.float32), jnp.asarray(A1, jnp.float32), jnp.asarray(A2, jnp.float32))
  nmse = np.sum((np.asarray(res.mu) - x) ** 2) / np.sum(x ** 2)
  assert nmse < 1e-2, nmse
  with pytest.raises(ValueError, match="method"):
    kron_sbl(jnp.asarray(y), jnp.asarray(A1), jnp.asarray(A2), noise_var=1e-3, method="bad")
  with pytest.raises(ValueError, match="y must be"):
    kron_sbl(jnp.asarray(y[:-1]), jnp.asarray(A1), jnp.asarray(A2), noise_var=1e-3)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_kron_sbl_half_precision_inputs(dtype):
  # Half-precision inputs used to crash (NotImplementedError: no float16/bfloat16 Cholesky or SVD); they are now
  # computed in float32 like the rest of the library's diagnostics.
  rng = np.random.default_rng(0)
  a1, a2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
  x = np.zeros(9)
  x[[1, 5]] = [1.0, -2.0]
  y = np.kron(a1, a2) @ x
  for method in ("am", "svd"):
    r = kron_sbl(jnp.asarray(y, dtype), jnp.asarray(a1, dtype), jnp.asarray(a2, dtype), noise_var=1e-3,
                 method=method)
    r32 = kron_sbl(*(jnp.asarray(np.asarray(jnp.asarray(v, dtype), np.float32)) for v in (y, a1, a2)),
                   noise_var=1e-3, method=method)                  # the same rounded inputs, in float32
    assert r.mu.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(r.mu), np.asarray(r32.mu), atol=1e-5)
    if method == "am":
      np.testing.assert_allclose(np.asarray(r.mu), x, atol=0.05)
  g1, g2 = kron_sbl_m_step_svd(jnp.ones((2, 3), dtype))
  np.testing.assert_allclose(np.outer(np.asarray(g1), np.asarray(g2)), np.ones((2, 3)), rtol=1e-5)
