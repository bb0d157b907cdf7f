"""GaLore against optax.contrib.galore (bit for bit, side-matched), a float64 NumPy transcription of the
"Adam with GaLore" algorithm, closed-form state sizes, and the bad-input / non-finite contracts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.optim import galore, scale_by_galore


def _params(dtype=jnp.float32):
  rng = np.random.default_rng(0)
  return {"a": jnp.asarray(rng.normal(size=(8, 5)), dtype), "b": jnp.asarray(rng.normal(size=(4, 9)), dtype),
          "c": jnp.asarray(rng.normal(size=(3,)), dtype)}


def _loss(p, x):
  return sum(jnp.sum(jnp.sin(v * x) ** 2) for v in jax.tree.leaves(p))


def _train(tx, params, steps, x0=0.3):
  state = tx.init(params)

  @jax.jit
  def step(p, s, x):
    g = jax.grad(_loss)(p, x)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  for t in range(steps):
    params, state = step(params, state, x0 + 0.05 * t)
  return params, state


def test_equals_optax_contrib_galore_bit_for_bit():
  # Side, scale and state dtype matched to optax's: identical parameters over 3 refreshes, weight decay included.
  ours = galore(0.01, rank=3, update_gap=4, scale=1.0, side="reverse_std", state_dtype=None, weight_decay=0.1)
  ref = optax.contrib.galore(0.01, rank=3, update_proj_gap=4, scale=1.0, weight_decay=0.1)
  a, _ = _train(ours, _params(), 12)
  b, _ = _train(ref, _params(), 12)
  for k in a:
    np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def _numpy_galore(params, grads_fn, steps, *, lr, rank, gap, scale, b1=0.9, b2=0.999, eps=1e-8):
  """float64 transcription of GaLore's "Adam with GaLore" (Adam; optax eps placement), official side rule."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  st = {}
  for t in range(steps):
    g = grads_fn(p, t)
    for k, gk in g.items():
      s = st.setdefault(k, {"m": None, "v": None, "P": None})
      if gk.ndim == 2:
        m_, n_ = gk.shape
        left = m_ < n_
        r = min(rank, m_, n_)
        if t % gap == 0:
          u, _, vh = np.linalg.svd(gk, full_matrices=False)
          s["P"] = u[:, :r] if left else vh[:r].T
        R = s["P"].T @ gk if left else gk @ s["P"]
      else:
        R = gk
      s["m"] = (1 - b1) * R + b1 * (0 if s["m"] is None else s["m"])
      s["v"] = (1 - b2) * R ** 2 + b2 * (0 if s["v"] is None else s["v"])
      n = (s["m"] / (1 - b1 ** (t + 1))) / (np.sqrt(s["v"] / (1 - b2 ** (t + 1))) + eps)
      if gk.ndim == 2:
        n = scale * (s["P"] @ n if left else n @ s["P"].T)
      p[k] = p[k] - lr * n
  return p


def test_matches_numpy_transcription_of_adam_with_galore():
  params = _params()

  def grads_np(p, t):
    x = 0.3 + 0.05 * t
    return {k: 2 * np.sin(v * x) * np.cos(v * x) * x for k, v in p.items()}

  # One projector (gap > steps): singular vectors are defined up to sign, and moments carried across a refresh are
  # not sign-invariant, so refreshes are covered bit for bit by the optax.contrib comparison instead.
  want = _numpy_galore(params, grads_np, 9, lr=0.01, rank=2, gap=100, scale=0.25)
  got, state = _train(galore(0.01, rank=2, update_gap=100), params, 9)
  for k in want:
    np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=2e-5, atol=2e-6, err_msg=k)
  gs = state[0]
  # std side: a (8x5, m >= n) keeps a 5 x 2 right basis, moments 8 x 2; b (4x9) a 4 x 2 left basis, moments 2 x 9.
  assert gs.basis["a"].shape == (5, 2) and gs.inner_state.mu["a"].shape == (8, 2)
  assert gs.basis["b"].shape == (4, 2) and gs.inner_state.mu["b"].shape == (2, 9)
  assert gs.basis["c"].shape == () and gs.inner_state.mu["c"].shape == (3,)  # 1-D leaf: unprojected


def _nbytes(tree):
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("side", ["std", "reverse_std"])
def test_state_bytes_equal_the_analytic_formula(side):
  m, n, r = 16, 40, 4
  params = {"w": jnp.zeros((m, n))}
  st = scale_by_galore(rank=r, side=side).init(params)
  proj = _nbytes(st.basis["w"])
  moments = _nbytes(st.inner_state.mu) + _nbytes(st.inner_state.nu)
  if side == "std":   # paper: m*r + 2*r*n for m <= n
    assert (proj, moments) == (4 * m * r, 4 * 2 * r * n)
  else:               # optax: moments on the smaller side
    assert (proj, moments) == (4 * n * r, 4 * 2 * m * r)


