"""[156] ULSAM against a float64 NumPy transcription of the authors' SubSpace block (eval-mode BatchNorm with random
running statistics), and its parameter count against 5 C + 3 g."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.ulsam import ULSAM, ulsam_num_params
from tests.nn._layer_contract import check_layer_contract


def _np(a):
  return np.asarray(a, np.float64)


def _numpy_ulsam(m, x):
  B, H, W, C = x.shape
  g = m.groups
  c = C // g

  def bn(h, b, sl):
    return (h - _np(b.mean[...])[sl]) / np.sqrt(_np(b.var[...])[sl] + 1e-5) * _np(b.scale[...])[sl] + \
        _np(b.bias[...])[sl]
  out = []
  for n in range(g):
    sl = slice(n * c, (n + 1) * c)
    f = x[..., sl]
    h = f * _np(m.dw.kernel[...])[0, 0, 0, sl] + _np(m.dw.bias[...])[sl]          # depthwise 1x1
    h = np.maximum(bn(h, m.bn_dw, sl), 0)
    p = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    h = np.max([p[:, i:i + H, j:j + W] for i in range(3) for j in range(3)], axis=0)   # maxpool 3x3, stride 1
    a = h @ _np(m.pw.kernel[...])[0, 0, :, n] + _np(m.pw.bias[...])[n]              # pointwise C/g -> 1
    a = np.maximum(bn(a, m.bn_pw, n), 0)
    a = np.exp(a - a.max((1, 2), keepdims=True))
    a /= a.sum((1, 2), keepdims=True)                                                 # softmax over H W
    out.append(a[..., None] * f + f)
  return np.concatenate(out, -1)


def test_ulsam_matches_numpy_and_param_count():
  rng = np.random.default_rng(0)
  C, g = 8, 2
  m = ULSAM(C, g, rngs=nnx.Rngs(0))
  for bn, k in ((m.bn_dw, C), (m.bn_pw, g)):
    bn.mean[...] = jnp.asarray(rng.normal(size=k), jnp.float32)
    bn.var[...] = jnp.asarray(rng.uniform(0.5, 2, size=k), jnp.float32)
    bn.scale[...] = jnp.asarray(rng.uniform(0.5, 2, size=k), jnp.float32)
    bn.bias[...] = jnp.asarray(rng.normal(size=k), jnp.float32)
  m.pw.kernel[...] = jnp.asarray(rng.normal(size=m.pw.kernel[...].shape), jnp.float32)
  m.eval()
  x = rng.normal(size=(2, 5, 6, C)).astype(np.float32)
  y = np.asarray(nnx.jit(lambda m, x: m(x))(m, jnp.asarray(x)), np.float64)
  np.testing.assert_allclose(y, _numpy_ulsam(m, x.astype(np.float64)), rtol=1e-4, atol=1e-5)
  a = np.asarray(m.attention_maps(jnp.asarray(x)))
  np.testing.assert_allclose(a.sum((1, 2)), 1, rtol=1e-5)
  n = sum(p.size for p in jax.tree.leaves(nnx.state(m, nnx.Param)))
  assert n == ulsam_num_params(C, g) == 5 * C + 3 * g


def test_ulsam_bad_input():
  with pytest.raises(ValueError, match="divisible"):
    ULSAM(6, 4, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="groups"):
    ULSAM(6, 0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="x must be"):
    ULSAM(4, 2, rngs=nnx.Rngs(0))(jnp.ones((1, 3, 3, 5)))


@pytest.mark.slow  # nnx.jit, split/merge train step, bf16, orbax: a few s of compiles
def test_ulsam_contract(tmp_path):
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))

  def make(dt):
    m = ULSAM(4, 2, rngs=nnx.Rngs(0), param_dtype=dt)
    m.eval()
    return m
  check_layer_contract(make, x, tmp_path)
