"""Normalisation layers from the papers: the non-scaling LayerNorm of improved latent consistency training.

Paper [3]: Quan Dao, Khanh Doan, Di Liu, Trung Le, Dimitris Metaxas, "Improved Training Technique for Latent
Consistency Models", ICLR 2025, arXiv:2502.01441 (Sec. 4: non-scaling LayerNorm, which keeps the network from
amplifying the impulsive outliers of the latent data through a learnable per-feature scale). Authors' code:
github.com/quandao10/LCT, models/network_karras.py and models/network_dit.py, class `NonScalingLayerNorm`: a
`torch.nn.LayerNorm` whose weight is initialised to 1 and frozen (requires_grad = False) while its bias stays
learnable; the DiT uses it for every LayerNorm under `--no_scale` (the query/key norms of attention are the ones with
affine parameters).
"""

from __future__ import annotations

from typing import Any, Optional

import jax.numpy as jnp
from flax import nnx


class NonScalingLayerNorm(nnx.LayerNorm):
  """LayerNorm without a learnable scale: y = (x - mean(x)) / sqrt(var(x) + eps) + b (Dao et al. 2025,
  arXiv:2502.01441, Sec. 4; the authors' `NonScalingLayerNorm`).

  The statistics are over the last axis (`reduction_axes`), as `torch.nn.LayerNorm(num_features)`; the bias b
  [num_features] is the only parameter (initialised to 0). The scale is fixed at 1: there is no `scale` parameter,
  so nothing can be trained, decayed or sharded for it.

  Args:
    num_features: size of the normalised (last) axis, >= 1.
    epsilon: added to the variance (PyTorch's LayerNorm default 1e-5, which the authors' class inherits).
    use_bias: keep the learnable bias (the authors' class does).
    dtype: computation dtype, as `nnx.LayerNorm` (None: from the input and parameters).
    param_dtype: parameter dtype, as `nnx.LayerNorm`.
    rngs: `nnx.Rngs` (keyword-only, as every NNX module).

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> ln = NonScalingLayerNorm(4, rngs=nnx.Rngs(0))
    >>> tuple(round(float(v), 3) for v in ln(jnp.array([1.0, 2.0, 3.0, 4.0])))
    (-1.342, -0.447, 0.447, 1.342)
  """

  def __init__(self, num_features: int, *, epsilon: float = 1e-5, use_bias: bool = True, dtype: Optional[Any] = None,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
      raise ValueError(f"num_features must be a positive int, got {num_features=}")
    if not (isinstance(epsilon, (int, float)) and epsilon > 0):
      raise ValueError(f"epsilon must be a number > 0, got {epsilon=}")
    super().__init__(num_features, epsilon=float(epsilon), dtype=dtype, param_dtype=param_dtype, use_bias=use_bias,
                     use_scale=False, rngs=rngs)

  def __call__(self, x, *, mask=None):
    if jnp.shape(x)[-1:] != (self.num_features,):
      raise ValueError(f"x must have num_features={self.num_features} on its last axis, got x.shape={jnp.shape(x)}")
    return super().__call__(x, mask=mask)


__all__ = ["NonScalingLayerNorm"]
