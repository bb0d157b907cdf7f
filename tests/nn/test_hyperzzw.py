"""HyperZ·Z·W [13]: the operator equals a direct float64 NumPy circular convolution of Z with W ⊙ Z; the slow net
equals a NumPy transcription of its filter recursion; the layer uses its generated kernel; full context (output 0
depends on the last position, for the layer and the Terminator block); instance standardisation; the NNX contract;
bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.hyperzzw import (HyperKernelMLP, HyperZZW, TerminatorBlock, hyperzzw_conv, instance_standardize,
                                        kernel_coordinates)
from tests.nn._layer_contract import check_layer_contract


def test_hyperzzw_operator_and_slow_net():
  rng = np.random.default_rng(0)
  L, C = 9, 3
  z, w = rng.normal(size=(2, L, C)), rng.normal(size=(L, C))
  k = w * z
  want = np.zeros_like(z)
  for t in range(L):
    for s in range(L):
      want[:, t] += k[:, s] * z[:, (t - s) % L]
  with jax.enable_x64(True):
    got = hyperzzw_conv(jnp.asarray(z), jnp.asarray(w))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-12)
    x = rng.normal(size=(2, L, C))
    np.testing.assert_allclose(np.asarray(instance_standardize(jnp.asarray(x), eps=0.0)),
                               (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True), rtol=1e-10)
  # the slow net: h_1 = sin(w c A_1 + phi_1), h_2 = (h_1 B + b) sin(w c A_2 + phi_2), W = h_2 V + v
  net = HyperKernelMLP(C, 5, 2, omega=4.0, rngs=nnx.Rngs(0))
  c = np.linspace(-1, 1, L)[:, None]
  a, phi = np.asarray(net.filter_a[...], np.float64), np.asarray(net.filter_phi[...], np.float64)
  h = np.sin(4.0 * c @ a[0] + phi[0])
  h = (h @ np.asarray(net.mix[...][0], np.float64) + np.asarray(net.mix_bias[...][0])) * np.sin(4.0 * c @ a[1] + phi[1])
  w_np = h @ np.asarray(net.out[...], np.float64) + np.asarray(net.out_bias[...])
  np.testing.assert_allclose(np.asarray(net(kernel_coordinates(L))), w_np, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_hyperzzw_layer_uses_its_kernel_and_sees_the_full_context():
  L, C = 9, 3
  zj = jax.random.normal(jax.random.key(0), (2, L, C))
  layer = HyperZZW(C, rngs=nnx.Rngs(1))
  y, w_gen = nnx.jit(lambda m, z: (m(z), m.hyper_kernel(L)))(layer, zj)
  np.testing.assert_allclose(np.asarray(y), np.asarray(hyperzzw_conv(zj, w_gen)), rtol=1e-5, atol=1e-6)
  # full context: d y[0] / d z[L-1] != 0 for the layer and the Terminator block
  for f in (layer, TerminatorBlock(C, 4, rngs=nnx.Rngs(2))):
    g = nnx.jit(lambda f, z: jax.grad(lambda z: jnp.sum(f(z)[:, 0]))(z))(f, zj)
    assert float(jnp.max(jnp.abs(g[:, L - 1]))) > 1e-6


def test_hyperzzw_errors():
  with pytest.raises(ValueError, match="w must end"):
    hyperzzw_conv(jnp.ones((2, 5, 3)), jnp.ones((4, 3)))
  with pytest.raises(ValueError, match="z must be"):
    HyperZZW(3, rngs=nnx.Rngs(0))(jnp.ones((2, 5, 4)))
  with pytest.raises(ValueError, match="local_size"):
    TerminatorBlock(3, 3, local_size=4, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="length"):
    kernel_coordinates(0)


@pytest.mark.slow
def test_terminator_layer_contract(tmp_path):
  x = jax.random.normal(jax.random.key(0), (2, 16, 3))
  check_layer_contract(lambda dt: TerminatorBlock(3, 4, param_dtype=dt, rngs=nnx.Rngs(0)), x, tmp_path)
