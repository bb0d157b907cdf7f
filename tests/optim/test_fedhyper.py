"""FedHyper [57] and hypergradient descent: each rule against a float64 NumPy transcription (Baydin et al.'s SGD-HD,
the official FedHyper-G server loop, the paper's client rule); optax conventions (jit, chain, inject_hyperparams)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.optim import (SCALE_BY_HYPERGRADIENT_LR_STATIC_ARGS, fedhyper_global,
                                  scale_by_fedhyper_client, scale_by_hypergradient_lr)


def _quadratic(seed=0, d=5):
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(d, d))
  a = q @ q.T / d + 0.5 * np.eye(d)
  b = rng.normal(size=d)
  return a, b, rng.normal(size=d)


def test_sgd_hd_matches_baydin_algorithm_1():
  """SGD-HD (Baydin et al. 2018, Alg. 1): alpha_t = alpha_{t-1} + beta grad_t . grad_{t-1};
  theta_t = theta_{t-1} - alpha_t grad_t, on f = 0.5 x'Ax - b'x."""
  a, b, x0 = _quadratic()
  lr, beta, steps = 0.05, 0.01, 30
  x, alpha, g_prev = x0.copy(), lr, np.zeros_like(x0)
  ref = []
  for _ in range(steps):
    g = a @ x - b
    alpha = alpha + beta * g @ g_prev
    x = x - alpha * g
    g_prev = g
    ref.append((x.copy(), alpha))
  tx = scale_by_hypergradient_lr(lr, beta)
  xj = jnp.asarray(x0, jnp.float32)
  st = tx.init(xj)
  upd = jax.jit(tx.update)
  aj, bj = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  for i in range(steps):
    u, st = upd(aj @ xj - bj, st)
    xj = xj + u
    np.testing.assert_allclose(np.asarray(xj), ref[i][0], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(float(st.learning_rate), ref[i][1], rtol=2e-4)
  assert float(st.learning_rate) > lr      # the gradients stayed aligned: the rate grew


def test_rate_is_clipped_and_beta_zero_is_sgd():
  g = {"w": jnp.ones(4)}
  tx = scale_by_hypergradient_lr(0.1, 10.0, lr_bounds=(0.05, 0.3))
  st = tx.init(g)
  for _ in range(3):
    _, st = tx.update(g, st)
  assert float(st.learning_rate) == pytest.approx(0.3)
  sgd = scale_by_hypergradient_lr(0.1, 0.0)
  s2 = sgd.init(g)
  for _ in range(3):
    u, s2 = sgd.update(g, s2)
  np.testing.assert_allclose(np.asarray(u["w"]), -0.1 * np.ones(4), rtol=1e-7)


def _official_fedhyper_g(deltas, x0):
  """ATP-1010/FedHyper `federated_main.py`, FedHyper-G: agg += <last, Delta>; clip agg to [-0.8, 4];
  params = avg + agg * Delta (avg = x + Delta); round 0 applies Delta with rate 1."""
  x, agg, last = x0.copy(), 0.0, None
  for t, delta in enumerate(deltas):
    avg = x + delta
    if t == 0:
      x = avg
    else:
      agg += float(last @ delta)
      agg = min(max(agg, -0.8), 4.0)
      x = agg * delta + avg
    last = delta
  return x, 1.0 + agg


def test_fedhyper_global_is_the_official_server_update():
  rng = np.random.default_rng(1)
  deltas = [0.3 * rng.normal(size=6) + 0.2 for _ in range(12)]
  x0 = rng.normal(size=6)
  ref_x, ref_rate = _official_fedhyper_g(deltas, x0)
  tx = fedhyper_global()
  x = jnp.asarray(x0, jnp.float32)
  st = tx.init(x)
  for d in deltas:
    u, st = tx.update(-jnp.asarray(d, jnp.float32), st)      # the pseudo-gradient G = -Delta
    x = optax.apply_updates(x, u)
  np.testing.assert_allclose(np.asarray(x), ref_x, rtol=1e-5, atol=1e-5)
  assert float(st.learning_rate) == pytest.approx(ref_rate, rel=1e-5)


def test_client_rule_matches_the_paper_equation():
  """lr_k = clip(lr_{k-1} + beta (<g_k, g_{k-1}> + <g_k, Delta_{t-1}> / K), lo, hi); x -= lr_k g_k."""
  a, b, x0 = _quadratic(2)
  lr, beta, k_clients, steps = 0.05, 0.02, 4, 15
  delta_prev = -0.1 * (a @ x0 - b)
  lo, hi = lr / 10, lr * 10
  x, rate, g_prev = x0.copy(), lr, np.zeros_like(x0)
  for _ in range(steps):
    g = a @ x - b
    rate = min(max(rate + beta * (g @ g_prev + g @ delta_prev / k_clients), lo), hi)
    x = x - rate * g
    g_prev = g
  tx = scale_by_fedhyper_client(lr, beta, num_clients=k_clients)
  xj = jnp.asarray(x0, jnp.float32)
  st = tx.init(xj)
  dj = jnp.asarray(delta_prev, jnp.float32)
  upd = jax.jit(lambda g, s: tx.update(g, s, global_update=dj))
  for _ in range(steps):
    u, st = upd(jnp.asarray(a, jnp.float32) @ xj - jnp.asarray(b, jnp.float32), st)
    xj = xj + u
  np.testing.assert_allclose(np.asarray(xj), x, rtol=2e-4, atol=2e-5)
  assert float(st.learning_rate) == pytest.approx(rate, rel=2e-4)


def test_optax_conventions():
  params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
  grads = jax.tree.map(lambda p: 0.5 * jnp.ones_like(p), params)
  chained = optax.chain(optax.clip_by_global_norm(1.0), scale_by_hypergradient_lr(0.1, 0.01))
  u, s = jax.jit(chained.update)(grads, chained.init(params), params)
  assert jax.tree.map(jnp.shape, u) == jax.tree.map(jnp.shape, params)
  inj = optax.inject_hyperparams(scale_by_hypergradient_lr, static_args=SCALE_BY_HYPERGRADIENT_LR_STATIC_ARGS)(
      learning_rate=0.1, beta=0.01)
  plain = scale_by_hypergradient_lr(0.1, 0.01)
  si, sp = inj.init(params), plain.init(params)
  for _ in range(3):
    ui, si = inj.update(grads, si)
    up, sp = plain.update(grads, sp)
  for x, y in zip(jax.tree.leaves(ui), jax.tree.leaves(up)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6)


@pytest.mark.parametrize("fn, kw, match", [
    (scale_by_hypergradient_lr, dict(learning_rate=-1.0, beta=0.1), "learning_rate"),
    (scale_by_hypergradient_lr, dict(learning_rate=0.1, beta=-0.1), "beta"),
    (scale_by_hypergradient_lr, dict(learning_rate=0.1, beta=0.1, lr_bounds=(1.0, 0.5)), "lr_bounds"),
    (scale_by_fedhyper_client, dict(learning_rate=0.1, beta=0.1, num_clients=0), "num_clients"),
    (scale_by_fedhyper_client, dict(learning_rate=0.0, beta=0.1, num_clients=3), "learning_rate"),
    # lr_0 outside the clip range: the first step would silently use the clipped rate (audit 2026-12-03)
    (fedhyper_global, dict(learning_rate=0.1), "lr_bounds"),
    (scale_by_hypergradient_lr, dict(learning_rate=2.0, beta=0.1, lr_bounds=(0.0, 1.0)), "lr_bounds"),
    (scale_by_fedhyper_client, dict(learning_rate=0.1, beta=0.1, num_clients=3, lr_bounds=(0.5, 1.0)), "lr_bounds"),
])
def test_bad_arguments_are_named(fn, kw, match):
  with pytest.raises(ValueError, match=match):
    fn(**kw)


def test_injected_initial_rate_shifts_the_adapted_rate():
  # audit 2026-12-03: lr_0 is the state's start; an injected learning_rate used to be read at init only, so changing
  # it between steps did nothing. Now a change d of the injected lr_0 shifts the adapted rate by d.
  p = {"w": jnp.ones(3)}
  for fn, kw in ((scale_by_hypergradient_lr, dict(beta=0.0)), (fedhyper_global, dict(beta=0.0)),
                 (scale_by_fedhyper_client, dict(beta=0.0, num_clients=2))):
    tx = optax.inject_hyperparams(fn, static_args=fn.STATIC_ARGS)(learning_rate=1.0, **kw)
    s = tx.init(p)
    u1, s = tx.update(p, s)
    s.hyperparams["learning_rate"] = jnp.asarray(2.0)
    u2, s = tx.update(p, s)
    u3, s = tx.update(p, s)
    assert [float(u["w"][0]) for u in (u1, u2, u3)] == [-1.0, -2.0, -2.0], fn.__name__
  # with beta > 0 the hypergradient's correction is kept on top of the new lr_0: the same as the uninjected run + d
  g = {"w": jnp.asarray([1.0, 2.0, 3.0])}
  inj = optax.inject_hyperparams(scale_by_hypergradient_lr)(learning_rate=0.5, beta=0.01)
  plain = scale_by_hypergradient_lr(0.5, 0.01)
  si, sp = inj.init(p), plain.init(p)
  for t in range(3):
    if t == 2:
      si.hyperparams["learning_rate"] = jnp.asarray(0.7)
    _, si = inj.update(g, si)
    _, sp = plain.update(g, sp)
  assert float(si.inner_state.learning_rate) == pytest.approx(float(sp.learning_rate) + 0.2, rel=1e-6)


def test_traced_initial_rate_works_under_vmap():
  # the fedhyper experiment builds its clients inside vmap with a traced lr_0 (one per arm)
  def final_rate(lr0):
    tx = scale_by_fedhyper_client(lr0, 0.01, num_clients=2, lr_bounds=(lr0 / 10, lr0 * 10))
    s = tx.init({"w": jnp.ones(2)})
    _, s = tx.update({"w": jnp.ones(2)}, s)
    _, s = tx.update({"w": jnp.ones(2)}, s)
    return s.learning_rate
  out = jax.vmap(final_rate)(jnp.asarray([0.1, 0.2]))
  np.testing.assert_allclose(np.asarray(out), [0.1 + 0.02, 0.2 + 0.02], rtol=1e-6)


def test_state_dtype_is_stable_with_float32_gradients_of_bfloat16_params():
  # `previous` was stored in the gradients' dtype: bfloat16 at init, float32 after the first update, so a lax.scan
  # carry failed with a type mismatch (and jit recompiled at step 2).
  params = {"w": jnp.ones(3, jnp.bfloat16)}
  for tx in (scale_by_hypergradient_lr(0.1, 0.01), scale_by_fedhyper_client(0.1, 0.01, num_clients=2)):
    def body(state, _):
      u, state = tx.update({"w": jnp.full(3, 0.5, jnp.float32)}, state)
      return state, u["w"]
    state, us = jax.lax.scan(body, tx.init(params), None, length=3)
    assert state.previous["w"].dtype == jnp.bfloat16 and us.dtype == jnp.float32
    assert float(state.learning_rate) > 0.1   # <u_t, u_{t-1}> = 0.75 > 0 raised the rate
