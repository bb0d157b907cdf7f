"""Hydra's feature filter: a gate vector per class pair (ls19b, issue 19, catalog [116]).

Paper: Jiantao Wu, Sara Atito, Zhenhua Feng, Shentong Mo, Josef Kittler, Muhammad Awais, "Rethinking Positive Pairs
in Contrastive Learning", 2024, arXiv:2410.18200 (Sec. 3, the feature filter; official code: SimLAP's `BasicGate`).
The loss that uses the gates is `jaxlib_methods.losses.hydra_loss`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import validation


class PairGate(nnx.Module):
  """Gate g(y1, y2) = sigmoid(f_g((f_l(y1) + f_l(y2)) / 2)) in (0, 1)^d for a pair of classes (Wu et al. 2024,
  arXiv:2410.18200, Sec. 3, the feature filter; official `BasicGate` with `fuse=True`).

  f_l is a label embedding [num_classes, in_dim], f_g an MLP relu -> Linear(in_dim, mlp_dim) -> relu ->
  Linear(mlp_dim, d) (the official MLP also has BatchNorm layers before each Linear; they are left out here, so the
  gate of a pair does not depend on the rest of the batch). The gate is symmetric in (y1, y2).

  Args:
    num_classes: the number of classes C >= 1.
    dim: d, the dimension of the features being gated.
    in_dim: the label embedding's width (official: 512).
    mlp_dim: the MLP's hidden width (official: 1024).
    rngs: nnx.Rngs with a 'params' stream.
  """

  def __init__(self, num_classes: int, dim: int, *, in_dim: int = 64, mlp_dim: int = 128, rngs: nnx.Rngs):
    for name, v in (("num_classes", num_classes), ("dim", dim), ("in_dim", in_dim), ("mlp_dim", mlp_dim)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {name}={v!r}")
    self.num_classes = num_classes
    self.label_embedding = nnx.Embed(num_classes, in_dim, rngs=rngs)
    self.fc1 = nnx.Linear(in_dim, mlp_dim, rngs=rngs)
    self.fc2 = nnx.Linear(mlp_dim, dim, rngs=rngs)

  def __call__(self, y1: Any, y2: Any) -> jax.Array:
    """Gates of the class pairs: y1, y2 [...] int in [0, C) -> [..., d] in (0, 1) (invalid labels: ValueError
    eagerly, NaN rows under jit)."""
    valid = []
    for name, y in (("y1", y1), ("y2", y2)):
      y = validation.check_integer(y, name)
      valid.append(validation.check_values((y >= 0) & (y < self.num_classes), y, name,
                                           f"class indices in [0, {self.num_classes})"))
    if jnp.shape(y1) != jnp.shape(y2):
      raise ValueError(f"y1 and y2 must have the same shape, got {jnp.shape(y1)} and {jnp.shape(y2)}")
    e = (self.label_embedding(jnp.asarray(y1)) + self.label_embedding(jnp.asarray(y2))) / 2
    gate = jax.nn.sigmoid(self.fc2(jax.nn.relu(self.fc1(jax.nn.relu(e)))))
    return validation.nan_where_invalid(gate, validation.combine_valid(*valid))  # traced invalid labels: NaN rows
