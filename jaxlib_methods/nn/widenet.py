"""WideNet: one transformer block (attention + mixture-of-experts FFN) shared by all L layers, with an individual pair
of LayerNorms per layer.

Paper [127]: Fuzhao Xue, Ziji Shi, Futao Wei, Yuxuan Lou, Yong Liu, Yang You, "Go Wider Instead of Deeper", AAAI
2022, arXiv:2107.11817 (Sec. "Methodology", WideNet: the l-th layer is

    x'_l = Attn(LN_(2l-1)(x_l)) + x_l,        x_(l+1) = MoE(LN_(2l)(x'_l)) + x'_l,

with Attn and MoE (router + E FFN experts) shared across the L layers and the 2L LayerNorms individual; the router
is TopK(softmax(x W_r)) (the full softmax kept at the k largest; Sec. "Methodology"), each expert has a buffer
of B = ceil(C k T / E) slots and the tokens beyond it are dropped (Sec. "Balanced loading"), and the training loss adds
lambda / L sum_l l_balance^l, the load-balancing loss averaged over the L uses of the router.)

The MoE layer is `momentum_smoe.smoe_layer` (the library's one router) with `renormalize=False` and a capacity;
the attention is `nn.attention.MultiHeadAttention`. The router's exploration noise epsilon is not used
(deterministic routing).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods.nn.attention import MultiHeadAttention
from jaxlib_methods.nn.momentum_smoe import _layer_norm, expert_capacity, smoe_layer
from jaxlib_methods.validation import check_floating


def widenet_num_params(dim: int, num_heads: int, hidden: int, num_experts: int, num_layers: int, *,
                       shared_norms: bool = False) -> int:
  """The parameter count of `WideNet`: one attention (4 d^2 weights, no biases), one MoE layer (router d E + E;
  experts E (2 d h + h + d)) and 2 LayerNorms (scale and bias, 2 d each) per layer, or 2 in all with
  `shared_norms` (Xue et al. 2022, arXiv:2107.11817, Sec. "WideNet": only the LayerNorms grow with depth).

  Args:
    dim: d.
    num_heads: N (head width d / N; the count does not depend on it).
    hidden: h, each expert's hidden width.
    num_experts: E.
    num_layers: L.
    shared_norms: one pair of LayerNorms for all layers (the ablation) instead of one pair per layer.

  Returns:
    the number of scalar parameters.
  """
  del num_heads
  attention = 4 * dim * dim
  moe = dim * num_experts + num_experts + num_experts * (2 * dim * hidden + hidden + dim)
  norms = 2 * 2 * dim * (1 if shared_norms else num_layers)
  return attention + moe + norms


class WideNet(nnx.Module):
  """A WideNet encoder: L layers sharing one attention and one MoE-FFN, each with its own two LayerNorms (Xue et al.
  2022, "Go Wider Instead of Deeper", arXiv:2107.11817, Sec. "Methodology"; module docstring).
  x [B, T, d] -> (y [B, T, d], load-balancing loss averaged over the layers).

  Args:
    dim: d, the token width.
    num_heads: attention heads N (divides d).
    hidden: h, each expert's hidden width.
    num_experts: E >= 2.
    num_layers: L >= 1.
    top_k: k experts per token (the paper: 2).
    capacity_factor: C, B = ceil(C k T / E) slots per expert with T = B*T tokens of the call (None: dropless).
    shared_norms: the ablation of Sec. "Individual LayerNorm": one pair of LayerNorms shared by every layer.
    causal: causal attention mask.
    use_rope: rotary positions in the attention.
    dtype: the attention's computation dtype (the rest follows the input's dtype).
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs` with a 'params' stream.
  """

  def __init__(self, dim: int, num_heads: int, hidden: int, num_experts: int, num_layers: int, top_k: int = 2, *,
               capacity_factor: float | None = 1.2, shared_norms: bool = False, causal: bool = False,
               use_rope: bool = True, dtype: Any = jnp.float32, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    for name, v in (("dim", dim), ("num_heads", num_heads), ("hidden", hidden), ("num_layers", num_layers),
                    ("top_k", top_k)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
    if isinstance(num_experts, bool) or not isinstance(num_experts, int) or num_experts < 2:
      raise ValueError(f"num_experts must be an int >= 2, got {num_experts=!r}")
    if top_k > num_experts:
      raise ValueError(f"top_k must be <= num_experts, got {top_k=}, {num_experts=}")
    if capacity_factor is not None and not capacity_factor > 0:
      raise ValueError(f"capacity_factor must be > 0 or None, got {capacity_factor=}")
    self.dim, self.num_layers, self.top_k, self.num_experts = dim, num_layers, top_k, num_experts
    self.capacity_factor, self.shared_norms = capacity_factor, shared_norms
    self.attn = MultiHeadAttention(dim, num_heads, causal=causal, use_rope=use_rope, implementation="xla",
                                   dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    init = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=-2, out_axis=-1)
    k = rngs.params
    E = num_experts
    self.router_w = nnx.Param(init(k(), (dim, E), param_dtype))
    self.router_b = nnx.Param(jnp.zeros((E,), param_dtype))
    self.w1 = nnx.Param(init(k(), (E, dim, hidden), param_dtype))
    self.b1 = nnx.Param(jnp.zeros((E, hidden), param_dtype))
    self.w2 = nnx.Param(init(k(), (E, hidden, dim), param_dtype))
    self.b2 = nnx.Param(jnp.zeros((E, dim), param_dtype))
    n = 1 if shared_norms else num_layers
    self.ln_attn_scale = nnx.Param(jnp.ones((n, dim), param_dtype))
    self.ln_attn_bias = nnx.Param(jnp.zeros((n, dim), param_dtype))
    self.ln_moe_scale = nnx.Param(jnp.ones((n, dim), param_dtype))
    self.ln_moe_bias = nnx.Param(jnp.zeros((n, dim), param_dtype))

  def moe_params(self, dtype) -> dict:
    """The shared MoE layer's `smoe_layer` parameter dict, cast to `dtype`."""
    names = ("router_w", "router_b", "w1", "b1", "w2", "b2")
    return {n: getattr(self, n)[...].astype(dtype) for n in names}

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = check_floating(x, "x")
    if x.ndim != 3 or x.shape[-1] != self.dim:
      raise ValueError(f"x must be [B, T, dim={self.dim}], got shape {x.shape}")
    b, t, d = x.shape
    capacity = (None if self.capacity_factor is None
                else expert_capacity(b * t, self.num_experts, self.top_k, self.capacity_factor))
    moe = self.moe_params(x.dtype)
    aux = []
    for l in range(self.num_layers):
      i = 0 if self.shared_norms else l
      h = _layer_norm(x, self.ln_attn_scale[i].astype(x.dtype), self.ln_attn_bias[i].astype(x.dtype))
      x = x + self.attn(h).astype(x.dtype)
      h = _layer_norm(x, self.ln_moe_scale[i].astype(x.dtype), self.ln_moe_bias[i].astype(x.dtype))
      y, a = smoe_layer(h.reshape(b * t, d), moe, top_k=self.top_k, capacity=capacity, renormalize=False)
      x = x + y.reshape(b, t, d)
      aux.append(a)
    return x, jnp.mean(jnp.stack(aux))
