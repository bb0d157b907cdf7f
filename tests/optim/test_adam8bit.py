"""8-bit block-wise Adam against an independent NumPy transcription of bitsandbytes' block-wise 8-bit Adam kernel
(brute-force nearest code over the 256-entry map, ties to the lower code, the sign fix for the first moment), the
dynamic map's known values, state bytes, and Q-GaLore with it as the inner optimizer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods import optim as O


def test_dynamic_map_values():
  signed, unsigned = O.dynamic_map(True), O.dynamic_map(False)
  for code in (signed, unsigned):
    assert code.shape == (256,) and code.dtype == np.float32 and np.all(np.diff(code) >= 0) and code[-1] == 1.0
  assert (signed < 0).sum() == 127 and (signed == 0).sum() == 1 and (signed > 0).sum() == 128
  np.testing.assert_allclose(-signed[:127][::-1], signed[128:255])  # symmetric around 0 (1.0 has no negative)
  assert unsigned[0] == 0.0 and (unsigned > 0).sum() == 255
  # Smallest level: 10^-6 * the midpoint of [0.1, 1] (signed, 1 value) or of its two halves (unsigned).
  np.testing.assert_allclose(signed[128], 0.55e-6, rtol=1e-6)
  np.testing.assert_allclose(unsigned[1], 0.325e-6, rtol=1e-6)
  # Largest below 1: the last of 64 (signed) / 128 (unsigned) midpoints of [0.1, 1] at level 10^0.
  np.testing.assert_allclose(signed[254], 1 - 0.9 / 128, rtol=1e-6)
  np.testing.assert_allclose(unsigned[254], 1 - 0.9 / 256, rtol=1e-6)


def _np_quantize(x, code, block, signed):
  """Block-wise nearest-code quantisation written plainly (brute force over the 256 codes)."""
  flat = x.reshape(-1).astype(np.float32)
  codes = np.zeros(flat.size, np.int64)
  absmax = []
  for start in range(0, flat.size, block):
    blk = flat[start:start + block]
    a = np.float32(np.abs(blk).max())
    absmax.append(a)
    y = blk / (a if a > 0 else np.float32(1.0))
    for j, v in enumerate(y):
      d = np.abs(code - v)
      c = int(np.flatnonzero(d == d.min())[0])  # the lowest index among equals: ties go to the lower code
      if signed and np.signbit(code[c]) != np.signbit(v):
        c += 1 if v > 0 else -1
      codes[start + j] = c
  return codes.reshape(x.shape), np.asarray(absmax, np.float32)


def _np_dequantize(codes, absmax, code, block):
  flat = code[codes.reshape(-1)]
  return (flat * np.repeat(absmax, block)[:flat.size]).reshape(codes.shape)


def test_quantize_matches_a_brute_force_transcription():
  rng = np.random.default_rng(0)
  x = (rng.standard_t(3, size=(5, 13)) * 1e-3).astype(np.float32)
  x[0, :3] = [0.0, -1e-12, 1e-12]  # zero and tiny values of both signs (the sign fix)
  # Jitted, as the optimizer runs them (one compiled program per call instead of dozens of eager op dispatches).
  quantize = jax.jit(O.quantize_blockwise, static_argnums=2, static_argnames="signed")
  dequantize = jax.jit(O.dequantize_blockwise, static_argnums=2)
  for signed, block in [(True, 16), (False, 7)]:
    xs = x if signed else np.abs(x)
    code = O.dynamic_map(signed)
    want_c, want_a = _np_quantize(xs, code, block, signed)
    q = quantize(jnp.asarray(xs), jnp.asarray(code), block, signed=signed)
    np.testing.assert_array_equal(np.asarray(q.codes).astype(np.int64), want_c)
    np.testing.assert_array_equal(np.asarray(q.absmax), want_a)
    deq = np.asarray(dequantize(q, jnp.asarray(code), block))
    np.testing.assert_allclose(deq, _np_dequantize(want_c, want_a, code, block), rtol=1e-7)
    if signed:  # no sign flips; a negative value stays negative (zero counts as positive, as in the kernel)
      assert np.all(deq * xs >= 0) and np.all(deq[xs < 0] < 0)


def test_steps_match_the_bitsandbytes_kernel_transcription():
  b1, b2, eps, block, steps = 0.9, 0.95, 1e-8, 8, 6
  rng = np.random.default_rng(1)
  shape = (4, 10)
  grads = [rng.normal(size=shape).astype(np.float32) * (1 + t) for t in range(steps)]
  cm, cv = O.dynamic_map(True), O.dynamic_map(False)
  qm = np.full(shape, 127 + 1, np.int64)  # any codes: absmax 0 makes the initial state 0
  qv = np.zeros(shape, np.int64)
  am = np.zeros(-(-qm.size // block), np.float32)
  av = np.zeros_like(am)
  tx = O.scale_by_adam_8bit(b1=b1, b2=b2, eps=eps, block_size=block, min_8bit_size=0)
  state = tx.init({"w": jnp.zeros(shape)})
  step = jax.jit(tx.update)
  for t, g in enumerate(grads, start=1):
    m = np.float32(b1) * _np_dequantize(qm, am, cm, block) + np.float32(1 - b1) * g
    v = np.float32(b2) * _np_dequantize(qv, av, cv, block) + np.float32(1 - b2) * g * g
    c1, c2 = 1 - b1 ** t, np.sqrt(1 - b2 ** t)
    want = (c2 / c1) * m / (np.sqrt(v) + eps * c2)
    qm, am = _np_quantize(m, cm, block, True)
    qv, av = _np_quantize(v, cv, block, False)
    u, state = step({"w": jnp.asarray(g)}, state)
    np.testing.assert_allclose(np.asarray(u["w"]), want, rtol=2e-5, atol=1e-6, err_msg=str(t))
    np.testing.assert_array_equal(np.asarray(state.mu["w"]).astype(np.int64), qm)
    np.testing.assert_array_equal(np.asarray(state.nu["w"]).astype(np.int64), qv)


def test_small_leaves_keep_float32_adam_and_state_bytes():
  params = {"big": jnp.zeros((64, 64)), "small": jnp.zeros((10,))}
  tx = O.scale_by_adam_8bit()  # block 2048, min_8bit_size 4096 (bitsandbytes' defaults)
  st = tx.init(params)
  assert st.mu["big"].dtype == jnp.uint8 and st.mu_absmax["big"].shape == (2,)
  assert st.mu["small"].dtype == jnp.float32 and st.mu_absmax["small"].shape == ()
  nbytes = lambda t: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(t))
  assert nbytes((st.mu["big"], st.nu["big"], st.mu_absmax["big"], st.nu_absmax["big"])) == 2 * 4096 + 2 * 2 * 4
  g = {"big": jnp.ones((64, 64)), "small": jnp.linspace(-1, 1, 10)}
  ref = optax.scale_by_adam()
  u, _ = jax.jit(tx.update)(g, st)  # jitted: one compile instead of many eager op dispatches
  r, _ = jax.jit(ref.update)(g, ref.init(params))
  np.testing.assert_allclose(np.asarray(u["small"]), np.asarray(r["small"]), rtol=1e-6, atol=1e-7)


def test_q_galore_with_8bit_moments_trains_like_float32_moments():
  rng = np.random.default_rng(2)
  target = jnp.asarray(rng.normal(size=(32, 24)) @ np.diag(np.linspace(2, 0.1, 24)) @ rng.normal(size=(24, 24)),
                       jnp.float32)
  loss = lambda p: jnp.mean((p["w"] - target) ** 2)
  out = {}
  for name, inner in [("f32", None), ("8bit", O.scale_by_adam_8bit(block_size=64, min_8bit_size=0))]:
    tx = O.q_galore(0.05, rank=8, update_gap=10, scale=1.0, group_size=64, inner=inner)
    p = {"w": jnp.zeros((32, 24))}
    s = tx.init(p)

    @jax.jit
    def step(p, s, tx=tx):
      u, s = tx.update(jax.grad(loss)(p), s, p)
      return optax.apply_updates(p, u), s

    for _ in range(60):
      p, s = step(p, s)
    out[name] = (float(loss(p)), s)
  l0 = float(loss({"w": jnp.zeros((32, 24))}))
  # Same progress as float32 moments (within 5%), and real progress (rank 8 of a rank-24 target in 60 steps).
  assert out["8bit"][0] < 0.75 * l0 and abs(out["8bit"][0] - out["f32"][0]) < 0.05 * out["f32"][0], (
      l0, out["f32"][0], out["8bit"][0])
  inner8 = out["8bit"][1][0].inner_state
  assert inner8.mu["w"].dtype == jnp.uint8 and inner8.mu["w"].shape == (32, 8)  # right side: moments 32 x r


@pytest.mark.parametrize("kwargs,match", [(dict(b1=1.0), "b1"), (dict(eps=-1.0), "eps"), (dict(block_size=0), "block"),
                                          (dict(block_size=jnp.asarray(4)), "static_args")])
def test_bad_hyperparameters_raise_eagerly(kwargs, match):
  with pytest.raises((ValueError, TypeError), match=match):
    O.scale_by_adam_8bit(**kwargs)
