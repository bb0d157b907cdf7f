"""GaLore / Q-GaLore / FRUGAL inside the optax ecosystem, each with a real train step: chain, masked,
multi_transform, inject_hyperparams (no retrace, float32 hyperparameters, wrapped == unwrapped), MultiSteps (k
micro-batches == one k-times larger batch), donated jit, eval_shape, orbax round-trip (-m slow: test_conformance
covers it by default), a Flax NNX model."""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.optim import FRUGAL_STATIC_ARGS, GALORE_STATIC_ARGS, Q_GALORE_STATIC_ARGS, frugal, galore, q_galore

OPTIMIZERS = {
    "galore": lambda lr, **kw: galore(lr, rank=2, update_gap=3, **kw),
    "q_galore": lambda lr, **kw: q_galore(lr, rank=2, update_gap=3, group_size=8, **kw),
    "frugal": lambda lr, **kw: frugal(lr, rho=0.5, update_gap=3, **kw),
}
FACTORIES = {"galore": galore, "q_galore": q_galore, "frugal": frugal}
FACTORY_KW = {"galore": dict(rank=2, update_gap=3), "q_galore": dict(rank=2, update_gap=3, group_size=8),
              "frugal": dict(rho=0.5, update_gap=3)}
STATIC = {"galore": GALORE_STATIC_ARGS, "q_galore": Q_GALORE_STATIC_ARGS, "frugal": FRUGAL_STATIC_ARGS}


def _data(seed=0, n=24):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.normal(size=(n, 6)), jnp.float32), jnp.asarray(rng.normal(size=(n, 5)), jnp.float32)


def _params(dtype=jnp.float32):
  rng = np.random.default_rng(1)
  return {"dense": {"w": jnp.asarray(0.3 * rng.normal(size=(6, 8)), dtype), "b": jnp.zeros((8,), dtype)},
          "out": {"w": jnp.asarray(0.3 * rng.normal(size=(8, 5)), dtype)}, "temp": jnp.asarray(1.0, dtype)}


def _loss(p, x, y):
  h = jnp.tanh(x @ p["dense"]["w"].astype(jnp.float32) + p["dense"]["b"].astype(jnp.float32))
  return jnp.mean((p["temp"].astype(jnp.float32) * h @ p["out"]["w"].astype(jnp.float32) - y) ** 2)


def _step_fn(tx, donate=False):
  def step(p, s, x, y):
    loss, g = jax.value_and_grad(_loss)(p, x, y)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s, loss
  return jax.jit(step, donate_argnums=(1,) if donate else ())


def _train(tx, steps, params=None, state=None, donate=False, step=None):
  """`steps` steps of `step` (by default a new jitted `_step_fn(tx, donate)`: pass one to reuse its compilation)."""
  params = _params() if params is None else params
  state = tx.init(params) if state is None else state
  step = _step_fn(tx, donate) if step is None else step
  x, y = _data()
  losses = []
  for _ in range(steps):
    params, state, loss = step(params, state, x, y)
    losses.append(float(loss))
  return params, state, losses


@functools.cache
def _plain_trajectory(name):
  """(params after 4 steps, after 5 steps) of `_train(OPTIMIZERS[name](3e-2), ...)`, computed once per module with one
  compiled step: the undonated reference of the donated-jit test (4) and the unwrapped reference of the
  inject_hyperparams test (5)."""
  tx = OPTIMIZERS[name](3e-2)
  step = _step_fn(tx)
  p4, s4, _ = _train(tx, 4, step=step)
  p5, _, _ = _train(tx, 1, params=p4, state=s4, step=step)
  return p4, p5


def _assert_trees_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_chain_with_clipping_and_weight_decay_trains(name):
  tx = optax.chain(optax.clip_by_global_norm(1.0), OPTIMIZERS[name](5e-2, weight_decay=1e-3))
  _, _, losses = _train(tx, 15)
  assert losses[-1] < 0.85 * losses[0], losses


