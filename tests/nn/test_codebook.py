"""Codebook features [35] (issue 20): top-k cosine selection and the sum of codes against NumPy; the straight-through
gradient (identity into the activation, the output's gradient into exactly the chosen codes); the codebook loss
trains the codes only; forcing a code; the NNX contract; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import CodebookLayer, codebook_loss
from tests.nn._layer_contract import check_layer_contract


def test_codebook_selection_straight_through_and_force():
  rng = np.random.default_rng(0)
  n, d, c, k = 7, 4, 9, 2
  layer = CodebookLayer(d, c, k=k, rngs=nnx.Rngs(0))
  a = rng.normal(size=(n, d)).astype(np.float32)
  w = rng.normal(size=(n, d)).astype(np.float32)
  cb = np.asarray(layer.codebook_cd[...], np.float64)
  cos = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (cb / np.linalg.norm(cb, axis=1, keepdims=True)).T
  ids = np.argsort(-cos, axis=1, kind="stable")[:, :k]
  q_ref = cb[ids].sum(1)
  graphdef, params = nnx.split(layer)

  @jax.jit
  def values_and_grads(params, a):
    def f(p, a):
      out, _, q = nnx.merge(graphdef, p)(a)
      return jnp.sum(w * out), q
    (_, q), (gp, ga) = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(params, a)
    gl_p, gl_a = jax.grad(lambda p, a: codebook_loss(a, nnx.merge(graphdef, p)(a)[2]).sum(), argnums=(0, 1))(params, a)
    out, codes, _ = nnx.merge(graphdef, params)(a)
    forced = nnx.merge(graphdef, params).select(a, force_code=3)
    return out, codes, q, gp, ga, gl_p, gl_a, forced

  out, codes, q, gp, ga, gl_p, gl_a, forced = values_and_grads(params, jnp.asarray(a))
  np.testing.assert_array_equal(np.asarray(codes), ids)
  np.testing.assert_allclose(np.asarray(q), q_ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(out), q_ref, rtol=1e-5, atol=1e-6)       # value: the sum of the codes
  np.testing.assert_allclose(np.asarray(ga), w, rtol=1e-6)                        # straight-through: identity
  g_codes = np.zeros((c, d))
  for i in range(n):
    for j in ids[i]:
      g_codes[j] += w[i]                                                          # only the chosen codes
  np.testing.assert_allclose(np.asarray(gp["codebook_cd"][...]), g_codes, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(gl_a), 0.0)                            # the loss trains the codes only
  g_loss = np.zeros((c, d))
  for i in range(n):
    for j in ids[i]:
      g_loss[j] += -2.0 * (a[i] - q_ref[i])
  np.testing.assert_allclose(np.asarray(gl_p["codebook_cd"][...]), g_loss, rtol=1e-4, atol=1e-5)
  forced = np.asarray(forced)
  assert np.all(forced[:, 0] == 3)
  cos_wo3 = np.where(np.arange(c) == 3, -np.inf, cos)
  np.testing.assert_array_equal(forced[:, 1], np.argmax(cos_wo3, 1))
  with pytest.raises(ValueError, match="k must be"):
    CodebookLayer(d, c, k=c + 1, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="D=4"):
    layer(jnp.ones((2, d + 1)))
  with pytest.raises(ValueError, match="force_code"):
    layer(jnp.ones((2, d)), force_code=c)
  with pytest.raises(ValueError, match="same shape"):
    codebook_loss(jnp.ones((2, d)), jnp.ones((2, d + 1)))


class _Out(nnx.Module):
  def __init__(self, param_dtype):
    self.cb = CodebookLayer(6, 10, k=2, rngs=nnx.Rngs(0), param_dtype=param_dtype)

  def __call__(self, x):
    return self.cb(x)[0]


@pytest.mark.slow  # nnx.jit, split/merge train step, bf16, orbax: ~3 s of compiles
def test_codebook_layer_contract(tmp_path):
  x = jax.random.normal(jax.random.key(0), (16, 6))
  check_layer_contract(_Out, x, tmp_path, loss=lambda m, x: jnp.mean(codebook_loss(x, m.cb(x)[2]).astype(jnp.float32)))
