"""Discrete key-value bottleneck [5] (issue 20): nearest-key selection, fetched values and the mean decoder against
NumPy; the gradient of a loss reaches exactly the fetched values (the per-(head, key) sums of the upstream
gradient, zero elsewhere) and no key or projection (they are not parameters); EMA k-means with decay 0 is one
Lloyd step (NumPy); the NNX contract; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import DKVBottleneck, dkvb_decode
from tests.nn._layer_contract import check_layer_contract


def test_dkvb_selection_gradient_and_key_update():
  rng = np.random.default_rng(0)
  b, d, c, n, dk, dv = 9, 3, 4, 5, 2, 3
  layer = DKVBottleneck(d, c, n, dk, dv, rngs=nnx.Rngs(0))
  layer.values_cnv[...] = jnp.asarray(rng.normal(size=(c, n, dv)), jnp.float32)
  z = rng.normal(size=(b, d)).astype(np.float32)
  w = rng.normal(size=(b, dv)).astype(np.float32)
  proj = np.asarray(layer.proj_cdk[...], np.float64)
  keys = np.asarray(layer.keys_cnk[...], np.float64)
  h = np.einsum("bd,cdk->bck", z, proj)
  idx = np.argmin(((h[:, :, None, :] - keys[None]) ** 2).sum(-1), -1)                # [b, c]
  vals = np.asarray(layer.values_cnv[...], np.float64)
  fetched = vals[np.arange(c)[None, :], idx]                                        # [b, c, dv]
  graphdef, params, rest = nnx.split(layer, nnx.Param, ...)

  @jax.jit
  def run(params, z):
    m = nnx.merge(graphdef, params, rest)
    out = m(z)
    grads = jax.grad(lambda p: jnp.sum(w * dkvb_decode(nnx.merge(graphdef, p, rest)(z))))(params)
    return m.select(z), out, dkvb_decode(out), grads

  sel, out, logits, grads = run(params, jnp.asarray(z))
  np.testing.assert_array_equal(np.asarray(sel), idx)
  np.testing.assert_allclose(np.asarray(out), fetched, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(logits), fetched.mean(1), rtol=1e-5, atol=1e-6)
  assert set(jax.tree.leaves(jax.tree.map(lambda x: x.shape, grads), is_leaf=lambda x: isinstance(x, tuple))) == {
      (c, n, dv)}                                                                   # the values are the only Param
  g_ref = np.zeros((c, n, dv))
  for i in range(b):
    for j in range(c):
      g_ref[j, idx[i, j]] += w[i] / c
  g = np.asarray(grads["values_cnv"][...])
  np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-7)
  unused = np.ones((c, n), bool)
  unused[np.arange(c)[None, :].repeat(b, 0), idx] = False
  assert unused.any() and np.all(g[unused] == 0.0)                                  # never-fetched values: exactly 0
  # EMA k-means, decay 0: one Lloyd step (keys never assigned keep their value)
  layer.update_keys(jnp.asarray(z), decay=0.0)
  new = keys.copy()
  for j in range(c):
    for k in range(n):
      if np.any(idx[:, j] == k):
        new[j, k] = h[idx[:, j] == k, j].mean(0)
  np.testing.assert_allclose(np.asarray(layer.keys_cnk[...]), new, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="D=3"):
    layer(jnp.ones((2, 4)))
  with pytest.raises(ValueError, match="decay"):
    layer.update_keys(jnp.asarray(z), decay=1.0)
  with pytest.raises(ValueError, match="num_keys"):
    DKVBottleneck(3, 2, 0, 2, 2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="values"):
    dkvb_decode(jnp.ones((3,)))


class _Wrap(nnx.Module):
  def __init__(self, param_dtype):
    self.m = DKVBottleneck(4, 3, 6, 2, 3, rngs=nnx.Rngs(0), param_dtype=param_dtype)

  def __call__(self, x):
    return dkvb_decode(self.m(x))


@pytest.mark.slow  # nnx.jit, split/merge train step, bf16, orbax: a few seconds of compiles
def test_dkvb_layer_contract(tmp_path):
  x = jax.random.normal(jax.random.key(0), (16, 4))
  labels = jnp.arange(16) % 3
  ce = lambda m, x: -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(m(x).astype(jnp.float32)), labels[:, None], 1))
  check_layer_contract(_Wrap, x, tmp_path, loss=ce)
