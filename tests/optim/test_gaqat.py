"""GAQAT [74]: LSQ's forward pass and gradients against a float64 NumPy transcription of Esser et al. eqs. 1-3,
SAM's gradient split against a closed form, and the scale freezing (pure function and optax transform)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import optim as O


def _lsq_np(w, s, q_n, q_p, g):
  """LSQ in float64: w_q = round(clip(w/s, -Q_N, Q_P)) s; dw_q/dw = 1[-Q_N < w/s < Q_P]; dw_q/ds = g * (-w/s +
  round(w/s)) inside, g * (-Q_N) below, g * Q_P above (Esser et al. 2020, eqs. 1-3 and the gradient scale)."""
  v = w / s
  wq = np.round(np.clip(v, -q_n, q_p)) * s
  inside = (v > -q_n) & (v < q_p)
  dw = inside.astype(float)
  ds = np.where(v <= -q_n, -q_n, np.where(v >= q_p, q_p, -v + np.round(v))) * g
  return wq, dw, ds


@pytest.mark.parametrize("bits,signed", [(3, True), (4, True), (4, False)])
def test_lsq_forward_and_gradients_match_the_paper(bits, signed):
  rng = np.random.default_rng(bits)
  w = rng.normal(size=(7, 5)) * 0.6
  if not signed:
    w = np.abs(w)
  s = np.full((1, 5), 0.13) + 0.02 * np.arange(5)            # one step size per output channel
  q_n, q_p = O.lsq_levels(bits, signed)
  g = 1.0 / np.sqrt(7 * q_p)                                  # N_w = 7 entries per step size
  wq, dw, ds_each = _lsq_np(w, s, q_n, q_p, g)
  cot = rng.normal(size=w.shape)                              # a random upstream gradient
  f = lambda w_, s_: jnp.sum(O.lsq_fake_quant(w_, s_, bits, signed=signed) * cot)
  got_q, (got_w, got_s) = jax.jit(lambda w_, s_: (  # one program: the forward and both gradients
      O.lsq_fake_quant(w_, s_, bits, signed=signed), jax.grad(f, argnums=(0, 1))(w_, s_)))(
          jnp.asarray(w, jnp.float32), jnp.asarray(s, jnp.float32))
  np.testing.assert_allclose(np.asarray(got_q), wq, atol=1e-6)
  np.testing.assert_allclose(np.asarray(got_w), cot * dw, atol=1e-6)
  np.testing.assert_allclose(np.asarray(got_s), (cot * ds_each).sum(0, keepdims=True), rtol=1e-5, atol=1e-6)


def test_sam_split_on_a_quadratic_is_the_closed_form():
  a = np.diag([1.0, 4.0])
  w0 = np.array([1.0, -0.5])
  loss = lambda w: 0.5 * w @ jnp.asarray(a, jnp.float32) @ w
  rho = 0.1
  val, g_task, g_sharp = jax.jit(lambda w: O.sam_task_and_sharpness_grads(loss, w, rho=rho))(
      jnp.asarray(w0, jnp.float32))
  g = a @ w0
  e = rho * g / np.linalg.norm(g)
  np.testing.assert_allclose(float(val), 0.5 * w0 @ a @ w0, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(g_task), g, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(g_sharp), a @ e, rtol=1e-5)   # grad L(w + e) - grad L(w) = A e


def test_disorder_and_freezing_pick_the_conflicting_scale_leaves():
  g_task = {"s1": jnp.array([1.0, -1.0, 2.0, 0.0]), "s2": jnp.array(0.5), "w": jnp.array([1.0, 1.0])}
  g_sharp = {"s1": jnp.array([-1.0, -1.0, -2.0, 3.0]), "s2": jnp.array(0.1), "w": jnp.array([-1.0, -1.0])}
  d = O.gradient_disorder(g_task, g_sharp)
  assert float(d["s1"]) == 0.5 and float(d["s2"]) == 0.0 and float(d["w"]) == 1.0
  mask = {"s1": True, "s2": True, "w": False}
  upd = jax.tree.map(lambda a, b: a + b, g_task, g_sharp)
  out, frozen = O.gaqat_freeze_scales(upd, g_task, g_sharp, mask, threshold=0.25)
  assert bool(frozen["s1"]) and not bool(frozen["s2"]) and not bool(frozen["w"])  # w is no scale: never frozen
  np.testing.assert_array_equal(np.asarray(out["s1"]), 0.0)
  np.testing.assert_array_equal(np.asarray(out["w"]), np.asarray(upd["w"]))
  out, frozen = O.gaqat_freeze_scales(upd, g_task, g_sharp, mask, threshold=0.5)   # 0.5 is not > 0.5
  assert not bool(frozen["s1"])


def test_transform_in_a_chain_receives_the_task_gradient():
  params = {"s": jnp.array([0.2, 0.3]), "w": jnp.ones((2, 2))}
  tx = optax.chain(O.scale_by_gaqat_freeze(0.4, scale_mask=lambda p: {"s": True, "w": False}), optax.sgd(1.0))
  state = tx.init(params)
  g_task = {"s": jnp.array([1.0, 1.0]), "w": jnp.full((2, 2), 0.5)}
  g_sam = {"s": jnp.array([-1.0, 2.0]), "w": jnp.full((2, 2), 0.7)}   # g_sharp on s: [-2, 1]: disorder 0.5 > 0.4
  u, state = jax.jit(tx.update)(g_sam, state, params, task_grads=g_task)
  np.testing.assert_array_equal(np.asarray(u["s"]), 0.0)
  np.testing.assert_allclose(np.asarray(u["w"]), -0.7)
  with pytest.raises(ValueError, match="task_grads"):
    tx.update(g_sam, state, params)


def test_transform_inside_optax_masked_takes_full_task_grads_and_scale_mask():
  """[74] inside optax.masked the updates hold MaskedNode leaves while task_grads (an extra argument) spans every
  parameter: this was a tree-mismatch ValueError; the leaves outside the mask are now dropped to match."""
  params = {"s": jnp.array(1.0), "w": jnp.array([1.0]), "z": jnp.array(2.0)}
  g_sam = {"s": jnp.array(1.0), "w": jnp.array([1.0]), "z": jnp.array(2.0)}
  g_task = {"s": jnp.array(-0.5), "w": jnp.array([2.0]), "z": jnp.array(1.0)}   # g_sharp on s: 1.5 opposes -0.5
  inner = optax.chain(O.scale_by_gaqat_freeze(0.5, scale_mask={"s": True, "w": False, "z": False}), optax.sgd(1.0))
  tx = optax.masked(inner, {"s": True, "w": True, "z": False})
  u, _ = jax.jit(lambda g, st, p, t: tx.update(g, st, p, task_grads=t))(g_sam, tx.init(params), params, g_task)
  assert float(u["s"]) == 0.0 and u["w"].tolist() == [-1.0] and float(u["z"]) == 2.0   # frozen, sgd, untouched
  with pytest.raises(ValueError, match="task_grads must span the full parameter tree"):
    tx.update(g_sam, tx.init(params), params, task_grads={"s": g_task["s"]})


def test_bad_input_is_rejected():
  with pytest.raises(ValueError, match="threshold"):
    O.scale_by_gaqat_freeze(1.0, scale_mask={"s": True})
  with pytest.raises(ValueError, match="scale_mask"):
    O.scale_by_gaqat_freeze(0.5)
  with pytest.raises(ValueError, match="bits"):
    O.lsq_fake_quant(jnp.ones(3), jnp.array(0.1), bits=1)
  with pytest.raises(ValueError, match="broadcast"):
    O.lsq_fake_quant(jnp.ones((3, 4)), jnp.ones((3,)), bits=4)
  with pytest.raises(TypeError, match="w must be a floating"):
    O.lsq_fake_quant(jnp.ones(3, jnp.int32), jnp.array(0.1), bits=4)
  tx = O.scale_by_gaqat_freeze(0.5, scale_mask={"s": True, "w": False})
  p = {"s": jnp.ones(2), "w": jnp.ones(2)}
  with pytest.raises(ValueError, match="scale_mask"):
    O.scale_by_gaqat_freeze(0.5, scale_mask={"s": True}).update(p, tx.init(p), task_grads=p)


def test_inject_hyperparams_without_retrace_and_orbax_round_trip(tmp_path):
  """Issue 16's composition contract for the one wave-2 transform outside the conformance table (its update needs
  `task_grads`): the threshold injected and changed between steps without a recompile, equal to the plain transform
  at each threshold, and the chained state through an orbax save/restore continuing identically."""
  ocp = pytest.importorskip("orbax.checkpoint")
  mask = {"s": True, "w": False}
  params = {"s": jnp.array([0.2, 0.3]), "w": jnp.ones((2, 2))}
  g_task = {"s": jnp.array([1.0, 1.0]), "w": jnp.full((2, 2), 0.5)}
  g_sam = {"s": jnp.array([-1.0, 2.0]), "w": jnp.full((2, 2), 0.7)}   # disorder 0.5 on s
  tx = optax.chain(optax.inject_hyperparams(O.scale_by_gaqat_freeze, static_args=O.SCALE_BY_GAQAT_FREEZE_STATIC_ARGS)(
      threshold=0.4, scale_mask=mask), optax.sgd(1.0))
  traces = []

  @jax.jit
  def step(state):
    traces.append(1)
    return tx.update(g_sam, state, params, task_grads=g_task)

  state = tx.init(params)
  for thr in (0.4, 0.6, 0.4):   # 0.4 < disorder freezes s; 0.6 does not
    state[0].hyperparams["threshold"] = jnp.asarray(thr)
    u, state = step(state)
    ref, _ = optax.chain(O.scale_by_gaqat_freeze(thr, scale_mask=mask), optax.sgd(1.0)).update(
        g_sam, optax.chain(O.scale_by_gaqat_freeze(thr, scale_mask=mask), optax.sgd(1.0)).init(params), params,
        task_grads=g_task)
    jax.tree.map(np.testing.assert_array_equal, u, ref)
  assert len(traces) == 1
  path = tmp_path / "state"
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(path, state)
  with ocp.StandardCheckpointer() as ckpt:
    restored = ckpt.restore(path, jax.tree.map(ocp.utils.to_shape_dtype_struct, state))
  assert jax.tree.structure(restored) == jax.tree.structure(state)
  a, b = step(state), step(restored)
  jax.tree.map(np.testing.assert_array_equal, a, b)
