"""Sparse-CBM [1] (issue 20): the Gumbel-softmax sample and Sparse-CBM's contrastive Gumbel objective (value, and
-m slow: its gradient against central differences) against float64
NumPy transcriptions on the same noise; the hard sample is one-hot (exactly one non-zero per row) with the soft
sample's gradient (straight-through); the Gumbel-max trick's frequencies match softmax(logits) (a chi-square test);
the L1 penalty and the layer's two linear maps against NumPy; the NNX contract; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import ConceptBottleneckLayer, cbl_l1_loss, gumbel_softmax, gumbel_sparse_cbl_loss
from tests.nn._layer_contract import check_layer_contract


def _log_softmax(x, axis):
  m = x.max(axis, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


def test_gumbel_softmax_and_loss_against_numpy_and_straight_through():
  rng = np.random.default_rng(0)
  b, c, tau = 5, 7, 0.7
  logits = rng.normal(size=(b, c)).astype(np.float32)
  w = rng.normal(size=(b, c)).astype(np.float32)
  key = jax.random.key(3)
  k0, k1 = jax.random.split(key)

  @jax.jit
  def run(logits):
    soft = gumbel_softmax(key, logits, tau=tau)
    hard = gumbel_softmax(key, logits, tau=tau, hard=True)
    g_soft = jax.grad(lambda l: jnp.sum(w * gumbel_softmax(key, l, tau=tau)))(logits)
    g_hard = jax.grad(lambda l: jnp.sum(w * gumbel_softmax(key, l, tau=tau, hard=True)))(logits)
    return soft, hard, g_soft, g_hard, gumbel_sparse_cbl_loss(key, logits, tau=tau)

  soft, hard, g_soft, g_hard, loss = map(np.asarray, run(jnp.asarray(logits)))
  g = np.asarray(jax.random.gumbel(key, (b, c), jnp.float32), np.float64)
  z = (logits.astype(np.float64) + g) / tau
  np.testing.assert_allclose(soft, np.exp(_log_softmax(z, 1)), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(hard, np.eye(c)[np.argmax(logits + g, 1)])   # one-hot: exactly one non-zero per row
  assert np.all((hard != 0).sum(1) == 1)
  np.testing.assert_allclose(g_hard, g_soft, rtol=1e-6, atol=1e-7)             # straight-through: the soft gradient
  g0 = np.asarray(jax.random.gumbel(k0, (b, c), jnp.float32), np.float64)
  g1 = np.asarray(jax.random.gumbel(k1, (b, c), jnp.float32), np.float64)
  l64 = logits.astype(np.float64)
  ref = 0.5 * (-_log_softmax((l64 + g0) / tau, 0).mean() - _log_softmax((l64 + g1) / tau, 1).mean())
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  # L1 penalty and the layer's maps
  kernel = rng.normal(size=(c, c)).astype(np.float32)
  np.testing.assert_allclose(float(cbl_l1_loss(kernel, l1_lambda=0.3)), 0.3 * np.abs(kernel).sum() / c, rtol=1e-6)
  layer = ConceptBottleneckLayer(c, 3, rngs=nnx.Rngs(0))
  a, y = layer(jnp.asarray(logits))
  wc, wh = np.asarray(layer.cbl.kernel[...], np.float64), np.asarray(layer.head.kernel[...], np.float64)
  np.testing.assert_allclose(np.asarray(a), l64 @ wc, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(y), l64 @ wc @ wh, rtol=1e-5, atol=1e-5)
  # errors
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="tau"):
    gumbel_softmax(key, jnp.ones((2, 3)), tau=0.0)
  with pytest.raises(TypeError, match="logits"):
    gumbel_softmax(key, jnp.ones((2, 3), jnp.int32))
  with pytest.raises(ValueError, match="concept_logits"):
    gumbel_sparse_cbl_loss(key, jnp.ones((3,)))
  with pytest.raises(ValueError, match="l1_lambda"):
    cbl_l1_loss(jnp.ones((3, 3)), l1_lambda=-1.0)
  with pytest.raises(ValueError, match="num_classes"):
    ConceptBottleneckLayer(4, 1, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="C=4"):
    ConceptBottleneckLayer(4, 2, rngs=nnx.Rngs(0))(jnp.ones((2, 5)))


@pytest.mark.slow  # one more compile; the value of the loss is checked in the default run
def test_gumbel_loss_gradient_matches_finite_differences():
  rng = np.random.default_rng(1)
  b, c, tau = 4, 5, 0.7
  l64 = rng.normal(size=(b, c))
  key = jax.random.key(3)
  k0, k1 = jax.random.split(key)
  g_loss = np.asarray(jax.jit(jax.grad(lambda l: gumbel_sparse_cbl_loss(key, l, tau=tau)))(
      jnp.asarray(l64, jnp.float32)))
  g0 = np.asarray(jax.random.gumbel(k0, (b, c), jnp.float32), np.float64)
  g1 = np.asarray(jax.random.gumbel(k1, (b, c), jnp.float32), np.float64)

  def ref_loss(l):  # the float64 NumPy transcription on the same noise
    return 0.5 * (-_log_softmax((l + g0) / tau, 0).mean() - _log_softmax((l + g1) / tau, 1).mean())
  eps, num = 1e-6, np.zeros((b, c))
  for i in range(b):
    for j in range(c):
      d = np.zeros((b, c))
      d[i, j] = eps
      num[i, j] = (ref_loss(l64 + d) - ref_loss(l64 - d)) / (2 * eps)
  np.testing.assert_allclose(g_loss, num, rtol=1e-3, atol=1e-6)


@pytest.mark.slow  # a statistical check of the sampler (one more compile); the exact checks stay in the default run
def test_gumbel_max_frequencies_match_softmax():
  # 20000 hard samples of a 4-way categorical: Pearson chi-square with 3 dof; the 0.999 quantile is 16.27, so this
  # fixed-seed test would fail with probability 1e-3 for a correct sampler.
  logits = jnp.asarray([1.0, 0.0, -0.5, 2.0])
  n = 20000
  samples = jax.jit(lambda k: gumbel_softmax(k, jnp.broadcast_to(logits, (n, 4)), tau=0.5, hard=True))(
      jax.random.key(11))
  counts = np.asarray(samples).sum(0)
  p = np.exp(np.asarray(logits, np.float64)) / np.exp(np.asarray(logits, np.float64)).sum()
  chi2 = np.sum((counts - n * p) ** 2 / (n * p))
  assert chi2 < 16.27, (counts, n * p, chi2)


class _Cbm(nnx.Module):
  def __init__(self, param_dtype):
    self.m = ConceptBottleneckLayer(6, 3, rngs=nnx.Rngs(0), param_dtype=param_dtype)

  def __call__(self, x):
    return self.m(x)[1]


@pytest.mark.slow  # nnx.jit, split/merge train step, bf16, orbax: a few seconds of compiles
def test_sparse_cbm_layer_contract(tmp_path):
  x = jax.random.normal(jax.random.key(0), (8, 6))
  labels = jnp.arange(8) % 3

  def loss(m, x):
    a, logits = m.m(x)
    ce = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits.astype(jnp.float32)), labels[:, None], 1))
    return ce + gumbel_sparse_cbl_loss(jax.random.key(1), a)
  check_layer_contract(_Cbm, x, tmp_path, loss=loss)
