"""Slimmable (width-controllable) layers and configuration-invariant distillation ([90]).

Abhishek Aich, Samuel Schulter, Amit K. Roy-Chowdhury, Manmohan Chandraker, Yumin Suh, "Efficient Controllable
Multi-Task Architectures", ICCV 2023, arXiv:2308.11744, Sec. 3. A shared encoder and per-task decoders whose
widths are chosen at inference to meet a compute budget and a task preference: every layer is slimmable, i.e. a
configuration with width multiplier w uses the first ceil(w * C_out) output channels of the full layer and reads
the first (already slimmed) input channels, so all configurations share one set of weights (`SlimmableLinear`,
`slimmable_width`). Training samples configurations and adds Configuration-Invariant Knowledge Distillation: the
shared encoder's representation under a narrower encoder configuration is pulled towards the widest encoder's
(which has the fewest task conflicts) on the kept channels, the widest (teacher) representation under a
stop-gradient (`cikd_loss`; we regress with a mean squared error).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation


def slimmable_width(features: int, width_mult: float) -> int:
  """ceil(width_mult * features): the channels a width-multiplier configuration keeps (>= 1).

  Aich et al., "Efficient Controllable Multi-Task Architectures", ICCV 2023, arXiv:2308.11744, Sec. 3.1.

  Args:
    features: the full layer's channels (>= 1).
    width_mult: w in (0, 1].

  Returns:
    The kept channel count.
  """
  if isinstance(features, bool) or not isinstance(features, (int, np.integer)) or features < 1:
    raise ValueError(f"features must be an int >= 1, got {features=!r}")
  if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or not 0 < width_mult <= 1:
    raise ValueError(f"width_mult must be a Python float in (0, 1] (a static width), got {width_mult=!r}")
  return max(1, math.ceil(width_mult * features - 1e-9))


class SlimmableLinear(nnx.Module):
  """A dense layer whose width-w configuration is the top-left block of the full weight.

  Aich et al., "Efficient Controllable Multi-Task Architectures", ICCV 2023, arXiv:2308.11744, Sec. 3.1:
  y = x[..., :c_in] @ W[:c_in, :c_out] + b[:c_out], with c_in = x.shape[-1] (the previous layer's kept channels)
  and c_out = `slimmable_width(out_features, width_mult)`.

  Attributes:
    kernel: [in_features, out_features] the full weight.
    bias: [out_features] the full bias (or None).
  """

  def __init__(self, in_features: int, out_features: int, *, use_bias: bool = True, param_dtype: Any = jnp.float32,
               dtype: Any = None, rngs: nnx.Rngs):
    """Builds the full-width layer (LeCun-normal kernel, zero bias, as `nnx.Linear`).

    Args:
      in_features: the full input width.
      out_features: the full output width.
      use_bias: add a bias.
      param_dtype: the parameter dtype.
      dtype: the computation dtype (None: the input's, promoted with the parameters').
      rngs: random streams (`params`).
    """
    for name, v in (("in_features", in_features), ("out_features", out_features)):
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
    self.in_features, self.out_features = int(in_features), int(out_features)
    init = nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (self.in_features, self.out_features), param_dtype))
    self.bias = nnx.Param(jnp.zeros((self.out_features,), param_dtype)) if use_bias else None
    self.dtype = dtype

  def __call__(self, x: jax.Array, width_mult: float = 1.0) -> jax.Array:
    """The width-`width_mult` configuration's output.

    Args:
      x: [..., c_in] with 1 <= c_in <= in_features (the leading input channels).
      width_mult: static w in (0, 1].

    Returns:
      [..., slimmable_width(out_features, width_mult)].
    """
    x = validation.check_floating(x, "x")
    c_in = x.shape[-1] if x.ndim else 0
    if x.ndim < 1 or not 1 <= c_in <= self.in_features:
      raise ValueError(f"x must be [..., c_in] with 1 <= c_in <= {self.in_features}, got x.shape={x.shape}")
    c_out = slimmable_width(self.out_features, width_mult)
    dt = self.dtype or jnp.promote_types(x.dtype, self.kernel[...].dtype)
    y = x.astype(dt) @ self.kernel[...][:c_in, :c_out].astype(dt)
    if self.bias is not None:
      y = y + self.bias[...][:c_out].astype(dt)
    return y


def cikd_loss(feat_sub: jax.Array, feat_full: jax.Array) -> jax.Array:
  """Configuration-invariant distillation: mean (feat_sub - sg(feat_full)[..., :c])^2 per example.

  Aich et al., "Efficient Controllable Multi-Task Architectures", ICCV 2023, arXiv:2308.11744, Sec. 3.2 (CIKD): the
  sub-configuration's features (c kept channels) regress onto the full configuration's on the same channels; the
  full features are the teacher, under a stop-gradient (no gradient reaches the full configuration through this
  loss).

  Args:
    feat_sub: [B, ..., c] the sub-configuration's features.
    feat_full: [B, ..., C] the full configuration's features, C >= c, same leading shape.

  Returns:
    [B] per-example losses (float32 or wider).
  """
  s = validation.check_floating(feat_sub, "feat_sub")
  t = validation.check_floating(feat_full, "feat_full")
  if s.ndim < 2 or s.shape[:-1] != t.shape[:-1] or s.shape[-1] > t.shape[-1]:
    raise ValueError(f"feat_sub [B, ..., c] and feat_full [B, ..., C] need the same leading shape and c <= C, got "
                     f"feat_sub.shape={s.shape}, feat_full.shape={t.shape}")
  dt = validation.compute_dtype_for(s.dtype)
  t = jax.lax.stop_gradient(t[..., :s.shape[-1]]).astype(dt)
  d = (s.astype(dt) - t) ** 2
  return d.reshape(d.shape[0], -1).mean(-1)
