"""Stitchable Neural Networks (SN-Net): pretrained anchors cut at a block and joined by a linear stitching layer.

Paper [149]: Zizheng Pan, Jianfei Cai, Bohan Zhuang, "Stitchable Neural Networks", CVPR 2023, arXiv:2302.06586
(Sec. 3.2, "The stitching layer and its initialization"): a stitch runs the first i blocks of anchor a, maps the
activations A [N, D_a] to anchor b's width by a linear layer M [D_a, D_b], and runs anchor b from block j on. M is
initialised by least squares on paired activations of the two anchors on the same inputs,

    M_o = argmin_M ||A M - B||_F = A^+ B          (A^+ the Moore-Penrose pseudo-inverse),

so a stitched network starts close to its anchors; then the stitches (and anchors) are trained jointly, one
configuration sampled per step (Sec. 3.3). Fast-to-Slow stitching (the smaller anchor first) is the paper's default.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods.validation import check_floating


def stitching_least_squares(A: jax.Array, B: jax.Array) -> jax.Array:
  """SN-Net's least-squares stitch M_o = A^+ B = argmin_M ||A M - B||_F (Pan et al. 2023, arXiv:2302.06586, Sec. 3.2,
  the least-squares initialisation; the minimum-norm solution when A is rank deficient).

  Args:
    A: activations of the first anchor at the cut [N, D_a] (tokens / examples as rows).
    B: activations of the second anchor at its cut, on the same inputs [N, D_b].

  Returns:
    M [D_a, D_b] in the promoted dtype of A and B (at least float32).
  """
  A, B = check_floating(A, "A"), check_floating(B, "B")
  if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[0]:
    raise ValueError(f"A and B must be [N, D_a] and [N, D_b] with the same N, got {A.shape=}, {B.shape=}")
  if A.shape[0] == 0:
    raise ValueError("A and B need at least one row (paired activations)")
  dt = jnp.promote_types(jnp.promote_types(A.dtype, B.dtype), jnp.float32)
  return jnp.linalg.lstsq(A.astype(dt), B.astype(dt))[0]


class StitchingLayer(nnx.Module):
  """A linear stitching layer h [..., D_a] -> h M + b [..., D_b] (SN-Net, Pan et al. 2023, arXiv:2302.06586,
  Sec. 3.2); `init_least_squares(A, B)` sets M = A^+ B and b = 0.

  Args:
    in_features: D_a.
    out_features: D_b.
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs` (M random (fan-in scaled) until initialised by least squares).
  """

  def __init__(self, in_features: int, out_features: int, *, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    for name, v in (("in_features", in_features), ("out_features", out_features)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {name}={v!r}")
    self.in_features, self.out_features = in_features, out_features
    init = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal")
    self.kernel = nnx.Param(init(rngs.params(), (in_features, out_features), param_dtype))
    self.bias = nnx.Param(jnp.zeros((out_features,), param_dtype))

  def init_least_squares(self, A: jax.Array, B: jax.Array) -> None:
    """Set M = A^+ B (`stitching_least_squares`) and b = 0.

    Args:
      A: [N, in_features] activations entering the stitch.
      B: [N, out_features] the activations it should produce.
    """
    if A.ndim != 2 or A.shape[1] != self.in_features or B.ndim != 2 or B.shape[1] != self.out_features:
      raise ValueError(f"need A [N, {self.in_features}] and B [N, {self.out_features}], got {A.shape=}, {B.shape=}")
    self.kernel[...] = stitching_least_squares(A, B).astype(self.kernel[...].dtype)
    self.bias[...] = jnp.zeros_like(self.bias[...])

  def __call__(self, h: jax.Array) -> jax.Array:
    """h [..., D_a] -> [..., D_b]."""
    h = check_floating(h, "h")
    if h.ndim < 1 or h.shape[-1] != self.in_features:
      raise ValueError(f"h must be [..., in_features={self.in_features}], got {h.shape=}")
    return h @ self.kernel[...].astype(h.dtype) + self.bias[...].astype(h.dtype)


def _check_widths(name, blocks, widths):
  if len(widths) != len(blocks) + 1:
    raise ValueError(f"{name}: widths must have len(blocks) + 1 = {len(blocks) + 1} entries (the input width, then "
                     f"each block's output width), got {len(widths)}")


class SNNet(nnx.Module):
  """Two pretrained anchors and linear stitches between them (SN-Net, Pan et al. 2023, arXiv:2302.06586, Sec. 3).

  Configurations (`__call__(x, config)`, `config` a static int): 0 = anchor a alone, 1 = anchor b alone, 2 + k =
  stitch k = (i, j): anchor a's blocks [0, i), `StitchingLayer` k (widths_a[i] -> widths_b[j]), anchor b's blocks
  [j, L_b). With a the smaller anchor this is the paper's Fast-to-Slow direction.

  Args:
    anchor_a: the blocks of anchor a (each a module h -> h'; the last gives the output).
    anchor_b: the blocks of anchor b.
    widths_a: anchor a's activation widths: widths_a[0] the input width, widths_a[k] the output width of block k-1.
    widths_b: the same for anchor b (widths_b[0] must equal widths_a[0]: both anchors read the same input).
    stitch_points: (i, j) pairs, 1 <= i < L_a, 1 <= j < L_b.
    param_dtype: the stitches' parameter dtype.
    rngs: `nnx.Rngs` for the stitches.
  """

  def __init__(self, anchor_a: Sequence[nnx.Module], anchor_b: Sequence[nnx.Module], widths_a: Sequence[int],
               widths_b: Sequence[int], stitch_points: Sequence[tuple[int, int]], *, param_dtype: Any = jnp.float32,
               rngs: nnx.Rngs):
    _check_widths("anchor_a", anchor_a, widths_a)
    _check_widths("anchor_b", anchor_b, widths_b)
    if widths_a[0] != widths_b[0]:
      raise ValueError(f"both anchors must read the same input width, got {widths_a[0]=} and {widths_b[0]=}")
    la, lb = len(anchor_a), len(anchor_b)
    points = []
    for p in stitch_points:
      i, j = p
      if not (isinstance(i, int) and isinstance(j, int) and 1 <= i < la and 1 <= j < lb):
        raise ValueError(f"each stitch point (i, j) needs 1 <= i < {la} and 1 <= j < {lb} (ints), got {p!r}")
      points.append((i, j))
    self.anchor_a, self.anchor_b = nnx.List(list(anchor_a)), nnx.List(list(anchor_b))
    self.widths_a, self.widths_b = tuple(widths_a), tuple(widths_b)
    self.stitch_points = tuple(points)
    self.stitches = nnx.List([StitchingLayer(widths_a[i], widths_b[j], param_dtype=param_dtype, rngs=rngs)
                              for i, j in points])

  @property
  def num_configs(self) -> int:
    """2 anchors + one configuration per stitch."""
    return 2 + len(self.stitch_points)

  def _check_config(self, config):
    if isinstance(config, bool) or not isinstance(config, int) or not 0 <= config < self.num_configs:
      raise ValueError(f"config must be an int in [0, {self.num_configs}) (0, 1 the anchors, 2 + k stitch k), "
                       f"got {config=!r}")

  def activations(self, x: jax.Array, anchor: int) -> list[jax.Array]:
    """[x, block_0(x), block_1(block_0(x)), ...] of anchor 0 (a) or 1 (b)."""
    blocks = self.anchor_a if anchor == 0 else self.anchor_b
    out = [x]
    for blk in blocks:
      out.append(blk(out[-1]))
    return out

  def init_stitches_least_squares(self, x: jax.Array) -> None:
    """Initialise every stitch by least squares on both anchors' activations of the calibration batch x [N, ...]
    (rows = examples; extra axes are flattened into rows)."""
    acts_a, acts_b = self.activations(x, 0), self.activations(x, 1)
    for (i, j), st in zip(self.stitch_points, self.stitches):
      st.init_least_squares(acts_a[i].reshape(-1, self.widths_a[i]), acts_b[j].reshape(-1, self.widths_b[j]))

  def num_params(self, config: int) -> int:
    """Parameters used by a configuration (the blocks it runs and its stitch): for dense blocks the multiply-adds per
    example, the paper's FLOPs axis."""
    self._check_config(config)
    size = lambda mods: sum(v.size for m in mods for v in jax.tree.leaves(nnx.state(m, nnx.Param)))
    if config < 2:
      return size(self.anchor_a if config == 0 else self.anchor_b)
    i, j = self.stitch_points[config - 2]
    return size(list(self.anchor_a)[:i]) + size([self.stitches[config - 2]]) + size(list(self.anchor_b)[j:])

  def __call__(self, x: jax.Array, config: int) -> jax.Array:
    """x [..., widths[0]] -> the output of configuration `config` (static)."""
    self._check_config(config)
    x = check_floating(x, "x")
    if x.ndim < 1 or x.shape[-1] != self.widths_a[0]:
      raise ValueError(f"x must be [..., {self.widths_a[0]}], got {x.shape=}")
    if config < 2:
      h = x
      for blk in (self.anchor_a if config == 0 else self.anchor_b):
        h = blk(h)
      return h
    i, j = self.stitch_points[config - 2]
    h = x
    for blk in list(self.anchor_a)[:i]:
      h = blk(h)
    h = self.stitches[config - 2](h)
    for blk in list(self.anchor_b)[j:]:
      h = blk(h)
    return h


__all__ = ["SNNet", "StitchingLayer", "stitching_least_squares"]
