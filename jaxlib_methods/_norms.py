"""Euclidean norms whose gradient is finite at the zero vector, shared by the losses and layers.

`jnp.linalg.norm` has a NaN gradient at 0, and `jnp.maximum(jnp.linalg.norm(x), eps)` keeps it (jax differentiates
both branches), so a zero embedding, an empty cluster's mean or a dead unit's gradient column would turn a whole
batch's gradient into NaN. PyTorch's `torch.linalg.vector_norm` and `F.normalize` (what the papers' official codes
call) give finite gradients there; these two do the same through `optax.safe_norm`.
"""

from __future__ import annotations

from typing import Any

import jax
import optax


def safe_l2_norm(x: jax.Array, *, axis: Any = -1, keepdims: bool = False, min_norm: float = 0.0) -> jax.Array:
  """max(||x||_2, min_norm) along `axis`, with gradient 0 at x = 0 (PyTorch's `vector_norm`), not jnp's NaN.

  Shapes: x [..., D] -> [...] (or [..., 1] with keepdims), in x's dtype.
  """
  return optax.safe_norm(x, min_norm, axis=axis, keepdims=keepdims)


def l2_normalize(x: jax.Array, *, axis: Any = -1, eps: float = 1e-12) -> jax.Array:
  """x / max(||x||_2, eps) along `axis` (`torch.nn.functional.normalize`), finite gradient everywhere.

  Shapes: x [..., D] -> [..., D]; a zero row stays zero.
  """
  return x / safe_l2_norm(x, axis=axis, keepdims=True, min_norm=eps)
