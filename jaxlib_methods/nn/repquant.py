"""RepQuant / RepQ-ViT scale reparameterisation of post-LayerNorm activations ([33]).

Zhikai Li, Xuewen Liu, Jing Zhang, Qingyi Gu, "RepQuant: Towards Accurate Post-Training Quantization of Large
Transformer Models via Scale Reparameterization", 2024, arXiv:2402.05628 (the LayerNorm reparameterisation of
RepQ-ViT, Li et al., ICCV 2023, arXiv:2212.08254, Sec. 4.2): post-LayerNorm activations, whose channels differ
wildly in range, are calibrated with channel-wise quantisers (s_c, z_c) and then turned into one layer-wise
quantiser (s~ = mean(s_c), z~ = round(mean(z_c))) by folding r1 = s_c / s~ and r2 = z_c - z~ into the LayerNorm's
affine parameters and the next linear layer:

  beta~ = (beta + s_c r2) / r1,   gamma~ = gamma / r1,   W~ = r1[:, None] W,   b~ = b - (s_c r2) W.

Then X~/s~ + z~ = X/s_c + z_c for the LayerNorm output X (so the integer codes are identical, before and after
rounding), and the next layer's output is unchanged exactly in real arithmetic (`channelwise_to_layerwise_reparam`).
NOTE: only this reparameterisation is implemented; the log-sqrt2 softmax quantiser and the learnable dual clipping
of RepQuant are not.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


class LayerwiseReparam(NamedTuple):
  """The reparameterised quantiser and layers: scalar `scale` and `zero_point`, LayerNorm `gamma` and `beta` [C],
  next-layer `w` [C, D] and `b` [D].

  Li et al., "RepQuant", 2024, arXiv:2402.05628 (the LayerNorm reparameterisation of RepQ-ViT, Li et al., ICCV 2023,
  arXiv:2212.08254, Sec. 4.2): s~ = mean(s_c), z~ = round(mean(z_c)), gamma~, beta~, W~, b~.
  """
  scale: jax.Array
  zero_point: jax.Array
  gamma: jax.Array
  beta: jax.Array
  w: jax.Array
  b: jax.Array


def channelwise_to_layerwise_reparam(s_c: jax.Array, z_c: jax.Array, ln_gamma: jax.Array, ln_beta: jax.Array,
                                     w_next: jax.Array, b_next: jax.Array) -> LayerwiseReparam:
  """Folds channel-wise quantisers of a LayerNorm output into its affine parameters and the next linear layer.

  Li et al., "RepQuant: Towards Accurate Post-Training Quantization of Large Transformer Models via Scale
  Reparameterization", 2024, arXiv:2402.05628 (after RepQ-ViT, arXiv:2212.08254, Sec. 4.2, Eqs. 9-11): with
  s~ = mean(s_c), z~ = round(mean(z_c)), r1 = s_c / s~, r2 = z_c - z~: gamma~ = gamma / r1,
  beta~ = (beta + s_c r2) / r1, W~ = r1[:, None] W, b~ = b - (s_c r2) W. Zero points must be integers (r2 then is
  one, which makes the integer codes identical also after rounding).

  Args:
    s_c: [C] positive channel-wise scales.
    z_c: [C] integer-valued channel-wise zero points (any real dtype holding integers, or an integer dtype).
    ln_gamma: [C] LayerNorm scale.
    ln_beta: [C] LayerNorm shift.
    w_next: [C, D] weight of the linear layer that consumes the LayerNorm output (y = x W + b).
    b_next: [D] its bias.

  Returns:
    `LayerwiseReparam` (scale and zero_point scalars; the rest in the promoted floating dtype).
  """
  s = validation.check_floating(s_c, "s_c")
  g = validation.check_floating(ln_gamma, "ln_gamma")
  bt = validation.check_floating(ln_beta, "ln_beta")
  w = validation.check_floating(w_next, "w_next")
  b = validation.check_floating(b_next, "b_next")
  z = jnp.asarray(z_c)
  c = s.shape[0] if s.ndim == 1 else -1
  if s.ndim != 1 or z.shape != s.shape or g.shape != s.shape or bt.shape != s.shape:
    raise ValueError(f"s_c, z_c, ln_gamma, ln_beta must all be [C], got s_c.shape={s.shape}, z_c.shape={z.shape}, "
                     f"ln_gamma.shape={g.shape}, ln_beta.shape={bt.shape}")
  if w.ndim != 2 or w.shape[0] != c or b.shape != (w.shape[1],):
    raise ValueError(f"w_next must be [C={c}, D] and b_next [D], got w_next.shape={w.shape}, b_next.shape={b.shape}")
  validation.check_positive_values(s, "s_c")
  dt = jnp.result_type(s, g, bt, w, b)
  s, g, bt, w, b, z = (a.astype(dt) for a in (s, g, bt, w, b, z))
  s_t, z_t = jnp.mean(s), jnp.round(jnp.mean(z))
  r1, r2 = s / s_t, z - z_t
  return LayerwiseReparam(scale=s_t, zero_point=z_t, gamma=g / r1, beta=(bt + s * r2) / r1, w=r1[:, None] * w,
                          b=b - (s * r2) @ w)
