"""MomentumSMoE [142]: mu = 0, gamma = 1 equals a plain residual SMoE stack written as a float64 NumPy loop (own top-k
by argsort, own softmax, own LayerNorm); heavy-ball and Adam variants against the same NumPy loop with the paper's
recursions; the load-balancing loss against a NumPy transcription of the authors' formula and its uniform value 1/k;
nnx.jit + split/merge training step, bf16, bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxlib_methods.nn.momentum_smoe import (MomentumSMoE, load_balancing_loss, momentum_smoe_stack, smoe_layer,
                                             top_k_routing)
from tests.nn._layer_contract import assert_orbax_round_trip


def _np_ln(x, s, b):
  m = x.mean(-1, keepdims=True)
  v = ((x - m) ** 2).mean(-1, keepdims=True)
  return (x - m) / np.sqrt(v + 1e-6) * s + b


def _np_smoe(x, p, k):
  logits = x @ p["router_w"] + p["router_b"]
  out = np.zeros_like(x)
  for t in range(x.shape[0]):
    top = np.argsort(-logits[t])[:k]
    g = np.exp(logits[t, top] - logits[t, top].max())
    g /= g.sum()
    for gj, e in zip(g, top):
      h = np.maximum(x[t] @ p["w1"][e] + p["b1"][e], 0)
      out[t] += gj * (h @ p["w2"][e] + p["b2"][e])
  return out, logits


def _np_stack(x, params, k, mu, gamma, variant="heavy_ball", ag=1.0, b1=0.9, b2=0.999, eps=1e-8, plain=False):
  L = params["w1"].shape[0]
  p = np.zeros_like(x)
  m = np.zeros_like(x)
  v = np.zeros_like(x)
  for i in range(L):
    lp = {n: a[i] for n, a in params.items()}
    u, _ = _np_smoe(_np_ln(x, lp["ln_scale"], lp["ln_bias"]), lp, k)
    if plain:                                  # the standard SMoE stack: x + SMoE(LN(x))
      x = x + u
      continue
    p = -(-u) + mu * p                         # p_t = -f(x_t) + mu p_(t-1), -f = SMoE
    if variant == "adam" and i == 0:
      m = b1 * m + (1 - b1) * u
      v = b2 * v + (1 - b2) * u * u
      x = x + ag * m / np.sqrt(v + eps)
    else:
      x = x + gamma * p
  return x


def test_stack_special_case_variants_and_balance_loss_vs_numpy():
  model = MomentumSMoE(4, 6, num_experts=4, num_layers=3, top_k=2, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  params = {n: np.asarray(a, np.float64) + 0.1 * rng.normal(size=a.shape) for n, a in model.layer_params().items()}
  x = rng.normal(size=(5, 4))
  with jax.enable_x64(True):
    pj = jax.tree.map(jnp.asarray, params)
    f = jax.jit(momentum_smoe_stack, static_argnames=("top_k", "variant"))
    plain = _np_stack(x, params, 2, 0, 1, plain=True)
    np.testing.assert_allclose(np.asarray(f(jnp.asarray(x), pj, top_k=2, mu=0.0, gamma=1.0)[0]), plain, rtol=1e-12,
                               atol=1e-12)
    for kw in (dict(mu=0.7, gamma=0.8), dict(mu=0.5, gamma=1.2, variant="adam", adam_gamma=0.3)):
      want = _np_stack(x, params, 2, kw["mu"], kw["gamma"], kw.get("variant", "heavy_ball"), kw.get("adam_gamma", 1.0))
      got = f(jnp.asarray(x), pj, top_k=2, **kw)[0]
      np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-10)
      assert np.max(np.abs(want - plain)) > 1e-2                         # the variants do differ from SMoE
    # load balance: E sum_i f_i P_i with the authors' normalisation
    logits = rng.normal(size=(7, 4))
    idx, gate = top_k_routing(jnp.asarray(logits), 2)
    top = np.argsort(-logits, axis=1)[:, :2]
    np.testing.assert_array_equal(np.sort(np.asarray(idx), 1), np.sort(top, 1))
    np.testing.assert_allclose(np.asarray(gate).sum(1), 1.0, rtol=1e-12)
    frac = np.bincount(top.ravel(), minlength=4) / top.size
    prob = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).sum(0) / top.size
    np.testing.assert_allclose(float(jax.jit(load_balancing_loss)(jnp.asarray(logits), idx)), 4 * np.sum(frac * prob),
                               rtol=1e-6)
  # uniform: every expert equally often, flat router -> 1/k
  idx_u = jnp.asarray(np.arange(8).reshape(4, 2) % 4)
  np.testing.assert_allclose(float(jax.jit(load_balancing_loss)(jnp.zeros((4, 4)), idx_u)), 0.5, rtol=1e-6)
  # SMoE layer output and its loss's gradient reach the router
  lp0 = {n: jnp.asarray(a[0], jnp.float32) for n, a in params.items()}
  g = jax.jit(jax.grad(lambda w: smoe_layer(jnp.asarray(x, jnp.float32), {**lp0, "router_w": w}, top_k=2)[1]))(
      lp0["router_w"])
  assert float(jnp.abs(g).sum()) > 0


def test_module_training_step_bf16_and_bad_inputs():
  model = MomentumSMoE(4, 8, num_experts=4, num_layers=2, top_k=1, mu=0.7, rngs=nnx.Rngs(1))
  x = jax.random.normal(jax.random.key(0), (2, 3, 4))
  graphdef, state = nnx.split(model)
  tx = optax.adam(1e-2)
  opt = tx.init(state)

  # The jitted step also returns the module's forward output (y, aux), so the forward is not compiled a second time.
  @jax.jit
  def step(state, opt):
    def loss(s):
      y, aux = nnx.merge(graphdef, s)(x)
      return jnp.mean((y - 1.0) ** 2) + 0.01 * aux, (y, aux)
    (l, (y, aux)), g = jax.value_and_grad(loss, has_aux=True)(state)
    u, opt = tx.update(g, opt, state)
    return optax.apply_updates(state, u), opt, l, y, aux

  s1, opt, l0, y, aux = step(state, opt)
  assert y.shape == x.shape and aux.shape == ()
  _, _, l1, _, _ = step(s1, opt)
  assert float(l1) < float(l0)
  mb = MomentumSMoE(4, 8, 4, 2, top_k=2, variant="adam", param_dtype=jnp.bfloat16, rngs=nnx.Rngs(1))
  assert nnx.jit(lambda m, x: m(x))(mb, x.astype(jnp.bfloat16))[0].dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="mu"):
    MomentumSMoE(4, 8, 4, 2, mu=1.0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="top_k"):
    MomentumSMoE(4, 8, 4, 2, top_k=5, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="dim"):
    model(jnp.ones((3, 5)))
  with pytest.raises(ValueError, match="variant"):
    momentum_smoe_stack(jnp.ones((3, 4)), model.layer_params(), top_k=1, variant="nesterov")


@pytest.mark.slow
def test_orbax_round_trip(tmp_path):
  make = lambda seed: MomentumSMoE(4, 8, 4, 2, top_k=2, rngs=nnx.Rngs(seed))
  assert_orbax_round_trip(make(0), make(1), jnp.ones((3, 4)), tmp_path, output=lambda y: y[0])


def test_adam_variant_in_fp16_is_finite_and_close_to_fp32():
  # audit 2026-12-03: the Adam moments ran in fp16, where eps = 1e-8 rounds to 0 and (1 - beta2) u^2 underflows:
  # inf / NaN outputs for ordinary inputs. The moments now run in float32.
  m = MomentumSMoE(8, 16, 4, 3, 2, variant="adam", rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (5, 8))
  y32, _ = m(x)
  y16, aux16 = m(x.astype(jnp.float16))
  assert y16.dtype == jnp.float16 and bool(jnp.isfinite(y16).all()) and bool(jnp.isfinite(aux16))
  np.testing.assert_allclose(np.asarray(y16, np.float32), np.asarray(y32), atol=0.1, rtol=0.05)
