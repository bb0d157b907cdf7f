"""FRUGAL: the paper's exact special cases, a float64 NumPy transcription of the official update (coordinate and
block projections, state reset at refresh, decoupled decay before the step), state sizes and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.optim import frugal, galore, scale_by_frugal


def _params():
  rng = np.random.default_rng(0)
  return {"a": jnp.asarray(rng.normal(size=(8, 6)), jnp.float32), "b": jnp.asarray(rng.normal(size=(4, 10)),
                                                                                   jnp.float32),
          "bias": jnp.asarray(rng.normal(size=(6,)), jnp.float32)}


def _grad(p, t):
  x = 0.3 + 0.07 * t
  return jax.tree.map(lambda v: jnp.sin(3 * v * x) + 0.1 * t * v, p)


def _run(tx, params, steps):
  state = tx.init(params)

  @jax.jit
  def step(p, s, t):
    u, s = tx.update(_grad(p, t), s, p)
    return optax.apply_updates(p, u), s

  trace = []
  for t in range(steps):
    params, state = step(params, state, t)
    trace.append((params, state))
  return trace


@pytest.fixture(scope="module")
def adamw_trace():
  return _run(optax.adamw(1e-2, weight_decay=0.1), _params(), 5)


@pytest.mark.parametrize("projector", ["columns", "rows", "randk", "blocks"])
def test_rho_one_equals_adamw_until_the_first_refresh(projector, adamw_trace):
  gap = 5
  ours = _run(frugal(1e-2, rho=1.0, update_gap=gap, projector=projector, weight_decay=0.1), _params(), gap)
  # Same arithmetic; XLA fuses the gather/scatter graph differently, which can move an update by a float32 ulp
  # (|update| <= lr = 1e-2, so <= 4 ulp of it is 5e-9).
  for (p, _), (q, _) in zip(ours, adamw_trace):
    for k in p:
      np.testing.assert_allclose(np.asarray(p[k]), np.asarray(q[k]), rtol=3e-7, atol=5e-9, err_msg=k)


def test_rho_zero_is_sign_sgd_on_split_leaves():
  lr, wd = 1e-2, 0.1
  trace = _run(frugal(lr, rho=0.0, projector="columns", weight_decay=wd), _params(), 4)
  p = {k: np.asarray(v, np.float64) for k, v in _params().items()}
  m = v = 0.0
  for t, (got, _) in enumerate(trace):
    g = {k: np.asarray(x, np.float64) for k, x in _grad(jax.tree.map(jnp.asarray, p), t).items()}
    for k in ("a", "b"):  # split leaves: decoupled decay, then signSGD
      p[k] = p[k] - lr * (np.sign(g[k]) + wd * p[k])
    m = 0.9 * m + 0.1 * g["bias"]   # the 1-D bias stays state-full (Adam)
    v = 0.999 * v + 0.001 * g["bias"] ** 2
    adam = (m / (1 - 0.9 ** (t + 1))) / (np.sqrt(v / (1 - 0.999 ** (t + 1))) + 1e-8)
    p["bias"] = p["bias"] - lr * (adam + wd * p["bias"])
    for k in p:
      np.testing.assert_allclose(np.asarray(got[k]), p[k], rtol=1e-5, atol=1e-6, err_msg=f"{k} step {t}")


def test_state_full_part_alone_is_galore_with_the_same_projector():
  # state_free="none", no reset, SVD with rank round(d*rho) == GaLore (scale 1) with that rank, across refreshes.
  ours = _run(frugal(1e-2, rho=0.5, update_gap=3, projector="svd", state_free="none", reset_state=False),
              _params(), 8)
  # a (8x6): right basis of round(6 * 0.5) = 3; b (4x10): left basis of round(4 * 0.5) = 2.
  ref = _run(galore(1e-2, rank=lambda path, shape: 3 if "a" in path else 2, update_gap=3, scale=1.0), _params(), 8)
  for (p, _), (q, _) in zip(ours, ref):
    for k in p:
      np.testing.assert_array_equal(np.asarray(p[k]), np.asarray(q[k]), err_msg=k)


def test_columns_matches_numpy_transcription_of_the_official_step():
  """Official FRUGAL (coordinate 'columns', AdamW state-full, signSGD state-free, statistics reset at each refresh,
  decay p <- p(1 - lr wd) before the step). The random columns are read from the state (a random choice by design)
  and checked to be distinct, int(n*rho) of them, and redrawn at each refresh."""
  lr, wd, rho, gap, steps, b1, b2, eps = 1e-2, 0.05, 0.5, 3, 8, 0.9, 0.999, 1e-8
  trace = _run(frugal(lr, rho=rho, update_gap=gap, projector="columns", weight_decay=wd, state_free_scale=0.5),
               _params(), steps)
  p = {k: np.asarray(v, np.float64) for k, v in _params().items()}
  st = {k: dict(m=None, v=None, t=0) for k in p}
  prev_idx = None
  for t, (got, state) in enumerate(trace):
    g = {k: np.asarray(x, np.float64) for k, x in _grad(jax.tree.map(lambda z: jnp.asarray(z, jnp.float32), p),
                                                          t).items()}
    idx = {k: np.asarray(state[0].basis[k]) for k in ("a", "b")}
    for k in ("a", "b"):
      assert len(set(idx[k].tolist())) == len(idx[k]) == int(p[k].shape[1] * rho)
    if t % gap == 0:
      if prev_idx is not None:
        assert any(not np.array_equal(idx[k], prev_idx[k]) for k in idx)
      for k in ("a", "b"):
        st[k] = dict(m=0.0, v=0.0, t=0)  # reset_statistics
    elif prev_idx is not None:
      for k in idx:
        np.testing.assert_array_equal(idx[k], prev_idx[k])
    prev_idx = idx
    for k in p:
      p[k] = p[k] * (1 - lr * wd)
      s = st[k]
      s["t"] += 1
      low = g[k][:, idx[k]] if k != "bias" else g[k]
      s["m"] = b1 * (0.0 if s["m"] is None else s["m"]) + (1 - b1) * low
      s["v"] = b2 * (0.0 if s["v"] is None else s["v"]) + (1 - b2) * low ** 2
      denom = np.sqrt(s["v"]) / np.sqrt(1 - b2 ** s["t"]) + eps
      upd = -(lr / (1 - b1 ** s["t"])) * s["m"] / denom
      if k == "bias":
        p[k] = p[k] + upd
        continue
      full = np.zeros_like(g[k])
      full[:, idx[k]] = upd
      free = g[k].copy()
      free[:, idx[k]] = 0.0
      p[k] = p[k] + full - lr * 0.5 * np.sign(free)
    for k in p:
      np.testing.assert_allclose(np.asarray(got[k]), p[k], rtol=1e-5, atol=1e-6, err_msg=f"{k} step {t}")


def test_blocks_descending_matches_numpy_transcription():
  # Four 3 x 4 matrices stacked as one [4, 3, 4] leaf: the blocks are the slices of the leading axis, exactly the
  # official BlockOptimizer's whole tensors (round(4 * 0.5) = 2 state-full, cyclic window from the last tensor).
  lr, gap, steps = 1e-2, 2, 6
  stacked = jnp.stack([jnp.asarray(np.random.default_rng(i).normal(size=(3, 4)), jnp.float32) for i in range(4)])
  params = {"w": stacked, "bias": jnp.ones((4,))}
  tx = frugal(lr, rho=0.5, update_gap=gap, projector="blocks", block_order="descending")
  trace = _run(tx, params, steps)
  assert tx.init(params)[0].inner_state.mu["w"].shape == (2, 12)  # state only for the active blocks (2 x 3*4)
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  st = {}
  fb = dict(m=0.0, v=0.0, t=0)
  for t, (got, state) in enumerate(trace):
    g = {k: np.asarray(x, np.float64) for k, x in _grad(jax.tree.map(lambda z: jnp.asarray(z, jnp.float32), p),
                                                          t).items()}
    k_ref = t // gap
    active = [(4 - 1 - (k_ref * 2 + j)) % 4 for j in range(2)]
    assert np.asarray(state[0].basis["w"]).tolist() == active
    if t % gap == 0:
      st = {i: dict(m=0.0, v=0.0, t=0) for i in range(4)}
    for i in range(4):
      gi = g["w"][i]
      if i in active:
        s = st[i]
        s["t"] += 1
        s["m"] = 0.9 * s["m"] + 0.1 * gi
        s["v"] = 0.999 * s["v"] + 0.001 * gi ** 2
        p["w"][i] = p["w"][i] - lr * (s["m"] / (1 - 0.9 ** s["t"])) / (np.sqrt(s["v"] / (1 - 0.999 ** s["t"])) + 1e-8)
      else:
        p["w"][i] = p["w"][i] - lr * np.sign(gi)
    fb["t"] += 1  # the 1-D bias is not split: plain Adam, never reset
    fb["m"] = 0.9 * fb["m"] + 0.1 * g["bias"]
    fb["v"] = 0.999 * fb["v"] + 0.001 * g["bias"] ** 2
    p["bias"] = p["bias"] - lr * (fb["m"] / (1 - 0.9 ** fb["t"])) / (np.sqrt(fb["v"] / (1 - 0.999 ** fb["t"])) + 1e-8)
    for k in p:
      np.testing.assert_allclose(np.asarray(got[k]), p[k], rtol=1e-5, atol=1e-6, err_msg=f"{k} step {t}")


def test_svd_split_update_is_projected_adam_plus_sign_of_the_complement():
  params = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(6, 10)), jnp.float32)}
  g = {"w": jnp.asarray(np.random.default_rng(1).normal(size=(6, 10)), jnp.float32)}
  tx = scale_by_frugal(rho=0.5, projector="svd")
  u, st = jax.jit(tx.update)(g, tx.init(params), params)
  q = np.asarray(st.basis["w"], np.float64)  # left (6 x 3): m < n, r = round(6 * 0.5)
  assert q.shape == (6, 3)
  gn = np.asarray(g["w"], np.float64)
  R = q.T @ gn
  adam1 = R / (np.abs(R) + 1e-8)  # first Adam step = R / (|R| + eps)
  want = q @ adam1 + np.sign(gn - q @ R)  # the sign of the complement is dense (not orthogonal to Q)
  np.testing.assert_allclose(np.asarray(u["w"]), want, rtol=1e-4, atol=1e-4)


def _nbytes(tree):
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def test_state_bytes():
  m, n = 16, 40
  params = {"w": jnp.zeros((m, n)), "bias": jnp.zeros((n,))}
  st = scale_by_frugal(rho=0.25, projector="columns").init(params)
  # count + Adam m, v on the chosen columns (+ a 4-byte scalar placeholder per moment at the unsplit bias)
  assert _nbytes(st.inner_state) == 4 + 2 * 4 * m * int(n * 0.25) + 2 * 4
  assert st.basis["w"].shape == (int(n * 0.25),) and st.basis["w"].dtype == jnp.int32
  assert _nbytes(st.full_state) == 4 + 2 * 4 * n + 2 * 4  # the bias is state-full (+ placeholders at w)
  st = scale_by_frugal(rho=0.25, projector="svd").init(params)  # m < n -> left basis m x round(m/4)
  assert st.basis["w"].shape == (m, 4) and st.inner_state.mu["w"].shape == (4, n)


def test_blocks_state_is_only_the_active_blocks():
  params = {"w": jnp.zeros((8, 16, 32)), "v": jnp.zeros((10, 6))}
  st = scale_by_frugal(rho=0.25, projector="blocks").init(params)
  assert st.inner_state.mu["w"].shape == (2, 16 * 32)  # round(8 * 0.25) of the 8 slices, as rows of [8, 512]
  assert st.inner_state.mu["v"].shape == (2, 6)  # a matrix: its rows are the blocks (round(10 * 0.25) = 2)
  full = sum(x.size for x in jax.tree.leaves(params))
  assert _nbytes(st.inner_state.mu) == 4 * (2 * 16 * 32 + 2 * 6) < 0.3 * 4 * full


def test_split_mask_keeps_chosen_leaves_state_full():
  params = {"embed": jnp.zeros((10, 4)), "mlp": jnp.zeros((4, 8))}
  st = scale_by_frugal(split_mask={"embed": False, "mlp": True}).init(params)
  assert st.full_state.mu["embed"].shape == (10, 4)
  assert st.inner_state.mu["mlp"].shape == (4, 2)


@pytest.mark.parametrize("kwargs,match", [
    (dict(rho=1.5), "rho"), (dict(rho=-0.1), "rho"), (dict(update_gap=0), "update_gap"),
    (dict(learning_rate=-1.0), "learning_rate"), (dict(projector="qr"), "unknown projector"),
    (dict(state_free="adam"), "state_free"), (dict(block_order="zigzag"), "block order"),
    (dict(state_free_scale=-1.0), "state_free_scale")])
def test_bad_hyperparameters_raise_eagerly(kwargs, match):
  kw = dict(learning_rate=0.1)
  kw.update(kwargs)
  with pytest.raises(ValueError, match=match):
    frugal(**kw)


def test_bad_leaves_raise_at_init_naming_the_path():
  tx = frugal(0.1, split_mask=lambda p: jax.tree.map(lambda x: True, p))
  with pytest.raises(ValueError, match=r"leaf \['conv'\] has shape \(3, 3, 4\)"):
    tx.init({"conv": jnp.zeros((3, 3, 4))})
  with pytest.raises(TypeError, match=r"\['ids'\].*int32"):
    tx.init({"ids": jnp.zeros((3, 4), jnp.int32)})
