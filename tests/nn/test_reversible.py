"""Reversible MBConv [42]: inverse(forward(x)) == x; the custom-vjp gradients (recomputed from the outputs) equal plain
autodiff's of the same stack, in float64; a float64 NumPy transcription of the coupling and the inverted bottleneck
(1-d, direct depthwise convolution) gives the forward output; module jit, bf16, bad inputs. The memory measurement
(compiled temp bytes vs depth) is in experiments/layers_wave1_p2.py and the slow test below."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.reversible import (ReversibleMBConv, grad_temp_bytes, mbconv, reversible_forward_autodiff,
                                          reversible_mbconv_inverse, reversible_mbconv_stack)
from tests.nn._layer_contract import assert_orbax_round_trip


def _np_mbconv(p, x):                     # x [B, S, c], w_dw [k, 1, h], SAME padding
  h = np.clip(x @ p["w_expand"] + p["b_expand"], 0, 6)
  k = p["w_dw"].shape[0]
  pad = np.pad(h, ((0, 0), ((k - 1) // 2, k // 2), (0, 0)))
  dw = sum(pad[:, i:i + h.shape[1]] * p["w_dw"][i, 0] for i in range(k))
  return np.clip(dw + p["b_dw"], 0, 6) @ p["w_proj"] + p["b_proj"]


def test_inverse_gradients_and_numpy_forward():
  m = ReversibleMBConv(4, 3, expansion=2, kernel_size=(3,), rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    params = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64) + 0.3 * rng.normal(size=a.shape)),
                          m.stack_params())
    x = jnp.asarray(rng.normal(size=(2, 7, 4)))
    y = jax.jit(reversible_mbconv_stack)(params, x)
    np.testing.assert_allclose(np.asarray(reversible_mbconv_inverse(params, y)), np.asarray(x), rtol=1e-12,
                               atol=1e-12)
    # NumPy transcription of y1 = x1 + F(x2), y2 = x2 + G(y1), block by block
    pn = jax.tree.map(np.asarray, params)
    x1, x2 = np.asarray(x[..., :2]), np.asarray(x[..., 2:])
    for i in range(3):
      x1 = x1 + _np_mbconv({k: v[i] for k, v in pn["f"].items()}, x2)
      x2 = x2 + _np_mbconv({k: v[i] for k, v in pn["g"].items()}, x1)
    np.testing.assert_allclose(np.asarray(y), np.concatenate([x1, x2], -1), rtol=1e-12, atol=1e-12)
    # custom vjp (recomputation) == autodiff of the stored-activation stack, params and input
    w = jnp.asarray(rng.normal(size=y.shape))
    loss = lambda fn: jax.jit(jax.grad(lambda p, x: jnp.sum(w * jnp.tanh(fn(p, x))), argnums=(0, 1)))
    got = loss(reversible_mbconv_stack)(params, x)
    want = loss(reversible_forward_autodiff)(params, x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)
  # module: nnx.jit forward/inverse in float32, bf16 params, bad inputs
  xs = jax.random.normal(jax.random.key(1), (2, 7, 4))
  y32 = nnx.jit(lambda m, x: m(x))(m, xs)
  np.testing.assert_allclose(np.asarray(m.inverse(y32)), np.asarray(xs), atol=1e-5)
  # same shapes as m (3 blocks), so the eager initialiser's small programs are reused; only the dtype differs
  mb = ReversibleMBConv(4, 3, expansion=2, kernel_size=(3,), param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  assert mb(xs.astype(jnp.bfloat16)).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="even"):
    ReversibleMBConv(5, 2, kernel_size=(3,), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="channels=4"):
    m(jnp.ones((2, 7, 6)))
  assert mbconv(jax.tree.map(lambda a: a[0], m.stack_params()["f"]), xs[..., :2]).shape == (2, 7, 2)


@pytest.mark.slow
def test_grad_temp_memory_flat_in_depth_for_recompute():
  """A measurement (printed), with the qualitative check the paper's design implies: the recomputing stack's
  compiled temp bytes do not grow from 2 to 6 blocks by more than 10%; the autodiff stack's do by > 1.5x."""
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 8))
  rev, ad = [], []
  for depth in (2, 4, 6):
    p = ReversibleMBConv(8, depth, expansion=2, kernel_size=(3, 3), rngs=nnx.Rngs(0)).stack_params()
    rev.append(grad_temp_bytes(reversible_mbconv_stack, p, x))
    ad.append(grad_temp_bytes(reversible_forward_autodiff, p, x))
  print("temp bytes (reversible, autodiff) at depth 2, 4, 6:", rev, ad)
  assert rev[-1] <= 1.1 * rev[0] and ad[-1] >= 1.5 * ad[0]


@pytest.mark.slow
def test_orbax_round_trip(tmp_path):
  make = lambda seed: ReversibleMBConv(4, 2, expansion=2, kernel_size=(3,), rngs=nnx.Rngs(seed))
  assert_orbax_round_trip(make(0), make(1), jnp.ones((2, 5, 4)), tmp_path)
