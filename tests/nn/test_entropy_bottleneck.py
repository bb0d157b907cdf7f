"""Entropy bottleneck [45] (issue 20): the learned CDF network against a float64 NumPy transcription of Ballé et al.'s
App. 6.1; the likelihood sums to 1 over the integers and is a CDF difference; the rate in bits against NumPy; test
mode rounds, training mode adds U(-1/2, 1/2) noise (checked: |y~ - y| <= 1/2 with the gradient of y~ w.r.t. y the
identity); the Entropic Student loss against NumPy, with no gradient into the teacher; the NNX contract; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import EntropyBottleneck, entropic_student_loss, rate_bits
from tests.nn._layer_contract import check_layer_contract


def _np_logits(eb, v):  # v [N, C] -> [N, C]
  f = lambda a: np.asarray(a, np.float64)
  softplus = lambda a: np.log1p(np.exp(a))
  u = v.T[:, None, :]
  for i in range(len(eb.matrices)):
    u = np.einsum("cij,cjn->cin", softplus(f(eb.matrices[i][...])), u) + f(eb.biases[i][...])
    if i < len(eb.factors):
      u = u + np.tanh(f(eb.factors[i][...])) * np.tanh(u)
  return u[:, 0, :].T


def test_entropy_bottleneck_cdf_normalisation_rate_and_loss():
  rng = np.random.default_rng(0)
  c = 3
  eb = EntropyBottleneck(c, rngs=nnx.Rngs(0))
  gd, params, rest = nnx.split(eb, nnx.Param, ...)         # perturb the init so the check is not at a special point
  params = jax.tree.map(lambda p: p + 0.3 * jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
  eb = nnx.merge(gd, params, rest)
  ints = np.arange(-300, 301, dtype=np.float64)[:, None].repeat(c, 1)
  y = rng.normal(size=(5, c)).astype(np.float32) * 3
  s, t = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(5, 4)).astype(np.float32)

  @jax.jit
  def run(ints, y, s, t):
    y_hat, lik = eb(y)
    y_t, _ = eb(y, key=jax.random.key(1))
    g = jax.grad(lambda y: jnp.sum(eb(y, key=jax.random.key(1))[0]))(y)
    loss = entropic_student_loss(s, t, lik, beta=0.2)
    g_t = jax.grad(lambda t: entropic_student_loss(s, t, lik, beta=0.2).sum())(t)
    return eb.likelihood(ints), y_hat, rate_bits(lik), y_t, g, loss, g_t

  p_int, y_hat, bits, y_t, g, loss, g_t = jax.tree.map(np.asarray, run(
      jnp.asarray(ints, jnp.float32), jnp.asarray(y), jnp.asarray(s), jnp.asarray(t)))
  p_int = p_int.astype(np.float64)
  sig = lambda a: 1 / (1 + np.exp(-a))
  ref = sig(_np_logits(eb, ints + 0.5)) - sig(_np_logits(eb, ints - 0.5))
  big = ref > 1e-6
  np.testing.assert_allclose(p_int[big], ref[big], rtol=1e-4)
  np.testing.assert_allclose(p_int.sum(0), 1.0, atol=1e-4)                           # sums to 1 over the integers
  np.testing.assert_array_equal(y_hat, np.round(y))
  yr = np.round(y).astype(np.float64)
  ref_bits = -np.log2(sig(_np_logits(eb, yr + 0.5)) - sig(_np_logits(eb, yr - 0.5))).sum(1)
  np.testing.assert_allclose(bits, ref_bits, rtol=1e-4)
  assert np.all(np.abs(y_t - y) <= 0.5)
  np.testing.assert_array_equal(g, 1.0)
  np.testing.assert_allclose(loss, ((s - t) ** 2).sum(1) + 0.2 * ref_bits, rtol=1e-4)
  np.testing.assert_array_equal(g_t, 0.0)
  lik = jnp.ones((5, c)) * 0.5
  with pytest.raises(ValueError, match="C=3"):
    eb(jnp.ones((2, 4)))
  with pytest.raises(ValueError, match="beta"):
    entropic_student_loss(jnp.asarray(s), jnp.asarray(t), lik, beta=-1.0)
  with pytest.raises(ValueError, match="num_channels"):
    EntropyBottleneck(0, rngs=nnx.Rngs(0))


class _Wrap(nnx.Module):
  def __init__(self, param_dtype):
    self.lin = nnx.Linear(4, 3, rngs=nnx.Rngs(0), param_dtype=param_dtype)
    self.eb = EntropyBottleneck(3, rngs=nnx.Rngs(0), param_dtype=param_dtype)

  def __call__(self, x):
    return self.eb(self.lin(x), key=jax.random.key(0))[1]


@pytest.mark.slow  # nnx.jit, split/merge train step, bf16, orbax: a few seconds of compiles
def test_entropy_bottleneck_layer_contract(tmp_path):
  x = 3 * jax.random.normal(jax.random.key(0), (16, 4))
  check_layer_contract(_Wrap, x, tmp_path, loss=lambda m, x: jnp.mean(rate_bits(m(x))))
