"""S4D [132]: kernel, FFT convolution and recurrence vs float64 NumPy/SciPy transcriptions; the inits vs their
formulas and the HiPPO-LegS matrix; S4DLayer's NNX contract; the TransformerLM 's4d' mixer."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from flax import nnx

from jaxlib_methods.nn import S4DLayer, TransformerConfig, TransformerLM
from jaxlib_methods.nn import ssm
from jaxlib_methods.nn.ssm import (fft_causal_conv, hippo_legs, s4d_discretize, s4d_inv, s4d_kernel, s4d_legs,
                                   s4d_lin, s4d_recurrence)
from tests.nn._layer_contract import check_layer_contract


def _np_kernel(dt, a, c, b, length, disc):
  """Dense matrix form of the (conjugate-completed) diagonal SSM, float64: K_l = C dA^l dB with SciPy's expm."""
  a_full = np.diag(np.concatenate([a, a.conj()]))
  b_full = np.concatenate([b, b.conj()])
  c_full = np.concatenate([c, c.conj()])
  eye = np.eye(len(a_full))
  if disc == "zoh":
    da = scipy.linalg.expm(dt * a_full)
    db = np.linalg.solve(a_full, (da - eye) @ b_full)
  else:
    inv = np.linalg.inv(eye - dt / 2 * a_full)
    da, db = inv @ (eye + dt / 2 * a_full), inv @ (dt * b_full)
  out, x = [], db
  for _ in range(length):
    out.append(c_full @ x)
    x = da @ x
  return np.real(np.asarray(out))


@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
def test_kernel_conv_and_recurrence_match_numpy(disc):
  rng = np.random.default_rng(0)
  a, b = s4d_inv(8)
  b = b + 0.3 * rng.normal(size=4)
  cs = rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4))
  dts = np.array([0.01, 0.1, 0.5])
  length = 20
  u = rng.normal(size=(2, length, 3))
  with jax.enable_x64(True):
    aa = jnp.asarray(np.tile(a, (3, 1)))
    k = np.asarray(jax.jit(lambda *a: s4d_kernel(*a, length, B=jnp.asarray(np.tile(b, (3, 1))), discretization=disc))(
        jnp.log(dts), aa, jnp.asarray(cs)))
    for h in range(3):
      np.testing.assert_allclose(k[h], _np_kernel(dts[h], a, cs[h], b, length, disc), rtol=1e-9, atol=1e-12)
    y = np.asarray(jax.jit(fft_causal_conv)(jnp.asarray(u), jnp.asarray(k)))
    y_np = np.stack([np.stack([np.convolve(u[i, :, h], k[h])[:length] for h in range(3)], -1) for i in range(2)])
    np.testing.assert_allclose(y, y_np, rtol=1e-9, atol=1e-12)
    y_rec = np.asarray(jax.jit(lambda *a: s4d_recurrence(*a, B=jnp.asarray(np.tile(b, (3, 1))), discretization=disc))(
        jnp.asarray(u), jnp.log(dts), aa, jnp.asarray(cs)))
    np.testing.assert_allclose(y_rec, y_np, rtol=1e-9, atol=1e-12)
    da, _ = s4d_discretize(jnp.log(dts), aa, discretization=disc)
    assert np.all(np.abs(np.asarray(da)) < 1)                  # Re A < 0: stable for both discretisations


