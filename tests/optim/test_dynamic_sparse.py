"""Dynamic sparse training [140]: the parameter budget is exact at every step, one mask update equals a NumPy
transcription of RigL's prune / regrow rule, sparsity 0 is the inner optimizer, and bad input is named."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import optim as O


def _params(seed=0):
  rng = np.random.default_rng(seed)
  return {"emb": jnp.asarray(rng.normal(size=(20, 8)), jnp.float32), "w": jnp.asarray(rng.normal(size=(8, 6)),
                                                                                     jnp.float32),
          "b": jnp.asarray(rng.normal(size=(6,)), jnp.float32)}


def test_number_of_active_weights_is_constant_at_every_step():
  params = _params()
  tx = O.dynamic_sparse(optax.adam(0.05), sparsity=0.8, update_interval=2, end_step=10, drop_fraction=0.5)
  state = tx.init(params)
  params = O.apply_masks(params, state)
  want = {"emb": round(0.2 * 160), "w": round(0.2 * 48), "b": 6}
  step = jax.jit(tx.update)
  changed = 0
  prev = np.asarray(state.masks["emb"])
  rng = np.random.default_rng(0)
  for t in range(14):
    g = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
    u, state = step(g, state, params)
    params = optax.apply_updates(params, u)
    for k, n in want.items():
      assert int(state.masks[k].sum()) == n, (t, k)
      assert np.all(np.asarray(params[k])[~np.asarray(state.masks[k])] == 0.0)  # inactive weights are exactly 0
    cur = np.asarray(state.masks["emb"])
    if t >= 10:  # count >= end_step: the masks are frozen
      assert (cur == prev).all(), t
    changed += int((cur != prev).sum())
    prev = cur
  assert changed > 0  # the masks did move (exploration)
  # Per-row active counts vary: the exploration redistributes the budget across the embedding rows.
  assert np.asarray(state.masks["emb"]).sum(1).std() > 0


def _rigl_update_np(w, g, mask, k):
  """RigL (Evci et al. 2020) in NumPy: drop the k active entries of smallest |w|, grow the k inactive (after the drop)
  entries of largest |g|."""
  w, g, m = w.ravel(), g.ravel(), mask.ravel().copy()
  active = np.flatnonzero(m)
  drop = active[np.argsort(np.abs(w[active]), kind="stable")[:k]]
  m[drop] = False
  inactive = np.flatnonzero(~m)
  grow = inactive[np.argsort(-np.abs(g[inactive]), kind="stable")[:k]]
  m[grow] = True
  return m.reshape(mask.shape)


def test_one_mask_update_matches_a_numpy_transcription_of_rigl():
  rng = np.random.default_rng(1)
  params = {"w": jnp.asarray(rng.normal(size=(10, 10)), jnp.float32)}
  tx = O.dynamic_sparse(optax.sgd(0.0), sparsity=0.7, update_interval=1, end_step=100, drop_fraction=0.4)
  state = tx.init(params)
  params = O.apply_masks(params, state)
  # step 0: no mask update (count 0); step 1 updates with zeta_1 = 0.2 (1 + cos(pi / 100)).
  g0 = {"w": jnp.asarray(rng.normal(size=(10, 10)), jnp.float32)}
  step = jax.jit(tx.update)
  _, state = step(g0, state, params)
  g1 = {"w": jnp.asarray(rng.normal(size=(10, 10)), jnp.float32)}
  mask_before = np.asarray(state.masks["w"])
  _, state = step(g1, state, params)
  k = math.floor(0.4 / 2 * (1 + math.cos(math.pi * 1 / 100)) * 30)
  want = _rigl_update_np(np.asarray(params["w"]), np.asarray(g1["w"]), mask_before, k)
  np.testing.assert_array_equal(np.asarray(state.masks["w"]), want)


def test_cosine_drop_fraction():
  sched = O.cosine_drop_fraction(0.3, 50)
  for t in (0, 10, 49, 50, 80):
    want = 0.15 * (1 + math.cos(math.pi * t / 50)) if t < 50 else 0.0
    assert float(sched(t)) == pytest.approx(want, abs=1e-7)


def test_sparsity_zero_is_the_inner_optimizer():
  params = _params(2)
  a = O.dynamic_sparse(optax.adam(0.1), sparsity=0.0, update_interval=2, end_step=10)
  b = optax.adam(0.1)
  sa, sb, pa, pb = a.init(params), b.init(params), params, params
  step_a, step_b = jax.jit(a.update), jax.jit(b.update)
  for t in range(5):
    g = jax.tree.map(lambda p: jnp.cos(p * (t + 1)), pa)
    ua, sa = step_a(g, sa, pa)
    ub, sb = step_b(g, sb, pb)
    pa, pb = optax.apply_updates(pa, ua), optax.apply_updates(pb, ub)
  for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


def test_random_regrowth_keeps_the_budget_and_differs_from_gradient_regrowth():
  params = {"w": jnp.asarray(np.random.default_rng(3).normal(size=(12, 12)), jnp.float32)}
  out = {}
  for regrow in ("gradient", "random"):
    tx = O.dynamic_sparse(optax.sgd(0.1), sparsity=0.5, update_interval=1, end_step=10, regrow=regrow)
    s = tx.init(params)
    p = O.apply_masks(params, s)
    step = jax.jit(tx.update)
    for t in range(3):
      u, s = step({"w": jnp.full((12, 12), 0.01) + jnp.eye(12)}, s, p)
      p = optax.apply_updates(p, u)
      assert int(s.masks["w"].sum()) == 72
    out[regrow] = np.asarray(s.masks["w"])
  assert (out["gradient"] != out["random"]).any()


def test_bad_input_is_rejected():
  with pytest.raises(ValueError, match="sparsity"):
    O.dynamic_sparse(optax.sgd(0.1), sparsity=1.0)
  with pytest.raises(ValueError, match="regrow"):
    O.dynamic_sparse(optax.sgd(0.1), sparsity=0.5, regrow="magnitude")
  with pytest.raises(ValueError, match="update_interval"):
    O.dynamic_sparse(optax.sgd(0.1), sparsity=0.5, update_interval=0)
  with pytest.raises(ValueError, match="drop_fraction"):
    O.dynamic_sparse(optax.sgd(0.1), sparsity=0.5, drop_fraction=1.5)
  with pytest.raises(TypeError, match="inner"):
    O.dynamic_sparse(lambda g: g, sparsity=0.5)
  tx = O.dynamic_sparse(optax.sgd(0.1), sparsity=0.5)
  params = _params()
  with pytest.raises(ValueError, match="needs the parameters"):
    tx.update(params, tx.init(params))
  with pytest.raises(O.StaticArgumentError, match="sparsity"):
    optax.inject_hyperparams(O.dynamic_sparse, static_args=("inner",))(inner=optax.sgd(0.1), sparsity=0.5).init(
        params)
