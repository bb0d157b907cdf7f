"""[167] MAN and [169] AugLocal: the selection rule and pyramidal depths against hand-computed values of the
authors' formulas (incl. Python's round-half-to-even); local_forward's gradient equals each block's own local
gradient computed with a constant input (no gradient crosses a block boundary); MAN's EMA update equals
m * old + (1 - m) * new in NumPy (= optax.incremental_update), the EMA copy gets no gradient and passes none to
the next block while block j learns through it; the NNX contract (nnx.jit, split/merge train step, bf16, orbax)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxlib_methods.nn import (AugLocalAuxiliary, EMAWeight, MomentumAuxiliary, auglocal_depths,
                               auglocal_layer_indices, local_forward)
from tests.nn._layer_contract import check_layer_contract


def test_auglocal_selection_rule_and_pyramid_depths():
  assert auglocal_layer_indices(0, 8, 3) == (2, 5, 7)          # round(7/3 i): 2.33, 4.67, 7
  assert auglocal_layer_indices(1, 10, 4) == (3, 5, 7, 9)
  assert auglocal_layer_indices(0, 6, 2) == (2, 5)             # round(2.5) = 2 (half to even, as the authors' code)
  assert auglocal_layer_indices(5, 8, 3) == (6, 7)             # d >= L - 1 - l: every later layer
  assert auglocal_layer_indices(6, 8, 1) == (7,)
  for L in range(2, 12):
    for l in range(L - 1):
      for d in range(1, L):
        idx = auglocal_layer_indices(l, L, d)
        assert len(idx) == min(d, L - 1 - l) and idx[-1] == L - 1 and all(a < b for a, b in zip((l,) + idx, idx))
  assert auglocal_depths(5, 4) == (4, 3, 2, 1)
  assert auglocal_depths(4, 3) == (3, 2, 1)
  assert auglocal_depths(6, 2) == (2, 2, 2, 1, 1)              # 1.75 -> 2, 1.5 -> 2, 1.25 -> 1
  with pytest.raises(ValueError, match="layer_index"):
    auglocal_layer_indices(7, 8, 2)
  with pytest.raises(ValueError, match="depth"):
    auglocal_layer_indices(0, 8, 0)
  with pytest.raises(ValueError, match="num_local"):
    auglocal_depths(2, 3)
  with pytest.raises(ValueError, match="coeff"):
    auglocal_depths(5, 3, coeff=0.0)


class _Block(nnx.Module):
  def __init__(self, i, o, rngs, param_dtype=jnp.float32):
    self.lin = nnx.Linear(i, o, param_dtype=param_dtype, rngs=rngs)

  def __call__(self, x):
    return jnp.tanh(self.lin(x))


class _Net(nnx.Module):
  """Three blocks; block 0 trained by MAN (EMA of block 1), block 1 by AugLocal copies of later layers."""

  def __init__(self, param_dtype=jnp.float32, rngs=None):
    rngs = rngs or nnx.Rngs(0)
    kw = dict(param_dtype=param_dtype, rngs=rngs)
    self.blocks = nnx.List([_Block(4, 6, rngs, param_dtype), _Block(6, 6, rngs, param_dtype),
                            _Block(6, 6, rngs, param_dtype)])
    self.man = MomentumAuxiliary(self.blocks[1], nnx.Linear(6, 3, **kw), 6, param_dtype=param_dtype)
    self.aug = AugLocalAuxiliary(lambda i, r: _Block(6, 6, r, param_dtype), 1, 3, 1, nnx.Linear(6, 3, **kw), rngs=rngs)
    self.head = nnx.Linear(6, 3, **kw)

  def __call__(self, x):
    h = local_forward(list(self.blocks), x)
    return jnp.concatenate([self.man(h[0]), self.aug(h[1]), self.head(h[2])], -1)


def _ce(logits, y):
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y).mean()


def test_local_gradients_are_isolated_and_man_ema():
  x = jax.random.normal(jax.random.key(0), (8, 4))
  y = jnp.arange(8) % 3
  net = _Net()
  graphdef, params, rest = nnx.split(net, nnx.Param, ...)
  assert "man" in params and "ema_block" not in params["man"]          # EMA copy is not a Param

  def total(p):
    out = nnx.merge(graphdef, p, rest)(x)
    return sum(_ce(out[:, 3 * j:3 * j + 3], y) for j in range(3))

  h0 = local_forward(list(net.blocks), x)[0]

  @jax.jit
  def grads(params, h0):                                            # one compile for the three gradients
    g = jax.grad(total)(params)
    g0 = jax.grad(lambda p: _ce(nnx.merge(graphdef, p, rest)(x)[:, :3], y))(params)
    m = nnx.merge(graphdef, params, rest)
    # Independent: block 1's gradient from its own loss with a CONSTANT input (concrete h_0).
    ref = nnx.grad(lambda b: _ce(m.aug(b(h0)), y))(m.blocks[1])
    return g, g0, ref

  g, g0, ref = grads(params, jnp.asarray(np.asarray(h0)))
  np.testing.assert_allclose(g["blocks"][1]["lin"]["kernel"][...], ref["lin"]["kernel"][...], rtol=1e-5, atol=1e-7)
  # Block 0's MAN loss reaches neither block 1 (through the EMA copy) nor anything but block 0 and its aux.
  assert np.abs(g0["blocks"][0]["lin"]["kernel"][...]).sum() > 0
  assert np.abs(g0["man"]["bias"][...]).sum() > 0
  for j in (1, 2):
    np.testing.assert_array_equal(g0["blocks"][j]["lin"]["kernel"][...], 0.0)
  # EMA update = m old + (1 - m) new, in NumPy.
  old = np.asarray(net.man.ema_block.lin.kernel[...])
  net.blocks[1].lin.kernel[...] = net.blocks[1].lin.kernel[...] + 1.0
  new = np.asarray(net.blocks[1].lin.kernel[...])
  net.man.update_ema(net.blocks[1], 0.9)
  assert isinstance(net.man.ema_block.lin.kernel, EMAWeight)
  np.testing.assert_allclose(net.man.ema_block.lin.kernel[...], 0.9 * old + 0.1 * new, rtol=1e-6)
  with pytest.raises(ValueError, match="momentum"):
    net.man.update_ema(net.blocks[1], 1.5)
  with pytest.raises(ValueError, match="num_features"):
    MomentumAuxiliary(net.blocks[1], nnx.Linear(5, 3, rngs=nnx.Rngs(0)), 5)(jnp.ones((2, 6)))
  with pytest.raises(ValueError, match="blocks"):
    local_forward([], x)


@pytest.mark.slow
def test_local_learning_layer_contract(tmp_path):
  x = jax.random.normal(jax.random.key(1), (8, 4))
  check_layer_contract(lambda dt: _Net(dt, nnx.Rngs(0)), x, tmp_path)
