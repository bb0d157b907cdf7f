"""The two-layer convolutional network of the feature-learning theory papers: one filter bank per class applied to
every patch, a polynomial ReLU, and a fixed second layer.

Paper [41]: Difan Zou, Yuan Cao, Yuanzhi Li, Quanquan Gu, "The Benefits of Mixup for Feature Learning", ICML 2023,
arXiv:2303.08433, Sec. 3 (the CNN model): for a label j in {+1, -1},

    F_j(W, x) = (1 / m) sum_{r=1}^m sum_{p=1}^P sigma(<w_{j,r}, x^(p)>),     f(W, x) = F_{+1}(W, x) - F_{-1}(W, x),

with sigma(z) = max(0, z)^q (q >= 1; q = 1 is ReLU) and only the first layer W trained. The prediction is sign f.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class PatchCNN(nnx.Module):
  """f(W, x) = F_{+1}(W, x) - F_{-1}(W, x), F_j = (1/m) sum_r sum_p max(0, <w_{j,r}, x^(p)>)^q (Zou et al., ICML 2023,
  arXiv:2303.08433, Sec. 3).

  Args:
    dim: the patch dimension d (> 0).
    width: m, filters per class (> 0).
    power: q >= 1, the activation's exponent (1: ReLU).
    init_std: the filters' initial standard deviation sigma_0 (>= 0; the weights are w ~ N(0, sigma_0^2 I)).
    rngs: nnx.Rngs with a 'params' stream.

  Calling it on x [..., P, dim] returns the margin f [...] (positive: class +1).
  """

  def __init__(self, dim: int, width: int, *, power: float = 2.0, init_std: float = 0.01, rngs: nnx.Rngs):
    if int(dim) <= 0 or int(width) <= 0:
      raise ValueError(f"dim and width must be positive, got {dim=}, {width=}")
    if not power >= 1:
      raise ValueError(f"power must be >= 1 (sigma(z) = max(0, z)^q), got {power=}")
    if not init_std >= 0:
      raise ValueError(f"init_std must be >= 0, got {init_std=}")
    self.weight_jmd = nnx.Param(init_std * jax.random.normal(rngs.params(), (2, int(width), int(dim)), jnp.float32))
    self.power = float(power)

  def __call__(self, x: jax.Array) -> jax.Array:
    w = self.weight_jmd[...]
    if x.shape[-1] != w.shape[-1] or x.ndim < 2:
      raise ValueError(f"x must be [..., P, dim={w.shape[-1]}], got x.shape={x.shape}")
    act = jnp.maximum(jnp.einsum("...pd,jmd->...jmp", x, w), 0.0) ** self.power
    f = jnp.mean(jnp.sum(act, axis=-1), axis=-1)                          # [..., 2]: F_{+1}, F_{-1}
    return f[..., 0] - f[..., 1]
