"""MLP + parametrisations: closed-form forward passes, the µP table, and a coordinate check across widths."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxlib_methods.nn import parametrization as pz
from jaxlib_methods.nn.mlp import MLP


def _np_forward(model, x):
  """Float64 NumPy forward pass written from the parametrisation table (multiplier * x @ W, ReLU)."""
  h = np.maximum(model.input_layer.multiplier * (x @ np.asarray(model.input_layer.kernel[...], np.float64)), 0)
  for layer in model.hidden_layers:
    h = np.maximum(layer.multiplier * (h @ np.asarray(layer.kernel[...], np.float64)), 0)
  return model.output_layer.multiplier * (h @ np.asarray(model.output_layer.kernel[...], np.float64))


@pytest.mark.parametrize("param", ["sp", "ntk", "mup"])
def test_forward_matches_numpy_and_init_scales(param):
  m = MLP(8, 256, 3, num_hidden_layers=2, parametrization=param, base_width=32, rngs=nnx.Rngs(0))
  x = np.random.default_rng(0).normal(size=(5, 8))
  np.testing.assert_allclose(np.asarray(m(jnp.asarray(x, jnp.float32))), _np_forward(m, x), rtol=2e-4, atol=1e-5)
  w_hid = np.asarray(m.hidden_layers[0].kernel[...])
  want_std = {"sp": 1 / 16, "ntk": 1.0, "mup": 1 / 16}[param]
  assert w_hid.std() == pytest.approx(want_std, rel=0.05)
  w_out = np.asarray(m.output_layer.kernel[...])
  # µP readout variance 1/(fan_in * m) = base / width^2 (Tensor Programs V, Table 3).
  want_out = {"sp": 1 / 16, "ntk": 1.0, "mup": math.sqrt(32) / 256}[param]
  assert w_out.std() == pytest.approx(want_out, rel=0.15)


def test_mup_equals_sp_at_base_width_and_multiplier_table():
  sp = MLP(8, 64, 3, num_hidden_layers=1, parametrization="sp", rngs=nnx.Rngs(0))
  mup = MLP(8, 64, 3, num_hidden_layers=1, parametrization="mup", base_width=64, rngs=nnx.Rngs(0))
  x = jnp.ones((2, 8))
  np.testing.assert_allclose(np.asarray(sp(x)), np.asarray(mup(x)), rtol=1e-6)
  wide = MLP(8, 256, 3, num_hidden_layers=1, parametrization="mup", base_width=64, rngs=nnx.Rngs(0))
  mult = pz.lr_multipliers(wide, pure_dict=True)
  assert mult["input_layer"]["kernel"] == 1.0
  assert mult["hidden_layers"][0]["kernel"] == pytest.approx(0.25)
  assert mult["output_layer"]["kernel"] == pytest.approx(0.25)
  sgd = MLP(8, 256, 3, num_hidden_layers=1, parametrization="mup", base_width=64, optimizer="sgd", rngs=nnx.Rngs(0))
  ms = pz.lr_multipliers(sgd, pure_dict=True)
  got = (ms["input_layer"]["kernel"], ms["hidden_layers"][0]["kernel"], ms["output_layer"]["kernel"])
  assert got == (4.0, 1.0, 0.25)


def test_torch_default_init_bound():
  m = MLP(226, 200, 113, num_hidden_layers=1, init_distribution="torch_uniform", rngs=nnx.Rngs(0))
  w = np.asarray(m.input_layer.kernel[...])
  assert np.abs(w).max() <= 1 / math.sqrt(226) + 1e-7
  assert w.std() == pytest.approx(1 / math.sqrt(3 * 226), rel=0.03)
  assert m.output_layer.bias is None


def test_lr_multipliers_with_any_optimizer_equal_manual_per_layer_sgd():
  m = MLP(4, 32, 2, num_hidden_layers=1, parametrization="mup", base_width=8, optimizer="sgd", rngs=nnx.Rngs(0))
  params = nnx.state(m, nnx.Param)
  grads = jax.tree.map(jnp.ones_like, params)
  tx = pz.with_lr_multipliers(optax.sgd(0.1), pz.lr_multipliers(m))
  upd, _ = jax.jit(tx.update)(grads, tx.init(params))
  u = nnx.to_pure_dict(upd)
  np.testing.assert_allclose(np.asarray(u["input_layer"]["kernel"]), -0.1 * 4.0)
  np.testing.assert_allclose(np.asarray(u["hidden_layers"][0]["kernel"]), -0.1)
  np.testing.assert_allclose(np.asarray(u["output_layer"]["kernel"]), -0.1 / 4.0)
  with pytest.raises(ValueError, match="multipliers"):
    pz.scale_by_lr_multipliers({"a": -1.0})


def _coord_check(param, widths, steps=4, lr=1e-3):
  """Mean |change| of the last hidden activation and of the output after `steps` Adam steps, per width."""
  key = jax.random.key(0)
  x = jax.random.normal(key, (64, 16))
  y = jax.random.normal(jax.random.fold_in(key, 1), (64, 4))
  dh, df = [], []
  for w in widths:
    model = MLP(16, w, 4, num_hidden_layers=2, parametrization=param, base_width=widths[0], rngs=nnx.Rngs(1))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = pz.with_lr_multipliers(optax.adam(lr), pz.lr_multipliers(model))

    def fwd(p):
      return nnx.merge(graphdef, p)(x, return_activations=True)

    def loss(p):
      return jnp.mean((fwd(p)[0] - y) ** 2)

    f0, a0 = fwd(params)
    @jax.jit
    def step(p, s):
      u, s = tx.update(jax.grad(loss)(p), s, p)
      return optax.apply_updates(p, u), s

    state = tx.init(params)
    for _ in range(steps):
      params, state = step(params, state)
    f1, a1 = fwd(params)
    dh.append(float(jnp.mean(jnp.abs(a1[-1] - a0[-1]))))
    df.append(float(jnp.mean(jnp.abs(f1 - f0))))
  slope = lambda v: np.polyfit(np.log(widths), np.log(v), 1)[0]
  return slope(dh), slope(df)


def test_coordinate_check_mup_flat_sp_grows():
  widths = [64, 128, 256, 512]
  mup_dh, mup_df = _coord_check("mup", widths)
  sp_dh, sp_df = _coord_check("sp", widths)
  # µP: activation and output updates are width-independent (log-log slope ~ 0); SP + Adam: they grow with width.
  assert abs(mup_dh) < 0.15 and abs(mup_df) < 0.15, (mup_dh, mup_df)
  assert sp_dh > 0.3 and sp_df > 0.3, (sp_dh, sp_df)


def test_depth_mup_branch_multiplier():
  m = MLP(4, 16, 2, num_hidden_layers=8, residual=True, depth_mup=True, base_depth=2, parametrization="mup",
          rngs=nnx.Rngs(0))
  assert m.branch_multiplier == pytest.approx(0.5)
  assert pz.lr_multipliers(m, pure_dict=True)["hidden_layers"][3]["kernel"] == pytest.approx(0.5)
  x = np.random.default_rng(0).normal(size=(3, 4))
  h = np.maximum(x @ np.asarray(m.input_layer.kernel[...], np.float64), 0)
  for layer in m.hidden_layers:
    h = h + 0.5 * np.maximum(h @ np.asarray(layer.kernel[...], np.float64), 0)
  ref = h @ np.asarray(m.output_layer.kernel[...], np.float64)
  np.testing.assert_allclose(np.asarray(m(jnp.asarray(x, jnp.float32))), ref, rtol=1e-4, atol=1e-5)


def test_errors():
  with pytest.raises(ValueError, match="parametrization"):
    MLP(2, 4, 2, parametrization="mu", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="residual"):
    MLP(2, 4, 2, depth_mup=True, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="width"):
    MLP(2, 0, 2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="last axis"):
    MLP(2, 4, 2, rngs=nnx.Rngs(0))(jnp.ones((3, 5)))
