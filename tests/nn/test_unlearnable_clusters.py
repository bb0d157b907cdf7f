"""Unlearnable Clusters [158]: after projection every perturbed image stays in the eps-ball (l_inf and l_2) and the
pixel range, images of one cluster share one perturbation, against NumPy; the generator KL loss vs NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.nn.unlearnable_clusters import (cluster_wise_perturbation, project_perturbation,
                                                    unlearnable_cluster_loss)


def test_eps_ball_and_cluster_sharing():
  rng = np.random.default_rng(0)
  N, K, eps = 12, 3, 8 / 255
  x = rng.uniform(0, 1, size=(N, 4, 4, 3)).astype(np.float32)
  x[0] = 0.0
  x[1] = 1.0                                                   # saturated images: clipping must not break the bound
  c = rng.integers(0, K, N).astype(np.int32)
  d = rng.normal(scale=0.1, size=(K, 4, 4, 3)).astype(np.float32)   # mostly beyond eps: the projection is active
  f = jax.jit(cluster_wise_perturbation, static_argnames=("eps", "norm"))
  xp = np.asarray(f(jnp.asarray(x), jnp.asarray(c), jnp.asarray(d), eps=eps))
  diff = xp.astype(np.float64) - x
  assert np.abs(diff).max() <= eps * (1 + 1e-6) and xp.min() >= 0 and xp.max() <= 1
  want = np.clip(x + np.clip(d, -eps, eps)[c], 0, 1)
  np.testing.assert_allclose(xp, want, rtol=0, atol=1e-7)
  inside = (x > eps) & (x < 1 - eps)                           # no pixel clipping: exactly the cluster's delta
  for k in range(K):
    rows = np.flatnonzero(c == k)
    for r in rows:
      np.testing.assert_allclose(diff[r][inside[r]], np.clip(d[k], -eps, eps)[inside[r]], atol=1e-6)
  xp2 = np.asarray(f(jnp.asarray(x), jnp.asarray(c), jnp.asarray(d), eps=0.5, norm="l2"))
  assert np.all(np.linalg.norm((xp2.astype(np.float64) - x).reshape(N, -1), axis=1) <= 0.5 * (1 + 1e-6))
  p = np.asarray(project_perturbation(jnp.asarray(d), eps=0.5, norm="l2"))
  np.testing.assert_allclose(np.linalg.norm(p.reshape(K, -1), axis=1), 0.5, rtol=1e-5)   # authors: norm exactly eps
  with pytest.raises(ValueError, match="cluster_ids"):
    cluster_wise_perturbation(jnp.asarray(x), jnp.full(N, K, jnp.int32), jnp.asarray(d), eps=eps)
  with pytest.raises(ValueError, match="eps"):
    project_perturbation(jnp.asarray(d), eps=0.0)


def test_generator_loss_vs_numpy():
  rng = np.random.default_rng(1)
  f, ctr, i = rng.normal(size=(5, 6)), rng.normal(size=(3, 6)), np.array([0, 1, 2, 2, 0])
  with jax.enable_x64(True):
    got = float(unlearnable_cluster_loss(jnp.asarray(f), jnp.asarray(ctr), jnp.asarray(i), offset=1))
  sm = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
  p, q = sm(ctr[(i + 1) % 3]), sm(f)
  np.testing.assert_allclose(got, (p * np.log(p / q)).sum() / 5, rtol=1e-10)
