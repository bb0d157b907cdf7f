"""Backward-compatible representations: the fixed d-simplex classifier and the orthogonal transformation layer.

Papers:

- [73] Niccolo Biondi, Federico Pernici, Simone Ricci, Alberto Del Bimbo, "Stationary Representations: Optimally
  Approximating Compatibility and Implications for Improved Model Replacements", CVPR 2024, arXiv:2405.02581.
  A classifier whose K class vectors are the vertices of a regular simplex in d = K - 1 dimensions, fixed (never
  trained), makes the learnt features stationary, so an old and a new model trained with the same fixed head
  satisfy the two compatibility inequalities of the formal definition (Def. 1 of the paper, after Shen et al.,
  CVPR 2020): for test pairs (i, j), d(phi_new(x_i), phi_old(x_j)) <= d(phi_old(x_i), phi_old(x_j)) when
  y_i = y_j, and >= when y_i != y_j (`dsimplex_weights`, `FixedSimplexClassifier`, `compat_criteria`).
- [61] Simone Ricci, Niccolo Biondi, Federico Pernici, Alberto Del Bimbo, "Backward-Compatible Aligned
  Representations via an Orthogonal Transformation Layer", ECCV 2024 workshops (BEW), arXiv:2408.08793.
  The new model's representation is expanded to d_old + Delta dimensions and passed through a learnt orthogonal
  transformation B (B^T B = I, so every distance and angle of the new space is preserved) that is trained to
  align with the old, zero-padded, representation (`OrthogonalTransform`, `orthogonal_from_skew`,
  `pad_features`). NOTE: the orthogonal matrix is parametrised as expm(A - A^T) (the default of PyTorch's
  `orthogonal` parametrisation for square matrices) or its Cayley transform; the alignment objective used in our
  experiment is the BCT influence loss (the old classifier applied to the transformed new features), not the
  paper's full loss.
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation


class FixedSimplex(nnx.Variable):
  """A non-trainable variable: the fixed d-simplex class vectors (not an `nnx.Param`, so `nnx.Optimizer(...,
  wrt=nnx.Param)` and `nnx.DiffState` leave it alone, while `nnx.split` / orbax still carry it).

  The fixed classifier of Biondi et al., "Stationary Representations: Optimally Approximating Compatibility and
  Implications for Improved Model Replacements", CVPR 2024, arXiv:2405.02581, Sec. 3. Value: [K, K - 1], row k the
  fixed class vector of class k (`dsimplex_weights`).
  """


def dsimplex_weights(num_classes: int, *, dtype: Any = jnp.float32) -> jax.Array:
  """The K unit vertices of a regular simplex centred at the origin of R^(K-1), as classifier rows.

  Biondi et al., "Stationary Representations: Optimally Approximating Compatibility and Implications for Improved
  Model Replacements", CVPR 2024, arXiv:2405.02581, Sec. 3 (the d-Simplex fixed classifier of Pernici et al.,
  "Regular Polytope Networks", arXiv:1902.10441): with d = K - 1, the vertices e_1, ..., e_d and
  alpha (1, ..., 1), alpha = (1 - sqrt(d + 1)) / d, centred on their mean and scaled to unit norm. Every pair of
  distinct rows has cosine exactly -1/(K - 1) (the maximal equal separation of K points on the sphere), and the
  rows sum to zero. Built in float64 NumPy, then cast.

  Args:
    num_classes: K >= 2, the number of classes.
    dtype: the dtype of the returned array.

  Returns:
    [K, K - 1] array W, W[k] the fixed class vector of class k.
  """
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
    raise ValueError(f"num_classes must be an int >= 2, got {num_classes=}")
  d = int(num_classes) - 1
  w = np.zeros((d + 1, d), np.float64)
  w[:d] = np.eye(d)
  w[d] = (1.0 - np.sqrt(d + 1.0)) / d
  w -= w.mean(axis=0, keepdims=True)
  w /= np.linalg.norm(w, axis=1, keepdims=True)
  return jnp.asarray(w, dtype=dtype)


class FixedSimplexClassifier(nnx.Module):
  """Linear classifier with fixed d-simplex class vectors: logits = phi W^T, W = `dsimplex_weights(K)`.

  Biondi et al., "Stationary Representations: Optimally Approximating Compatibility and Implications for Improved
  Model Replacements", CVPR 2024, arXiv:2405.02581, Sec. 3-4: the backbone is trained with cross-entropy through
  this head while W stays fixed (a `FixedSimplex` variable, not an `nnx.Param`), so the class targets of every
  model trained with it coincide and its features are stationary (compatible across model updates).

  Attributes:
    num_classes: K.
    features: K - 1, the feature dimension the head expects.
    weight: the [K, K - 1] `FixedSimplex` class vectors.
  """

  def __init__(self, num_classes: int, *, dtype: Any = None, param_dtype: Any = jnp.float32):
    """Builds the head.

    Args:
      num_classes: K >= 2.
      dtype: the computation dtype (None: the promoted dtype of the input and the weights).
      param_dtype: the dtype the fixed vectors are stored in.
    """
    self.num_classes = int(num_classes) if isinstance(num_classes, (int, np.integer)) else num_classes
    self.weight = FixedSimplex(dsimplex_weights(num_classes, dtype=param_dtype))
    self.features = self.num_classes - 1
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits of features x.

    Args:
      x: [..., K - 1] floating features.

    Returns:
      [..., K] logits.
    """
    x = validation.check_floating(x, "x")
    if x.ndim < 1 or x.shape[-1] != self.features:
      raise ValueError(f"x must be [..., {self.features}] (num_classes - 1 features), got x.shape={x.shape}")
    w = self.weight[...]
    dt = self.dtype or jnp.result_type(x, w)
    return jnp.einsum("...d,kd->...k", x.astype(dt), w.astype(dt))


