"""Supervised local learning: gradient-isolated blocks with auxiliary networks ([167] MAN, [169] AugLocal).

In supervised local learning the network is cut into blocks h_j = f_j(sg(h_{j-1})) (sg = stop-gradient), and
each block is trained only by the loss of its own auxiliary network g_j, L_j = CE(g_j(h_j), y): no gradient crosses
a block boundary (`local_forward`). Summing the L_j and differentiating once gives every block exactly its own
local gradient, so one jitted step trains all blocks.

[167] Junhao Su, Changpeng Cai, Feiyu Zhu, Chenghao He, Xiaojie Xu, Dongzhi Guan, Chenyang Si, "Momentum Auxiliary
Network for Supervised Local Learning", ECCV 2024, arXiv:2407.05623, Sec. 3: the auxiliary network of block j
starts with a copy of the NEXT block f_{j+1} whose weights are an exponential moving average of f_{j+1}'s,
theta_ema <- m theta_ema + (1 - m) theta_{j+1} (updated after each step, never by gradients; here
`optax.incremental_update`), followed by a learnable bias that compensates the feature discrepancy between
blocks and a head (`MomentumAuxiliary`). We add the bias to the EMA block's output features, one per channel (our
reading of the paper's "learnable bias"; the catalog's "learnable residual on the parameters" is the other
reading).

[169] Chenxiang Ma, Jibin Wu, Chenyang Si, Kay Chen Tan, "Scaling Supervised Local Learning with Augmented
Auxiliary Networks", ICLR 2024, arXiv:2402.17318, Sec. 3: the auxiliary network of hidden layer l is built from
d_l layers uniformly selected among the layers after l (new weights, the same layer types and widths:
`auglocal_layer_indices`), and d_l decreases linearly with l from d to 1 ("pyramidal depth":
`auglocal_depths`). Both rules are transcribed from the authors' code (github.com/ChenxiangMA/AugLocal,
`networks/auxiliary_nets.py` and `networks/resnet.py`), including its Python `round` (round half to even).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxlib_methods import validation


def auglocal_layer_indices(layer_index: int, num_layers: int, depth: int) -> tuple[int, ...]:
  """The later layers whose copies form hidden layer `layer_index`'s AugLocal auxiliary network.

  Ma et al., "Scaling Supervised Local Learning with Augmented Auxiliary Networks", ICLR 2024, arXiv:2402.17318,
  Sec. 3.2 (uniform selection), as in the authors' code: with L = num_layers, l = layer_index and d = depth,
  the indices are round(l + (L - l - 1) / d * i) for i = 1..d (uniformly spaced, the last one L - 1), or every
  later layer l + 1..L - 1 when d >= L - 1 - l.

  Args:
    layer_index: l, the 0-based index of the hidden layer (0 <= l < L - 1).
    num_layers: L, the number of layers of the primary network.
    depth: d >= 1, the auxiliary network's depth (from `auglocal_depths`).

  Returns:
    A strictly increasing tuple of layer indices in (l, L - 1] of length min(d, L - 1 - l).
  """
  L = validation.check_int(num_layers, "num_layers", 2, value_error=True)
  l = validation.check_int(layer_index, "layer_index", 0, value_error=True)
  d = validation.check_int(depth, "depth", 1, value_error=True)
  if l >= L - 1:
    raise ValueError(f"layer_index must be < num_layers - 1 = {L - 1} (the last layer has no auxiliary net), got "
                     f"{layer_index=}")
  if d >= L - 1 - l:
    return tuple(range(l + 1, L))
  return tuple(round(l + (L - l - 1) / d * i) for i in range(1, d + 1))


def auglocal_depths(num_local: int, max_depth: int, *, coeff: float = 1.0) -> tuple[int, ...]:
  """AugLocal's pyramidal auxiliary depths: linear in the layer index, from `max_depth` down to 1.

  Ma et al., "Scaling Supervised Local Learning with Augmented Auxiliary Networks", ICLR 2024, arXiv:2402.17318,
  Sec. 3.3 (pyramidal depth), as in the authors' code: for the N - 1 gradient-isolated layers i = 0..N - 2 of a
  network trained as N local modules (the last module uses the network's own head),
  d_i = max(1, round(d (1 - c i / (N - 2)) + c i / (N - 2))), with d = max_depth and c = coeff (c = 1: d_0 = d,
  d_{N-2} = 1).

  Args:
    num_local: N >= 3, the number of local modules (gradient-isolated layers + 1).
    max_depth: d >= 1, the first layer's auxiliary depth.
    coeff: c > 0, the decay coefficient (1 in the paper).

  Returns:
    A tuple of N - 1 depths.
  """
  N = validation.check_int(num_local, "num_local", 3, value_error=True)
  d = validation.check_int(max_depth, "max_depth", 1, value_error=True)
  if isinstance(coeff, bool) or not isinstance(coeff, (int, float)) or not coeff > 0:
    raise ValueError(f"coeff must be a float > 0, got {coeff=!r}")
  return tuple(max(1, round(d * (1 - i * coeff / (N - 2)) + i * coeff / (N - 2))) for i in range(N - 1))


def local_forward(blocks: Sequence[Callable[[jax.Array], jax.Array]], x: jax.Array) -> list[jax.Array]:
  """Runs gradient-isolated blocks: h_0 = f_0(x), h_j = f_j(stop_gradient(h_{j-1})).

  Su et al. (MAN), ECCV 2024, arXiv:2407.05623, Sec. 3.1, and Ma et al. (AugLocal), ICLR 2024, arXiv:2402.17318,
  Sec. 3.1 (supervised local learning): a loss on h_j then reaches block j's parameters only. The returned
  activations keep their own graph, so sum_j L_j(h_j) differentiates into each block's local gradient.

  Args:
    blocks: the blocks f_0..f_{J-1} (callables, e.g. NNX modules), each [B, ...] -> [B, ...].
    x: the input batch.

  Returns:
    The J block outputs [h_0, ..., h_{J-1}].
  """
  if len(blocks) == 0:
    raise ValueError("blocks must hold at least one block")
  outs, h = [], x
  for j, f in enumerate(blocks):
    h = f(h if j == 0 else jax.lax.stop_gradient(h))
    outs.append(h)
  return outs


class EMAWeight(nnx.Variable):
  """A weight updated by an exponential moving average, never by gradients (not an `nnx.Param`).

  Su et al., "Momentum Auxiliary Network for Supervised Local Learning", ECCV 2024, arXiv:2407.05623, Sec. 3:
  theta_ema <- m theta_ema + (1 - m) theta_{j+1}. Value: the same shape and dtype as the next block's parameter it
  tracks.
  """


class MomentumAuxiliary(nnx.Module):
  """MAN's auxiliary network for block j: EMA copy of block j + 1, a learnable bias, then a head.

  Su et al., "Momentum Auxiliary Network for Supervised Local Learning", ECCV 2024, arXiv:2407.05623, Sec. 3.2-3.3:
  g_j(h) = head(f_{j+1}(h; theta_ema) + beta), theta_ema an EMA of the next block's parameters (`update_ema`),
  beta a learnable per-feature bias. The EMA copy's weights are `EMAWeight` variables, so `nnx.grad`,
  `nnx.Optimizer(..., wrt=nnx.Param)` and `nnx.split(model, nnx.Param, ...)` never touch them; gradients do flow
  THROUGH the copy into h (that is how block j learns from the next block's function).

  Attributes:
    ema_block: the EMA copy of the next block (its variables are `EMAWeight`).
    bias: [F] the learnable bias on the copy's output features.
    head: the head mapping the biased features to the auxiliary loss's inputs (e.g. class logits).
  """

  def __init__(self, next_block: nnx.Module, head: nnx.Module, num_features: int, *, param_dtype: Any = jnp.float32):
    """Builds the auxiliary network from the current next block (theta_ema starts equal to theta_{j+1}).

    Args:
      next_block: block j + 1 (copied; the original is not modified). Its non-Param state (e.g. BatchNorm
        statistics) is copied as is.
      head: the head after the bias (owned by this module, trained by gradients).
      num_features: F, the size of the next block's output feature axis (the last axis).
      param_dtype: the bias dtype.
    """
    validation.check_int(num_features, "num_features", 1, value_error=True)
    graphdef, params, rest = nnx.split(nnx.clone(next_block), nnx.Param, ...)
    ema = jax.tree.map(lambda v: EMAWeight(v[...]), params, is_leaf=lambda v: isinstance(v, nnx.Variable))
    self.ema_block = nnx.merge(graphdef, ema, rest)
    self.bias = nnx.Param(jnp.zeros((num_features,), param_dtype))
    self.head = head
    self.num_features = int(num_features)

  def features(self, h: jax.Array) -> jax.Array:
    """f_{j+1}(h; theta_ema) + beta, [B, ..., F]."""
    z = self.ema_block(h)
    if z.shape[-1] != self.num_features:
      raise ValueError(f"the next block's output has {z.shape[-1]} features, expected num_features="
                       f"{self.num_features}")
    return z + self.bias[...].astype(z.dtype)

  def __call__(self, h: jax.Array) -> jax.Array:
    """The auxiliary output head(f_{j+1}(h; theta_ema) + beta).

    Args:
      h: block j's output (the next block's input shape).

    Returns:
      The head's output.
    """
    return self.head(self.features(h))

  def update_ema(self, next_block: nnx.Module, momentum: float) -> None:
    """theta_ema <- momentum * theta_ema + (1 - momentum) * theta_{j+1} (`optax.incremental_update`).

    Args:
      next_block: the current block j + 1 (same structure as at construction).
      momentum: m in [0, 1] (a traced scalar is allowed under jit).
    """
    if isinstance(momentum, (int, float)) and not isinstance(momentum, bool) and not 0 <= momentum <= 1:
      raise ValueError(f"momentum must be in [0, 1], got {momentum=}")
    new = nnx.state(next_block, nnx.Param)
    old = nnx.state(self.ema_block, EMAWeight)
    new_leaves, old_leaves = jax.tree.leaves(new), jax.tree.leaves(old)
    if [a.shape for a in new_leaves] != [a.shape for a in old_leaves]:
      raise ValueError("next_block's parameters do not match the EMA copy's structure")
    updated = optax.incremental_update(new_leaves, old_leaves, step_size=1 - momentum)
    nnx.update(self.ema_block, jax.tree.unflatten(jax.tree.structure(old), updated))


class AugLocalAuxiliary(nnx.Module):
  """AugLocal's auxiliary network for hidden layer l: fresh copies of uniformly selected later layers, then a head.

  Ma et al., "Scaling Supervised Local Learning with Augmented Auxiliary Networks", ICLR 2024, arXiv:2402.17318,
  Sec. 3.2: g_l = head o f'_{i_d} o ... o f'_{i_1}, (i_1..i_d) = `auglocal_layer_indices(l, L, d)`, each f'_i a NEW
  layer built like primary layer i (`make_layer(i, rngs)`: same type and width, its own weights).

  Attributes:
    indices: the selected primary-layer indices.
    layers: the auxiliary layers, in order.
    head: the final head (e.g. pooling + linear classifier).
  """

  def __init__(self, make_layer: Callable[[int, nnx.Rngs], nnx.Module], layer_index: int, num_layers: int,
               depth: int, head: nnx.Module, *, rngs: nnx.Rngs):
    """Builds the auxiliary network.

    Args:
      make_layer: (primary layer index i, rngs) -> a new layer shaped like primary layer i.
      layer_index: l, the hidden layer this network trains.
      num_layers: L, the primary network's number of layers.
      depth: d, from `auglocal_depths`.
      head: the head applied after the selected layers.
      rngs: the random streams for the new layers.
    """
    self.indices = auglocal_layer_indices(layer_index, num_layers, depth)
    self.layers = nnx.List([make_layer(i, rngs) for i in self.indices])
    self.head = head

  def __call__(self, h: jax.Array) -> jax.Array:
    """head(f'_{i_d}(...f'_{i_1}(h))).

    Args:
      h: the hidden layer's output.

    Returns:
      The head's output.
    """
    for layer in self.layers:
      h = layer(h)
    return self.head(h)
