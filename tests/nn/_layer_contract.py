"""The NNX contract every layer of issue 18 meets: nnx.jit, nnx.split/merge in a pure optax train step, bf16
parameters, and an orbax save/restore that reproduces the outputs exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx


def check_layer_contract(make, x, tmp_path, *, loss=None):
  """make(param_dtype) -> module; x an input batch. `loss(module, x)` -> scalar (default: mean square output)."""
  loss = loss or (lambda m, x: jnp.mean(jnp.asarray(m(x), jnp.float32) ** 2))
  model = make(jnp.float32)
  y_eager = model(x)
  y_jit = nnx.jit(lambda m, x: m(x))(model, x)
  np.testing.assert_allclose(np.asarray(y_jit, np.float32), np.asarray(y_eager, np.float32), rtol=1e-5, atol=1e-5)
  # Pure train step on (graphdef, state) pytrees.
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = optax.adam(1e-2)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x):
    def f(p):
      return loss(nnx.merge(graphdef, p, rest), x)
    value, grads = jax.value_and_grad(f)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  p, s = params, opt_state
  values = []
  for _ in range(3):
    p, s, v = step(p, s, x)
    values.append(float(v))
  assert all(np.isfinite(values)), values
  assert values[-1] < values[0], values
  # bf16 parameters: forward and gradient run, parameters keep their dtype.
  m16 = make(jnp.bfloat16)
  g16, p16, r16 = nnx.split(m16, nnx.Param, ...)
  assert all(l.dtype == jnp.bfloat16 for l in jax.tree.leaves(p16))
  grads16 = jax.jit(jax.grad(lambda p: loss(nnx.merge(g16, p, r16), x)))(p16)
  assert all(g.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(g, np.float32)))
             for g in jax.tree.leaves(grads16))
  # orbax save / restore of the trained state.
  trained = nnx.merge(graphdef, p, rest)
  assert_orbax_round_trip(trained, make(jnp.float32), x, tmp_path)


def assert_orbax_round_trip(model, fresh, x, tmp_path, *, output=lambda y: y):
  """Save `model`'s state with orbax, restore it into `fresh` (a module of the same structure, other values) and
  check that `fresh` then gives `model`'s outputs exactly (`output` picks the array of a tuple output)."""
  state = nnx.state(model)
  ckptr = ocp.StandardCheckpointer()
  ckptr.save(tmp_path / "ckpt", state)
  ckptr.wait_until_finished()
  restored = ckptr.restore(tmp_path / "ckpt", jax.eval_shape(lambda: state))
  ckptr.close()
  nnx.update(fresh, restored)
  np.testing.assert_array_equal(np.asarray(output(fresh(x))), np.asarray(output(model(x))))