def test_rank_is_clamped_and_may_be_a_per_leaf_function():
  params = {"small": jnp.zeros((3, 20)), "big": jnp.zeros((20, 30))}
  st = scale_by_galore(rank=8).init(params)
  assert st.basis["small"].shape == (3, 3)
  st = scale_by_galore(rank=lambda path, shape: 2 if "small" in path else 5).init(params)
  assert st.basis["small"].shape == (3, 2) and st.basis["big"].shape == (20, 5)


def test_inner_transform_that_reads_params():
  # optax.adamw as the inner optimizer (optax.contrib.galore rejects it): its decay acts on Q^T W.
  params = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(6, 10)), jnp.float32)}
  g = {"w": jnp.asarray(np.random.default_rng(1).normal(size=(6, 10)), jnp.float32)}
  wd, r = 0.5, 2
  tx = scale_by_galore(rank=r, scale=1.0, inner=optax.adamw(1.0, weight_decay=wd))
  u, st = jax.jit(tx.update)(g, tx.init(params), params)
  q = np.asarray(st.basis["w"], np.float64)  # left basis (6 x 2), since m < n
  gn, wn = np.asarray(g["w"], np.float64), np.asarray(params["w"], np.float64)
  R = q.T @ gn
  adam1 = (0.1 * R / 0.1) / (np.sqrt(0.001 * R ** 2 / 0.001) + 1e-8)  # first Adam step
  want = -(q @ (adam1 + wd * (q.T @ wn)))
  np.testing.assert_allclose(np.asarray(u["w"]), want, rtol=1e-4, atol=1e-5)


def test_bf16_params_get_float32_moments_by_default():
  params = {"w": jnp.zeros((8, 12), jnp.bfloat16)}
  st = scale_by_galore(rank=2).init(params)
  assert st.inner_state.mu["w"].dtype == jnp.float32 and st.inner_state.nu["w"].dtype == jnp.float32
  st = scale_by_galore(rank=2, state_dtype=None).init(params)
  assert st.inner_state.nu["w"].dtype == jnp.bfloat16
  st = scale_by_galore(rank=2, inner=optax.scale_by_adam(mu_dtype=jnp.bfloat16)).init(params)
  assert st.inner_state.mu["w"].dtype == jnp.bfloat16 and st.inner_state.nu["w"].dtype == jnp.float32
  u, _ = jax.jit(scale_by_galore(rank=2).update)({"w": jnp.ones((8, 12), jnp.bfloat16)}, st)
  assert u["w"].dtype == jnp.bfloat16


def test_non_finite_gradient_keeps_the_previous_projector():
  tx = scale_by_galore(rank=2, update_gap=2)
  params = {"w": jnp.zeros((6, 10))}
  g = jnp.asarray(np.random.default_rng(0).normal(size=(6, 10)), jnp.float32)
  step = jax.jit(tx.update)
  _, s1 = step({"w": g}, tx.init(params))
  _, s2 = step({"w": g * 2}, s1)
  bad = g.at[0, 0].set(jnp.inf)
  u, s3 = step({"w": bad}, s2)  # step 2 is a refresh step: the SVD of an Inf gradient is not used
  np.testing.assert_array_equal(np.asarray(s3.basis["w"]), np.asarray(s2.basis["w"]))
  assert bool(s3.ok["w"])
  assert not np.all(np.isfinite(np.asarray(u["w"])))  # the bad step is visible, never a silent zero update
  # Under optax.apply_if_finite the whole step is skipped and the state is untouched.
  safe = optax.apply_if_finite(tx, max_consecutive_errors=3)
  ss = safe.init(params)
  _, ss = jax.jit(safe.update)({"w": g}, ss)
  u, ss2 = jax.jit(safe.update)({"w": bad}, ss)
  np.testing.assert_array_equal(np.asarray(u["w"]), 0.0)
  for x, y in zip(jax.tree.leaves(ss.inner_state), jax.tree.leaves(ss2.inner_state)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_failed_first_svd_uses_an_orthonormal_fallback_and_retries():
  tx = scale_by_galore(rank=2, update_gap=100)
  params = {"w": jnp.zeros((6, 10))}
  bad = jnp.full((6, 10), jnp.nan)
  _, s1 = jax.jit(tx.update)({"w": bad}, tx.init(params))
  q = np.asarray(s1.basis["w"])
  np.testing.assert_allclose(q.T @ q, np.eye(2), atol=1e-5)  # not a zero projector
  assert not bool(s1.ok["w"])
  g = jnp.asarray(np.random.default_rng(0).normal(size=(6, 10)), jnp.float32)
  _, s2 = jax.jit(tx.update)({"w": g}, s1)  # step 1 is not a scheduled refresh, but the projector was invalid
  assert bool(s2.ok["w"])
  u, _, _ = np.linalg.svd(np.asarray(g, np.float64), full_matrices=False)
  qn = np.asarray(s2.basis["w"], np.float64)
  np.testing.assert_allclose(qn @ qn.T, u[:, :2] @ u[:, :2].T, atol=1e-5)


def test_stagger_spreads_refreshes_over_leaves():
  params = {f"w{i}": jnp.zeros((6, 8)) for i in range(4)}
  tx = scale_by_galore(rank=2, update_gap=4, stagger=True)
  step = jax.jit(tx.update)
  s = tx.init(params)
  rng = np.random.default_rng(0)
  changed = []
  for t in range(8):
    g = {k: jnp.asarray(rng.normal(size=(6, 8)), jnp.float32) for k in params}
    before = {k: np.asarray(s.basis[k]) for k in params}
    _, s = step(g, s)
    changed.append(sorted(k for k in params if not np.array_equal(before[k], np.asarray(s.basis[k]))))
  # Leaf j refreshes at steps j, j + 4, ... (plus the common first step).
  assert changed == [["w0", "w1", "w2", "w3"], ["w1"], ["w2"], ["w3"], ["w0"], ["w1"], ["w2"], ["w3"]]


@pytest.mark.parametrize("projector", ["randomized_svd", "random_orthogonal", "random_gaussian", "coordinates",
                                       "randk"])
def test_other_projectors_train(projector):
  params = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(10, 12)), jnp.float32)}
  target = jnp.asarray(np.random.default_rng(1).normal(size=(10, 12)), jnp.float32)
  loss = lambda p: jnp.sum((p["w"] - target) ** 2)
  rank = 60 if projector == "randk" else 6  # randk's rank counts entries (60 of 120), the others columns (6 of 12)
  tx = galore(0.1, rank=rank, update_gap=5, projector=projector, scale=1.0)
  s = tx.init(params)

  @jax.jit
  def step(p, s):
    u, s = tx.update(jax.grad(loss)(p), s, p)
    return optax.apply_updates(p, u), s

  l0 = float(loss(params))
  for _ in range(30):
    params, s = step(params, s)
  l1 = float(loss(params))
  assert l1 < 0.7 * l0, (l0, l1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(rank=0), "rank must be >= 1"),
    (dict(rank=2.5), "rank must be a Python int"),
    (dict(update_gap=0), "update_gap must be >= 1"),
    (dict(learning_rate=-1.0), "learning_rate"),
    (dict(projector="qr"), "unknown projector"),
    (dict(side="top"), "unknown side"),
    (dict(weight_decay=-0.1), "weight_decay"),
    (dict(scale=-1.0), "scale")])
