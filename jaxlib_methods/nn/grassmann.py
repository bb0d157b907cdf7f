"""Grassmann Class Representation (GCR): each class is a k-dimensional subspace, its logit the norm of the feature's
projection onto it.

Paper [97]: Haoqi Wang, Zhizhong Li, Wayne Zhang, "Get the Best of Both Worlds: Improving Accuracy and
Transferability by Grassmann Class Representation", ICCV 2023, arXiv:2308.01547 (Sec. 3):

    logit_i(x) = scale * || S_i^T x_hat ||_2,     S_i [d, k] with S_i^T S_i = I_k,   x_hat = x / ||x||

For k = 1 this is scale * |cos(s_i, x)|, the absolute-cosine classifier. The subspaces live on the Grassmannian and
are trained with `jaxlib_methods.optim.riemannian_sgd_grassmann` (tangent projection, QR retraction, momentum
transport); the feature normalisation and the logit scale (a temperature) are this module's options.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import validation
from jaxlib_methods._norms import l2_normalize
from jaxlib_methods.optim._grassmann import qr_retraction


def grassmann_logits(x: jax.Array, S: jax.Array, *, scale: float = 1.0, normalize: bool = True,
                     eps: float = 1e-12) -> jax.Array:
  """GCR logits scale * ||S_i^T x_hat|| (Wang, Li, Zhang 2023, arXiv:2308.01547, Sec. 3, the subspace logit).

  Args:
    x: features [..., d].
    S: class subspaces [C, d, k] (orthonormal columns).
    scale: logit scale (> 0).
    normalize: divide x by its l2 norm first (x_hat); False uses x as is.
    eps: floor of ||x|| and of the squared projection norm (keeps the gradient finite at 0).

  Returns:
    logits [..., C] (float32 or wider).
  """
  x, S = jnp.asarray(x), jnp.asarray(S)
  if S.ndim != 3:
    raise ValueError(f"S must be [C, d, k], got {S.shape=}")
  if x.ndim < 1 or x.shape[-1] != S.shape[1]:
    raise ValueError(f"x must be [..., d] with d = {S.shape[1]}, got {x.shape=}")
  validation.check_positive(scale, "scale")
  ct = jnp.promote_types(jnp.promote_types(x.dtype, S.dtype), jnp.float32)
  x, S = x.astype(ct), S.astype(ct)
  if normalize:
    x = l2_normalize(x, eps=eps)
  proj = jnp.einsum("...d,cdk->...ck", x, S)
  return scale * jnp.sqrt(jnp.maximum(jnp.sum(proj * proj, axis=-1), eps))


class GrassmannClassifier(nnx.Module):
  """GCR head: features [..., d] -> logits [..., C] = scale * ||S_i^T x_hat|| (Wang, Li, Zhang 2023,
  arXiv:2308.01547, Sec. 3). Train `S` with `jaxlib_methods.optim.riemannian_sgd_grassmann`.

  Args:
    in_features: d.
    num_classes: C.
    k: subspace dimension (1 <= k <= d); k = 1 is the absolute-cosine classifier.
    scale: logit scale (a temperature; > 0).
    normalize: normalise the features (x_hat = x / ||x||).
    dtype: computation dtype.
    param_dtype: dtype of S.
    rngs: nnx.Rngs with a 'params' stream (S_i = qf(Gaussian [d, k]), uniform on the Grassmannian).

  Returns of `__call__(x)`: [..., C] in `dtype`.
  """

  def __init__(self, in_features: int, num_classes: int, k: int, *, scale: float = 16.0, normalize: bool = True,
               dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    for name, v in (("in_features", in_features), ("num_classes", num_classes), ("k", k)):
      if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ValueError(f"{name} must be a positive int, got {name}={v!r}")
    if k > in_features:
      raise ValueError(f"k must be <= in_features = {in_features}, got {k=}")
    validation.check_positive(scale, "scale")
    self.scale, self.normalize, self.dtype = float(scale), bool(normalize), dtype
    g = jax.random.normal(rngs.params(), (num_classes, in_features, k))
    self.S = nnx.Param(qr_retraction(g).astype(param_dtype))

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [..., d] -> logits [..., C]."""
    return grassmann_logits(x, self.S[...], scale=self.scale, normalize=self.normalize).astype(self.dtype)


__all__ = ["GrassmannClassifier", "grassmann_logits"]
