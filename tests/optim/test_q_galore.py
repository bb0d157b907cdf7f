"""Q-GaLore: group quantisation against a NumPy transcription of the official `_quantize`, stochastic rounding
unbiasedness (Monte Carlo), the lazy refresh rule against a plain-Python transcription, INT8 weights, state bytes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.optim import (apply_updates_int8, dequantize_groupwise, q_galore, quantize_groupwise,
                                  scale_by_galore, scale_by_q_galore, subspace)


def _np_quantize(w, gs, bits):
  """The official `GaLoreProjector._quantize` in NumPy (round half to even, as torch.round)."""
  x = w.reshape(-1, gs).astype(np.float32)
  max_int = 2 ** bits - 1
  scales = np.maximum(x.max(1, keepdims=True) - x.min(1, keepdims=True), np.float32(1e-5)) / np.float32(max_int)
  zeros = np.clip(-np.round(x.min(1, keepdims=True) / scales), 0, max_int)
  q = np.clip(np.round(x / scales) + zeros, 0, max_int).astype(np.uint8)
  return q, scales[:, 0], zeros[:, 0]


@pytest.mark.parametrize("bits,gs", [(4, 16), (8, 32), (3, 8)])
def test_quantize_matches_numpy_transcription(bits, gs):
  w = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
  q_ref, s_ref, z_ref = _np_quantize(w, gs, bits)
  qa = jax.jit(lambda w: quantize_groupwise(w, bits, gs))(jnp.asarray(w))
  np.testing.assert_allclose(np.asarray(qa.scales), s_ref, rtol=3e-7)
  np.testing.assert_array_equal(np.asarray(qa.zeros), z_ref)
  deq = np.asarray(dequantize_groupwise(qa, w.shape, bits, gs))
  want = (s_ref[:, None] * (q_ref.astype(np.float32) - z_ref[:, None])).reshape(w.shape)
  np.testing.assert_allclose(deq, want, rtol=1e-6, atol=1e-7)
  # Reconstruction error is at most half a quantisation step per group (plus the zero-point rounding).
  err = np.abs(deq - w).reshape(-1, gs).max(1)
  assert np.all(err <= s_ref * 1.0 + 1e-6)
  if bits <= 4:  # packed: two codes per byte
    assert qa.codes.size == w.size // 2 and qa.codes.dtype == jnp.uint8


def test_per_row_groups_and_padding():
  w = np.random.default_rng(1).normal(size=(5, 7)).astype(np.float32)
  quantize = jax.jit(quantize_groupwise, static_argnums=(1, 2))  # jitted: one compile, not eager op dispatch
  qa = quantize(jnp.asarray(w), 8, -1)  # one group per row
  q_ref, s_ref, z_ref = _np_quantize(w, 7, 8)
  np.testing.assert_allclose(np.asarray(qa.scales), s_ref, rtol=3e-7)
  qa = quantize(jnp.asarray(w), 4, 16)  # 35 entries: the last group is padded with its last entry
  assert qa.scales.shape == (3,)
  deq = np.asarray(jax.jit(dequantize_groupwise, static_argnums=(1, 2, 3))(qa, (5, 7), 4, 16))
  assert deq.shape == (5, 7) and np.abs(deq - w).max() < 0.35


def test_stochastic_rounding_is_unbiased():
  w = jnp.asarray(np.random.default_rng(2).normal(size=(4, 64)), jnp.float32)
  keys = jax.random.split(jax.random.PRNGKey(0), 2000)
  f = jax.jit(jax.vmap(lambda k: dequantize_groupwise(quantize_groupwise(w, 8, 64, key=k), (4, 64), 8, 64)))
  samples = np.asarray(f(keys), np.float64)
  wn = np.asarray(w, np.float64)
  step = np.asarray(jax.jit(lambda w: quantize_groupwise(w, 8, 64).scales)(w), np.float64)[:, None]
  # Each sample is one of the two neighbouring grid points.
  assert np.all(np.abs(samples - wn) <= step * (1 + 1e-4))
  # E[SR(x)] = x (5 standard errors; a Bernoulli step has sd <= step / 2). The group's min and max entries are
  # excluded: there the code range [0, 2^b - 1] can clip the rounded-up (or down) value, in the official code too.
  interior = (wn > wn.min(1, keepdims=True)) & (wn < wn.max(1, keepdims=True))
  se = np.broadcast_to(step / 2 / np.sqrt(len(keys)), wn.shape)
  err = np.abs(samples.mean(0) - wn)
  assert np.all(err[interior] <= 5 * se[interior] + 1e-7), err[interior].max()


def test_apply_updates_int8_lands_on_the_grid_and_leaves_others_alone():
  params = {"w": jnp.asarray(np.random.default_rng(3).normal(size=(8, 64)), jnp.float32), "b": jnp.ones(8)}
  updates = jax.tree.map(lambda p: 1e-3 * jnp.ones_like(p), params)

  @jax.jit
  def run(params, updates, key):  # one program: both roundings and the grid of W' = W + u
    return (apply_updates_int8(params, updates, key, group_size=64),
            apply_updates_int8(params, updates, key, group_size=64, stochastic=False),
            quantize_groupwise(params["w"] + updates["w"], 8, 64))

  new, det, qa = run(params, updates, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(np.asarray(new["b"]), np.asarray(params["b"] + 1e-3))
  # On the INT8 grid of W' = W + u: new = scale * (q - zero) with integer codes q in [0, 255].
  codes = np.asarray(new["w"]).reshape(-1, 64) / np.asarray(qa.scales)[:, None] + np.asarray(qa.zeros)[:, None]
  np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)
  assert codes.min() > -0.5 and codes.max() < 255.5
  assert not np.array_equal(np.asarray(det["w"]), np.asarray(new["w"]))


def _lazy_rule_reference(tops, gap0, thr=0.4, gamma=2, qsize=5, steps=None):
  """Plain-Python transcription of the official refresh schedule, given each step's top singular vector."""
  gap, queue, past, svd_count, gaps, counts = gap0, [], None, 0, [], []
  for it in range(steps):
    if past is None or it % gap == 0:
      top = tops[it]
      svd_count += 1
      if past is not None:
        if len(queue) == qsize:
          queue.pop(0)
        queue.append(float(np.dot(past, top) / max(np.linalg.norm(past) * np.linalg.norm(top), 1e-8)))
        if len(queue) == qsize and sum(queue) / qsize >= thr:
          gap = int(gap * gamma)
      past = top
    gaps.append(gap)
    counts.append(svd_count)
  return gaps, counts


