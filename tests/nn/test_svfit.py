"""SVFit [139]: the split W = U_r diag(s_r) V_r^T + W_e against NumPy's float64 SVD; the layer equals the pretrained
dense layer at init; exactly r trainable numbers; the gradient w.r.t. sigma equals the projection u_i^T (dL/dW) v_i
of plain autodiff w.r.t. the full kernel (and nothing else gets a gradient); the NNX contract; bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.svfit import SVFitLinear, svfit_decompose, svfit_num_params, svfit_weight
from tests.nn._layer_contract import check_layer_contract


def test_svfit_decomposition_and_init_equality():
  rng = np.random.default_rng(0)
  m, n, r = 7, 5, 3
  w = rng.normal(size=(m, n))
  b = rng.normal(size=(n,))
  x = rng.normal(size=(4, m))
  u, s, vt = np.linalg.svd(w, full_matrices=False)
  with jax.enable_x64(True):
    u_r, s_r, v_r, w_e = svfit_decompose(jnp.asarray(w), r)
    np.testing.assert_allclose(np.asarray(s_r), s[:r], rtol=1e-12)
    # singular vectors up to sign: the rank-one components are sign-free
    for i in range(r):
      np.testing.assert_allclose(np.outer(np.asarray(u_r[:, i]), np.asarray(v_r[:, i])), np.outer(u[:, i], vt[i]),
                                 atol=1e-12)
    np.testing.assert_allclose(np.asarray(w_e), w - (u[:, :r] * s[:r]) @ vt[:r], atol=1e-12)
    np.testing.assert_allclose(np.asarray(svfit_weight(u_r, s_r, v_r, w_e)), w, atol=1e-12)
    # the layer at init is the pretrained dense layer
    layer = SVFitLinear.from_weights(jnp.asarray(w), r, bias=jnp.asarray(b), param_dtype=jnp.float64)
    np.testing.assert_allclose(np.asarray(layer(jnp.asarray(x))), x @ w + b, atol=1e-12)
    graphdef, params, rest = nnx.split(layer, nnx.Param, ...)
    assert sum(p.size for p in jax.tree.leaves(params)) == r == svfit_num_params((m, n), r)["svfit"]
  assert svfit_num_params((768, 768), 8) == {"svfit": 8, "lora": 8 * 1536}


@pytest.mark.slow
def test_svfit_gradient_is_the_projected_full_gradient():
  rng = np.random.default_rng(0)
  m, n, r = 7, 5, 3
  w, b, x = rng.normal(size=(m, n)), rng.normal(size=(n,)), rng.normal(size=(4, m))
  u, s, vt = np.linalg.svd(w, full_matrices=False)
  with jax.enable_x64(True):
    layer = SVFitLinear.from_weights(jnp.asarray(w), r, bias=jnp.asarray(b), param_dtype=jnp.float64)
    # exactly r trainable numbers, and the gradient is the projection of the full-kernel gradient
    graphdef, params, rest = nnx.split(layer, nnx.Param, ...)
    assert sum(p.size for p in jax.tree.leaves(params)) == r == svfit_num_params((m, n), r)["svfit"]
    t = rng.normal(size=(4, n))
    g = (jax.grad(lambda p: jnp.sum(jnp.tanh(nnx.merge(graphdef, p, rest)(jnp.asarray(x)) - t) ** 2)))(params)
    g_full = np.asarray(jax.grad(lambda k: jnp.sum(jnp.tanh(jnp.asarray(x) @ k + b - t) ** 2))(jnp.asarray(w)))
    want = np.array([u[:, i] @ g_full @ vt[i] for i in range(r)])
    np.testing.assert_allclose(np.asarray(g["sigma"][...]), want, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_svfit_layer_contract(tmp_path):
  x = jax.random.normal(jax.random.key(1), (4, 6))
  check_layer_contract(lambda dt: SVFitLinear(6, 5, 2, param_dtype=dt, rngs=nnx.Rngs(0)), x, tmp_path)


def test_svfit_errors():
  with pytest.raises(ValueError, match="r must be an int"):
    SVFitLinear(6, 5, 6, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="in_features"):
    SVFitLinear(6, 5, 2, rngs=nnx.Rngs(0))(jnp.ones((2, 7)))
  with pytest.raises(ValueError, match="kernel must be"):
    SVFitLinear.from_weights(jnp.ones((3,)), 1)
  with pytest.raises(ValueError, match="bias must be"):
    SVFitLinear.from_weights(jnp.ones((3, 4)), 1, bias=jnp.ones((3,)))
  with pytest.raises(TypeError, match="W"):
    svfit_decompose(jnp.ones((3, 4), jnp.int32), 1)
