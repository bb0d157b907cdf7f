"""WideNet [127]: the forward pass against a float64 NumPy transcription of the paper's Eq. 4-7 (own LayerNorm, own
softmax attention, own TopK(softmax) router and own capacity loop that drops tokens in priority order); the exact
parameter count (shared block + per-layer LayerNorms) against the module's state; the NNX contract; bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.momentum_smoe import capacity_keep_mask, expert_capacity, top_k_routing
from jaxlib_methods.nn.widenet import WideNet, widenet_num_params
from tests.nn._layer_contract import check_layer_contract


def _np_ln(x, s, b):
  m = x.mean(-1, keepdims=True)
  v = ((x - m) ** 2).mean(-1, keepdims=True)
  return (x - m) / np.sqrt(v + 1e-6) * s + b


def _np_attn(x, wq, wk, wv, wo):                     # x [B, T, D], bidirectional, no RoPE
  q, k, v = (np.einsum("btd,dnh->btnh", x, w) for w in (wq, wk, wv))
  s = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
  p = np.exp(s - s.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return np.einsum("bnts,bsnh,nhd->btd", p, v, wo)


def _np_moe(x, p, k, capacity):                      # x [T, d]
  logits = x @ p["router_w"] + p["router_b"]
  prob = np.exp(logits - logits.max(-1, keepdims=True))
  prob /= prob.sum(-1, keepdims=True)
  top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
  used = np.zeros(logits.shape[1], int)
  keep = np.zeros(top.shape, bool)
  for j in range(k):                                 # every first choice before any second choice
    for t in range(x.shape[0]):
      e = top[t, j]
      keep[t, j] = used[e] < capacity
      used[e] += 1
  out = np.zeros_like(x)
  for t in range(x.shape[0]):
    for j in range(k):
      if keep[t, j]:
        e = top[t, j]
        h = np.maximum(x[t] @ p["w1"][e] + p["b1"][e], 0)
        out[t] += prob[t, e] * (h @ p["w2"][e] + p["b2"][e])
  return out, keep


def test_forward_param_count_and_capacity_vs_numpy():
  L, d, E = 3, 8, 4
  model = WideNet(d, 2, 12, E, L, top_k=2, capacity_factor=0.75, use_rope=False, dtype=jnp.float64,
                  rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  state = nnx.state(model, nnx.Param)
  # exact parameter count: shared attention + shared MoE + 2 LayerNorms per layer
  n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(state))
  assert n == widenet_num_params(d, 2, 12, E, L) == 4 * d * d + (d * E + E + E * (2 * d * 12 + 12 + d)) + 4 * d * L
  shared = WideNet(d, 2, 12, E, L, shared_norms=True, rngs=nnx.Rngs(0))
  assert sum(a.size for a in jax.tree.leaves(nnx.state(shared, nnx.Param))) == n - 4 * d * (L - 1)
  # perturb every parameter (LayerNorms away from 1 / 0, so that each layer's own norms matter)
  new = jax.tree.map(lambda a: np.asarray(a, np.float64) + 0.3 * rng.normal(size=a.shape), state)
  x = rng.normal(size=(2, 5, d))
  with jax.enable_x64(True):
    nnx.update(model, jax.tree.map(jnp.asarray, new))
    y, aux = nnx.jit(lambda m, x: m(x))(model, jnp.asarray(x))
  p = {k: np.asarray(v) for k, v in nnx.to_pure_dict(new).items() if not isinstance(v, dict)}
  a = nnx.to_pure_dict(new)["attn"]
  cap = expert_capacity(10, E, 2, 0.75)
  assert cap == 4                                    # ceil(0.75 * 2 * 10 / 4)
  h = x
  dropped = 0
  for l in range(L):
    h = h + _np_attn(_np_ln(h, p["ln_attn_scale"][l], p["ln_attn_bias"][l]), a["q_weight_dnh"], a["k_weight_dkh"],
                     a["v_weight_dkh"], a["o_weight_nhd"])
    m, keep = _np_moe(_np_ln(h, p["ln_moe_scale"][l], p["ln_moe_bias"][l]).reshape(10, d), p, 2, cap)
    dropped += (~keep).sum()
    h = h + m.reshape(h.shape)
  assert dropped > 0                                 # the capacity did drop assignments
  # 1e-5: kernels.attention's XLA path computes the softmax in float32 even for float64 inputs (observed 1e-6)
  np.testing.assert_allclose(np.asarray(y), h, rtol=1e-5, atol=1e-5)
  assert np.isfinite(float(aux))
  # the keep mask and the un-renormalised gate on their own
  logits = rng.normal(size=(6, 3))
  idx, gate = top_k_routing(jnp.asarray(logits), 2, renormalize=False)
  sm = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  np.testing.assert_allclose(np.asarray(gate), np.take_along_axis(sm, np.asarray(idx), 1), rtol=1e-6)
  keep = np.asarray(capacity_keep_mask(jnp.asarray([[0, 1], [0, 1], [0, 2], [1, 0]]), 3, 2))
  # slots: first choices 0,0,0,1 -> third 0 dropped; second choices 1,1,2,0 -> expert 1 full after (t3's first, t0)
  np.testing.assert_array_equal(keep, [[True, True], [True, False], [False, True], [True, False]])


class _Output(nnx.Module):                           # the contract wants an array output
  def __init__(self, net):
    self.net = net

  def __call__(self, x):
    return self.net(x)[0]


@pytest.mark.slow  # nnx.jit, pure train step, bf16 and orbax: compile-heavy, kept out of the default run
def test_contract(tmp_path):
  x = jax.random.normal(jax.random.key(0), (2, 4, 8))
  check_layer_contract(lambda dt: _Output(WideNet(8, 2, 8, 4, 2, param_dtype=dt, rngs=nnx.Rngs(0))), x, tmp_path,
                       loss=lambda m, x: jnp.mean(jnp.asarray(m(x), jnp.float32) ** 2) + 0.01 * m.net(x)[1])


def test_bad_inputs():
  for kw, match in ((dict(num_experts=1), "num_experts"), (dict(top_k=5), "top_k"),
                    (dict(capacity_factor=0.0), "capacity_factor")):
    args = dict(dim=8, num_heads=2, hidden=8, num_experts=4, num_layers=2)
    args.update({k: v for k, v in kw.items() if k in args})
    with pytest.raises(ValueError, match=match):
      WideNet(**args, **{k: v for k, v in kw.items() if k not in args}, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="dim"):
    WideNet(8, 2, 8, 4, 2, rngs=nnx.Rngs(0))(jnp.ones((2, 4, 6)))
  with pytest.raises(ValueError, match="capacity"):
    capacity_keep_mask(jnp.zeros((3, 2), jnp.int32), 4, 0)