def test_lazy_refresh_matches_the_official_rule():
  rng = np.random.default_rng(4)
  base = rng.normal(size=(24, 3)) @ np.diag([6.0, 3.0, 1.0]) @ rng.normal(size=(3, 16))
  grads = [(base + 0.1 * rng.normal(size=base.shape)).astype(np.float32) for _ in range(30)]
  svd = jax.jit(subspace.svd_basis, static_argnums=(1, 2))
  tops = [np.asarray(svd(jnp.asarray(g), 4, "right"))[:, 0].astype(np.float64) for g in grads]
  gaps, counts = _lazy_rule_reference(tops, 2, steps=len(grads))
  tx = scale_by_q_galore(rank=4, update_gap=2, inner=optax.identity(), group_size=16)
  s = tx.init({"w": jnp.zeros((24, 16))})
  step = jax.jit(tx.update)
  for t, g in enumerate(grads):
    _, s = step({"w": jnp.asarray(g)}, s)
    assert (int(s.gap["w"]), int(s.svd_count["w"])) == (gaps[t], counts[t]), t
  assert gaps[-1] > 2  # the rule fired


def test_int4_projection_error_is_small_and_state_bytes():
  rng = np.random.default_rng(5)
  g = jnp.asarray(rng.normal(size=(64, 32)), jnp.float32)
  exact = scale_by_q_galore(rank=8, scale=1.0, inner=optax.identity(), bits=8, group_size=64)
  int4 = scale_by_q_galore(rank=8, scale=1.0, inner=optax.identity(), bits=4, group_size=64)
  ref = scale_by_galore(rank=8, scale=1.0, inner=optax.identity())  # float projector
  p = {"w": jnp.zeros((64, 32))}
  # Jitted updates (one compile each instead of eager op-by-op dispatch).
  u_ref, _ = jax.jit(ref.update)({"w": g}, ref.init(p))
  u4, s4 = jax.jit(int4.update)({"w": g}, int4.init(p))
  u8, _ = jax.jit(exact.update)({"w": g}, exact.init(p))
  rel = lambda u: float(jnp.linalg.norm(u["w"] - u_ref["w"]) / jnp.linalg.norm(u_ref["w"]))
  assert rel(u8) < 0.02 and rel(u4) < 0.25 and rel(u8) < rel(u4)
  codes = s4.proj.codes["w"]  # right basis 32 x 8 stored as 8 x 32 -> 256 codes, 4 groups
  assert codes.size * codes.dtype.itemsize == 32 * 8 // 2
  assert s4.proj.scales["w"].shape == (4,)