@pytest.mark.parametrize("name", ["galore", "frugal"])
def test_masked_and_multi_transform(name):
  params = _params()
  labels = {"dense": {"w": "low", "b": "adam"}, "out": {"w": "low"}, "temp": "frozen"}
  tx = optax.multi_transform({"low": OPTIMIZERS[name](3e-2), "adam": optax.adam(3e-2),
                              "frozen": optax.set_to_zero()}, labels)
  p, state, losses = _train(tx, 6)
  assert losses[-1] < losses[0]
  assert float(p["temp"]) == 1.0
  low_state = state.inner_states["low"].inner_state[0]
  assert low_state.count == 6
  mask = {"dense": {"w": True, "b": False}, "out": {"w": False}, "temp": False}
  not_mask = jax.tree.map(lambda m: not m, mask)
  tx = optax.chain(optax.masked(OPTIMIZERS[name](3e-2), mask), optax.masked(optax.set_to_zero(), not_mask))
  p, _, losses = _train(tx, 3)
  assert losses[-1] < losses[0]
  np.testing.assert_array_equal(np.asarray(p["out"]["w"]), np.asarray(params["out"]["w"]))
  assert not np.array_equal(np.asarray(p["dense"]["w"]), np.asarray(params["dense"]["w"]))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_inject_hyperparams_no_retrace_and_equals_unwrapped(name):
  kw = dict(FACTORY_KW[name])
  inj = optax.inject_hyperparams(FACTORIES[name], static_args=STATIC[name])(
      learning_rate=3e-2, inner=optax.inject_hyperparams(optax.scale_by_adam)(b1=0.9, b2=0.999), **kw)
  traces = []

  def step(p, s, x, y):
    traces.append(1)
    g = jax.grad(_loss)(p, x, y)
    u, s = inj.update(g, s, p)
    return optax.apply_updates(p, u), s

  jstep = jax.jit(step)  # one compiled step serves both checks below
  params, (x, y) = _params(), _data()
  p1, s1 = params, inj.init(params)
  for _ in range(5):
    p1, s1 = jstep(p1, s1, x, y)
  p2 = _plain_trajectory(name)[1]  # = _train(FACTORIES[name](3e-2, **kw), 5): OPTIMIZERS[name] is that factory
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):  # wrapped == unwrapped (up to constant folding)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)

  state = inj.init(params)
  for lr, b1 in [(3e-2, 0.9), (1e-2, 0.8), (5e-3, 0.5)]:
    state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
    inner = _find_inner_inject(state)
    inner.hyperparams["b1"] = jnp.asarray(b1, jnp.float32)
    params, state = jstep(params, state, x, y)
  assert len(traces) == 1  # 8 calls, 3 of them with changed hyperparameters: traced (compiled) once
  # optax.inject_hyperparams casts hyperparameters to the params' dtype unless told otherwise (optax#1414); with
  # hyperparam_dtype=float32 they stay float32 for bf16 params and our transforms run with them.
  inj32 = optax.inject_hyperparams(FACTORIES[name], static_args=STATIC[name], hyperparam_dtype=jnp.float32)(
      learning_rate=3e-2, **kw)
  p16 = _params(jnp.bfloat16)
  st = inj32.init(p16)
  assert st.hyperparams["learning_rate"].dtype == jnp.float32
  u, st = jax.jit(inj32.update)(p16, st, p16)
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(optax.apply_updates(p16, u)))


def _find_inner_inject(state):
  is_inject = lambda s: hasattr(s, "hyperparams") and hasattr(s, "inner_state")
  found = [s for s in jax.tree.leaves(state.inner_state, is_leaf=is_inject) if is_inject(s)]
  return found[0]


