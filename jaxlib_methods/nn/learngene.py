"""Learngene via Stage-wise Weight Sharing (SWS): an auxiliary network whose layers share weights within each stage,
expanded stage by stage into descendant networks of any depth.

Paper [150]: Shi-Yu Xia, Wenxuan Zhu, Xu Yang, Xin Geng, "Exploring Learngene via Stage-wise Weight Sharing for
Initializing Variable-sized Models", IJCAI 2024, arXiv:2404.16897 (Sec. 3): an auxiliary model of S stages, stage s
made of n_s layers that all share ONE set of weights (the stage's learngene layer), trained by distillation from a
large teacher; then a descendant of depths (d_1, ..., d_S) is initialised by repeating learngene layer s d_s times in
stage s (the copies are independent afterwards and are fine-tuned normally). Storing the S learngene layers replaces
storing one pretrained model per size.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods.validation import check_floating


def _check_depths(name: str, depths: Sequence[int]) -> tuple[int, ...]:
  depths = tuple(depths)
  if not depths or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in depths):
    raise ValueError(f"{name} must be a non-empty sequence of positive ints (one per stage), got {name}={depths!r}")
  return depths


class ResidualMLPBlock(nnx.Module):
  """A pre-LayerNorm residual MLP block h + W_2 gelu(W_1 LN(h)) (the default layer of `StageSharedStack`).
  h [..., dim] -> [..., dim].

  The layer shared within a stage (Xia et al., "Exploring Learngene via Stage-wise Weight Sharing for Initializing
  Variable-sized Models", IJCAI 2024, arXiv:2404.16897, Sec. 3).

  Args:
    dim: the width.
    hidden: the MLP's hidden width.
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, dim: int, hidden: int, *, param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    self.dim = dim
    self.norm = nnx.LayerNorm(dim, param_dtype=param_dtype, rngs=rngs)
    self.fc1 = nnx.Linear(dim, hidden, param_dtype=param_dtype, rngs=rngs)
    self.fc2 = nnx.Linear(hidden, dim, param_dtype=param_dtype, rngs=rngs)

  def __call__(self, h: jax.Array) -> jax.Array:
    """h [..., dim] -> [..., dim]."""
    return h + self.fc2(jax.nn.gelu(self.fc1(self.norm(h))))


class StageSharedStack(nnx.Module):
  """SWS's auxiliary stack: stage s applies ONE learngene layer `layers_per_stage[s]` times (weights tied within the
  stage; Xia et al. 2024, arXiv:2404.16897, Sec. 3). h [..., dim] -> [..., dim].

  Args:
    layers_per_stage: (n_1, ..., n_S), how many times each stage's shared layer is applied.
    make_layer: `make_layer(rngs) -> module` building one layer h -> h (e.g. a `ResidualMLPBlock` or a transformer
      block); called once per stage.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, layers_per_stage: Sequence[int], make_layer: Callable[[nnx.Rngs], nnx.Module], *,
               rngs: nnx.Rngs):
    self.layers_per_stage = _check_depths("layers_per_stage", layers_per_stage)
    self.learngene = nnx.List([make_layer(rngs) for _ in self.layers_per_stage])

  def __call__(self, h: jax.Array) -> jax.Array:
    """h [..., dim] -> [..., dim]."""
    h = check_floating(h, "h")
    for layer, n in zip(self.learngene, self.layers_per_stage):
      for _ in range(n):
        h = layer(h)
    return h


class LayerStack(nnx.Module):
  """Independent layers applied in order (a descendant of `expand_learngene`). h [..., dim] -> [..., dim].

  The descendant network of Xia et al., "Exploring Learngene via Stage-wise Weight Sharing for Initializing
  Variable-sized Models", IJCAI 2024, arXiv:2404.16897, Sec. 3 (learngene layer s repeated d_s times in stage s).

  Args:
    layers: the layers (modules h -> h).
    stage_of_layer: the stage each layer was expanded from (bookkeeping; same length as `layers`).
  """

  def __init__(self, layers: Sequence[nnx.Module], stage_of_layer: Sequence[int]):
    if len(layers) != len(stage_of_layer):
      raise ValueError(f"stage_of_layer needs one entry per layer ({len(layers)}), got {len(stage_of_layer)}")
    self.layers = nnx.List(list(layers))
    self.stage_of_layer = tuple(int(s) for s in stage_of_layer)

  def __call__(self, h: jax.Array) -> jax.Array:
    """h [..., dim] -> [..., dim]."""
    h = check_floating(h, "h")
    for layer in self.layers:
      h = layer(h)
    return h


def expand_learngene(stack: StageSharedStack, depths: Sequence[int]) -> LayerStack:
  """Initialise a descendant of depths (d_1, ..., d_S) from the learngene layers: d_s independent copies of stage s's
  layer, in stage order (Xia et al. 2024, arXiv:2404.16897, Sec. 3, the expansion step).

  Args:
    stack: the trained auxiliary `StageSharedStack` (S stages).
    depths: (d_1, ..., d_S), the descendant's number of layers per stage.

  Returns:
    A `LayerStack` of sum(d_s) layers with their own (copied) variables: at init, with depths equal to the stack's
    `layers_per_stage`, it computes exactly what the auxiliary stack computes.
  """
  depths = _check_depths("depths", depths)
  if len(depths) != len(stack.layers_per_stage):
    raise ValueError(f"depths needs one entry per stage ({len(stack.layers_per_stage)}), got {depths=}")
  layers, stages = [], []
  for s, (layer, d) in enumerate(zip(stack.learngene, depths)):
    graphdef, state = nnx.split(layer)
    for _ in range(d):
      layers.append(nnx.merge(graphdef, jax.tree.map(jnp.copy, state)))
      stages.append(s)
  return LayerStack(layers, stages)


def learngene_num_params(stack: StageSharedStack, descendant_depths: Sequence[Sequence[int]]) -> dict:
  """Parameters stored to initialise a set of descendants: the S learngene layers against one model per size (the
  stacks only; Xia et al. 2024, arXiv:2404.16897, Sec. 4, "parameters stored").

  Args:
    stack: the auxiliary `StageSharedStack`.
    descendant_depths: the descendants' depths, each (d_1, ..., d_S).

  Returns:
    {"learngene": sum of the S layers' parameters, "descendants": sum over descendants of their layers' parameters}.
  """
  per_stage = [sum(v.size for v in jax.tree.leaves(nnx.state(l, nnx.Param))) for l in stack.learngene]
  total = 0
  for depths in descendant_depths:
    depths = _check_depths("descendant_depths[i]", depths)
    if len(depths) != len(per_stage):
      raise ValueError(f"each descendant needs one depth per stage ({len(per_stage)}), got {depths}")
    total += sum(d * p for d, p in zip(depths, per_stage))
  return {"learngene": sum(per_stage), "descendants": total}


__all__ = ["LayerStack", "ResidualMLPBlock", "StageSharedStack", "expand_learngene", "learngene_num_params"]