def test_q_galore_trains_and_nan_keeps_projector():
  params = {"w": jnp.asarray(np.random.default_rng(6).normal(size=(16, 12)), jnp.float32)}
  target = jnp.asarray(np.random.default_rng(7).normal(size=(16, 12)), jnp.float32)
  loss = lambda p: jnp.sum((p["w"] - target) ** 2)
  tx = q_galore(0.1, rank=6, update_gap=3, scale=1.0, group_size=24)
  s = tx.init(params)

  @jax.jit
  def step(p, s, bad):
    g = jax.grad(loss)(p)
    g = jax.tree.map(lambda x: jnp.where(bad, jnp.nan, x), g)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  l0 = float(loss(params))
  for _ in range(12):
    params, s = step(params, s, False)
  assert float(loss(params)) < 0.7 * l0
  before = s[0]._replace(count=0, inner_state=0)
  _, s2 = step(params, s, True)  # step 12 is a refresh step (gap 3): the NaN gradient is not decomposed
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(s2[0]._replace(count=0, inner_state=0))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("kwargs,match", [
    (dict(rank=0), "rank"), (dict(bits=0), "bits"), (dict(bits=9), "bits"), (dict(update_gap=0), "update_gap"),
    (dict(projector="random_gaussian"), "unknown projector"), (dict(gamma=0.5), "gamma"),
    (dict(queue_size=0), "queue_size"), (dict(learning_rate=-1.0), "learning_rate")])
def test_bad_hyperparameters_raise_eagerly(kwargs, match):
  kw = dict(learning_rate=0.1, rank=2)
  kw.update(kwargs)
  with pytest.raises((ValueError, TypeError), match=match):
    q_galore(**kw)


def test_lazy_refresh_does_fewer_svds_at_equal_loss():
  """Q-GaLore's claim (arXiv:2407.08296, layer-adaptive lazy update): on a problem whose gradient subspace settles,
  the lazy rule skips SVDs (the interval doubles) and reaches the same loss as refreshing every T steps."""
  rng = np.random.default_rng(8)
  x = jnp.asarray(rng.normal(size=(64, 24)), jnp.float32)
  w_true = {"a": rng.normal(size=(24, 4)) @ rng.normal(size=(4, 20)), "b": rng.normal(size=(24, 3)) @
            rng.normal(size=(3, 16))}
  y = {k: x @ jnp.asarray(v, jnp.float32) for k, v in w_true.items()}
  loss = lambda p: sum(jnp.mean((x @ p[k] - y[k]) ** 2) for k in p)
  out = {}
  for name, thr in [("lazy", 0.4), ("every_T", 2.0)]:  # cos_threshold > 1: the interval never grows
    tx = q_galore(0.05, rank=4, update_gap=4, scale=1.0, group_size=16, cos_threshold=thr)
    p = {"a": jnp.zeros((24, 20)), "b": jnp.zeros((24, 16))}
    s = tx.init(p)

    @jax.jit
    def step(p, s, tx=tx):
      u, s = tx.update(jax.grad(loss)(p), s, p)
      return optax.apply_updates(p, u), s

    for _ in range(120):
      p, s = step(p, s)
    out[name] = (float(loss(p)), sum(int(v) for v in jax.tree.leaves(s[0].svd_count)))
  (l_lazy, n_lazy), (l_full, n_full) = out["lazy"], out["every_T"]
  assert n_full == 2 * 120 // 4  # two matrices, a refresh every 4 steps
  assert n_lazy <= 0.7 * n_full, out  # the lazy rule skipped at least 30% of the SVDs
  # no worse than refreshing every T steps (within 5%). One-sided: jax 0.10.2 gives 23.35 vs 23.37 (from 166.1);
  # under jax 0.12.0.1 (make test-latest, 2026-11-30) the every-T run's SVDs round differently and it ends at 26.40
  # while the lazy one ends at 23.51, which the paper's claim (no loss from skipping SVDs) admits.
  assert l_lazy <= 1.05 * l_full + 1e-3, out
