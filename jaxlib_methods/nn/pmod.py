"""p-MoD: mixture-of-depths transformer layers whose router weights are squashed by TanhNorm, with symmetric token
reweighting (STRing), and a token-retention ratio that decays layer by layer on a shifted cosine (PRD).

Paper [190]: Jun Zhang, Desen Meng, Ji Qi, Zhenpeng Huang, Tao Wu, Limin Wang, "p-MoD: Building Mixture-of-Depths
MLLMs via Progressive Ratio Decay", 2024 (ICCV 2025), arXiv:2412.04449 (Sec. 3.2-3.3), as the authors' code
(github.com/MCG-NJU/p-MoD, pmod_llava_llama.py, ModLayer) computes it:
  - router: r = x w + b (one logit per token, zero-initialised); TanhNorm: w~ = alpha tanh(r) + beta (the released
    configuration `tanh_0.2_1`: alpha = 0.2, beta = 1); the ablation `none` is w~ = r + 1 (raw router weights);
  - selection: of the N target (vision) tokens of a sequence the top k = trunc(R_l N) by w~ are processed by the
    layer, together with every non-target (text) token; the others skip it;
  - STRing: a processed target token becomes w~ MLP(LN2(h)) + h, h = x + Attn(LN1(x)) over the processed tokens only;
    a skipped target token becomes w~ x (both scaled by their weight, so the router gets gradient from both);
    non-target tokens are an ordinary pre-norm layer;
  - PRD (progressive ratio decay): R_l = cos(l pi / (L - 1)) / 2 + R_avg (shifted cosine, R_avg = 0.5); layers with
    R_l > R_max (0.85) stay ordinary layers, the others use max(R_l, R_min) (R_min = 0.15): the released
    `shiftedcos_decay_0.85_0.15` schedule (the code writes L - 1 = 31 for its 32 layers).
With the released schedule at L = 32 the layers keep 53.75% of the vision tokens on average, the paper's "53.8% KV
cache storage".
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods.nn.attention import MultiHeadAttention
from jaxlib_methods.nn.momentum_smoe import _layer_norm
from jaxlib_methods.validation import check_floating, check_int

WeightNorm = Literal["tanh", "none"]



def prd_ratio(layer: int, num_layers: int, *, average: float = 0.5, max_ratio: float = 0.85,
              min_ratio: float = 0.15) -> Optional[float]:
  """The progressive-ratio-decay retention ratio of layer l (Zhang et al. 2024, p-MoD, arXiv:2412.04449, Sec. 3.3,
  shifted cosine): R_l = cos(l pi / (L - 1)) / 2 + R_avg; None (an ordinary layer) when R_l > R_max, else
  max(R_l, R_min).

  Args:
    layer: l in [0, L).
    num_layers: L >= 2.
    average: R_avg, the shift.
    max_ratio: R_max, layers above it are not MoD layers.
    min_ratio: R_min, the floor.

  Returns:
    the ratio in [R_min, R_max], or None for an ordinary layer.
  """
  check_int(num_layers, "num_layers", 2, value_error=True)
  if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < num_layers:
    raise ValueError(f"layer must be an int in [0, {num_layers}), got {layer=!r}")
  if not 0 <= min_ratio <= max_ratio <= 1:
    raise ValueError(f"need 0 <= min_ratio <= max_ratio <= 1, got {min_ratio=}, {max_ratio=}")
  r = math.cos(layer * math.pi / (num_layers - 1)) / 2 + average
  return None if r > max_ratio else max(r, min_ratio)


def prd_token_counts(num_tokens: int, num_layers: int, **schedule) -> list[int]:
  """Target tokens each layer processes under PRD: N for ordinary layers, trunc(R_l N) for MoD layers (Zhang et al.
  2024, arXiv:2412.04449, Sec. 3.3; the authors' `torch.trunc`).

  Args:
    num_tokens: N target (vision) tokens.
    num_layers: L.
    **schedule: average, max_ratio, min_ratio of `prd_ratio`.

  Returns:
    [L] kept counts.
  """
  check_int(num_tokens, "num_tokens", 1, value_error=True)
  out = []
  for l in range(num_layers):
    r = prd_ratio(l, num_layers, **schedule)
    out.append(num_tokens if r is None else math.trunc(num_tokens * r))
  return out


def pmod_flops_fraction(num_tokens: int, num_layers: int, *, text_tokens: int, dim: int, mlp_hidden: int,
                        mlp_matrices: int = 3, **schedule) -> float:
  """Decoder FLOPs with PRD over FLOPs without (Zhang et al. 2024, arXiv:2412.04449, Sec. 4 "TFLOPs"): a layer over
  n tokens costs n (2 * 4 d^2 + 2 m d h) multiply-adds x 2 for its projections and MLP (m = 3 matrices for SwiGLU)
  plus 4 n^2 d for the attention scores and the weighted sum; n = text_tokens + the layer's kept target tokens.

  Args:
    num_tokens: N target (vision) tokens.
    num_layers: L.
    text_tokens: non-target tokens every layer processes.
    dim: d.
    mlp_hidden: h.
    mlp_matrices: m, the MLP's d x h matrices (3 for SwiGLU, 2 for a plain MLP).
    **schedule: average, max_ratio, min_ratio of `prd_ratio`.

  Returns:
    the FLOP fraction in (0, 1].
  """
  def flops(n):
    return n * (2 * 4 * dim * dim + 2 * mlp_matrices * dim * mlp_hidden) + 4 * n * n * dim
  counts = prd_token_counts(num_tokens, num_layers, **schedule)
  return sum(flops(k + text_tokens) for k in counts) / (num_layers * flops(num_tokens + text_tokens))


def tanh_norm(router_logits: jax.Array, alpha: float = 0.2, beta: float = 1.0) -> jax.Array:
  """TanhNorm, w~ = alpha tanh(r) + beta (Zhang et al. 2024, p-MoD, arXiv:2412.04449, Sec. 3.2; the released
  alpha = 0.2, beta = 1): router weights bounded in [beta - alpha, beta + alpha].

  Args:
    router_logits: r, any shape.
    alpha: the scale.
    beta: the offset.

  Returns:
    w~, the shape of r.
  """
  return alpha * jnp.tanh(router_logits) + beta


class MoDBlock(nnx.Module):
  """A p-MoD layer (Zhang et al. 2024, arXiv:2412.04449, Sec. 3.2; module docstring): a pre-norm transformer layer
  (causal attention + ReLU MLP) that processes every non-target token and the top k = trunc(ratio N) of the N target
  tokens, with TanhNorm router weights and STRing. x [B, T, d], target [T] bool (static: the same positions in
  every sequence, e.g. the image tokens) -> [B, T, d].

  Args:
    dim: d.
    num_heads: attention heads (divide d).
    hidden: the MLP's hidden width.
    ratio: the retention ratio R in (0, 1], or None for an ordinary layer (every token processed, no router).
    weight_norm: "tanh" (TanhNorm) or "none" (w~ = r + 1, the raw router weight).
    alpha: TanhNorm's scale.
    beta: TanhNorm's offset.
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs` with a 'params' stream.
  """

  def __init__(self, dim: int, num_heads: int, hidden: int, ratio: Optional[float], *,
               weight_norm: WeightNorm = "tanh", alpha: float = 0.2, beta: float = 1.0,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    check_int(dim, "dim", 1, value_error=True)
    check_int(hidden, "hidden", 1, value_error=True)
    if ratio is not None and not 0 < ratio <= 1:
      raise ValueError(f"ratio must be in (0, 1] or None, got {ratio=}")
    if weight_norm not in ("tanh", "none"):
      raise ValueError(f"weight_norm must be 'tanh' or 'none', got {weight_norm=!r}")
    self.dim, self.ratio, self.weight_norm, self.alpha, self.beta = dim, ratio, weight_norm, alpha, beta
    self.attn = MultiHeadAttention(dim, num_heads, causal=True, use_rope=False, implementation="xla",
                                   param_dtype=param_dtype, rngs=rngs)
    init = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal")
    self.ln1_scale, self.ln1_bias = nnx.Param(jnp.ones(dim, param_dtype)), nnx.Param(jnp.zeros(dim, param_dtype))
    self.ln2_scale, self.ln2_bias = nnx.Param(jnp.ones(dim, param_dtype)), nnx.Param(jnp.zeros(dim, param_dtype))
    self.w1 = nnx.Param(init(rngs.params(), (dim, hidden), param_dtype))
    self.b1 = nnx.Param(jnp.zeros(hidden, param_dtype))
    self.w2 = nnx.Param(init(rngs.params(), (hidden, dim), param_dtype))
    self.b2 = nnx.Param(jnp.zeros(dim, param_dtype))
    self.router_w = nnx.Param(jnp.zeros(dim, param_dtype))        # the authors' zero init (mod_special_init)
    self.router_b = nnx.Param(jnp.zeros((), param_dtype))

  def router_weights(self, x: jax.Array) -> jax.Array:
    """w~ [B, T] for x [B, T, d] (TanhNorm or raw)."""
    r = x @ self.router_w[...].astype(x.dtype) + self.router_b[...].astype(x.dtype)
    return tanh_norm(r, self.alpha, self.beta) if self.weight_norm == "tanh" else r + 1.0

  def _layer(self, h):
    dt = h.dtype
    h = h + self.attn(_layer_norm(h, self.ln1_scale[...].astype(dt), self.ln1_bias[...].astype(dt))).astype(dt)
    z = _layer_norm(h, self.ln2_scale[...].astype(dt), self.ln2_bias[...].astype(dt))
    m = jax.nn.relu(z @ self.w1[...].astype(dt) + self.b1[...].astype(dt)) @ self.w2[...].astype(dt)
    return h, m + self.b2[...].astype(dt)

  def __call__(self, x: jax.Array, target=None) -> jax.Array:
    x = check_floating(x, "x")
    if x.ndim != 3 or x.shape[-1] != self.dim:
      raise ValueError(f"x must be [B, T, dim={self.dim}], got shape {x.shape}")
    T = x.shape[1]
    if self.ratio is None:
      h, m = self._layer(x)
      return h + m
    target = np.ones(T, bool) if target is None else np.asarray(target)
    if target.shape != (T,) or target.dtype != bool:
      raise ValueError(f"target must be a static bool array [T={T}], got {getattr(target, 'shape', None)}")
    tgt_pos, other_pos = np.flatnonzero(target), np.flatnonzero(~target)
    k = math.trunc(len(tgt_pos) * self.ratio)
    w = self.router_weights(x)                                            # [B, T]
    _, top = jax.lax.top_k(w[:, tgt_pos], k)                              # [B, k] indices into tgt_pos
    skipped = jnp.where(jnp.asarray(target)[None, :, None], w[..., None].astype(x.dtype) * x, x)
    if k + len(other_pos) == 0:   # e.g. T = 1 with ratio < 1: no token is processed, every token skips the block
      return skipped
    sel = jnp.sort(jnp.asarray(tgt_pos)[top], axis=-1)                    # selected positions, in order
    pos = jnp.sort(jnp.concatenate([jnp.broadcast_to(jnp.asarray(other_pos, jnp.int32), (x.shape[0], len(other_pos))),
                                    sel.astype(jnp.int32)], axis=-1), axis=-1)   # [B, n_other + k]
    xs = jnp.take_along_axis(x, pos[..., None], axis=1)
    h, m = self._layer(xs)
    is_tgt = jnp.asarray(target)[pos]                                     # [B, n]
    ws = jnp.take_along_axis(w, pos, axis=1)
    out_kept = h + jnp.where(is_tgt, ws, 1.0)[..., None].astype(x.dtype) * m
    b = jnp.arange(x.shape[0])[:, None]
    return skipped.at[b, pos].set(out_kept.astype(skipped.dtype))