@pytest.mark.parametrize("name", ["galore", "frugal"])
def test_multisteps_equals_large_batch_and_counts_logical_steps(name):
  k = 3
  sched = optax.linear_schedule(3e-2, 1e-2, 4)
  x, y = _data(n=24)
  big = OPTIMIZERS[name](sched)
  acc = optax.MultiSteps(OPTIMIZERS[name](sched), every_k_schedule=k)
  pb, sb = _params(), big.init(_params())
  pa, sa = _params(), acc.init(_params())

  @jax.jit
  def step_big(p, s):
    u, s = big.update(jax.grad(_loss)(p, x, y), s, p)
    return optax.apply_updates(p, u), s

  @jax.jit
  def step_micro(p, s, xm, ym):
    u, s = acc.update(jax.grad(_loss)(p, xm, ym), s, p)
    return optax.apply_updates(p, u), s

  for _ in range(2):
    pb, sb = step_big(pb, sb)
    for i in range(k):
      pa, sa = step_micro(pa, sa, x[8 * i:8 * (i + 1)], y[8 * i:8 * (i + 1)])
  for a, b in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  assert int(sa.gradient_step) == 2 and int(sa.inner_opt_state[0].count) == 2  # logical steps


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_donated_jit_and_eval_shape(name):
  tx = OPTIMIZERS[name](3e-2)
  shapes = jax.eval_shape(tx.init, _params())
  real = tx.init(_params())
  assert jax.tree.structure(shapes) == jax.tree.structure(real)
  for a, b in zip(jax.tree.leaves(shapes), jax.tree.leaves(real)):
    assert (a.shape, a.dtype) == (b.shape, b.dtype)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # CPU may not use donated buffers
    p_don, _, _ = _train(tx, 4, donate=True)
  p_ref = _plain_trajectory(name)[0]  # = _train(tx, 4)
  _assert_trees_equal(p_don, p_ref)


# Slow: a duplicate of test_conformance.py::test_core_contracts_float32_odd_leaves_orbax[galore|q_galore|frugal]
# (default), which saves / restores after a projector refresh and asserts the restored state and the continued
# params and state bit for bit.
@pytest.mark.slow
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_orbax_round_trip_continues_identically(name, tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  tx = OPTIMIZERS[name](3e-2)
  step = _step_fn(tx)  # one compiled step for the uninterrupted run and the resumed one
  # Committed to the device, as orbax's restored arrays are (uncommitted ones would make jit compile the step again).
  p0 = jax.device_put(_params(), jax.devices()[0])
  s0 = jax.device_put(tx.init(p0), jax.devices()[0])
  p_mid, s_mid, _ = _train(tx, 4, params=p0, state=s0, step=step)
  p_full, s_full, _ = _train(tx, 4, params=p_mid, state=s_mid, step=step)  # steps 5-8 without a checkpoint
  ckptr = ocp.StandardCheckpointer()
  ckptr.save(tmp_path / "ckpt", {"params": p_mid, "opt": s_mid})
  ckptr.wait_until_finished()
  target = jax.eval_shape(lambda: {"params": p_mid, "opt": s_mid})
  restored = ckptr.restore(tmp_path / "ckpt", target)
  _assert_trees_equal(restored["opt"], s_mid)
  p_res, s_res, _ = _train(tx, 4, params=restored["params"], state=restored["opt"], step=step)
  _assert_trees_equal(p_res, p_full)
  _assert_trees_equal(s_res, s_full)


# q_galore's leaf plans are galore's (`galore_plans`): the NNX tree path is covered by [galore]; by default only the
# 2-D head kernel is projected, whose q_galore update test_conformance.py::test_core_contracts_*[q_galore] covers.
@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n == "q_galore" else [])
                                  for n in OPTIMIZERS])
def test_flax_nnx_model_parameter_tree(name):
  nnx = pytest.importorskip("flax.nnx")

  class Net(nnx.Module):
    def __init__(self, rngs):
      self.conv = nnx.Conv(3, 4, kernel_size=(3, 3), rngs=rngs)        # 4-D kernel + 1-D bias
      self.attn_qkv = nnx.Param(jax.random.normal(rngs.params(), (4, 2, 3)) * 0.3)  # 3-D attention kernel
      self.norm = nnx.LayerNorm(4, rngs=rngs)
      self.head = nnx.Linear(4, 5, rngs=rngs)                          # 2-D kernel: projected / split
      self.temp = nnx.Param(jnp.asarray(1.0))                          # scalar

    def __call__(self, x):
      h = self.norm(jnp.mean(self.conv(x), axis=(1, 2)))
      h = h + jnp.einsum("bd,dnh->bd", h, self.attn_qkv[...]) * 0.1
      return self.temp[...] * self.head(h)

  model = Net(nnx.Rngs(0))
  opt = nnx.Optimizer(model, OPTIMIZERS[name](1e-2), wrt=nnx.Param)
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 6, 6, 3))
  y = jax.random.normal(jax.random.PRNGKey(2), (4, 5))

  @nnx.jit
  def step(model, opt):
    loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    opt.update(model, grads)
    return loss

  losses = [float(step(model, opt)) for _ in range(6)]
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
