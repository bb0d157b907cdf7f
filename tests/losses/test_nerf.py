"""FlipNeRF [0]: the flipped reflection rays' exact geometry (unit norm kept, r·n = −(d·n) for the mirror reflection,
the flipped ray meets the same surface point at the same depth) and the uncertainty-aware emptiness loss vs a float64
NumPy transcription of the authors' `ue_loss`, with its stop-gradient on the uncertainty."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses

RNG = np.random.default_rng(0)


def test_flipped_reflection_rays_geometry_is_exact():
  r = 64
  o = RNG.normal(size=(r, 3))
  d = RNG.normal(size=(r, 3))
  d /= np.linalg.norm(d, axis=-1, keepdims=True)
  n = RNG.normal(size=(r, 3))
  t = RNG.uniform(0.5, 3.0, size=r)
  with jax.enable_x64(True):
    fo, fd, valid = jax.jit(losses.flipped_reflection_rays)(*(jnp.asarray(a) for a in (o, d, n, t)))
    fo, fd, valid = np.asarray(fo), np.asarray(fd), np.asarray(valid)
  nh = n / np.linalg.norm(n, axis=-1, keepdims=True)
  dn = np.sum(d * nh, -1)
  np.testing.assert_allclose(np.linalg.norm(fd, axis=-1), 1.0, atol=1e-12)        # unit norm kept
  np.testing.assert_allclose(np.sum(-fd * nh, -1), -dn, atol=1e-12)                # mirror r = -d': r.n = -(d.n)
  np.testing.assert_allclose(-fd, d - 2 * dn[:, None] * nh, atol=1e-12)            # r = d - 2 (d.n) n
  np.testing.assert_allclose(fo + t[:, None] * fd, o + t[:, None] * d, atol=1e-12)  # same point, same depth t
  np.testing.assert_array_equal(valid, -dn > 0)
  assert 0 < valid.sum() < r
  o32 = jnp.asarray(o, jnp.float32)
  fo32, fd32, _ = losses.flipped_reflection_rays(o32, o32, o32, jnp.ones(r))
  assert fo32.dtype == jnp.float32
  with pytest.raises(ValueError, match="t must be"):
    losses.flipped_reflection_rays(o32, o32, o32, jnp.ones(r + 1))
  with pytest.raises(ValueError, match="directions"):
    losses.flipped_reflection_rays(o32, o32[:, :2], o32, jnp.ones(r))


def test_uncertainty_aware_emptiness_loss_matches_numpy_transcription():
  r, s = 5, 7
  w = RNG.uniform(0, 0.5, size=(r, s)).astype(np.float32)
  beta = RNG.uniform(0.01, 0.2, size=(r, s, 3)).astype(np.float32)
  loss = lambda w, b: losses.uncertainty_aware_emptiness_loss(w, b, eta=2.0)
  run = jax.jit(lambda w, b: (loss(w, b), jax.grad(lambda w, b: loss(w, b).sum(), argnums=(0, 1))(w, b)))
  got, (gw, gb) = run(w, beta)
  rho = beta.astype(np.float64).sum(1).mean(-1, keepdims=True)  # the authors' gamma.sum(axis=1).mean(axis=-1)
  ref = np.mean(np.log(1.0 + 2.0 * rho * w.astype(np.float64)), -1)
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5)
  # rho is stop-gradient: no gradient reaches the uncertainty; the weights get eta rho / (1 + eta rho w) / S.
  assert np.all(np.asarray(gb) == 0)
  np.testing.assert_allclose(np.asarray(gw), 2.0 * rho / (1 + 2.0 * rho * w) / s, rtol=1e-5)
  with pytest.raises(ValueError, match="weights"):
    losses.uncertainty_aware_emptiness_loss(-w, beta)
  with pytest.raises(ValueError, match="eta"):
    losses.uncertainty_aware_emptiness_loss(w, beta, eta=0.0)


def test_flipped_reflection_rays_zero_normal_is_finite_and_masked():
  # Regression: the normal (and the direction in the validity test) was normalised with jnp.linalg.norm, so a zero
  # normal (a ray whose weights vanish, hence whose averaged normal is 0) gave NaN rays and a NaN gradient that a
  # jnp.where on `valid` cannot stop.
  o = jnp.zeros((2, 3))
  d = jnp.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
  n = jnp.array([[0.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
  t = jnp.ones(2)
  fo, fd, valid = losses.flipped_reflection_rays(o, d, n, t)
  np.testing.assert_array_equal(np.asarray(valid), [True, False])
  assert np.all(np.isfinite(np.asarray(fo))) and np.all(np.isfinite(np.asarray(fd)))

  def f(n):
    fo, fd, valid = losses.flipped_reflection_rays(o, d, n, t)
    return jnp.sum(jnp.where(valid[:, None], fo + fd, 0.0))

  g = jax.jit(jax.grad(f))(n)
  assert np.all(np.isfinite(np.asarray(g)))
