"""EasyControl's condition branch: a LoRA applied to condition tokens only, and the causal condition attention mask
that lets the condition tokens' keys and values be computed once and cached across denoising steps.

Paper [113]: Yuxuan Zhang, Yirui Yuan, Yiren Song, Haofan Wang, Jiaming Liu, "EasyControl: Adding Efficient and
Flexible Control for Diffusion Transformer", 2025, arXiv:2503.07027 (Sec. 3.2, Condition Injection LoRA Module: the
Q, K, V projections of condition tokens are W + B A, the text and noise tokens keep the frozen W; Sec. 3.4, causal
attention: condition tokens attend only to the tokens of their own condition, while the denoising (text + noise)
tokens attend to everything; with several conditions at inference, each condition is isolated from the others
("causal mutual attention"). Condition tokens are fed with timestep 0, so their hidden states, hence their K/V in
every layer, do not depend on the noisy tokens or on the timestep and are cached after the first step).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods.validation import check_bool, check_floating, check_integer


def easycontrol_attention_mask(segment_ids: jax.Array) -> jax.Array:
  """EasyControl's causal condition mask (Zhang et al. 2025, arXiv:2503.07027, Sec. 3.4).

  Token i may attend to token j when i is a denoising token (segment 0: text and noise) or when i and j belong to the
  same condition (segment k >= 1). So condition tokens never see noise, text or another condition's tokens.

  Args:
    segment_ids: [..., T] integer segment of each token: 0 for text/noise, k >= 1 for condition k.

  Returns:
    [..., T, T] bool mask, True where attention is allowed (the layout of `jax.nn.dot_product_attention`'s `mask`
    after adding a heads axis).
  """
  s = check_integer(segment_ids, "segment_ids")
  if s.ndim < 1:
    raise ValueError(f"segment_ids must be [..., T], got shape {s.shape}")
  if not isinstance(s, jax.core.Tracer) and bool(np.any(np.asarray(s) < 0)):
    raise ValueError("segment_ids must be >= 0 (0: denoising tokens, k >= 1: condition k)")
  qi, kj = s[..., :, None], s[..., None, :]
  return (qi == 0) | (qi == kj)


class ConditionLoRALinear(nnx.Module):
  """A frozen linear map with a LoRA update applied to condition tokens only (EasyControl's Condition Injection LoRA,
  Zhang et al. 2025, arXiv:2503.07027, Sec. 3.2): y = x W + b for text/noise tokens and
  y = x W + b + (alpha / r) x A B for condition tokens.

  B starts at zero (LoRA's init), so the module starts equal to the base layer. Train only the LoRA parameters,
  e.g. `nnx.DiffState(0, nnx.LoRAParam)`; W and b are `nnx.Param`.

  Args:
    in_features: input width.
    out_features: output width.
    rank: r, LoRA rank >= 1.
    alpha: LoRA scale numerator (the update is multiplied by alpha / r).
    use_bias: base bias.
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, in_features: int, out_features: int, rank: int, *, alpha: float | None = None,
               use_bias: bool = True, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    for name, v in (("in_features", in_features), ("out_features", out_features), ("rank", rank)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
    self.rank = rank
    self.scale = (float(rank) if alpha is None else float(alpha)) / rank
    init = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal")
    self.kernel = nnx.Param(init(rngs.params(), (in_features, out_features), param_dtype))
    self.bias = nnx.Param(jnp.zeros((out_features,), param_dtype)) if use_bias else None
    self.lora_a = nnx.LoRAParam(init(rngs.params(), (in_features, rank), param_dtype))
    self.lora_b = nnx.LoRAParam(jnp.zeros((rank, out_features), param_dtype))

  def __call__(self, x: jax.Array, is_condition: jax.Array) -> jax.Array:
    """x [..., T, in_features], is_condition [..., T] bool -> [..., T, out_features]."""
    x = check_floating(x, "x")
    cond = check_bool(is_condition, "is_condition")
    if cond.shape != x.shape[:-1]:
      raise ValueError(f"is_condition must have x's shape without the feature axis {x.shape[:-1]}, got {cond.shape}")
    y = x @ self.kernel[...]
    if self.bias is not None:
      y = y + self.bias[...]
    lora = (x @ self.lora_a[...]) @ self.lora_b[...] * self.scale
    return y + jnp.where(cond[..., None], lora, jnp.zeros_like(lora))


__all__ = ["ConditionLoRALinear", "easycontrol_attention_mask"]