def test_bad_hyperparameters_raise_eagerly(kwargs, match):
  kw = dict(learning_rate=0.1, rank=2)
  kw.update(kwargs)
  with pytest.raises((ValueError, TypeError), match=match):
    galore(**kw)


def test_bad_leaves_raise_at_init_naming_the_path():
  tx = galore(0.1, rank=lambda path, shape: 0 if "bad" in path else 2)
  with pytest.raises(ValueError, match=r"rank \(leaf \['bad'\]\) must be >= 1"):
    tx.init({"ok": jnp.zeros((4, 5)), "bad": jnp.zeros((4, 5))})
  tx = galore(0.1, rank=2, projection_mask={"ids": True, "w": True})
  with pytest.raises(TypeError, match=r"\['ids'\].*int32"):
    tx.init({"ids": jnp.zeros((4, 5), jnp.int32), "w": jnp.zeros((4, 5))})
  tx = galore(0.1, rank=2, projection_mask=lambda p: jax.tree.map(lambda x: True, p))
  with pytest.raises(ValueError, match=r"\['k'\] has shape \(2, 3, 4\)"):
    tx.init({"k": jnp.zeros((2, 3, 4))})


def test_scale_by_adam_hf_moments_keep_their_init_dtype():
  # With float32 gradients of bfloat16 params the moments came back float32 after the first update (init made them
  # bfloat16): a lax.scan carry mismatch, and a recompile of a jitted step at step 2.
  from jaxlib_methods.optim import scale_by_adam_hf
  params = {"w": jnp.ones((3, 2), jnp.bfloat16)}
  tx = scale_by_adam_hf()

  def body(state, g):
    u, state = tx.update({"w": g}, state)
    return state, u["w"]

  grads = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3, 2)), jnp.float32)
  state, us = jax.lax.scan(body, tx.init(params), grads)
  assert state.mu["w"].dtype == jnp.bfloat16 and state.nu["w"].dtype == jnp.bfloat16
  assert us.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(us)))
  # Same dtypes throughout: identical to optax-style float32 numbers of the official form.
  tx32 = scale_by_adam_hf()
  s32 = tx32.init({"w": jnp.ones((3, 2), jnp.float32)})
  m = v = 0.0
  for t, g in enumerate(np.asarray(grads[:2], np.float64), 1):
    u, s32 = tx32.update({"w": jnp.asarray(g, jnp.float32)}, s32)
    m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
    want = np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * m / (np.sqrt(v) + 1e-6)
    np.testing.assert_allclose(np.asarray(u["w"]), want, rtol=1e-4)  # float32 1 - b2^t
