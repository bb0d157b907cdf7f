"""GaLore / Q-GaLore / FRUGAL on a simulated 8-device CPU mesh (subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8): with parameters sharded, the jitted update's moments are
sharded like their parameter along the axis they share, projectors (small d x r) are replicated, and the state can be
created sharded the same way by `jax.jit(tx.init, out_shardings=...)` with the update's output shardings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from jaxlib_methods.optim import frugal, galore, q_galore
    assert len(jax.devices()) == 8
    mesh = Mesh(np.asarray(jax.devices()), ("x",))
    params = {"b": jnp.ones((64,)), "v": jnp.ones((16, 64)), "w": jnp.ones((64, 16))}
    specs = {"b": P("x"), "v": P(None, "x"), "w": P("x", None)}
    params = jax.device_put(params, jax.tree.map(lambda s: NamedSharding(mesh, s), specs))
    grads = jax.tree.map(lambda p: p * 0.5, params)
    spec_of = lambda a: tuple(a.sharding.spec) + (None,) * (a.ndim - len(a.sharding.spec))
    for name, tx in [("galore", galore(1e-2, rank=4)), ("q_galore", q_galore(1e-2, rank=4, group_size=16)),
                     ("frugal", frugal(1e-2, rho=0.25, projector="svd"))]:
      state = jax.jit(tx.init)(params)
      upd = jax.jit(tx.update)
      out_shardings = upd.lower(grads, state, params).compile().output_shardings[1]
      state = jax.jit(tx.init, out_shardings=out_shardings)(params)
      for _ in range(2):
        u, state = upd(grads, state, params)
      inner = state[0].inner_state
      mu = inner.mu
      # w (64x16): right side -> moments 64 x r, rows sharded like w; v (16x64): left -> r x 64, columns sharded.
      assert spec_of(mu["w"]) == ("x", None), (name, mu["w"].sharding)
      assert spec_of(mu["v"]) == (None, "x"), (name, mu["v"].sharding)
      full = state[0].full_state.mu["b"] if name == "frugal" else mu["b"]
      assert spec_of(full) == ("x",), (name, full.sharding)
      for a in jax.tree.leaves(state[0].proj if name == "q_galore" else state[0].basis):  # small: replicated
        assert all(s is None for s in spec_of(a)), (name, a.sharding)
      for k in params:  # updates sharded like their params
        assert spec_of(u[k]) == spec_of(params[k]), (name, k, u[k].sharding)
      print(name, "ok")
""")


def test_sharded_state_on_8_simulated_devices():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=root, capture_output=True, text=True,
                       timeout=300)
  assert res.returncode == 0, res.stdout + res.stderr
  assert res.stdout.split() == ["galore", "ok", "q_galore", "ok", "frugal", "ok"]
