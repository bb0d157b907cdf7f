"""CO2 [52]: the outer update against a float64 NumPy transcription of the official code's
`_perform_local_optimization`; the whole sharded algorithm (shard_map over 4 simulated devices, local SGD on
quadratics) against an independent NumPy simulation of one-step-stale CO2; and the collectives in the compiled HLO
(inner steps: none; a round: one all-reduce per dtype group)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.optim import co2_init, co2_outer_update, count_collectives, pmean_grouped
from jaxlib_methods.runner import distributed


def _official_outer_np(old, gmb, p, *, outer_lr, outer_momentum, gap_penalty, clip, clip_threshold):
  """weigao266/fairscale-CO2 `_perform_local_optimization`, transcribed (float64): gmb = beta*gmb - p/lambda +
  old/lambda; clamp (the intended, in-place version); old += -alpha * gmb; p <- old."""
  gmb = gmb * outer_momentum - p / gap_penalty + old / gap_penalty
  if clip:
    gmb = np.clip(gmb, -clip_threshold, clip_threshold)
  old = old - outer_lr * gmb
  return old, gmb


@pytest.mark.parametrize("hp", [dict(outer_lr=1.0, outer_momentum=0.0, gap_penalty=1.0, clip_threshold=math.inf),
                                dict(outer_lr=0.7, outer_momentum=0.5, gap_penalty=2.0, clip_threshold=0.05),
                                dict(outer_lr=1.5, outer_momentum=0.9, gap_penalty=4.0, clip_threshold=1.0)])
def test_outer_update_matches_the_official_code(hp):
  rng = np.random.default_rng(0)
  shapes = {"a": (5, 3), "b": (7,)}
  anchor = {k: rng.normal(size=s) for k, s in shapes.items()}
  stale_anchor = {k: rng.normal(size=s) for k, s in shapes.items()}
  avg = {k: rng.normal(size=s) for k, s in shapes.items()}
  mom = {k: 0.1 * rng.normal(size=s) for k, s in shapes.items()}
  f32 = lambda t: {k: jnp.asarray(v, jnp.float32) for k, v in t.items()}
  new_anchor, new_m = co2_outer_update(f32(anchor), f32(mom), f32(stale_anchor), f32(avg), **hp)
  clip = not math.isinf(hp["clip_threshold"])
  for k in shapes:
    # official: `old` is the anchor the update is applied to; the momentum is fed the (stale) gap old - p
    _, gmb = _official_outer_np(stale_anchor[k], mom[k], avg[k], clip=clip, **hp)
    ref_anchor = anchor[k] - hp["outer_lr"] * gmb
    np.testing.assert_allclose(np.asarray(new_m[k]), gmb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(new_anchor[k]), ref_anchor, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad, match", [(dict(gap_penalty=0.5), "gap_penalty"), (dict(clip_threshold=0.0), "phi"),
                                        (dict(outer_momentum=1.0), "outer_momentum"), (dict(outer_lr=-1.0),
                                                                                       "outer_lr")])
def test_bad_hyperparameters_are_named(bad, match):
  t = {"w": jnp.ones(3)}
  with pytest.raises(ValueError, match=match):
    co2_outer_update(t, t, t, t, **bad)


def test_count_collectives_reads_hlo_text():
  hlo = """
  %all-reduce.1 = f32[10]{0} all-reduce(f32[10]{0} %p), replica_groups={{0,1}}, to_apply=%add
  %ars = (f32[4]{0}, f32[4]{0}) all-reduce-start(f32[4]{0} %x), replica_groups={{0,1}}
  %ard = f32[4]{0} all-reduce-done((f32[4]{0}, f32[4]{0}) %ars)
  %ag = f32[8]{0} all-gather(f32[4]{0} %y), dimensions={0}
  %add.3 = f32[] add(f32[] %a, f32[] %b)
  """
  c = count_collectives(hlo)
  assert c["all-reduce"] == 2 and c["all-gather"] == 1 and c["reduce-scatter"] == 0


# ---- the sharded algorithm, in a child with 4 simulated devices ----------------------------------------------------

G, TAU, ROUNDS, LR = 4, 3, 5, 0.1
HP = (0.8, 0.5, 2.0, 0.3)   # alpha, beta, lambda, phi


def _problem(seed=0, d=6):
  rng = np.random.default_rng(seed)
  a = rng.uniform(0.5, 2.0, size=(G, d))        # worker i minimises 0.5 * sum a_i (x - c_i)^2
  c = rng.normal(size=(G, d))
  x0 = rng.normal(size=d)
  return a, c, x0


def _numpy_co2(a, c, x0):
  """One-step-stale CO2 with local SGD, written from the algorithm (independent of jaxlib_methods.optim.co2)."""
  alpha, beta, lam, phi = HP
  anchor, stale_anchor, m = x0.copy(), x0.copy(), np.zeros_like(x0)
  pending = np.tile(x0, (G, 1))
  for _ in range(ROUNDS):
    avg = pending.mean(0)                                   # the all-reduce of the previous round
    local = np.tile(anchor, (G, 1))
    for _ in range(TAU):
      local = local - LR * a * (local - c)                  # tau local SGD steps, no communication
    m = np.clip(beta * m + (stale_anchor - avg) / lam, -phi, phi)
    anchor, stale_anchor, pending = anchor - alpha * m, anchor, local
  return anchor, pending


def child_sharded_co2(payload: dict) -> dict:
  from jax.sharding import NamedSharding, PartitionSpec as P
  from jaxlib_methods.optim import CO2State, co2_round
  from jaxlib_methods.runner import MeshConfig, make_mesh
  mesh = make_mesh(MeshConfig(data=G))
  a, c, x0 = (np.asarray(v) for v in payload["problem"])

  def inner_steps(x, _, batch):
    ai, ci = batch[0][0], batch[1][0]
    def step(x, _):
      return x - LR * ai * (x - ci), None
    x, _ = jax.lax.scan(step, x["x"], None, length=TAU)
    return {"x": x}, _, jnp.zeros(())

  rep, per = P(), P("data")
  spec = CO2State(count=rep, anchor=rep, momentum=rep, stale_anchor=rep, pending=per)

  def body(state, batch):
    st = state._replace(pending=jax.tree.map(lambda v: v[0], state.pending))
    new, _, _ = co2_round(st, None, batch, inner_steps=inner_steps, axis_name="data", outer_lr=HP[0],
                          outer_momentum=HP[1], gap_penalty=HP[2], clip_threshold=HP[3])
    return new._replace(pending=jax.tree.map(lambda v: v[None], new.pending))

  round_fn = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(spec, (per, per)), out_specs=spec))
  st = co2_init({"x": jnp.asarray(x0, jnp.float32)})
  put = lambda v, s: jax.device_put(v, NamedSharding(mesh, s))
  state = CO2State(count=put(st.count, rep), anchor=put(st.anchor, rep), momentum=put(st.momentum, rep),
                   stale_anchor=put({"x": jnp.asarray(x0, jnp.float32)}, rep),
                   pending=put({"x": jnp.tile(jnp.asarray(x0, jnp.float32), (G, 1))}, per))
  batch = (put(jnp.asarray(a, jnp.float32), per), put(jnp.asarray(c, jnp.float32), per))
  hlo = round_fn.lower(state, batch).compile().as_text()
  for _ in range(ROUNDS):
    state = round_fn(state, batch)
    jax.block_until_ready(state)
  from jaxlib_methods.optim import as_varying
  inner = jax.jit(jax.shard_map(lambda x, b: jax.tree.map(lambda v: v[None],
                                                          inner_steps(as_varying(x, "data"), None, b)[0]),
                                mesh=mesh, in_specs=(rep, (per, per)), out_specs=per))
  inner_hlo = inner.lower({"x": state.anchor["x"]}, batch).compile().as_text()
  # pmean_grouped: one all-reduce for two float32 leaves and one int32 leaf -> 2 dtype groups
  grouped = jax.jit(jax.shard_map(lambda t: pmean_grouped(t, "data"), mesh=mesh, in_specs=per, out_specs=rep))
  tree = {"u": put(jnp.arange(8.0).reshape(G, 2), per), "v": put(jnp.ones((G, 3)), per),
          "k": put(jnp.arange(G, dtype=jnp.int32).reshape(G, 1) * 4, per)}
  g_hlo = grouped.lower(tree).compile().as_text()
  g = grouped(tree)
  return {"anchor": np.asarray(state.anchor["x"]).tolist(), "pending": np.asarray(state.pending["x"]).tolist(),
          "round": count_collectives(hlo), "inner": count_collectives(inner_hlo),
          "grouped": count_collectives(g_hlo), "grouped_u": np.asarray(g["u"]).tolist(),
          "grouped_k": np.asarray(g["k"]).tolist()}


def test_sharded_co2_matches_numpy_and_has_the_collectives_of_the_paper(fast_xla):
  a, c, x0 = _problem()
  res = distributed.call_with_cpu_devices("tests.optim.test_co2:child_sharded_co2",
                                          {"problem": [a.tolist(), c.tolist(), x0.tolist()]}, devices=G,
                                          timeout_s=300)
  anchor, pending = _numpy_co2(a, c, x0)
  np.testing.assert_allclose(res["anchor"], anchor, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(res["pending"], pending, rtol=1e-5, atol=1e-5)
  assert sum(res["inner"].values()) == 0, res["inner"]
  assert res["round"]["all-reduce"] == 1 and sum(res["round"].values()) == 1, res["round"]
  assert res["grouped"]["all-reduce"] == 2, res["grouped"]          # one per dtype group
  np.testing.assert_allclose(res["grouped_u"], [np.arange(8.0).reshape(G, 2).mean(0)])
  assert res["grouped_k"] == [[6]]                                  # mean of 0, 4, 8, 12 in int32


def test_init_state_moves_nothing_in_round_zero():
  params = {"w": jnp.arange(3.0)}
  st = co2_init(params)
  anchor, m = co2_outer_update(st.anchor, st.momentum, st.stale_anchor, st.pending, outer_lr=1.0,
                               outer_momentum=0.9)
  np.testing.assert_array_equal(np.asarray(anchor["w"]), np.arange(3.0))
  assert float(jnp.abs(m["w"]).sum()) == 0.0
