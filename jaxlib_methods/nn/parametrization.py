"""Width (and depth) parametrisations: standard (SP), NTK, µP and depth-µP, with per-layer learning-rate multipliers.

A parametrisation fixes, per layer, three numbers (the "abc-parametrisation" of Tensor Programs IV/V): a forward
multiplier applied to the layer's output, the initial weight std, and a learning-rate multiplier. We express them
*relative to a base shape*, as the `mup` package does, so that at the base width every parametrisation equals SP and
a learning rate tuned on the base model transfers.

Writing m = fan_in / base_fan_in (the width multiplier; for the input layer m_out = fan_out / base_fan_out):

| layer  | SP                   | NTK                  | µP (Adam)                  | µP (SGD) |
|--------|----------------------|----------------------|----------------------------|----------|
| input  | 1, 1/sqrt(fan_in), 1 | 1/sqrt(fan_in), 1, 1 | 1, 1/sqrt(fan_in), 1       | lr m_out |
| hidden | 1, 1/sqrt(fan_in), 1 | 1/sqrt(fan_in), 1, 1 | 1, 1/sqrt(fan_in), 1/m     | lr 1     |
| output | 1, 1/sqrt(fan_in), 1 | 1/sqrt(fan_in), 1, 1 | 1, 1/sqrt(fan_in * m), 1/m | lr 1/m   |

(columns: forward multiplier, init std, LR multiplier). µP is Table 3 of Yang et al., "Tensor Programs V: Tuning
Large Neural Networks via Zero-Shot Hyperparameter Transfer", 2022, arXiv:2203.03466 (output init variance 1/fan_in^2
and Adam LR 1/fan_in for hidden/output weights, SGD LR fan_out for the input layer and 1/fan_in for the output), made
relative to the base width. NTK is the parametrisation of Jacot et al. 2018 (weights N(0, 1), 1/sqrt(fan_in) in the
forward pass). Depth-µP (Yang, Yu, Zhu, Hayou, "Tensor Programs VI: Feature Learning in Infinite-Depth Neural
Networks", 2023, arXiv:2310.02244, Sec. 4; also Bordelon et al. 2023, arXiv:2309.16620) multiplies each residual branch
by sqrt(base_depth / depth) and, for Adam, the hidden blocks' LR by the same factor.

The learning-rate multipliers live in each `nnx.Param`'s metadata (`lr_multiplier`); `lr_multipliers(model)` reads
them into a tree and `scale_by_lr_multipliers(tree)` (or `with_lr_multipliers(tx, tree)`) applies them after *any*
optax optimizer, since optax updates are linear in the learning rate.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import jax
import optax
from flax import nnx

Parametrization = Literal["sp", "ntk", "mup"]
LayerKind = Literal["input", "hidden", "output"]
OptimizerFamily = Literal["adam", "sgd"]

PARAMETRIZATIONS = ("sp", "ntk", "mup")


@dataclasses.dataclass(frozen=True)
class LayerScale:
  """Per-layer abc numbers: forward multiplier, init std of the weights, learning-rate multiplier (three Python
  floats; one row of the module table, µP from Yang et al., "Tensor Programs V", 2022, arXiv:2203.03466, Table 3)."""
  multiplier: float
  init_std: float
  lr_multiplier: float


def check_parametrization(parametrization: str, optimizer: str = "adam") -> None:
  """Raise ValueError for an unknown parametrisation or optimizer family."""
  if parametrization not in PARAMETRIZATIONS:
    raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization=}")
  if optimizer not in ("adam", "sgd"):
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer=}")


def layer_scale(parametrization: Parametrization, kind: LayerKind, fan_in: int, fan_out: int, *,
                base_fan_in: int | None = None, base_fan_out: int | None = None,
                optimizer: OptimizerFamily = "adam") -> LayerScale:
  """The (multiplier, init std, LR multiplier) of one dense layer; see the module table (µP: Yang et al., "Tensor
  Programs V", 2022, arXiv:2203.03466, Table 3, relative to the base width; NTK: Jacot et al. 2018).
  For a weight [fan_in, fan_out]; returns three scalars.

  Args:
    parametrization: 'sp', 'ntk' or 'mup'.
    kind: 'input' (fan_in is the fixed data dimension), 'hidden' or 'output' (fan_out is the fixed output dimension).
    fan_in, fan_out: the layer's shape at this width.
    base_fan_in, base_fan_out: the same layer's shape in the base model (default: this shape, i.e. m = 1).
    optimizer: 'adam' (sign-like updates: Adam, AdamW, Lion, ...) or 'sgd' (gradient-proportional updates).

  Returns:
    LayerScale.
  """
  check_parametrization(parametrization, optimizer)
  if kind not in ("input", "hidden", "output"):
    raise ValueError(f"kind must be 'input', 'hidden' or 'output', got {kind=}")
  if fan_in <= 0 or fan_out <= 0:
    raise ValueError(f"fan_in and fan_out must be positive, got {fan_in=}, {fan_out=}")
  base_fan_in = fan_in if base_fan_in is None else base_fan_in
  base_fan_out = fan_out if base_fan_out is None else base_fan_out
  if base_fan_in <= 0 or base_fan_out <= 0:
    raise ValueError(f"base shapes must be positive, got {base_fan_in=}, {base_fan_out=}")
  std_sp = 1.0 / math.sqrt(fan_in)
  if parametrization == "sp":
    return LayerScale(1.0, std_sp, 1.0)
  if parametrization == "ntk":
    return LayerScale(1.0 / math.sqrt(fan_in), 1.0, 1.0)
  m_in = fan_in / base_fan_in
  m_out = fan_out / base_fan_out
  if kind == "input":
    return LayerScale(1.0, std_sp, 1.0 if optimizer == "adam" else m_out)
  if kind == "hidden":
    return LayerScale(1.0, std_sp, 1.0 / m_in if optimizer == "adam" else 1.0)
  return LayerScale(1.0, std_sp / math.sqrt(m_in), 1.0 / m_in)


def depth_branch_multiplier(depth: int, base_depth: int) -> float:
  """Depth-µP residual-branch multiplier sqrt(base_depth / depth) (Yang et al. 2023, arXiv:2310.02244, Sec. 4)."""
  if depth <= 0 or base_depth <= 0:
    raise ValueError(f"depth and base_depth must be positive, got {depth=}, {base_depth=}")
  return math.sqrt(base_depth / depth)


def lr_multipliers(model: nnx.Module, *, filter_: Any = nnx.Param, pure_dict: bool = False) -> Any:
  """Tree of per-parameter LR multipliers (each Param's `lr_multiplier` metadata, default 1.0), e.g. µP's (Yang et
  al., "Tensor Programs V", 2022, arXiv:2203.03466, Table 3). One Python float per Param leaf, whatever its shape.

  The tree is a prefix of `nnx.state(model, filter_)` (and of the gradients w.r.t. it), which is what
  `scale_by_lr_multipliers` needs. With `pure_dict=True` it matches `nnx.state(model, filter_).to_pure_dict()`.
  """
  state = nnx.state(model, filter_)
  tree = jax.tree.map(lambda v: float(v.get_metadata().get("lr_multiplier", 1.0)), state,
                      is_leaf=lambda x: isinstance(x, nnx.Variable))
  return nnx.to_pure_dict(tree) if pure_dict else tree


def scale_by_lr_multipliers(multipliers: Any) -> optax.GradientTransformation:
  """Multiply each update leaf by its LR multiplier (a tree that is a prefix of the updates).

  Chained after any optax optimizer (whose update is linear in its learning rate) this gives per-layer learning
  rates lr * multiplier, e.g. µP's (Yang et al. 2022, arXiv:2203.03466, Table 3). Decoupled weight decay inside the
  base optimizer is scaled too, as in the `mup` package's MuAdamW.

  Args:
    multipliers: tree of Python floats / scalars, a prefix of the updates tree (see `lr_multipliers`).
  """
  leaves = jax.tree.leaves(multipliers)
  for v in leaves:
    if isinstance(v, (int, float)) and (not math.isfinite(v) or v < 0):
      raise ValueError(f"LR multipliers must be finite and >= 0, got {v=}")

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    new = jax.tree.map(lambda m, sub: jax.tree.map(lambda u: (u * m).astype(u.dtype), sub), multipliers, updates)
    return new, state

  return optax.GradientTransformation(init_fn, update_fn)


def with_lr_multipliers(tx: optax.GradientTransformation, multipliers: Any) -> optax.GradientTransformation:
  """`optax.chain(tx, scale_by_lr_multipliers(multipliers))`: any optimizer with per-layer LRs, e.g. µP's (Yang et
  al., "Tensor Programs V", 2022, arXiv:2203.03466, Table 3). `multipliers`: a tree of Python floats, a prefix of
  the updates tree (`lr_multipliers`); each update keeps its shape and dtype."""
  return optax.chain(tx, scale_by_lr_multipliers(multipliers))


__all__ = [
    "LayerScale",
    "PARAMETRIZATIONS",
    "check_parametrization",
    "depth_branch_multiplier",
    "layer_scale",
    "lr_multipliers",
    "scale_by_lr_multipliers",
    "with_lr_multipliers",
]
