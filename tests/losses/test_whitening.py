"""Shuffled group whitening [152]: exact identity covariance per group, vs a float64 NumPy/SciPy transcription."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import sqrtm

from jaxlib_methods import losses


def _np_sgw(z, perm, groups):
  n, d = z.shape
  k = d // groups
  out = np.empty_like(z)
  for g in range(groups):
    cols = perm[g * k:(g + 1) * k]
    x = z[:, cols] - z[:, cols].mean(0)
    out[:, cols] = x @ np.linalg.inv(np.real(sqrtm(x.T @ x / n)))  # Sigma^(-1/2) by a different route
  return out


def test_sgw_identity_covariance_and_numpy_float64():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(16, 6)) @ rng.normal(size=(6, 6))  # correlated dimensions
  key = jax.random.key(3)
  with jax.enable_x64(True):
    sgw = jax.jit(losses.shuffled_group_whitening, static_argnames="num_groups")
    out = np.asarray(sgw(jnp.asarray(z), key, num_groups=2))
    perm = np.asarray(jax.random.permutation(key, 6))
    np.testing.assert_allclose(out, _np_sgw(z, perm, 2), rtol=1e-9, atol=1e-10)
    for g in range(2):
      cols = perm[3 * g:3 * g + 3]
      x = out[:, cols] - out[:, cols].mean(0)
      np.testing.assert_allclose(x.T @ x / 16, np.eye(3), atol=1e-10)
    one = np.asarray(sgw(jnp.asarray(z), key, num_groups=1))
    np.testing.assert_allclose(np.cov(one.T, bias=True), np.eye(6), atol=1e-10)
    other = np.asarray(sgw(jnp.asarray(z), jax.random.key(4), num_groups=2))
    assert np.abs(other - out).max() > 1e-3  # another permutation, another whitened view


@pytest.mark.slow  # the eigh gradient compiles slowly on the shared machine
def test_sgw_gradient_vs_finite_differences_float64():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(16, 6)) @ rng.normal(size=(6, 6))
  key = jax.random.key(3)
  perm = np.asarray(jax.random.permutation(key, 6))
  with jax.enable_x64(True):
    sgw = jax.jit(losses.shuffled_group_whitening, static_argnames="num_groups")
    # gradient of <R, SGW(z)> against central finite differences of the NumPy transcription
    r = rng.normal(size=z.shape)
    g = np.asarray(jax.grad(lambda a: jnp.sum(jnp.asarray(r) * sgw(a, key, num_groups=2)))(jnp.asarray(z)))
    eps, fd = 1e-6, np.zeros_like(z)
    for i in np.ndindex(z.shape):
      e = np.zeros_like(z)
      e[i] = eps
      fd[i] = (np.sum(r * _np_sgw(z + e, perm, 2)) - np.sum(r * _np_sgw(z - e, perm, 2))) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_sgw_bad_input_and_half():
  z = jnp.asarray(np.random.default_rng(1).normal(size=(8, 4)), jnp.float32)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="num_groups"):
    losses.shuffled_group_whitening(z, key, 3)
  with pytest.raises(ValueError, match="z"):
    losses.shuffled_group_whitening(z[0], key, 1)
  with pytest.raises(TypeError, match="z"):
    losses.shuffled_group_whitening(z.astype(jnp.int32), key, 1)
  with pytest.raises(ValueError, match="eps"):
    losses.shuffled_group_whitening(z, key, 1, eps=-1.0)
  assert jax.jit(losses.shuffled_group_whitening, static_argnums=2)(z.astype(jnp.bfloat16), key, 2).dtype == jnp.float32
  # audit 2026-12-03: N <= D / G rows make every centred group covariance singular: exact whitening used to return
  # NaN silently; now a clear error (with eps > 0 it is defined); a NumPy integer G is an int
  with pytest.raises(ValueError, match="rows"):
    losses.shuffled_group_whitening(z[:3], key, 1)
  assert np.isfinite(np.asarray(losses.shuffled_group_whitening(z[:3], key, 1, eps=1e-3))).all()
  assert losses.shuffled_group_whitening(z, key, np.int64(2)).shape == z.shape
  with pytest.raises(ValueError, match="num_groups"):
    losses.shuffled_group_whitening(z, key, True)
