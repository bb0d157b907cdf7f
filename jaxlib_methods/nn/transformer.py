"""A small decoder-only transformer LM: pre-norm, RoPE, optional qk-layernorm, z-loss, tied or untied embeddings.

Built for [189] Wortsman et al., "Small-scale proxies for large-scale Transformer training instabilities", ICLR 2024,
arXiv:2309.14322 (Sec. 3.1: attention-logit growth and qk-layernorm; Sec. 3.2: output-logit divergence and z-loss
1e-4 * log^2 Z), whose diagnostics need the maximum attention logit of every layer (`return_aux=True`).

    h_0 = E[tokens]
    h   = h + Attn(Norm(h))        (causal, RoPE on q and k; with qk-layernorm q <- LN(q), k <- LN(k) per head)
    h   = h + MLP(Norm(h))         (d -> mlp_ratio*d -> d, GELU, no biases)
    logits = Norm(h) @ E^T  (tied)  or  Norm(h) @ W_out  (untied)

Attention is selected by `TransformerConfig.attention`, its kernel by `TransformerConfig.implementation`:
  'builtin'  a plain-jnp causal softmax attention defined here (the default; exposes max attention logits);
  'mha'      `jaxlib_methods.nn.attention.MultiHeadAttention`, i.e. `jaxlib_methods.kernels.attention` with
             implementation None (the backend's best), "pallas" (FlashAttention-2, Dao 2023, arXiv:2307.08691),
             "xla" or "cudnn";
  'gla'      `jaxlib_methods.nn.gla.GatedLinearAttention`, i.e. `jaxlib_methods.kernels.gla_attention` with
             implementation None, "pallas" (the chunkwise GLA kernel, Yang et al. 2023, arXiv:2312.06635) or "xla";
  's4d'      `jaxlib_methods.nn.ssm.S4DLayer` (S4D-LegS init, state size 64, ZOH; Gu et al. 2022, arXiv:2206.11893),
             a diagonal-SSM sequence mixer by FFT convolution (no heads, no kernel choice: implementation None);
  'sgconv'   `SGConvMixer`: `jaxlib_methods.nn.sgconv.SGConv` (Li et al. 2023, arXiv:2210.09298, Eq. 1; kernel of
             length `max_length`, required) followed, like S4DLayer, by GELU and a position-wise Linear(D -> 2D) + GLU;
  The convolutional mixers ('s4d', 'sgconv') are causal by construction and carry position in their kernels: they
  ignore num_heads, use_rope and rope_base, and reject qk_layernorm, implementation, interpret and segment_ids.
  `interpret=True` runs the Pallas kernels in interpret mode (CPU tests).

Sharding: every parameter names its dimensions with logical axes in NNX's metadata (`out_sharding`, with
`eager_sharding=False` so a model can be built with or without a mesh): `vocab`, `embed`, `heads`, `kv_heads`,
`head_dim`, `mlp`, `gate_rank`. `jaxlib_methods.runner.sharding.LOGICAL_AXIS_RULES` maps them to the mesh (`heads`
and `mlp` on `tensor`: Megatron-LM column/row pairs, Shoeybi et al. 2019, arXiv:1909.08053, Sec. 3), and FSDP
splits the largest remaining dimension. `nnx.get_partition_spec(nnx.state(model))` returns these names.
RoPE: Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021, arXiv:2104.09864, Sec. 3.4.2.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import validation


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Shape and options of `TransformerLM`.

  Attributes:
    vocab_size: V.
    d_model: D (divisible by num_heads).
    num_layers: L.
    num_heads: N; head_dim H = D / N.
    mlp_ratio: hidden size of the MLP is mlp_ratio * D.
    qk_layernorm: LayerNorm (learnable scale, no bias) on queries and keys per head before the dot product
      (Wortsman et al. 2023, Sec. 3.1; Dehghani et al. 2023).
    tie_embeddings: logits = h @ E^T; otherwise a separate [D, V] readout.
    attention: 'builtin', 'mha', 'gla', 's4d' or 'sgconv' (see the module docstring).
    implementation: the attention kernel: None (the backend's default), for 'mha' "pallas" (FlashAttention-2),
      "xla" or "cudnn"; for 'gla' "pallas" (chunkwise GLA kernel) or "xla". Must be None for 'builtin'.
    interpret: run the Pallas kernels in interpret mode (CPU); only with attention 'mha' or 'gla'.
    max_length: the longest sequence the 'sgconv' kernel covers (required for 'sgconv', None for the others).
    use_rope: rotary position embedding on q and k (builtin attention; passed to 'mha').
    rope_base: RoPE frequency base.
    norm: 'layernorm' (no bias) or 'rmsnorm'.
    dtype: computation dtype (attention softmax and logits are computed in float32 regardless).
    param_dtype: parameter dtype.
  """
  vocab_size: int = 64
  d_model: int = 64
  num_layers: int = 2
  num_heads: int = 4
  mlp_ratio: int = 4
  qk_layernorm: bool = False
  tie_embeddings: bool = False
  attention: Literal["builtin", "mha", "gla", "s4d", "sgconv"] = "builtin"
  implementation: Optional[Literal["pallas", "xla", "cudnn"]] = None
  interpret: bool = False
  max_length: Optional[int] = None
  use_rope: bool = True
  rope_base: float = 10000.0
  norm: Literal["layernorm", "rmsnorm"] = "layernorm"
  dtype: str = "float32"
  param_dtype: str = "float32"

  def __post_init__(self):
    for name in ("vocab_size", "d_model", "num_layers", "num_heads", "mlp_ratio"):
      v = getattr(self, name)
      if not isinstance(v, int) or v <= 0:
        raise ValueError(f"{name} must be a positive int, got {name}={v!r}")
    if self.d_model % self.num_heads:
      raise ValueError(f"d_model must be divisible by num_heads, got {self.d_model=}, {self.num_heads=}")
    if self.attention not in _IMPLEMENTATIONS:
      raise ValueError(f"attention must be 'builtin', 'mha', 'gla', 's4d' or 'sgconv', got {self.attention=}")
    valid = _IMPLEMENTATIONS[self.attention]
    if self.implementation not in valid:
      hint = " (the builtin attention is plain jnp: use attention='mha' for the FlashAttention-2 kernel)" \
          if self.attention == "builtin" else ""
      raise ValueError(f"implementation must be one of {valid} for attention={self.attention!r}, got "
                       f"{self.implementation=}{hint}")
    if not isinstance(self.interpret, bool):
      raise ValueError(f"interpret must be a bool, got {self.interpret=}")
    if self.interpret and self.attention in ("builtin", "s4d", "sgconv"):
      raise ValueError("interpret=True applies to the Pallas kernels (attention='mha' or 'gla'), not to "
                       f"{self.attention!r}")
    if self.qk_layernorm and self.attention in _CONV_MIXERS:
      raise ValueError(f"qk_layernorm applies to softmax attention; it is not defined for attention={self.attention!r}")
    if self.attention == "sgconv":
      if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 1:
        raise ValueError(f"attention='sgconv' needs max_length, an int >= 1 (the longest sequence its kernel covers), "
                         f"got {self.max_length=!r}")
    elif self.max_length is not None:
      raise ValueError(f"max_length applies to attention='sgconv' only, got {self.max_length=!r} with "
                       f"attention={self.attention!r}")
    if self.norm not in ("layernorm", "rmsnorm"):
      raise ValueError(f"norm must be 'layernorm' or 'rmsnorm', got {self.norm=}")
    validation.check_positive(self.rope_base, "rope_base")
    if self.use_rope and self.attention not in _CONV_MIXERS and (self.d_model // self.num_heads) % 2:
      raise ValueError(f"RoPE needs an even head_dim, got head_dim={self.d_model // self.num_heads}")

  @property
  def head_dim(self) -> int:
    return self.d_model // self.num_heads


_IMPLEMENTATIONS = {"builtin": (None,), "mha": (None, "pallas", "xla", "cudnn"), "gla": (None, "pallas", "xla"),
                    "s4d": (None,), "sgconv": (None,)}
_CONV_MIXERS = ("s4d", "sgconv")   # causal convolutions: no heads, no RoPE, no kernel choice, no packing


def _annotate(variable: Optional[nnx.Variable], axes: tuple) -> None:
  """Record the logical axes of a parameter in NNX's sharding metadata (no eager sharding: no mesh needed)."""
  if variable is None:
    return
  if len(axes) != variable[...].ndim:
    raise ValueError(f"logical axes {axes} do not match a parameter of shape {variable[...].shape}")
  variable.set_metadata(out_sharding=axes, eager_sharding=False)


def _annotate_norm(norm: Optional[nnx.Module], axis: str) -> None:
  if norm is None:
    return
  for name in ("scale", "bias"):
    v = getattr(norm, name, None)
    if isinstance(v, nnx.Variable):
      _annotate(v, (axis,))


# Logical axes of the parameters of the attention layers built elsewhere (`nn.attention`, `nn.gla`), by attribute.
_ATTENTION_AXES = {
    "q_weight_dnh": ("embed", "heads", "head_dim"),
    "k_weight_dnh": ("embed", "heads", "head_dim"),
    "v_weight_dnh": ("embed", "heads", "head_dim"),
    "k_weight_dkh": ("embed", "kv_heads", "head_dim"),
    "v_weight_dkh": ("embed", "kv_heads", "head_dim"),
    "o_weight_nhd": ("heads", "head_dim", "embed"),
    "q_weight_dnk": ("embed", "heads", "head_dim"),
    "k_weight_dnk": ("embed", "heads", "head_dim"),
    "v_weight_dnv": ("embed", "heads", "head_dim"),
    "out_gate_dnv": ("embed", "heads", "head_dim"),
    "o_weight_nvd": ("heads", "head_dim", "embed"),
    "gate_down_dr": ("embed", "gate_rank"),
    "gate_up_rnk": ("gate_rank", "heads", "head_dim"),
    "gate_bias_nk": ("heads", "head_dim"),
    # S4DLayer (attention='s4d'): H = d_model channels; modes and the GLU's 2H outputs left to FSDP.
    "log_dt": ("embed",),
    "log_A_real": ("embed", None),
    "A_imag": ("embed", None),
    "C": ("embed", None, None),
    "D": ("embed",),
    "out_weight": ("embed", None),
    "out_bias": (None,),
    # SGConvMixer (attention='sgconv'): its SGConv's parameters are annotated by the mixer itself.
}


def _annotate_attention(attn: nnx.Module) -> None:
  for name, axes in _ATTENTION_AXES.items():
    v = getattr(attn, name, None)
    if isinstance(v, nnx.Variable):
      _annotate(v, axes)
  for name in ("q_norm", "k_norm", "norm"):
    _annotate_norm(getattr(attn, name, None), "head_dim")


# ----------------------------------------------------------------------------------------------------------------------
# Pieces
# ----------------------------------------------------------------------------------------------------------------------

def rope(x: jax.Array, positions: jax.Array, base: float = 10000.0) -> jax.Array:
  """Rotary position embedding (Su et al. 2021, arXiv:2104.09864, Sec. 3.4.2), rotate-half layout.

  Pairs (x_i, x_{i+H/2}) are rotated by angle pos * base^(-2i/H), so q_m . k_n depends on m - n only.

  Args:
    x: [B, T, N, H] with H even.
    positions: [T] or [B, T] integer positions.
    base: frequency base.

  Returns:
    [B, T, N, H], same dtype as x.
  """
  h = x.shape[-1]
  if h % 2:
    raise ValueError(f"RoPE needs an even last axis, got {x.shape=}")
  freq = base ** (-jnp.arange(0, h // 2, dtype=jnp.float32) * 2.0 / h)       # [H/2]
  pos = jnp.asarray(positions, jnp.float32)
  if pos.ndim == 1:
    pos = pos[None]
  ang = pos[..., None] * freq                                                 # [B|1, T, H/2]
  cos, sin = jnp.cos(ang)[:, :, None, :], jnp.sin(ang)[:, :, None, :]
  xf = x.astype(jnp.float32)
  x1, x2 = xf[..., : h // 2], xf[..., h // 2:]
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def z_loss(logits: jax.Array, coeff: float = 1e-4) -> jax.Array:
  """Auxiliary z-loss coeff * (log Z)^2, Z = sum_j exp(logits_j), per position (Wortsman et al. 2023, Sec. 3.2;
  PaLM, Chowdhery et al. 2022, arXiv:2204.02311, Sec. 5). logits [..., V] -> [...] (float32)."""
  validation.check_nonnegative(coeff, "coeff")
  lse = jax.nn.logsumexp(logits.astype(jnp.float32), axis=-1)
  return coeff * lse ** 2


def next_token_loss(logits: jax.Array, tokens: jax.Array, *, z_loss_coeff: float = 0.0,
                    mask: Optional[jax.Array] = None) -> tuple[jax.Array, dict]:
  """Mean next-token cross-entropy (+ z-loss) for logits [B, T, V] predicting tokens[:, 1:] from tokens[:, :-1].
  The z-loss 1e-4 * log^2 Z is that of Wortsman et al., "Small-scale proxies for large-scale Transformer training
  instabilities", ICLR 2024, arXiv:2309.14322, Sec. 3.2.

  Args:
    logits: [B, T, V] (position t predicts token t + 1; the last position is dropped).
    tokens: [B, T] int in [0, V) (ValueError when concrete; NaN loss under jit).
    z_loss_coeff: weight of `z_loss` (0 = off; the paper uses 1e-4).
    mask: optional [B, T - 1] weights of the predicted positions.

  Returns:
    (total loss scalar, {'ce': ..., 'z_loss': ..., 'log_z': mean |log Z|}).
  """
  if logits.ndim != 3 or tokens.shape != logits.shape[:2]:
    raise ValueError(f"need logits [B, T, V] and tokens [B, T], got {logits.shape=}, {tokens.shape=}")
  valid = validation.check_labels(tokens, logits.shape[-1], "tokens")   # a negative id would wrap silently
  lg = logits[:, :-1].astype(jnp.float32)
  tgt = jnp.clip(tokens[:, 1:], 0, logits.shape[-1] - 1)
  logz = jax.nn.logsumexp(lg, axis=-1)
  ce = logz - jnp.take_along_axis(lg, tgt[..., None], axis=-1)[..., 0]
  ce = validation.nan_where_invalid(ce, None if valid is None else valid[:, 1:])
  zl = z_loss_coeff * logz ** 2
  w = jnp.ones_like(ce) if mask is None else mask.astype(jnp.float32)
  if w.shape != ce.shape:
    raise ValueError(f"mask must have shape {ce.shape}, got {w.shape=}")
  denom = jnp.maximum(jnp.sum(w), 1.0)
  ce_m, zl_m = jnp.sum(ce * w) / denom, jnp.sum(zl * w) / denom
  return ce_m + zl_m, {"ce": ce_m, "z_loss": zl_m, "log_z": jnp.sum(jnp.abs(logz) * w) / denom}


def _dense_init(std: float):
  return nnx.initializers.normal(std)


class CausalSelfAttention(nnx.Module):
  """Plain-jnp causal multi-head softmax attention with RoPE and optional qk-layernorm; reports its max logit.

  logits_{b n t s} = q_{btn} . k_{bsn} / sqrt(H) for s <= t (q, k after RoPE and, if enabled, LayerNorm over H).

  Args:
    d_model, num_heads: D and N (H = D / N).
    qk_layernorm, use_rope, rope_base: see TransformerConfig.
    dtype, param_dtype, rngs: as Flax.
  """

  def __init__(self, d_model: int, num_heads: int, *, qk_layernorm: bool = False, use_rope: bool = True,
               rope_base: float = 10000.0, dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    if d_model % num_heads:
      raise ValueError(f"d_model must be divisible by num_heads, got {d_model=}, {num_heads=}")
    h = d_model // num_heads
    init = _dense_init(1.0 / math.sqrt(d_model))
    self.q_weight_dnh = nnx.Param(init(rngs.params(), (d_model, num_heads, h), param_dtype))
    self.k_weight_dnh = nnx.Param(init(rngs.params(), (d_model, num_heads, h), param_dtype))
    self.v_weight_dnh = nnx.Param(init(rngs.params(), (d_model, num_heads, h), param_dtype))
    self.o_weight_nhd = nnx.Param(_dense_init(1.0 / math.sqrt(d_model))(rngs.params(), (num_heads, h, d_model),
                                                                         param_dtype))
    self.q_norm = nnx.LayerNorm(h, use_bias=False, dtype=jnp.float32, param_dtype=param_dtype,
                                rngs=rngs) if qk_layernorm else None
    self.k_norm = nnx.LayerNorm(h, use_bias=False, dtype=jnp.float32, param_dtype=param_dtype,
                                rngs=rngs) if qk_layernorm else None
    self.use_rope = use_rope
    self.rope_base = rope_base
    self.dtype = dtype
    _annotate_attention(self)

  def __call__(self, x: jax.Array, *, segment_ids: Optional[jax.Array] = None,
               return_max_logit: bool = False):
    """x [B, T, D] -> [B, T, D] (and the max pre-softmax attention logit over unmasked entries, a scalar)."""
    b, t, _ = x.shape
    xd = x.astype(self.dtype)
    q = jnp.einsum("BTD,DNH->BTNH", xd, self.q_weight_dnh[...].astype(self.dtype))
    k = jnp.einsum("BTD,DNH->BTNH", xd, self.k_weight_dnh[...].astype(self.dtype))
    v = jnp.einsum("BTD,DNH->BTNH", xd, self.v_weight_dnh[...].astype(self.dtype))
    if self.q_norm is not None:
      q, k = self.q_norm(q.astype(jnp.float32)), self.k_norm(k.astype(jnp.float32))
    if self.use_rope:
      pos = jnp.arange(t)
      q, k = rope(q, pos, self.rope_base), rope(k, pos, self.rope_base)
    hd = q.shape[-1]
    logits = jnp.einsum("BTNH,BSNH->BNTS", q.astype(jnp.float32), k.astype(jnp.float32)) / math.sqrt(hd)
    mask = jnp.tril(jnp.ones((t, t), bool))[None, None]
    if segment_ids is not None:
      if segment_ids.shape != (b, t):
        raise ValueError(f"segment_ids must have shape {(b, t)}, got {segment_ids.shape=}")
      mask = mask & (segment_ids[:, None, :, None] == segment_ids[:, None, None, :])
    neg = jnp.finfo(jnp.float32).min
    probs = jax.nn.softmax(jnp.where(mask, logits, neg), axis=-1)
    out = jnp.einsum("BNTS,BSNH->BTNH", probs.astype(self.dtype), v)
    y = jnp.einsum("BTNH,NHD->BTD", out, self.o_weight_nhd[...].astype(self.dtype))
    if return_max_logit:
      return y, jnp.max(jnp.where(mask, logits, -jnp.inf))
    return y


class FeedForward(nnx.Module):
  """x -> GELU(x W_1) W_2, no biases. x [..., D] -> [..., D]."""

  def __init__(self, d_model: int, hidden: int, *, dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.w1 = nnx.Param(_dense_init(1 / math.sqrt(d_model))(rngs.params(), (d_model, hidden), param_dtype))
    self.w2 = nnx.Param(_dense_init(1 / math.sqrt(hidden))(rngs.params(), (hidden, d_model), param_dtype))
    _annotate(self.w1, ("embed", "mlp"))   # column-parallel under tensor parallelism
    _annotate(self.w2, ("mlp", "embed"))   # row-parallel
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.astype(self.dtype)
    return jax.nn.gelu(x @ self.w1[...].astype(self.dtype)) @ self.w2[...].astype(self.dtype)


class SGConvMixer(nnx.Module):
  """SGConv as a token mixer: y = GLU(GELU(SGConv(x)) W + b), per position W [D, 2D], b [2D] (the S4-style block
  that S4DLayer also uses, around the structured global convolution of Li et al., "What Makes Convolutional Models
  Great on Long Sequence Modeling?", ICLR 2023, arXiv:2210.09298, Eq. 1). x [B, L, D] (L <= max_length) ->
  [B, L, D]; causal (output t depends on x_0..x_t only).

  The GELU + Linear + GLU around the convolution follows S4's layer, on which the paper builds; not checked against
  the authors' code.

  Args:
    d_model: D, the channels.
    max_length: the longest sequence L the kernel covers.
    kernel_dim: d, SGConv's parameters per scale and channel.
    alpha: SGConv's decay in (0, 1].
    dtype: computation dtype of the output projection (the convolution runs in at least float32).
    param_dtype: parameter dtype.
    rngs: nnx.Rngs with a 'params' stream.
  """

  def __init__(self, d_model: int, max_length: int, *, kernel_dim: int = 32, alpha: float = 0.5,
               dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    from jaxlib_methods.nn.sgconv import SGConv  # lazy: another module of the package
    if isinstance(d_model, bool) or not isinstance(d_model, int) or d_model <= 0:
      raise ValueError(f"d_model must be a positive int, got {d_model=!r}")
    self.conv = SGConv(d_model, max_length, kernel_dim=kernel_dim, alpha=alpha, param_dtype=param_dtype, rngs=rngs)
    self.out_weight = nnx.Param(_dense_init(1.0 / math.sqrt(d_model))(rngs.params(), (d_model, 2 * d_model),
                                                                       param_dtype))
    self.out_bias = nnx.Param(jnp.zeros((2 * d_model,), param_dtype))
    self.d_model, self.max_length, self.dtype = d_model, max_length, dtype
    _annotate(self.conv.subkernels, (None, "embed", None))
    _annotate(self.conv.d, ("embed",))
    _annotate(self.conv.z, ("embed",))
    _annotate(self.out_weight, ("embed", None))
    _annotate(self.out_bias, (None,))

  def __call__(self, x: jax.Array, *, segment_ids: Optional[jax.Array] = None) -> jax.Array:
    """x [B, L, D] -> [B, L, D]. `segment_ids` (packed sequences) is not supported and must be None."""
    if segment_ids is not None:
      raise ValueError("SGConvMixer convolves over the whole sequence: segment_ids (packing) is not supported")
    if x.ndim != 3 or x.shape[-1] != self.d_model or x.shape[1] > self.max_length:
      raise ValueError(f"x must be [B, L <= max_length = {self.max_length}, D = {self.d_model}], got {x.shape=}")
    y = jax.nn.gelu(self.conv(x.astype(jnp.float32))).astype(self.dtype)
    z = y @ self.out_weight[...].astype(self.dtype) + self.out_bias[...].astype(self.dtype)
    return jax.nn.glu(z, axis=-1)


def _norm(cfg: TransformerConfig, rngs: nnx.Rngs) -> nnx.Module:
  pdt = jnp.dtype(cfg.param_dtype)
  if cfg.norm == "rmsnorm":
    norm = nnx.RMSNorm(cfg.d_model, dtype=jnp.float32, param_dtype=pdt, rngs=rngs)
  else:
    norm = nnx.LayerNorm(cfg.d_model, use_bias=False, dtype=jnp.float32, param_dtype=pdt, rngs=rngs)
  _annotate_norm(norm, "embed")
  return norm


class TransformerBlock(nnx.Module):
  """Pre-norm block: h + Attn(Norm(h)), then h + MLP(Norm(h)). x [B, T, D] -> [B, T, D]."""

  def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    dt, pdt = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
    self.attn_norm = _norm(cfg, rngs)
    self.mlp_norm = _norm(cfg, rngs)
    self.attention_kind = cfg.attention
    if cfg.attention == "builtin":
      self.attn = CausalSelfAttention(cfg.d_model, cfg.num_heads, qk_layernorm=cfg.qk_layernorm,
                                      use_rope=cfg.use_rope, rope_base=cfg.rope_base, dtype=dt, param_dtype=pdt,
                                      rngs=rngs)
    elif cfg.attention == "mha":
      from jaxlib_methods.nn.attention import MultiHeadAttention  # lazy: another module of the package
      self.attn = MultiHeadAttention(cfg.d_model, cfg.num_heads, causal=True, use_rope=cfg.use_rope,
                                     qk_layernorm=cfg.qk_layernorm, implementation=cfg.implementation,
                                     rope_base=cfg.rope_base, interpret=cfg.interpret, dtype=dt, param_dtype=pdt,
                                     rngs=rngs)
    elif cfg.attention == "s4d":
      from jaxlib_methods.nn.ssm import S4DLayer  # lazy: another module of the package
      self.attn = S4DLayer(cfg.d_model, 64, init="legs", dtype=dt, param_dtype=pdt, rngs=rngs)
    elif cfg.attention == "sgconv":
      self.attn = SGConvMixer(cfg.d_model, cfg.max_length, dtype=dt, param_dtype=pdt, rngs=rngs)
    else:
      if cfg.qk_layernorm:
        raise ValueError("qk_layernorm applies to softmax attention; it is not defined for attention='gla'")
      from jaxlib_methods.nn.gla import GatedLinearAttention  # lazy: another module of the package
      self.attn = GatedLinearAttention(cfg.d_model, cfg.num_heads, implementation=cfg.implementation,
                                       interpret=cfg.interpret, dtype=dt, param_dtype=pdt, rngs=rngs)
    _annotate_attention(self.attn)
    self.mlp = FeedForward(cfg.d_model, cfg.mlp_ratio * cfg.d_model, dtype=dt, param_dtype=pdt, rngs=rngs)

  def __call__(self, x: jax.Array, *, segment_ids: Optional[jax.Array] = None):
    """Returns (x_out, max attention logit or NaN when the attention type does not report it)."""
    y = self.attn_norm(x)
    if self.attention_kind == "builtin":
      a, max_logit = self.attn(y, segment_ids=segment_ids, return_max_logit=True)
    else:
      a, max_logit = self.attn(y, segment_ids=segment_ids), jnp.float32(jnp.nan)
    x = x + a.astype(x.dtype)
    x = x + self.mlp(self.mlp_norm(x)).astype(x.dtype)
    return x, max_logit


class TransformerLM(nnx.Module):
  """Decoder-only LM (see the module docstring). tokens [B, T] int -> logits [B, T, V] float32.

  Built for Wortsman et al., "Small-scale proxies for large-scale Transformer training instabilities", ICLR 2024,
  arXiv:2309.14322 (Sec. 3.1: qk-layernorm; `return_aux=True` returns each layer's maximum attention logit).

  Args:
    cfg: TransformerConfig.
    rngs: nnx.Rngs with a 'params' stream.

  Example:
    >>> from flax import nnx
    >>> lm = TransformerLM(TransformerConfig(vocab_size=16, d_model=16, num_layers=1, num_heads=2), rngs=nnx.Rngs(0))
    >>> lm(jnp.zeros((2, 5), jnp.int32)).shape
    (2, 5, 16)
  """

  def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    pdt = jnp.dtype(cfg.param_dtype)
    self.cfg = cfg
    self.embed_vd = nnx.Param(_dense_init(1.0)(rngs.params(), (cfg.vocab_size, cfg.d_model), pdt))
    self.blocks = nnx.List([TransformerBlock(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
    self.final_norm = _norm(cfg, rngs)
    self.unembed_dv = None if cfg.tie_embeddings else nnx.Param(
        _dense_init(1.0 / math.sqrt(cfg.d_model))(rngs.params(), (cfg.d_model, cfg.vocab_size), pdt))
    _annotate(self.embed_vd, ("vocab", "embed"))
    _annotate(self.unembed_dv, ("embed", "vocab"))

  def __call__(self, tokens: jax.Array, *, segment_ids: Optional[jax.Array] = None, return_aux: bool = False):
    """tokens [B, T] -> logits [B, T, V]; with `return_aux`, also {'max_attention_logits': [L]} (NaN per layer
    for attention types that do not report logits)."""
    if tokens.ndim != 2:
      raise ValueError(f"tokens must be [B, T], got {tokens.shape=}")
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(f"tokens must be integers, got {tokens.dtype=}")
    # out of [0, V): ValueError when concrete, NaN rows under jit (a negative id would otherwise wrap silently)
    valid = validation.check_labels(tokens, self.cfg.vocab_size, "tokens")
    dt = jnp.dtype(self.cfg.dtype)
    x = jnp.take(self.embed_vd[...], jnp.clip(tokens, 0, self.cfg.vocab_size - 1), axis=0).astype(dt)
    x = validation.nan_where_invalid(x, valid)
    max_logits = []
    for block in self.blocks:
      x, m = block(x, segment_ids=segment_ids)
      max_logits.append(m)
    x = self.final_norm(x).astype(jnp.float32)
    w = self.embed_vd[...].T if self.unembed_dv is None else self.unembed_dv[...]
    if self.unembed_dv is None:
      # Tied: scale by 1/sqrt(D) so the logits start O(1) with an O(1)-std embedding (as in T5/PaLM-style heads).
      logits = x @ w.astype(jnp.float32) / math.sqrt(self.cfg.d_model)
    else:
      logits = x @ w.astype(jnp.float32)
    if return_aux:
      return logits, {"max_attention_logits": jnp.stack(max_logits)}
    return logits


__all__ = [
    "CausalSelfAttention",
    "FeedForward",
    "SGConvMixer",
    "TransformerBlock",
    "TransformerConfig",
    "TransformerLM",
    "next_token_loss",
    "rope",
    "z_loss",
]
