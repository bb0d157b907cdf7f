"""[72] MIP hypernetworks, exact checks: a bias-free ReLU hypernet is positively homogeneous, h(alpha gamma) =
alpha h(gamma) (float64, to rounding); ||mip_encode(gamma)||^2 = k for every gamma; the forward pass equals a NumPy
transcription (encoding, ReLU layers, theta_0 residual); nnx.jit + split/merge, gradient reaches theta_0; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn import MIPHyperNet, mip_encode


def test_mip_exact():
  with jax.enable_x64(True):
    base = MIPHyperNet(3, (16, 16), 10, encoding=None, residual=False, use_bias=False, param_dtype=jnp.float64,
                       rngs=nnx.Rngs(0))
    g = jax.random.uniform(jax.random.key(1), (5, 3), jnp.float64)
    alphas = jnp.array([0.0, 0.3, 1.0, 7.5], jnp.float64)[:, None, None]
    run = nnx.jit(lambda m, x: m(x))
    h_scaled, h = run(base, alphas * g), run(base, g)
    np.testing.assert_allclose(h_scaled, alphas * h[None], rtol=1e-12, atol=1e-14)
    enc = jax.jit(mip_encode)(jnp.linspace(0, 1, 11, dtype=jnp.float64)[:, None] * jnp.ones(3))
    np.testing.assert_allclose(jnp.sum(enc ** 2, -1), 3.0, rtol=0, atol=1e-14)
    # MIP forward vs a NumPy transcription.
    t0 = np.arange(10.0) / 10
    mip = MIPHyperNet(3, (8,), 10, theta0_init=jnp.asarray(t0), param_dtype=jnp.float64, rngs=nnx.Rngs(2))
    gn = np.asarray(g)
    x = np.concatenate([np.cos(np.pi * gn / 2), np.sin(np.pi * gn / 2)], -1)
    l0, l1 = mip.layers[0], mip.layers[1]
    ref = np.maximum(x @ np.asarray(l0.kernel[...]) + np.asarray(l0.bias[...]), 0)
    ref = ref @ np.asarray(l1.kernel[...]) + np.asarray(l1.bias[...]) + t0
    np.testing.assert_allclose(run(mip, g), ref, rtol=1e-12)
  mip = MIPHyperNet(3, (8,), 10, rngs=nnx.Rngs(2))
  g = jnp.full((2, 3), 0.5)
  gdef, state = nnx.split(mip)
  np.testing.assert_array_equal(nnx.merge(gdef, state)(g), mip(g))
  grads = nnx.jit(nnx.grad(lambda m: jnp.sum(m(jnp.zeros((1, 3))) ** 2)))(mip)
  assert float(jnp.abs(grads["theta0"][...]).sum()) > 0


def test_mip_errors():
  with pytest.raises(ValueError, match="gamma must be"):
    MIPHyperNet(2, (4,), 3, rngs=nnx.Rngs(0))(jnp.ones((4, 3)))
  with pytest.raises(ValueError, match="encoding"):
    MIPHyperNet(2, (4,), 3, encoding="fourier", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="theta0_init"):
    MIPHyperNet(2, (4,), 3, residual=False, theta0_init=jnp.zeros(3), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="hidden"):
    MIPHyperNet(2, (0,), 3, rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match="gamma"):
    mip_encode(jnp.ones(3, jnp.int32))