def compat_criteria(f_old: jax.Array, f_new: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
  """The two compatibility inequalities of the formal definition, measured on a labelled test set.

  Biondi et al., "Stationary Representations ...", CVPR 2024, arXiv:2405.02581, Def. 1 (after Shen et al.,
  "Towards Backward-Compatible Representation Learning", CVPR 2020, arXiv:2003.11942): the new model is compatible
  with the old when, for pairs (i, j) of test samples,

    d(phi_new(x_i), phi_old(x_j)) <= d(phi_old(x_i), phi_old(x_j))   for y_i = y_j   (same class)
    d(phi_new(x_i), phi_old(x_j)) >= d(phi_old(x_i), phi_old(x_j))   for y_i != y_j  (different class),

  with d the Euclidean distance. The inequalities are evaluated in expectation over the pairs (i != j), as in the
  paper's analysis; the per-pair fractions are also returned.

  Args:
    f_old: [N, D] floating, old-model features of the test samples.
    f_new: [N, D] floating, new-model features of the same samples (same order).
    labels: [N] integer class labels.

  Returns:
    dict of scalars: `same_cross`, `same_old` (mean distances over same-class pairs, new-to-old and old-to-old),
    `diff_cross`, `diff_old` (the same over different-class pairs), `same_ok` (same_cross <= same_old),
    `diff_ok` (diff_cross >= diff_old), `compatible` (both), `same_pair_fraction`, `diff_pair_fraction` (the
    fraction of pairs satisfying each inequality pairwise).
  """
  fo = validation.check_floating(f_old, "f_old")
  fn = validation.check_floating(f_new, "f_new")
  y = validation.check_integer(labels, "labels")
  if fo.ndim != 2 or fo.shape != fn.shape:
    raise ValueError(f"f_old and f_new must be [N, D] with the same shape, got f_old.shape={fo.shape}, "
                     f"f_new.shape={fn.shape}")
  if y.shape != fo.shape[:1]:
    raise ValueError(f"labels must be [N] with N={fo.shape[0]}, got labels.shape={y.shape}")
  validation.check_min_size(fo, "f_old", 2)
  ct = validation.compute_dtype_for(jnp.result_type(fo, fn))
  fo, fn = fo.astype(ct), fn.astype(ct)

  def dist(a, b):
    d2 = jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :] - 2.0 * a @ b.T
    return jnp.sqrt(jnp.maximum(d2, 0.0))

  cross, old = dist(fn, fo), dist(fo, fo)
  off = ~jnp.eye(fo.shape[0], dtype=bool)
  same = (y[:, None] == y[None, :]) & off
  diff = y[:, None] != y[None, :]

  def mean(x, m):
    return jnp.sum(jnp.where(m, x, 0.0)) / jnp.maximum(jnp.sum(m), 1)

  out = {"same_cross": mean(cross, same), "same_old": mean(old, same),
         "diff_cross": mean(cross, diff), "diff_old": mean(old, diff),
         "same_pair_fraction": mean((cross <= old).astype(ct), same),
         "diff_pair_fraction": mean((cross >= old).astype(ct), diff)}
  out["same_ok"] = out["same_cross"] <= out["same_old"]
  out["diff_ok"] = out["diff_cross"] >= out["diff_old"]
  out["compatible"] = out["same_ok"] & out["diff_ok"]
  return out


