"""WaLLoC's asymmetric autoencoder [211] (nn.WaLLoCAutoencoder): with an orthonormal encoder E = U^T and linear
decoder D = U the codec is WPT^-1 U U^T WPT, so a low-rank input (coefficients in range U) is reconstructed exactly
and any other input's squared error is ||c - U U^T c||^2 in the coefficient domain (Parseval); the encoder is linear;
the bottleneck adds at most 1/2 (training) or rounds (inference); all through split/merge + jit; decoder shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods import signal
from jaxlib_methods.nn.walloc import WaLLoCAutoencoder


def test_walloc_autoencoder_closed_forms():
  rng = np.random.default_rng(0)
  B, C, J, r, H = 2, 3, 1, 5, 8
  coeffs, h = C * 4 ** J, H // 2 ** J
  U = np.linalg.qr(rng.normal(size=(coeffs, r)))[0]                   # orthonormal columns
  with jax.enable_x64(True):
    m = nnx.eval_shape(lambda: WaLLoCAutoencoder(C, levels=J, latent_dim=r, decoder_hidden=None,
                                                 param_dtype=jnp.float64, rngs=nnx.Rngs(0)))   # no init work
    m.encoder.kernel = nnx.Param(jnp.asarray(U))
    m.encoder.bias = nnx.Param(jnp.zeros(r))
    m.decoder_out.kernel = nnx.Param(jnp.asarray(U.T))
    m.decoder_out.bias = nnx.Param(jnp.zeros(coeffs))
    a = rng.normal(size=(B, r, h, h))
    c_low = np.einsum("kr,brhw->bkhw", U, a).reshape(B, C, 4 ** J, h, h)
    x_any = jnp.asarray(rng.normal(size=(B, C, H, H)))
    graphdef, state = nnx.split(m)

    @jax.jit
    def run(state, c_low, x_any):
      m = nnx.merge(graphdef, state)
      x_low = signal.inverse_wavelet_packet_transform(c_low, levels=J)   # a low-rank image
      z_low = m.encode(x_low)
      c = signal.wavelet_packet_transform(x_any, levels=J)
      return (z_low, m.decode(z_low), m.decode(m.encode(x_any)), m.encode(2.0 * x_low - 3.0 * x_any),
              m.encode(x_any), c, x_low, m(x_any)[1], m(x_any, key=jax.random.key(0))[1])
    z_low, rec_low, rec_any, z_lin, z_any, c, x_low, z_round, z_noisy = run(state, jnp.asarray(c_low), x_any)
  np.testing.assert_allclose(z_low, a, atol=1e-12)                     # the latents are the coordinates
  np.testing.assert_allclose(rec_low, x_low, atol=1e-12)               # exact reconstruction of a rank-r input
  c = np.asarray(c).reshape(B, coeffs, h, h)
  resid = c - np.einsum("kr,sr,bshw->bkhw", U, U, c)
  np.testing.assert_allclose(np.sum((np.asarray(rec_any) - np.asarray(x_any)) ** 2), np.sum(resid ** 2), rtol=1e-10)
  np.testing.assert_allclose(z_lin, 2.0 * np.asarray(z_low) - 3.0 * np.asarray(z_any), atol=1e-12)   # linear encoder
  np.testing.assert_array_equal(z_round, np.round(z_any))             # inference: rounded latents
  assert 0 < np.max(np.abs(np.asarray(z_noisy) - np.asarray(z_any))) <= 0.5   # training: U(-1/2, 1/2) noise
  # the nonlinear decoder (shapes only, abstractly); C 4^J / latent_dim = 12 / 4 (the authors' RGB J = 3, latent
  # 16 is 12x)
  m = nnx.eval_shape(lambda: WaLLoCAutoencoder(3, levels=1, latent_dim=4, decoder_hidden=8, rngs=nnx.Rngs(1)))
  assert m.reduction_ratio == 3.0
  graphdef, state = nnx.split(m)
  rec, z = jax.eval_shape(lambda state, x: nnx.merge(graphdef, state)(x), state,
                          jax.ShapeDtypeStruct((2, 3, 4, 4), jnp.float32))
  assert rec.shape == (2, 3, 4, 4) and z.shape == (2, 4, 2, 2)

  # bad input: clear errors before any work
  with pytest.raises(ValueError, match="x must be"):
    m.encode(jnp.zeros((2, 2, 4, 4)))
  with pytest.raises(ValueError, match="2\\*\\*levels"):
    m.encode(jnp.zeros((2, 3, 3, 4)))
  with pytest.raises(TypeError, match="x"):
    m.encode(jnp.zeros((2, 3, 4, 4), jnp.int32))
  with pytest.raises(ValueError, match="latents"):
    m.decode(jnp.zeros((2, 5, 2, 2)))
  with pytest.raises(ValueError, match="latent_dim"):
    WaLLoCAutoencoder(1, levels=1, latent_dim=5, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="decoder_hidden"):
    WaLLoCAutoencoder(1, levels=1, latent_dim=2, decoder_hidden=0, rngs=nnx.Rngs(0))
