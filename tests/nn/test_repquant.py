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


# ---- log-sqrt(2) softmax quantiser ([33]) ---------------------------------------------------------------------------

def _official_log_sqrt2(x, delta, bits):
  """NumPy transcription of the authors' RepQ-ViT `LogSqrt2Quantizer.quantize` (github.com/zkkli/RepQ-ViT)."""
  with np.errstate(divide="ignore"):
    x_int = np.round(-1 * np.log2(x / delta) * 2)
  mask = x_int >= 2 ** bits
  x_quant = np.clip(x_int, 0, 2 ** bits - 1)
  odd_mask = (x_quant % 2) * (np.sqrt(2) - 1) + 1
  out = 2.0 ** (-1 * np.ceil(x_quant / 2)) * odd_mask * delta
  out[mask] = 0
  return out


@pytest.mark.parametrize("bits", [3, 4, 6])
def test_log_sqrt2_matches_the_official_quantiser_float64(bits):
  from jaxlib_methods.nn import log_sqrt2_dequantize, log_sqrt2_quantize
  rng = np.random.default_rng(bits)
  z = rng.normal(size=(4, 16, 16)) * 2
  a = np.exp(z - z.max(-1, keepdims=True))
  a /= a.sum(-1, keepdims=True)
  a[0, 0, :3] = 0.0                                                   # exact zeros dequantise to 0
  delta = float(np.quantile(a, 0.999))
  with jax.enable_x64(True):
    q = log_sqrt2_quantize(jnp.asarray(a), jnp.asarray(delta), bits)
    got = np.asarray(log_sqrt2_dequantize(q))
  np.testing.assert_allclose(got, _official_log_sqrt2(a, delta, bits), rtol=1e-14, atol=0)
  codes = np.asarray(q.codes)
  assert codes.min() >= 0 and codes.max() <= 2 ** bits - 1
  kept = np.asarray(q.nonzero)
  np.testing.assert_allclose(got[kept], delta * np.sqrt(2.0) ** (-codes[kept]), rtol=1e-14)   # = delta sqrt2^-q


def test_log_sqrt2_matmul_reparam_equals_the_dequantised_product_float64():
  """The reparameterised inference (two bit-shift matrices, sqrt(2) on the odd half's product) is exact."""
  from jaxlib_methods.nn import log_sqrt2_dequantize, log_sqrt2_matmul, log_sqrt2_quantize
  rng = np.random.default_rng(0)
  z = rng.normal(size=(3, 12, 12)) * 3
  a = np.exp(z - z.max(-1, keepdims=True))
  a /= a.sum(-1, keepdims=True)
  v = rng.normal(size=(3, 12, 5))
  with jax.enable_x64(True):
    q = log_sqrt2_quantize(jnp.asarray(a), jnp.asarray(float(a.max())), 4)
    fused = np.asarray(jax.jit(log_sqrt2_matmul)(q, jnp.asarray(v)))
    direct = np.asarray(log_sqrt2_dequantize(q)) @ v
  np.testing.assert_allclose(fused, direct, rtol=1e-13, atol=1e-15)
  assert np.asarray(q.codes % 2 == 1).any() and np.asarray(q.codes % 2 == 0).any()   # both halves exercised


def test_log_sqrt2_grid_is_finer_than_log2():
  """A value halfway (in log) between two powers of two is representable: sqrt(2)^-1 * delta exactly."""
  from jaxlib_methods.nn import log_sqrt2_dequantize, log_sqrt2_quantize
  with jax.enable_x64(True):
    q = log_sqrt2_quantize(jnp.asarray([1.0, 2 ** -0.5, 0.5, 2 ** -20]), jnp.asarray(1.0), 4)
    np.testing.assert_array_equal(np.asarray(q.codes), [0, 1, 2, 15])
    np.testing.assert_array_equal(np.asarray(q.nonzero), [True, True, True, False])   # 2^-20 < sqrt(2)^-15
    np.testing.assert_allclose(np.asarray(log_sqrt2_dequantize(q)), [1.0, 2 ** -0.5, 0.5, 0.0], rtol=1e-15)


def test_log_sqrt2_rejects_bad_input():
  from jaxlib_methods.nn import log_sqrt2_matmul, log_sqrt2_quantize
  a = jnp.full((2, 3), 0.3)
  with pytest.raises(ValueError, match="bits"):
    log_sqrt2_quantize(a, jnp.asarray(1.0), 1)
  with pytest.raises(ValueError, match="bits"):
    log_sqrt2_quantize(a, jnp.asarray(1.0), 4.0)
  with pytest.raises(ValueError, match="delta"):
    log_sqrt2_quantize(a, jnp.asarray(-1.0), 4)
  with pytest.raises(ValueError, match="scalar"):
    log_sqrt2_quantize(a, jnp.ones(2), 4)
  with pytest.raises(ValueError, match="a"):
    log_sqrt2_quantize(a.at[0, 0].set(-0.1), jnp.asarray(1.0), 4)
  with pytest.raises(TypeError):
    log_sqrt2_quantize(jnp.ones((2, 3), jnp.int32), jnp.asarray(1.0), 4)
  with pytest.raises(ValueError, match="share M"):
    log_sqrt2_matmul(log_sqrt2_quantize(a, jnp.asarray(1.0), 4), jnp.ones((4, 2)))
  # traced negative activations: NaN out, never a silent number
  out = jax.jit(lambda a: log_sqrt2_matmul(log_sqrt2_quantize(a, jnp.asarray(1.0), 4), jnp.ones((3, 2))))(
      a.at[0, 0].set(-0.1))
  assert np.isnan(np.asarray(out)).all()
