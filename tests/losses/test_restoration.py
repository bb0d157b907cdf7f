"""Denoising as Adaptation's conditioned diffusion loss [171] vs a float64 NumPy transcription of Eq. 1 with a linear
noise predictor, and its gradient into the condition (the restoration network's output) vs the analytic one; C-BSN's
downsampled invariance loss [210] vs NumPy, with its stop-gradient on the blind branch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import losses

RNG = np.random.default_rng(0)


def test_conditioned_diffusion_loss_matches_numpy_and_differentiates_the_condition():
  b = 4
  x0 = RNG.normal(size=(b, 3, 3, 2)).astype(np.float32)
  cond = RNG.normal(size=(b, 3, 3, 4)).astype(np.float32)  # e.g. [restored synthetic, restored real] channels
  m = RNG.normal(size=(4, 2)).astype(np.float32)
  ab = np.array([0.9, 0.5, 0.1, 1.0], np.float32)
  t = np.arange(b)
  key = jax.random.key(5)
  eps_fn = lambda xt, t, c: 0.3 * xt + c @ jnp.asarray(m)
  loss = lambda c, r="mean": losses.conditioned_diffusion_loss(eps_fn, x0, c, t, ab, key, reduction=r)
  run = jax.jit(lambda c: (loss(c), jax.grad(lambda c: loss(c).sum())(c), loss(c, "sum"),
                           jax.random.normal(key, x0.shape, jnp.float32)))  # one compilation; the documented draw
  got, g, total, eps = (np.asarray(v) for v in run(jnp.asarray(cond)))
  eps = eps.astype(np.float64)
  a4 = ab.astype(np.float64)[:, None, None, None]
  xt = np.sqrt(a4) * x0 + np.sqrt(1 - a4) * eps
  res = eps - (0.3 * xt + cond.astype(np.float64) @ m)
  np.testing.assert_allclose(got, np.mean(res ** 2, axis=(1, 2, 3)), rtol=1e-5)
  np.testing.assert_allclose(g, -2 * res @ m.T / res[0].size, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(total, np.sum(res ** 2, axis=(1, 2, 3)), rtol=1e-5)
  with pytest.raises(ValueError, match="alpha_bar"):
    losses.conditioned_diffusion_loss(eps_fn, x0, cond, t, ab * 0, key)
  with pytest.raises(ValueError, match="cond"):
    losses.conditioned_diffusion_loss(eps_fn, x0, cond[:2], t, ab, key)


def test_downsampled_invariance_loss_matches_numpy_and_stops_the_blind_branch():
  u = RNG.normal(size=(2, 4, 6, 3)).astype(np.float32)
  m = RNG.normal(size=(2, 2, 3, 3)).astype(np.float32)
  idx = RNG.integers(0, 4, size=(2, 2, 3)).astype(np.int32)
  loss = lambda u, m: losses.downsampled_invariance_loss(u, m, jnp.asarray(idx), stride=2)
  run = jax.jit(lambda u, m: (loss(u, m), jax.grad(lambda u, m: loss(u, m).sum(), argnums=(0, 1))(u, m)))
  got, (gu, gm) = run(u, m)
  sub = np.stack([np.stack([np.stack([u[b, 2 * i + idx[b, i, j] // 2, 2 * j + idx[b, i, j] % 2] for j in range(3)])
                            for i in range(2)]) for b in range(2)])
  np.testing.assert_allclose(np.asarray(got), np.abs(sub.astype(np.float64) - m).mean(axis=(1, 2, 3)), rtol=1e-6)
  assert np.all(np.asarray(gm) == 0)  # the blind branch is the (fixed) target
  assert np.count_nonzero(np.asarray(gu)) == sub.size  # exactly the subsampled pixels of the non-blind output
  with pytest.raises(ValueError, match="masked_sub_output"):
    losses.downsampled_invariance_loss(u, m[:, :1], jnp.asarray(idx))
