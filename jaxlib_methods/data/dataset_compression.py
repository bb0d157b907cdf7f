"""Prune and Combine of the PCA dataset-compression framework: keep each class's easiest images by a pruning score,
then tile several downsampled images of a class into one image of the original size.

Paper [145]: Lingao Xiao, Songhua Liu, Yang He, Xinchao Wang, "Rethinking Large-scale Dataset Compression: Shifting
Focus From Labels to Images", 2025, arXiv:2502.06434 (Sec. 5, PCA: "P" selects easy samples by a dataset-pruning
metric, class by class; "C" combines several selected images of a class into one stored image, as RDED's multi-patch
images, so that a budget of images per class holds more originals; "A" is "constrained image augmentation during
training" and is not built here: which constraint (e.g. on the crop scale) is not stated in any text reachable here,
and the released code, github.com/ArmandXiao/Rethinking-Dataset-Compression, lists the PCA framework as to do and
trains with the standard RandomResizedCrop(scale=(0.08, 1)) + flip). The authors' PCA code is not released, so the
combination follows the paper's description: a factor x factor grid of images, each downsampled by `factor` with
area (mean) pooling, in row-major order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.validation import check_floating, check_int


def select_easy_per_class(scores: np.ndarray, labels: np.ndarray, per_class: int) -> np.ndarray:
  """Indices of the `per_class` lowest-score (easiest) examples of every class (PCA's "Prune", Xiao et al. 2025,
  arXiv:2502.06434, Sec. 5). Host-side, on concrete arrays.

  Args:
    scores: [N] difficulty scores (e.g. EL2N, forgetting counts): lower is easier.
    labels: [N] integer classes.
    per_class: examples kept per class, >= 1; every class present needs that many.

  Returns:
    [num_classes_present * per_class] int64 indices, grouped by class in increasing class order, each group ordered
    from easiest (ties: lower index first).
  """
  s, y = np.asarray(scores), np.asarray(labels)
  if s.ndim != 1 or y.shape != s.shape:
    raise ValueError(f"scores and labels must be [N] of one length, got {s.shape} and {y.shape}")
  if not np.issubdtype(y.dtype, np.integer):
    raise TypeError(f"labels must be integer, got labels.dtype={y.dtype}")
  if not np.issubdtype(s.dtype, np.floating) and not np.issubdtype(s.dtype, np.integer):
    raise TypeError(f"scores must be numeric, got scores.dtype={s.dtype}")
  if np.any(np.isnan(s.astype(np.float64))):
    raise ValueError("scores contain NaN")
  per_class = check_int(per_class, "per_class", 1, value_error=True)
  out = []
  for c in np.unique(y):
    idx = np.flatnonzero(y == c)
    if len(idx) < per_class:
      raise ValueError(f"class {c} has {len(idx)} examples, fewer than per_class={per_class}")
    out.append(idx[np.argsort(s[idx], kind="stable")[:per_class]])
  return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def combine_patches(images: jax.Array, factor: int = 2) -> jax.Array:
  """Tile groups of factor^2 images into one image of the same size (PCA's "Combine", Xiao et al. 2025,
  arXiv:2502.06434, Sec. 5): image g of a group is downsampled by `factor` (mean over factor x factor blocks) and
  placed at grid cell (g // factor, g % factor).

  Args:
    images: [N, H, W, C] images of one class, N divisible by factor^2, H and W divisible by factor.
    factor: grid side, >= 1 (1 returns the images unchanged).

  Returns:
    [N / factor^2, H, W, C] combined images, `images`'s dtype.
  """
  x = check_floating(images, "images")
  factor = check_int(factor, "factor", 1, value_error=True)
  if x.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C], got {x.shape}")
  n, h, w, c = x.shape
  f = factor
  if n % (f * f) or h % f or w % f:
    raise ValueError(f"need N divisible by factor^2={f * f} and H, W divisible by factor={f}, got {x.shape}")
  small = x.astype(jnp.float32).reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4))      # [N, H/f, W/f, C]
  grid = small.reshape(n // (f * f), f, f, h // f, w // f, c)                              # [G, row, col, ...]
  out = grid.transpose(0, 1, 3, 2, 4, 5).reshape(n // (f * f), h, w, c)
  return out.astype(x.dtype)


__all__ = ["combine_patches", "select_easy_per_class"]
