"""Optimistic OMD [209]: equal to optax.optimistic_gradient_descent where they coincide, and to a float64 NumPy
transcription of the paper's two-sequence algorithm (projection, schedules, self-confident step) everywhere else."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.optim import OptimisticOMDState, optimistic_omd


def _grads(t, shapes, seed=0):
  rng = np.random.default_rng(seed + 1000 * t)
  return {k: rng.normal(size=s) for k, s in shapes.items()}


SHAPES = {"a": (3, 2), "b": (4,)}


def _run(tx, x0, steps, seed=0):
  x = jax.tree.map(jnp.asarray, x0)
  s = tx.init(x)
  step = jax.jit(tx.update)
  xs = [x]
  for t in range(steps):
    g = jax.tree.map(lambda v, p: jnp.asarray(v, p.dtype), _grads(t, SHAPES, seed), x)
    u, s = step(g, s, x)
    x = optax.apply_updates(x, u)
    xs.append(x)
  return xs, s


def _numpy_oomd(x0, steps, lr, radius=None, diameter=None, delta=1.0, optimistic=True, seed=0):
  """The paper's Alg. 1 with psi = ||x||^2/2, written with the explicit x_hat sequence, in float64."""
  keys = sorted(x0)
  flat = lambda tree: np.concatenate([np.ravel(tree[k]) for k in keys])

  def unflat(v):
    out, i = {}, 0
    for k in keys:
      n = int(np.prod(SHAPES[k]))
      out[k] = v[i:i + n].reshape(SHAPES[k])
      i += n
    return out

  def proj(v):
    if radius is None:
      return v
    nrm = np.linalg.norm(v)
    return v if nrm <= radius else v * (radius / nrm)

  def eta(t, err):
    base = lr(t) if callable(lr) else lr
    return base if diameter is None else min(base, diameter / np.sqrt(delta + err))

  x_hat = flat(x0).astype(np.float64)
  m = np.zeros_like(x_hat)
  err = 0.0
  x = proj(x_hat - eta(0, err) * m)
  xs = [unflat(x)]
  for t in range(steps):
    g = flat(_grads(t, SHAPES, seed))
    e_t = eta(t, err)
    x_hat = proj(x_hat - e_t * g)
    err += float(np.sum((g - m) ** 2))
    m = g if optimistic else np.zeros_like(g)
    x = proj(x_hat - eta(t + 1, err) * m)
    xs.append(unflat(x))
  return xs


def _x0(scale=0.3):
  rng = np.random.default_rng(7)
  return {k: scale * rng.normal(size=s) for k, s in SHAPES.items()}


def test_unconstrained_constant_rate_equals_optax_optimistic_gradient_descent_after_the_first_step():
  """x_{t+1} = x_t - eta (2 g_t - g_{t-1}) for both; optax's first step uses g_0 = g_1 (optax #1082), the paper
  M_1 = 0, so the first updates are -2 eta g_1 (ours) and -eta g_1 (optax) and every later update is equal."""
  x0 = _x0()
  eta = 0.05
  ours, _ = _run(optimistic_omd(eta), x0, 12)
  ref, _ = _run(optax.optimistic_gradient_descent(eta, alpha=1.0, beta=1.0), x0, 12)
  for k in SHAPES:
    g1 = _grads(0, SHAPES)[k]
    np.testing.assert_allclose(np.asarray(ours[1][k] - ours[0][k]), -2 * eta * g1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(ref[1][k] - ref[0][k]), -eta * g1, rtol=1e-5, atol=1e-7)
    for t in range(1, 12):
      np.testing.assert_allclose(np.asarray(ours[t + 1][k] - ours[t][k]), np.asarray(ref[t + 1][k] - ref[t][k]),
                                 rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw", [
    dict(lr=0.1, radius=0.5),
    dict(lr=lambda t: 0.2 / (1.0 + t), radius=0.8),
    dict(lr=0.5, radius=1.0, diameter=2.0, delta=1.0),
    dict(lr=0.3, radius=0.7, optimistic=False),
], ids=["ball", "schedule+ball", "self-confident", "no-hint=projected-OGD"])
def test_matches_float64_numpy_transcription(kw):
  x0 = _x0(0.1)
  lr = kw["lr"]
  tx = optimistic_omd(lr if not callable(lr) else (lambda c, f=lr: f(c)), radius=kw.get("radius"),
                      diameter=kw.get("diameter"), delta=kw.get("delta", 1.0),
                      hint="last_gradient" if kw.get("optimistic", True) else "none")
  with jax.enable_x64(True):
    ours, state = _run(tx, x0, 15)
  ref = _numpy_oomd(x0, 15, lr, radius=kw.get("radius"), diameter=kw.get("diameter"), delta=kw.get("delta", 1.0),
                    optimistic=kw.get("optimistic", True))
  for a, b in zip(ours, ref):
    for k in SHAPES:
      np.testing.assert_allclose(np.asarray(a[k]), b[k], rtol=1e-9, atol=1e-12)
  if kw.get("radius") is not None:
    norms = [np.sqrt(sum(float(np.sum(np.asarray(v) ** 2)) for v in x.values())) for x in ours[1:]]
    assert max(norms) <= kw["radius"] * (1 + 1e-12)
  assert isinstance(state, OptimisticOMDState) and int(state.count) == 15


def test_state_mirrors_params_and_keeps_dtype():
  params = {"w": jnp.ones((2, 3), jnp.bfloat16), "v": jnp.ones((4,), jnp.float32)}
  tx = optimistic_omd(0.1, radius=10.0, diameter=1.0)
  s0 = tx.init(params)
  u, s1 = jax.jit(tx.update)(jax.tree.map(jnp.ones_like, params), s0, params)
  assert [x.dtype for x in jax.tree.leaves(s1)] == [x.dtype for x in jax.tree.leaves(s0)]
  assert s1.hat_offset["w"].dtype == jnp.bfloat16 and u["w"].dtype == jnp.bfloat16


def test_bad_hyperparameters_are_rejected_before_tracing():
  with pytest.raises(ValueError, match="learning_rate"):
    optimistic_omd(-0.1)
  with pytest.raises(ValueError, match="radius"):
    optimistic_omd(0.1, radius=0.0)
  with pytest.raises(ValueError, match="diameter"):
    optimistic_omd(0.1, diameter=-1.0)
  with pytest.raises(ValueError, match="delta"):
    optimistic_omd(0.1, delta=0.0)
  with pytest.raises(ValueError, match="hint"):
    optimistic_omd(0.1, hint="previous")
  tx = optimistic_omd(0.1)
  p = {"w": jnp.ones(3)}
  with pytest.raises(ValueError, match="needs the parameters"):
    tx.update(p, tx.init(p))
