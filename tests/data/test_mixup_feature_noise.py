"""[41] Zou et al. 2023: decoupled `mixup`, the feature-noise data model and the two-layer `PatchCNN`, against float64
NumPy transcriptions of their equations and the data model's stated statistics (fixed seeds)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxlib_methods.data import feature_noise_data, mixup
from jaxlib_methods.nn import PatchCNN


def test_mixup_equals_numpy_transcription_and_the_papers_mixed_loss():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(6, 3, 4)).astype(np.float32)
  y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]
  lam_x, lam_y, perm = rng.uniform(0.5, 1, 6), rng.uniform(0.5, 1, 6), rng.permutation(6)
  xm, ym = mixup(x, y, lam_x.astype(np.float32), lam_y.astype(np.float32), partner=perm)
  xm, ym = np.asarray(xm), np.asarray(ym)   # rows read on the host (device indexing compiles per index program)
  for i in range(6):
    np.testing.assert_allclose(xm[i], lam_x[i] * x[i] + (1 - lam_x[i]) * x[perm[i]], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ym[i], lam_y[i] * y[i] + (1 - lam_y[i]) * y[perm[i]], rtol=1e-6, atol=1e-6)
  xs, ys = mixup(x, y, 1.0, 1.0, partner=perm)                         # lam = 1: no mixing
  np.testing.assert_array_equal(xs, x)
  np.testing.assert_array_equal(ys, y)
  jitted = jax.jit(lambda a, b, l1, l2, p: mixup(a, b, l1, l2, partner=p))(x, y, lam_x, lam_y, perm)
  np.testing.assert_allclose(jitted[0], xm, atol=1e-6)
  # the paper's loss lam l(y1 f) + (1 - lam) l(y2 f), l(z) = log(1 + e^-z), labels +-1, equals BCE on the mixed
  # {0, 1} label that `mixup` returns
  f, y1 = rng.normal(size=6), np.where(rng.random(6) < 0.5, 1.0, -1.0)
  paper = lam_y * np.log1p(np.exp(-y1 * f)) + (1 - lam_y) * np.log1p(np.exp(-y1[perm] * f))
  _, y01 = mixup(np.zeros((6, 1), np.float32), (y1 > 0).astype(np.float64), 0.5, lam_y, partner=perm)
  np.testing.assert_allclose(optax.losses.sigmoid_binary_cross_entropy(f, y01), paper, rtol=1e-5)
  with pytest.raises(ValueError, match="lam_x must lie in"):
    mixup(x, y, 1.5, 1.0, partner=perm)
  with pytest.raises(ValueError, match="lam_y must be a scalar or of shape"):
    mixup(x, y, 1.0, np.ones(5), partner=perm)
  with pytest.raises(ValueError, match="partner must hold indices"):
    mixup(x, y, 1.0, 1.0, partner=perm + 1)
  with pytest.raises(TypeError, match="partner must be an integer"):
    mixup(x, y, 1.0, 1.0, partner=perm.astype(np.float32))
  with pytest.raises(TypeError, match="y must be a floating"):
    mixup(x, np.arange(6), 1.0, 1.0, partner=perm)


def test_feature_noise_data_follows_the_model():
  n, d, p, rho, sig, alpha = 4000, 12, 4, 0.2, 0.7, 0.3
  sample = jax.jit(feature_noise_data, static_argnames=("n", "dim", "num_patches", "rare"))   # jit-safe, one compile
  data = sample(jax.random.key(0), n=n, dim=d, num_patches=p, rare_prob=rho, noise_std=sig, feature_noise=alpha)
  x, y, rare, feats = (np.asarray(a, np.float64) for a in data)
  assert x.shape == (n, p, d) and set(np.unique(y)) == {-1, 1}
  np.testing.assert_allclose(feats @ feats.T, np.eye(4))                  # orthonormal v+, v-, u+, u-
  v = {1: feats[0], -1: feats[1]}
  u = {1: feats[2], -1: feats[3]}
  expect = np.stack([u[int(c)] if r else v[int(c)] for c, r in zip(y, rare)])
  np.testing.assert_array_equal(x[:, 0], expect)                         # the feature patch
  is_plus = np.all(np.isclose(x[:, 1], alpha * feats[0], atol=1e-6), 1)
  assert np.all(is_plus | np.all(np.isclose(x[:, 1], alpha * feats[1], atol=1e-6), 1))   # feature noise alpha v_s
  s_is_y = np.where(is_plus, 1, -1) == y
  sd = np.sqrt(0.25 / n)                                                 # binomial std of a fraction near 1/2
  assert abs(s_is_y.mean() - 0.5) < 5 * sd and abs(y.mean()) < 10 * sd  # s independent of y; balanced labels
  assert abs(rare.mean() - rho) < 5 * np.sqrt(rho * (1 - rho) / n)       # 5-sigma: failure prob. < 1e-6
  noise = x[:, 2:]
  np.testing.assert_array_equal(noise[..., :4], 0.0)                     # orthogonal to the features
  assert abs(noise[..., 4:].std() / sig - 1) < 0.03   # 64000 draws: std error 0.3%
  only_rare = sample(jax.random.key(1), n=n, dim=d, num_patches=p, rare_prob=rho, noise_std=sig,
                     feature_noise=alpha, rare=True)
  assert bool(only_rare.rare.all()) and np.all(np.asarray(only_rare.x[:, 0, 2:4]).any(1))   # the feature patch is u_y
  with pytest.raises(ValueError, match="rare_prob"):
    feature_noise_data(jax.random.key(0), 5, dim=d, rare_prob=1.5)
  with pytest.raises(ValueError, match="num_patches"):
    feature_noise_data(jax.random.key(0), 5, dim=d, num_patches=1)
  with pytest.raises(ValueError, match="dim must be an int >= 5"):
    feature_noise_data(jax.random.key(0), 5, dim=4)


def test_patch_cnn_equals_the_papers_formula_and_jits():
  model = PatchCNN(5, 3, power=3.0, init_std=0.5, rngs=nnx.Rngs(0))
  x = np.random.default_rng(1).normal(size=(4, 2, 5)).astype(np.float32)
  w = np.asarray(model.weight_jmd[...], np.float64)
  ref = np.zeros(4)
  for i in range(4):
    for j, sign in ((0, 1.0), (1, -1.0)):
      ref[i] += sign * np.mean([sum(max(0.0, float(w[j, r] @ x[i, q])) ** 3 for q in range(2)) for r in range(3)])
  np.testing.assert_allclose(model(x), ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(nnx.jit(lambda m, a: m(a))(model, x), ref, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="power must be >= 1"):
    PatchCNN(5, 3, power=0.5, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="x must be"):
    model(jnp.zeros((4, 2, 6)))


def test_feature_noise_data_rejects_non_integer_sizes():
  """n = 2.7, dim = 8.9, num_patches = 3.9 were truncated by int() and a smaller data set returned silently."""
  for kw in ({"n": 2.7, "dim": 8}, {"n": 2, "dim": 8.9}, {"n": 2, "dim": 8, "num_patches": 3.9}):
    name = next(k for k, v in kw.items() if isinstance(v, float))
    with pytest.raises(ValueError, match=name):
      feature_noise_data(jax.random.key(0), **kw)
  assert feature_noise_data(jax.random.key(0), np.int64(2), dim=np.int64(6)).x.shape == (2, 3, 6)
