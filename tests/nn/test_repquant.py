"""[33] RepQuant / RepQ-ViT LayerNorm reparameterisation, exact checks in float64 against a NumPy transcription of
the two pipelines (LayerNorm -> quantise -> dequantise -> linear): before rounding the reparameterised layer-wise
output equals the channel-wise output to 1e-12; the integer codes are identical (also after rounding), so the
rounded outputs agree too; a single layer-wise quantiser without the reparameterisation is far off; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.nn import LayerwiseReparam, channelwise_to_layerwise_reparam


def _ln(x, g, b):
  mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  return g * (x - mu) / np.sqrt(var + 1e-6) + b


def test_reparam_exact_identity_float64():
  rng = np.random.default_rng(0)
  n, c, d = 16, 12, 5
  x = rng.normal(size=(n, c)) * rng.uniform(0.5, 3, c)
  g, bt = rng.uniform(0.2, 4.0, c), rng.normal(size=c) * 2
  w, b = rng.normal(size=(c, d)), rng.normal(size=d)
  xl = _ln(x, g, bt)
  s_c = (xl.max(0) - xl.min(0)) / 255                               # 8-bit min-max calibration per channel
  z_c = np.round(-xl.min(0) / s_c)
  with jax.enable_x64(True):
    r = jax.jit(channelwise_to_layerwise_reparam)(*map(jnp.asarray, (s_c, z_c, g, bt, w, b)))
    assert isinstance(r, LayerwiseReparam)
    r = [np.asarray(a) for a in r]
  s_t, z_t, g2, b2, w2, bb2 = r
  assert s_t.shape == () and float(z_t) == np.round(z_c.mean())
  xl2 = _ln(x, g2, b2)
  codes_c, codes_t = xl / s_c + z_c, xl2 / s_t + z_t
  np.testing.assert_allclose(codes_t, codes_c, rtol=0, atol=1e-9)      # identical codes before rounding
  # Before rounding: dequantised values through the next layer.
  y_c = ((codes_c - z_c) * s_c) @ w + b
  y_t = ((codes_t - z_t) * s_t) @ w2 + bb2
  np.testing.assert_allclose(y_t, y_c, rtol=1e-12, atol=1e-11)
  # After rounding: same integer codes, same outputs.
  q_c, q_t = np.round(codes_c), np.round(codes_t)
  np.testing.assert_array_equal(q_t, q_c)
  np.testing.assert_allclose(((q_t - z_t) * s_t) @ w2 + bb2, ((q_c - z_c) * s_c) @ w + b, rtol=1e-12, atol=1e-11)
  # Control: one layer-wise quantiser on the original LayerNorm output loses much more.
  q_plain = np.clip(np.round(xl / s_t + z_t), 0, 255)
  err_plain = np.abs(((q_plain - z_t) * s_t) @ w + b - xl @ w - b).mean()
  err_rep = np.abs(((q_t - z_t) * s_t) @ w2 + bb2 - xl @ w - b).mean()
  assert err_rep < 0.5 * err_plain


def test_reparam_errors():
  ones = jnp.ones(4)
  with pytest.raises(ValueError, match="w_next"):
    channelwise_to_layerwise_reparam(ones, ones, ones, ones, jnp.ones((3, 2)), jnp.ones(2))
  with pytest.raises(ValueError, match=r"\[C\]"):
    channelwise_to_layerwise_reparam(ones, jnp.ones(3), ones, ones, jnp.ones((4, 2)), jnp.ones(2))
  with pytest.raises(ValueError, match="s_c"):
    channelwise_to_layerwise_reparam(-ones, ones, ones, ones, jnp.ones((4, 2)), jnp.ones(2))
