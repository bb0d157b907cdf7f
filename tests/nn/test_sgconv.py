"""SGConv [204]: the FFT causal convolution equals a direct float64 NumPy causal convolution; the kernel equals a NumPy
transcription of Eq. 1 (np.interp half-pixel linear upsampling, alpha^i decay, concatenation, truncation); parameters
grow as d * (ceil(log2(L / d)) + 1), sub-linearly in L; the module under nnx.jit, bf16, bad inputs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.sgconv import SGConv, fft_causal_conv, sgconv_kernel, sgconv_num_scales
from tests.nn._layer_contract import assert_orbax_round_trip


def _np_up(v, r):
  d = v.shape[-1]
  src = (np.arange(d * r) + 0.5) / r - 0.5            # half-pixel centres, clamped at the ends by np.interp
  return np.stack([np.interp(src, np.arange(d), row) for row in v])


def test_kernel_fft_conv_and_param_growth_vs_numpy():
  rng = np.random.default_rng(0)
  n, c, d, length = 4, 3, 4, 29                        # d 2^(N-1) = 32 >= 29
  sub = rng.normal(size=(n, c, d))
  u = rng.normal(size=(2, length, c))
  with jax.enable_x64(True):
    k = jax.jit(lambda s: sgconv_kernel(s, length, alpha=0.5, z=2.0))(jnp.asarray(sub))
    want_k = np.concatenate([0.5 ** i * (sub[i] if i < 2 else _np_up(sub[i], 2 ** (i - 1))) for i in range(n)],
                            -1)[:, :length] / 2.0
    np.testing.assert_allclose(np.asarray(k), want_k, rtol=1e-12, atol=1e-12)
    y = jax.jit(fft_causal_conv)(jnp.asarray(u), k)
  kn = np.asarray(k)
  direct = np.zeros_like(u)
  for t in range(length):
    for s in range(t + 1):
      direct[:, t] += kn[:, s] * u[:, t - s]
  np.testing.assert_allclose(np.asarray(y), direct, rtol=1e-9, atol=1e-10)
  # O(d log L) parameters: N = ceil(log2(L / d)) + 1 scales of d each
  for L in (32, 1024, 2 ** 16):
    assert sgconv_num_scales(L, 32) == math.ceil(math.log2(L / 32)) + 1
  counts = [sgconv_num_scales(L, 32) * 32 for L in (1024, 4096, 16384)]
  assert counts == [192, 256, 320] and counts[-1] / counts[0] < 16384 / 1024 / 8   # grows by d per doubling of L
  with pytest.raises(ValueError, match="length"):
    sgconv_kernel(jnp.asarray(sub), 33)


def test_module_jit_bf16_and_bad_inputs():
  m = SGConv(4, 64, kernel_dim=8, rngs=nnx.Rngs(0))
  f = nnx.jit(lambda m, u: (m(u), m.kernel()))
  u = jax.random.normal(jax.random.key(1), (2, 50, 4))
  y, k = f(m, u)
  k, un = np.asarray(k, np.float64), np.asarray(u, np.float64)
  np.testing.assert_allclose(np.linalg.norm(k, axis=-1), 1.0, rtol=1e-5)        # Z: unit norm at init
  want = np.stack([np.stack([np.convolve(un[b, :, c], k[c])[:50] for c in range(4)], -1) for b in range(2)])
  want += np.asarray(m.d[...]) * un
  np.testing.assert_allclose(np.asarray(y), want, rtol=1e-4, atol=1e-5)
  # causal: changing the future does not change the past
  y2, _ = f(m, u.at[:, 30:].set(0.0))
  np.testing.assert_allclose(np.asarray(y2[:, :30]), np.asarray(y[:, :30]), rtol=1e-5, atol=1e-5)
  mb = SGConv(4, 64, kernel_dim=8, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  assert f(mb, u.astype(jnp.bfloat16))[0].dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="channels=4"):
    m(jnp.ones((2, 10, 3)))
  with pytest.raises(ValueError, match="L <= 64"):
    m(jnp.ones((2, 65, 4)))
  with pytest.raises(ValueError, match="alpha"):
    SGConv(4, 64, alpha=0.0, rngs=nnx.Rngs(0))


@pytest.mark.slow
def test_orbax_round_trip(tmp_path):
  make = lambda seed: SGConv(4, 16, kernel_dim=4, rngs=nnx.Rngs(seed))
  assert_orbax_round_trip(make(0), make(1), jnp.ones((2, 9, 4)), tmp_path)
