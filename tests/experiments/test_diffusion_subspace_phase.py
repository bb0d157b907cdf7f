"""[129] diffusion_subspace_phase: the closed-form noise expectation of the K = 1 DSM loss used for training equals a
Monte-Carlo average of the per-draw loss ||a U U^T (x + sigma eps) - x||^2 (NumPy float64 transcription), for a
non-orthonormal U; the jitted trainer recovers the subspace of N > d samples before its step cap (slow)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import diffusion_subspace_phase as exp
from jaxlib_methods.analysis import subspace_distance


def test_expected_dsm_loss_is_the_noise_average():
  rng = np.random.default_rng(0)
  n, d, m, draws = 5, 2, 3, 40_000
  u = rng.normal(size=(n, d))                                      # not orthonormal: the formula holds for any U
  x = rng.normal(size=(m, n))
  sigmas = np.array([0.3, 1.5])
  a = 1.0 / (1.0 + sigmas ** 2)
  x_t = x + sigmas[:, None, None, None] * rng.normal(size=(2, draws, m, n))           # [S, draws, m, n]
  per = np.sum((a[:, None, None, None] * (x_t @ u @ u.T) - x) ** 2, axis=-1)        # [S, draws, m]
  mean, se = per.mean(1), per.std(1) / np.sqrt(draws)
  exact = np.asarray(jax.jit(exp._expected_dsm_loss)(jnp.asarray(u), jnp.asarray(x), jnp.asarray(sigmas)))
  assert exact.shape == (2, m)
  assert np.all(np.abs(exact - mean) < 5 * se)                    # 5 standard errors: failure prob. < 1e-5 per entry


@pytest.mark.slow
def test_trainer_recovers_the_subspace_before_the_cap():
  rng = np.random.default_rng(1)
  q = np.linalg.qr(rng.normal(size=(6, 2)))[0]
  xs = jnp.asarray(rng.normal(size=(4, 2)) @ q.T, jnp.float32)    # N = 4 > d = 2 samples of a 2-dim subspace of R^6
  ut, taken = exp._train(jnp.asarray(rng.normal(size=(6, 2)), jnp.float32), xs, jnp.ones(4), jnp.ones(2),
                         jnp.asarray([0.3, 1.5], jnp.float32), 0.5, 1e-4, steps=3000)
  assert int(taken) < 3000 and float(subspace_distance(ut, jnp.asarray(q, jnp.float32))) < 1e-4