def orthogonal_from_skew(a: jax.Array, *, method: Literal["expm", "cayley"] = "expm") -> jax.Array:
  """An orthogonal matrix from an unconstrained square parameter, through its skew-symmetric part.

  Ricci et al., "Backward-Compatible Aligned Representations via an Orthogonal Transformation Layer", 2024,
  arXiv:2408.08793, Sec. 3 (the orthogonal transformation B, B^T B = I): with S = A - A^T (skew-symmetric),
  "expm" gives B = exp(S) (special orthogonal, the exponential map; the default of PyTorch's `orthogonal`
  parametrisation) and "cayley" gives B = (I - S/2)^{-1} (I + S/2). A = 0 gives B = I.

  Args:
    a: [..., n, n] floating, the unconstrained parameter.
    method: "expm" or "cayley".

  Returns:
    [..., n, n] orthogonal matrices in a's dtype (computed in at least float32).
  """
  a = validation.check_floating(a, "a")
  if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
    raise ValueError(f"a must be [..., n, n] (square), got a.shape={a.shape}")
  if method not in ("expm", "cayley"):
    raise ValueError(f"method must be 'expm' or 'cayley', got {method=}")
  ct = validation.compute_dtype_for(a.dtype)
  s = a.astype(ct) - jnp.swapaxes(a.astype(ct), -1, -2)
  if method == "expm":
    q = jax.scipy.linalg.expm(s) if s.ndim == 2 else jax.vmap(jax.scipy.linalg.expm)(
        s.reshape((-1,) + s.shape[-2:])).reshape(s.shape)
  else:
    eye = jnp.eye(s.shape[-1], dtype=ct)
    q = jnp.linalg.solve(eye - s / 2, eye + s / 2)
  return q.astype(a.dtype)


class OrthogonalTransform(nnx.Module):
  """The orthogonal transformation layer: y = x B^T with B = `orthogonal_from_skew(A)`, so B^T B = I exactly.

  Ricci et al., "Backward-Compatible Aligned Representations via an Orthogonal Transformation Layer", 2024,
  arXiv:2408.08793, Sec. 3: applied to the new model's expanded (d_old + Delta)-dimensional features, it rotates
  them into alignment with the old, zero-padded space while preserving every distance of the new space (so the
  new model's own retrieval is unchanged). The orthogonality is by construction, at every training step.

  Attributes:
    dim: n, the feature dimension.
    method: "expm" or "cayley".
    a: the [n, n] unconstrained `nnx.Param` (initialised to zeros: B = I).
  """

  def __init__(self, dim: int, *, method: Literal["expm", "cayley"] = "expm", init_scale: float = 0.0,
               param_dtype: Any = jnp.float32, dtype: Any = None, rngs: nnx.Rngs):
    """Builds the layer.

    Args:
      dim: n >= 1, the feature dimension.
      method: "expm" or "cayley" (see `orthogonal_from_skew`).
      init_scale: std of the normal initial A (0: B starts at the identity).
      param_dtype: the dtype of A.
      dtype: the computation dtype (None: promoted from the input and A).
      rngs: the random streams (`params`).
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
      raise ValueError(f"dim must be an int >= 1, got {dim=}")
    if method not in ("expm", "cayley"):
      raise ValueError(f"method must be 'expm' or 'cayley', got {method=}")
    validation.check_nonnegative(init_scale, "init_scale")
    self.dim, self.method, self.dtype = int(dim), method, dtype
    self.a = nnx.Param(init_scale * jax.random.normal(rngs.params(), (dim, dim), param_dtype))

  def matrix(self) -> jax.Array:
    """B, the [n, n] orthogonal matrix."""
    return orthogonal_from_skew(self.a[...], method=self.method)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Transforms features.

    Args:
      x: [..., n] floating features.

    Returns:
      [..., n] the rotated features x B^T.
    """
    x = validation.check_floating(x, "x")
    if x.ndim < 1 or x.shape[-1] != self.dim:
      raise ValueError(f"x must be [..., {self.dim}], got x.shape={x.shape}")
    b = self.matrix()
    dt = self.dtype or jnp.result_type(x, b)
    return jnp.einsum("...j,ij->...i", x.astype(dt), b.astype(dt))


def pad_features(f_old: jax.Array, dim: int) -> jax.Array:
  """Zero-pads old features [..., d_old] to the expanded dimension [..., dim] (dim >= d_old), the space in which
  Ricci et al., arXiv:2408.08793, Sec. 3 compare new (transformed) and old features.

  Args:
    f_old: [..., d_old] floating features.
    dim: d_old + Delta >= d_old.

  Returns:
    [..., dim] features, zeros in the last Delta coordinates.
  """
  f = validation.check_floating(f_old, "f_old")
  if f.ndim < 1 or isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < f.shape[-1]:
    raise ValueError(f"dim must be an int >= d_old and f_old [..., d_old], got {dim=}, f_old.shape={f.shape}")
  return jnp.pad(f, [(0, 0)] * (f.ndim - 1) + [(0, dim - f.shape[-1])])