def test_inits_match_their_formulas_and_hippo_legs():
  a, b = s4d_lin(8)
  np.testing.assert_allclose(a, -0.5 + 1j * math.pi * np.arange(4))
  a, b = s4d_inv(8)
  np.testing.assert_allclose(a, [-0.5 + 1j * 8 / math.pi * (8 / (2 * n + 1) - 1) for n in range(4)])
  np.testing.assert_array_equal(b, np.ones(4))
  # HiPPO-LegS, written from S4's eq. (2) entry by entry.
  A, B = hippo_legs(4)
  for n in range(4):
    for k in range(4):
      want = -math.sqrt((2 * n + 1) * (2 * k + 1)) if n > k else (-(n + 1) if n == k else 0.0)
      assert A[n, k] == pytest.approx(want)
  np.testing.assert_allclose(B, np.sqrt(2 * np.arange(4) + 1))
  # S4D-LegS: the kept eigenpairs plus their conjugates rebuild the normal part A + P P^T exactly.
  lam, bt, v = s4d_legs(10, return_eigenvectors=True)
  A, B = hippo_legs(10)
  normal = A + np.outer(np.sqrt(np.arange(10) + 0.5), np.sqrt(np.arange(10) + 0.5))
  np.testing.assert_allclose(np.real(lam), -0.5, atol=1e-12)
  assert np.all(np.imag(lam) > 0)
  rebuilt = v @ np.diag(lam) @ v.conj().T + v.conj() @ np.diag(lam.conj()) @ v.T
  np.testing.assert_allclose(rebuilt.real, normal, atol=1e-10)
  np.testing.assert_allclose(2 * np.real(v @ bt), B / 2, atol=1e-10)     # B/2 = V B~ + conj
  np.testing.assert_allclose(sorted(np.abs(np.imag(np.linalg.eigvals(normal))))[::2], sorted(np.imag(lam)),
                             atol=1e-8)


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match="state_size"):
    s4d_lin(7)
  with pytest.raises(ValueError, match="discretization"):
    s4d_kernel(0.0, jnp.ones((2, 4)) * -1, jnp.ones((2, 4)), 5, discretization="euler")
  with pytest.raises(ValueError, match="C must end"):
    s4d_kernel(jnp.zeros(2), -jnp.ones((2, 4)), jnp.ones((2, 3)), 5)
  with pytest.raises(ValueError, match="L must be"):
    s4d_kernel(jnp.zeros(2), -jnp.ones((2, 4)), jnp.ones((2, 4)), 0)
  with pytest.raises(ValueError, match="u must be"):
    fft_causal_conv(jnp.ones((4, 3)), jnp.ones((3, 4)))
  with pytest.raises(ValueError, match="init"):
    S4DLayer(4, 8, init="random", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="dt_min"):
    S4DLayer(4, 8, dt_min=0.5, dt_max=0.1, rngs=nnx.Rngs(0))
  layer = S4DLayer(4, 8, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"x must be \[B, L, H\]"):
    layer(jnp.ones((2, 5, 3)))
  with pytest.raises(ValueError, match="attention must be"):
    TransformerConfig(attention="s5")


def test_layer_conv_equals_recurrent():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 4))
  fwd = nnx.jit(lambda m, x: m(x))                                # one program per (init, mode), not op by op
  for init in ("inv", "legs"):                                    # (S4D-Lin: the same code path, other A values)
    layer = S4DLayer(4, 8, init=init, discretization="bilinear" if init == "inv" else "zoh", rngs=nnx.Rngs(1))
    y_conv = fwd(layer, x)
    layer.mode = "recurrent"
    np.testing.assert_allclose(np.asarray(fwd(layer, x)), np.asarray(y_conv), rtol=1e-4, atol=1e-5)
  # causal: the output at t does not depend on inputs after t
  y2 = fwd(layer, x.at[:, 10:].set(0.0))
  np.testing.assert_allclose(np.asarray(y2[:, :10]), np.asarray(y_conv[:, :10]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_layer_nnx_contract(tmp_path):
  """nnx.jit, split/merge train step, bf16 params, orbax (compile-heavy: under -m slow)."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 4))
  check_layer_contract(lambda pdt: S4DLayer(4, 8, param_dtype=pdt, rngs=nnx.Rngs(2)), x, tmp_path)


def test_transformer_s4d_mixer():
  cfg = TransformerConfig(vocab_size=11, d_model=8, num_layers=2, num_heads=2, attention="s4d")
  lm = TransformerLM(cfg, rngs=nnx.Rngs(0))
  assert isinstance(lm.blocks[0].attn, S4DLayer)
  tok = jax.random.randint(jax.random.PRNGKey(0), (2, 9), 0, 11)
  apply = nnx.jit(lambda m, t: m(t, return_aux=True))
  logits, aux = apply(lm, tok)
  assert logits.shape == (2, 9, 11) and np.all(np.isnan(np.asarray(aux["max_attention_logits"])))
  # causal LM: changing a later token leaves earlier logits unchanged
  logits2, _ = apply(lm, tok.at[:, 6].set((tok[:, 6] + 1) % 11))
  np.testing.assert_allclose(np.asarray(logits2[:, :6]), np.asarray(logits[:, :6]), rtol=1e-5, atol=1e-5)
  assert not np.allclose(np.asarray(logits2[:, 6:]), np.asarray(logits[:, 6:]))
  with pytest.raises(ValueError, match="implementation"):
    TransformerConfig(attention="s4d", implementation="xla")
