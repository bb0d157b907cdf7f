"""MomentumSMoE: a stack of sparse mixture-of-experts layers read as gradient descent, with heavy-ball momentum (and
the Adam variant) across the layers.

Paper [142]: Rachel S.Y. Teo, Tan M. Nguyen, "MomentumSMoE: Integrating Momentum into Sparse Mixture of Experts",
NeurIPS 2024, arXiv:2410.14574 (Sec. 3: a residual SMoE stack x_(t+1) = x_t + SMoE_t(x_t) is a gradient step
x_(t+1) = x_t - gamma f(x_t) with -f(x_t) = SMoE_t(x_t); MomentumSMoE (Eq. 9) is the heavy-ball step

    p_t = -f(x_t) + mu p_(t-1),      x_(t+1) = x_t + gamma p_t,      p_(-1) = 0,

so mu = 0, gamma = 1 is the plain SMoE stack; AdamSMoE (Sec. 3.2) replaces the step of the first layer by Adam's,

    p_t = beta1 p_(t-1) + (1 - beta1) (-f(x_t)),   v_t = beta2 v_(t-1) + (1 - beta2) f(x_t)^2,
    x_(t+1) = x_t + gamma' p_t / sqrt(v_t + eps),

and keeps heavy-ball momentum in the later layers, as the authors' code (github.com/rachtsy/MomentumSMoE, models.py,
`layerth < 1`) does. That code writes the update with the opposite sign (m = mu m + gamma SMoE(x), x - m), which is
the same map with the experts' output negated; we keep the paper's signs so that mu = 0, gamma = 1 is x + SMoE(x).
Its Adam branch also returns -gamma' p / sqrt(v + eps) without the + x_t; we follow the paper's equation.)

The router is the authors' top-k softmax gate: logits = x W_r + b_r, the top k logits renormalised by a softmax;
every expert is a ReLU MLP. There is no capacity limit: no token is ever dropped (all experts are evaluated densely
and combined with the sparse gate weights, O(E) compute, fine for the small models this library trains).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods.validation import check_floating


def top_k_routing(logits: jax.Array, top_k: int, *, renormalize: bool = True) -> tuple[jax.Array, jax.Array]:
  """The SMoE router's top-k gate (Teo & Nguyen 2024, arXiv:2410.14574, Sec. 2; the authors' naive gate): the k
  largest logits of each token, renormalised by a softmax over those k. With `renormalize=False` the gate is
  TopK(softmax(logits)), the softmax over all E experts kept at the top k (WideNet, Xue et al. 2022,
  arXiv:2107.11817, Sec. "Methodology", routing; V-MoE's gate): the rows then sum to <= 1.

  Args:
    logits: [T, E] router logits.
    top_k: k, 1 <= k <= E.
    renormalize: softmax over the k selected logits (True) or the full softmax at the selected experts (False).

  Returns:
    (expert_index [T, k] int32, gate [T, k]).
  """
  if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= logits.shape[-1]:
    raise ValueError(f"top_k must be an int in [1, num_experts={logits.shape[-1]}], got {top_k=!r}")
  val, idx = jax.lax.top_k(logits, top_k)
  if renormalize:
    return idx.astype(jnp.int32), jax.nn.softmax(val, axis=-1)
  return idx.astype(jnp.int32), jnp.take_along_axis(jax.nn.softmax(logits, axis=-1), idx, axis=-1)


def expert_capacity(num_tokens: int, num_experts: int, top_k: int, capacity_factor: float) -> int:
  """The buffer capacity B = ceil(C k T / E) of each expert (WideNet, Xue et al. 2022, arXiv:2107.11817, Sec.
  "Balanced loading": B = C K N L / E with N L the tokens of the batch; GShard / V-MoE's capacity).

  Args:
    num_tokens: T, the tokens routed together.
    num_experts: E.
    top_k: k, the experts each token is sent to.
    capacity_factor: C > 0.

  Returns:
    B, an int >= 1.
  """
  for name, v in (("num_tokens", num_tokens), ("num_experts", num_experts), ("top_k", top_k)):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
  if not capacity_factor > 0:
    raise ValueError(f"capacity_factor must be > 0, got {capacity_factor=}")
  return max(1, math.ceil(capacity_factor * top_k * num_tokens / num_experts))


def capacity_keep_mask(expert_index: jax.Array, num_experts: int, capacity: int) -> jax.Array:
  """Explicit token dropping: which of the T k assignments fit in their expert's buffer of `capacity` slots
  (WideNet, Xue et al. 2022, arXiv:2107.11817, Sec. "Balanced loading": "only at most B tokens are preserved for
  each expert ... all remaining tokens are dropped"). Slots are filled in priority order, all first choices before
  any second choice, tokens in sequence order within a choice (GShard / V-MoE's order).

  Args:
    expert_index: [T, k] the experts chosen for each token (column j = the j-th choice).
    num_experts: E.
    capacity: B >= 1 slots per expert.

  Returns:
    keep [T, k] bool: False for the assignments that are dropped.
  """
  if expert_index.ndim != 2:
    raise ValueError(f"expert_index must be [T, k], got shape {expert_index.shape}")
  if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
    raise ValueError(f"capacity must be an int >= 1, got {capacity=!r}")
  onehot = jax.nn.one_hot(expert_index.T, num_experts, dtype=jnp.int32)          # [k, T, E], choice-major
  flat = onehot.reshape(-1, num_experts)
  position = (jnp.cumsum(flat, axis=0) - flat).reshape(onehot.shape)              # slots taken before this one
  slot = jnp.sum(position * onehot, axis=-1)                                      # [k, T]
  return (slot < capacity).T


def load_balancing_loss(logits: jax.Array, expert_index: jax.Array) -> jax.Array:
  """The router's load-balancing loss E * sum_i f_i P_i as the MomentumSMoE code defines it (Teo & Nguyen 2024,
  arXiv:2410.14574; custom_gates.py `set_load_balance`, the Switch-Transformer loss): f_i is the share of the T*k
  top-k assignments that go to expert i, P_i = sum_t softmax(logits_t)_i / (T*k). With uniform routing it is 1/k
  (Switch's normalisation, P_i = mean_t softmax, would give 1: the two differ by the constant factor k).

  Args:
    logits: [T, E] router logits.
    expert_index: [T, k] the experts chosen for each token.

  Returns:
    scalar loss (differentiable in the logits through P).
  """
  logits = check_floating(logits, "logits")
  if logits.ndim != 2 or expert_index.ndim != 2 or expert_index.shape[0] != logits.shape[0]:
    raise ValueError(f"need logits [T, E] and expert_index [T, k], got {logits.shape} and {expert_index.shape}")
  num_experts = logits.shape[-1]
  n = expert_index.size
  frac = jnp.sum(jax.nn.one_hot(expert_index, num_experts, dtype=jnp.float32), axis=(0, 1)) / n
  prob = jnp.sum(jax.nn.softmax(logits.astype(jnp.float32), axis=-1), axis=0) / n
  return num_experts * jnp.sum(jax.lax.stop_gradient(frac) * prob)


def smoe_layer(x: jax.Array, params: dict, *, top_k: int, capacity: Optional[int] = None,
               renormalize: bool = True) -> tuple[jax.Array, jax.Array]:
  """One sparse MoE layer, SMoE(x) = sum_(j in top-k) g_j(x) FFN_j(x) (Teo & Nguyen 2024, arXiv:2410.14574, Eq. 1);
  dropless by default (every token reaches its k experts). With `capacity` = B, each expert keeps at most B of its
  assignments (`capacity_keep_mask`) and the dropped ones contribute 0 (the caller's residual carries the token), as
  in WideNet (Xue et al. 2022, arXiv:2107.11817).

  Args:
    x: [T, d] tokens.
    params: dict with router_w [d, E], router_b [E], w1 [E, d, h], b1 [E, h], w2 [E, h, d], b2 [E, d].
    top_k: k experts per token.
    capacity: None (dropless) or B >= 1 slots per expert.
    renormalize: the gate of `top_k_routing`.

  Returns:
    (SMoE(x) [T, d], load-balancing loss, a scalar).
  """
  logits = x @ params["router_w"] + params["router_b"]
  idx, gate = top_k_routing(logits, top_k, renormalize=renormalize)
  num_experts = logits.shape[-1]
  if capacity is not None:
    gate = gate * capacity_keep_mask(idx, num_experts, capacity).astype(gate.dtype)
  combine = jnp.einsum("tk,tke->te", gate, jax.nn.one_hot(idx, num_experts, dtype=gate.dtype))
  h = jax.nn.relu(jnp.einsum("td,edh->teh", x, params["w1"]) + params["b1"])
  out = jnp.einsum("teh,ehd->ted", h, params["w2"]) + params["b2"]
  return jnp.einsum("te,ted->td", combine.astype(out.dtype), out), load_balancing_loss(logits, idx)


def _layer_norm(x, scale, bias, eps=1e-6):
  x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  mu = jnp.mean(x32, -1, keepdims=True)
  var = jnp.mean((x32 - mu) ** 2, -1, keepdims=True)
  return ((x32 - mu) * jax.lax.rsqrt(var + eps) * scale + bias).astype(x.dtype)


Variant = Literal["heavy_ball", "adam"]


def momentum_smoe_stack(x: jax.Array, params: dict, *, top_k: int, mu: float = 0.7, gamma: float = 1.0,
                        variant: Variant = "heavy_ball", adam_gamma: float = 1.0, beta1: float = 0.9,
                        beta2: float = 0.999, eps: float = 1e-8, pre_norm: bool = True) -> tuple[jax.Array, jax.Array]:
  """A stack of L SMoE layers with MomentumSMoE's heavy-ball step, or AdamSMoE's first step (Teo & Nguyen 2024,
  arXiv:2410.14574, Eq. 9 and Sec. 3.2; see the module docstring), scanned over the layers with `lax.scan`.

  -f(x_t) = SMoE_t(LN_t(x_t)) with `pre_norm` (the authors' pre-LayerNorm transformer layer), SMoE_t(x_t) without.

  Args:
    x: [T, d] tokens.
    params: the `smoe_layer` dict with a leading layer axis L on every entry, plus ln_scale, ln_bias [L, d] when
      `pre_norm`.
    top_k: k experts per token.
    mu: heavy-ball momentum mu (0 with gamma = 1: the plain SMoE stack); may be traced.
    gamma: step size gamma; may be traced.
    variant: "heavy_ball" (MomentumSMoE) or "adam" (AdamSMoE: Adam's step in layer 0, heavy ball after).
    adam_gamma: step size gamma' of the Adam layer.
    beta1: Adam's first-moment decay.
    beta2: Adam's second-moment decay.
    eps: added to v under the square root, as in the authors' code.
    pre_norm: apply each layer's LayerNorm before its SMoE.

  Returns:
    (x_L [T, d], mean over layers of the load-balancing loss).
  """
  if variant not in ("heavy_ball", "adam"):
    raise ValueError(f"variant must be 'heavy_ball' or 'adam', got {variant=!r}")
  x = check_floating(x, "x")
  if x.ndim != 2:
    raise ValueError(f"x must be [T, d], got shape {x.shape}")

  def body(carry, layer):
    x, p, a_m, a_v = carry
    i, lp = layer
    h = _layer_norm(x, lp["ln_scale"], lp["ln_bias"]) if pre_norm else x
    u, aux = smoe_layer(h, lp, top_k=top_k)                 # u = -f(x_t)
    p = u + mu * p                                          # heavy ball
    x_hb = x + gamma * p
    if variant == "adam":   # moments in float32 at least: in fp16 eps = 1e-8 rounds to 0 and (1 - beta2) u^2 underflows
      u32 = u.astype(a_m.dtype)
      a_m = beta1 * a_m + (1 - beta1) * u32
      a_v = beta2 * a_v + (1 - beta2) * u32 * u32
      x_adam = (x.astype(a_m.dtype) + adam_gamma * a_m / jnp.sqrt(a_v + eps)).astype(x.dtype)
      x_new = jnp.where(i == 0, x_adam, x_hb)
    else:
      x_new = x_hb
    return (x_new, p, a_m, a_v), aux

  z = jnp.zeros_like(x)
  z32 = jnp.zeros(x.shape, jnp.promote_types(x.dtype, jnp.float32))
  num_layers = params["w1"].shape[0]
  (x, _, _, _), aux = jax.lax.scan(body, (x, z, z32, z32), (jnp.arange(num_layers), params))
  return x, jnp.mean(aux)


class MomentumSMoE(nnx.Module):
  """MomentumSMoE / AdamSMoE stack of L sparse-MoE layers as one NNX module with stacked (scanned) layer parameters
  (Teo & Nguyen 2024, arXiv:2410.14574, Eq. 9, Sec. 3.2). x [..., d] -> (y [..., d], load-balancing loss).

  Args:
    dim: d, the token width.
    hidden: h, each expert's hidden width.
    num_experts: E.
    num_layers: L.
    top_k: k experts per token, 1 <= k <= E.
    mu: heavy-ball momentum in [0, 1) (0 with gamma = 1: plain SMoE).
    gamma: step size > 0.
    variant: "heavy_ball" or "adam".
    adam_gamma: step size of the Adam layer.
    beta1: Adam's first-moment decay in [0, 1).
    beta2: Adam's second-moment decay in [0, 1).
    pre_norm: pre-LayerNorm per layer.
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, dim: int, hidden: int, num_experts: int, num_layers: int, top_k: int = 2, *, mu: float = 0.7,
               gamma: float = 1.0, variant: Variant = "heavy_ball", adam_gamma: float = 1.0, beta1: float = 0.9,
               beta2: float = 0.999, pre_norm: bool = True, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    for name, v in (("dim", dim), ("hidden", hidden), ("num_experts", num_experts), ("num_layers", num_layers),
                    ("top_k", top_k)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
    if top_k > num_experts:
      raise ValueError(f"top_k must be <= num_experts, got {top_k=}, {num_experts=}")
    if not 0 <= mu < 1:
      raise ValueError(f"mu must be in [0, 1), got {mu=}")
    if not gamma > 0 or not adam_gamma > 0:
      raise ValueError(f"gamma and adam_gamma must be > 0, got {gamma=}, {adam_gamma=}")
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
      raise ValueError(f"beta1 and beta2 must be in [0, 1), got {beta1=}, {beta2=}")
    if variant not in ("heavy_ball", "adam"):
      raise ValueError(f"variant must be 'heavy_ball' or 'adam', got {variant=!r}")
    self.dim, self.top_k, self.mu, self.gamma, self.variant = dim, top_k, mu, gamma, variant
    self.adam_gamma, self.beta1, self.beta2, self.pre_norm = adam_gamma, beta1, beta2, pre_norm
    L, E = num_layers, num_experts
    init = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=-2, out_axis=-1)
    k = rngs.params
    self.router_w = nnx.Param(init(k(), (L, dim, E), param_dtype))
    self.router_b = nnx.Param(jnp.zeros((L, E), param_dtype))
    self.w1 = nnx.Param(init(k(), (L, E, dim, hidden), param_dtype))
    self.b1 = nnx.Param(jnp.zeros((L, E, hidden), param_dtype))
    self.w2 = nnx.Param(init(k(), (L, E, hidden, dim), param_dtype))
    self.b2 = nnx.Param(jnp.zeros((L, E, dim), param_dtype))
    self.ln_scale = nnx.Param(jnp.ones((L, dim), param_dtype))
    self.ln_bias = nnx.Param(jnp.zeros((L, dim), param_dtype))

  def layer_params(self) -> dict:
    """The stacked parameter dict that `momentum_smoe_stack` takes."""
    names = ("router_w", "router_b", "w1", "b1", "w2", "b2", "ln_scale", "ln_bias")
    return {n: getattr(self, n)[...] for n in names}

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = check_floating(x, "x")
    if x.ndim < 1 or x.shape[-1] != self.dim:
      raise ValueError(f"x must be [..., dim={self.dim}], got shape {x.shape}")
    lead = x.shape[:-1]
    params = jax.tree.map(lambda p: p.astype(x.dtype), self.layer_params())
    y, aux = momentum_smoe_stack(x.reshape(-1, self.dim), params, top_k=self.top_k, mu=self.mu, gamma=self.gamma,
                                 variant=self.variant, adam_gamma=self.adam_gamma, beta1=self.beta1,
                                 beta2=self.beta2, pre_norm=self.pre_norm)
    return y.reshape(lead + (self.dim,)), aux
