"""[203] log-barrier FTRL policy vs scipy's constrained minimiser of the same objective and the 2-action closed form;
the linear Q estimator's exact expectation (enumerated) equals the true Q on a toy one-step linear MDP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from jaxlib_methods.analysis import ftrl_log_barrier_policy, linear_q_estimate


def _scipy_ftrl(L, eta):
  """Float64 minimiser of <pi, L> + (1/eta) sum -ln pi over the simplex, by SLSQP on a softmax-free parametrisation."""
  A = L.size
  obj = lambda p: p @ L - np.sum(np.log(p)) / eta
  res = optimize.minimize(obj, np.full(A, 1.0 / A), method="SLSQP", bounds=[(1e-12, 1.0)] * A,
                          constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1.0}],
                          options={"ftol": 1e-14, "maxiter": 500})
  return res.x


def test_ftrl_log_barrier_policy_vs_scipy_and_closed_form():
  rng = np.random.default_rng(0)
  L = np.stack([rng.normal(size=5) * 3.0, np.array([-40.0, 0.0, 2.0, 5.0, 100.0]), np.zeros(5),
                rng.normal(size=5) * 0.01])  # [4 states, 5 actions], negative losses included
  eta = 0.7
  pi = np.asarray(jax.jit(lambda x: ftrl_log_barrier_policy(x, eta))(jnp.asarray(L, jnp.float32)), np.float64)
  for s in range(L.shape[0]):
    np.testing.assert_allclose(pi[s], _scipy_ftrl(L[s], eta), atol=2e-4)
  # KKT: 1 / (eta pi_a) - L_a is the same lambda for every action, and pi sums to 1.
  lam = 1.0 / (eta * pi) - L
  np.testing.assert_allclose(lam - lam.mean(-1, keepdims=True), 0.0, atol=2e-3 * np.abs(lam).max())
  np.testing.assert_allclose(pi.sum(-1), 1.0, atol=1e-6)
  np.testing.assert_allclose(pi[2], 0.2, atol=1e-6)  # equal losses: uniform
  # Two actions, closed form: pi_1 = 1/(eta(L1+lam)), pi_2 = 1 - pi_1 -> quadratic in lam; with D = L2 - L1:
  # pi_1 = (eta D - 2 + sqrt(4 + eta^2 D^2)) / (2 eta D) for D != 0.
  L2 = np.array([[0.3, 1.8], [2.0, -1.0]])
  p = np.asarray(ftrl_log_barrier_policy(jnp.asarray(L2), 1.3), np.float64)
  D = L2[:, 1] - L2[:, 0]
  e = 1.3
  np.testing.assert_allclose(p[:, 0], (e * D - 2 + np.sqrt(4 + e * e * D * D)) / (2 * e * D), rtol=1e-5)


def test_ftrl_log_barrier_policy_errors_and_vmap():
  with pytest.raises(ValueError, match="eta"):
    ftrl_log_barrier_policy(jnp.zeros(3), 0.0)
  with pytest.raises(TypeError, match="cumulative_losses"):
    ftrl_log_barrier_policy(jnp.zeros(3, jnp.int32), 1.0)
  with pytest.raises(ValueError, match="num_iters"):
    ftrl_log_barrier_policy(jnp.zeros(3), 1.0, num_iters=0)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 4)), jnp.float32)
  np.testing.assert_allclose(jax.vmap(lambda r: ftrl_log_barrier_policy(r, 2.0))(x), ftrl_log_barrier_policy(x, 2.0),
                             atol=1e-6)


def test_linear_q_estimate_is_unbiased_on_a_toy_linear_mdp():
  """One-step linear MDP: S states (distribution nu), A actions, Q(s, a) = phi(s, a)^T theta. The exact expectation
  over (s_h, a_h) ~ nu x pi of the estimator, enumerated, must equal Q; and the log-barrier policy on it is the
  FTRL iterate."""
  rng = np.random.default_rng(2)
  S, A, d = 3, 4, 3
  phi = rng.normal(size=(S, A, d))
  theta = rng.normal(size=d)
  Q = phi @ theta
  nu = np.array([0.2, 0.5, 0.3])
  pi = np.asarray(ftrl_log_barrier_policy(jnp.asarray(np.cumsum(rng.normal(size=(S, A)), 0)), 0.5), np.float64)
  w = nu[:, None] * pi  # P(s, a)
  cov = np.einsum("sa,sai,saj->ij", w, phi, phi)
  est = jax.jit(jax.vmap(jax.vmap(linear_q_estimate, (None, None, 0, 0)), (None, None, 0, 0)))(
      jnp.asarray(phi), jnp.asarray(cov), jnp.asarray(phi), jnp.asarray(Q))  # [S, A (taken), S, A (evaluated)]
  expectation = np.einsum("sa,saxy->xy", w, np.asarray(est, np.float64))
  np.testing.assert_allclose(expectation, Q, rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="covariance"):
    linear_q_estimate(jnp.asarray(phi), jnp.eye(d + 1), jnp.asarray(phi[0, 0]), jnp.asarray(1.0))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_linear_q_estimate_half_precision(dtype):
  # Half-precision inputs used to crash in jnp.linalg.solve (no float16/bfloat16 kernel); computed in float32 now,
  # returned in the features' dtype as documented.
  rng = np.random.default_rng(0)
  phi, m, v = rng.normal(size=(2, 3)), rng.normal(size=(3, 3)), rng.normal(size=3)
  cov = m @ m.T + 3 * np.eye(3)
  args = [jnp.asarray(a, dtype) for a in (phi, cov, v, 0.5)]
  q = linear_q_estimate(*args)
  assert q.dtype == dtype
  want = np.asarray(args[0], np.float64) @ np.linalg.solve(np.asarray(args[1], np.float64),
                                                          np.asarray(args[2], np.float64)) * 0.5
  np.testing.assert_allclose(np.asarray(q, np.float64), want, rtol=2e-2, atol=2e-2)
