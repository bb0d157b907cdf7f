"""EoRA [114]: eora_compensation is the rank-r minimiser of the activation-weighted error (checked against an
independent float64 SciPy solution via the matrix square root of X^T X); svd_compensation vs NumPy's SVD;
LowRankCompensatedLinear's output and NNX contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from flax import nnx

from jaxlib_methods.nn import LowRankCompensatedLinear, eora_compensation, svd_compensation
from jaxlib_methods.nn.low_rank import FrozenWeight
from tests.nn._layer_contract import check_layer_contract


def _problem(seed=0, d_out=12, d_in=10, n=40):
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(d_out, d_in))
  w_hat = w + 0.1 * rng.normal(size=w.shape)
  x = rng.normal(size=(n, d_in)) * np.logspace(0, 1.5, d_in)        # anisotropic activations
  return w, w_hat, x


def test_eora_is_the_weighted_rank_r_optimum_and_beats_svd():
  w, w_hat, x = _problem()
  dw = w - w_hat
  s = np.real(scipy.linalg.sqrtm(x.T @ x))                           # (X^T X)^(1/2), independent of eigh
  u, sig, vt = np.linalg.svd(dw @ s)
  with jax.enable_x64(True):
    for r in (1, 3, 6, 10):
      b, a = eora_compensation(jnp.asarray(w), jnp.asarray(w_hat), jnp.asarray(x), r)
      assert b.shape == (12, r) and a.shape == (r, 10) and b.dtype == jnp.float64
      best = (u[:, :r] * sig[:r]) @ vt[:r] @ np.linalg.inv(s)        # [Delta W S]_r S^-1
      np.testing.assert_allclose(np.asarray(b @ a), best, rtol=1e-7, atol=1e-9)
      err = lambda m: np.linalg.norm((dw - m) @ x.T)
      e_eora = err(np.asarray(b @ a))
      np.testing.assert_allclose(e_eora, np.sqrt(np.sum(sig[r:] ** 2)), rtol=1e-9, atol=1e-9)   # Eckart-Young
      bs, as_ = svd_compensation(jnp.asarray(w), jnp.asarray(w_hat), r)
      u0, s0, v0 = np.linalg.svd(dw)
      np.testing.assert_allclose(np.asarray(bs @ as_), (u0[:, :r] * s0[:r]) @ v0[:r], atol=1e-10)
      if r < 10:
        assert e_eora < err(np.asarray(bs @ as_))                   # strict for anisotropic X
      # no random rank-r matrix near the optimum does better
      rng = np.random.default_rng(r)
      for _ in range(5):
        m = (np.asarray(b) + 0.01 * rng.normal(size=(12, r))) @ (np.asarray(a) + 0.01 * rng.normal(size=(r, 10)))
        assert err(m) >= e_eora


def test_4bit_groupwise_quantiser_error_is_within_half_a_step():
  """The toy's quantiser (optim.quantize_groupwise, 4 bits, groups of 32), against the asymmetric min-max rule."""
  from jaxlib_methods.optim import dequantize_groupwise, quantize_groupwise
  w = np.random.default_rng(0).normal(size=(8, 64)).astype(np.float32)
  qa = quantize_groupwise(jnp.asarray(w), bits=4, group_size=32)
  w_hat = np.asarray(dequantize_groupwise(qa, w.shape, bits=4, group_size=32))
  g = w.reshape(-1, 32)
  step = (g.max(1) - g.min(1)) / 15.0
  err = np.abs(w_hat.reshape(-1, 32) - g)
  assert np.all(err <= step[:, None] / 2 + 1e-6)
  assert len(np.unique(w_hat.reshape(-1, 32)[0])) <= 16


def test_bad_inputs_are_named():
  w, w_hat, x = _problem()
  with pytest.raises(ValueError, match="r must be"):
    eora_compensation(w, w_hat, x, 11)
  with pytest.raises(ValueError, match="X must be"):
    eora_compensation(w, w_hat, x[:, :5], 2)
  with pytest.raises(ValueError, match="W_hat must"):
    svd_compensation(w, w_hat[:5], 2)
  with pytest.raises(TypeError, match="W must be floating"):
    svd_compensation(np.ones((3, 3), np.int32), w_hat[:3, :3], 2)
  with pytest.raises(ValueError, match="rank must be"):
    LowRankCompensatedLinear(4, 3, 5, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="need W_hat"):
    LowRankCompensatedLinear.from_weights(w_hat, np.ones((12, 2)), np.ones((3, 10)))
  with pytest.raises(ValueError, match=r"x must be \[..., d_in\]"):
    LowRankCompensatedLinear(4, 3, 2, rngs=nnx.Rngs(0))(jnp.ones((2, 5)))


def test_layer_output_and_frozen_weight():
  w, w_hat, x = _problem()
  b, a = eora_compensation(jnp.asarray(w, jnp.float32), jnp.asarray(w_hat, jnp.float32), jnp.asarray(x, jnp.float32),
                           4)
  layer = LowRankCompensatedLinear.from_weights(w_hat, b, a, bias=np.arange(12.0))
  y = nnx.jit(lambda m, x: m(x))(layer, jnp.asarray(x[:5], jnp.float32))
  np.testing.assert_allclose(np.asarray(y), x[:5] @ (w_hat + np.asarray(b) @ np.asarray(a)).T + np.arange(12.0),
                             rtol=1e-4, atol=1e-4)
  assert isinstance(layer.w_hat, FrozenWeight)
  params = nnx.state(layer, nnx.Param)
  assert set(params.keys()) == {"lora_a", "lora_b", "bias"}        # W_hat is not trained


@pytest.mark.slow
def test_layer_nnx_contract(tmp_path):
  """nnx.jit, split/merge train step, bf16 params, orbax (compile-heavy: under -m slow)."""
  w, w_hat, x = _problem()
  check_layer_contract(lambda pdt: LowRankCompensatedLinear(10, 12, 3, use_bias=True, param_dtype=pdt,
                                                            rngs=nnx.Rngs(1)),
                       jnp.asarray(x[:8], jnp.float32), tmp_path)
