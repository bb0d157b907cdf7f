"""EcoTTA: meta networks on a frozen network, entropy minimisation + self-distilled regularisation ([81]).

Junha Song, Jungsoo Lee, In So Kweon, Sungha Choi, "EcoTTA: Memory-Efficient Continual Test-time Adaptation via
Self-distilled Regularization", CVPR 2023, arXiv:2303.01904, Sec. 3. The pre-trained encoder is cut into K parts
F_1..F_K, frozen. Each part gets a lightweight meta network: a normalisation layer on the part's output and a small
(conv) block on its input, x~_k = BN_k(F_k(x~_{k-1})) + g_k(x~_{k-1}) (Fig. 3, `EcoTTAPart`). At test time only the
meta networks are updated, with the entropy of confident predictions (samples with entropy below
`entropy_threshold` * ln C, as in the paper's EATA-style filter) plus lambda times the self-distilled regularisation
R = sum_k |x~_k - x_k|_1 (Eq. 5), x_k the output of the frozen ORIGINAL network's part k on the original path
(`ecotta_forward`, `ecotta_loss`). We average |.| over each part's feature entries (a mean L1 per part, summed over
parts), which only rescales lambda. Because the original weights are frozen (`FrozenWeight`, not `nnx.Param`),
backpropagation stores no activations for their weight gradients: the memory the paper saves, measurable with
`jax.jit(grad).lower(...).compile().memory_analysis()`.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation
from jaxlib_methods.losses.bd_kd import entropy_from_logits
from jaxlib_methods.nn.low_rank import FrozenWeight


def _freeze(module: nnx.Module) -> nnx.Module:
  graphdef, params, rest = nnx.split(nnx.clone(module), nnx.Param, ...)
  frozen = jax.tree.map(lambda v: FrozenWeight(v[...]), params, is_leaf=lambda v: isinstance(v, nnx.Variable))
  return nnx.merge(graphdef, frozen, rest)


class EcoTTAPart(nnx.Module):
  """One frozen part F_k of the original network with its EcoTTA meta network.

  Song et al., "EcoTTA: Memory-Efficient Continual Test-time Adaptation via Self-distilled Regularization",
  CVPR 2023, arXiv:2303.01904, Sec. 3.1 and Fig. 3: x~_k = BN_k(F_k(x~_{k-1})) + g_k(x~_{k-1}). F_k's parameters
  are copied as `FrozenWeight` variables (never trained); the BatchNorm and `meta_block` g_k are the meta network.
  In batch-statistics mode the BatchNorm updates its running statistics, so differentiate the merged module with
  `nnx.value_and_grad(..., argnums=nnx.DiffState(0, filter))` (a `jax.grad` of a function that calls `nnx.merge`
  on outer arrays raises flax's TraceContextError), or pass `use_running_average=True`.

  Attributes:
    part: the frozen copy of F_k.
    norm: the meta BatchNorm on F_k's output (features on the last axis).
    meta_block: g_k, mapping the part's input to its output shape (a conv block in the paper).
  """

  def __init__(self, part: nnx.Module, num_features: int, meta_block: nnx.Module, *, momentum: float = 0.99,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    """Builds the meta network around a frozen copy of `part`.

    Args:
      part: F_k (copied and frozen; the original module is not modified).
      num_features: the size of F_k's output feature axis (last axis).
      meta_block: g_k (trained), input shape of F_k -> output shape of F_k.
      momentum: the BatchNorm running-average momentum.
      param_dtype: the BatchNorm parameter dtype.
      rngs: random streams for the BatchNorm.
    """
    if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
      raise ValueError(f"num_features must be an int >= 1, got {num_features=!r}")
    self.part = _freeze(part)
    self.norm = nnx.BatchNorm(int(num_features), momentum=momentum, param_dtype=param_dtype, rngs=rngs)
    self.meta_block = meta_block

  def __call__(self, x: jax.Array, *, use_running_average: bool = False) -> jax.Array:
    """x~_k = BN(F_k(x)) + g_k(x).

    Args:
      x: x~_{k-1}, the previous part's adapted output.
      use_running_average: normalise with the running statistics (True) or the batch's (False, adaptation).

    Returns:
      x~_k.
    """
    f = self.part(x)
    g = self.meta_block(x)
    if f.shape != g.shape:
      raise ValueError(f"meta_block must map to the part's output shape {f.shape}, got {g.shape}")
    return self.norm(f, use_running_average=use_running_average) + g

  def original(self, x: jax.Array) -> jax.Array:
    """F_k(x) with the frozen original weights (no meta network)."""
    return self.part(x)


def ecotta_forward(parts: Sequence[EcoTTAPart], x: jax.Array, *, use_running_average: bool = False
                   ) -> tuple[list[jax.Array], list[jax.Array]]:
  """Runs the adapted path and the frozen original path through the K parts.

  Song et al., CVPR 2023, arXiv:2303.01904, Sec. 3.1-3.2: x~_k = part_k(x~_{k-1}) (meta networks on) and
  x_k = F_k(x_{k-1}) (the original network, the regulariser's target; stop-gradient, it depends on no trainable
  parameter anyway).

  Args:
    parts: the K `EcoTTAPart`s, in order.
    x: [B, ...] the input batch.
    use_running_average: passed to each part's BatchNorm.

  Returns:
    (adapted, original): two lists of the K part outputs.
  """
  if len(parts) == 0:
    raise ValueError("parts must hold at least one EcoTTAPart")
  adapted, original = [], []
  a = o = x
  for p in parts:
    a = p(a, use_running_average=use_running_average)
    o = jax.lax.stop_gradient(p.original(o))
    adapted.append(a)
    original.append(o)
  return adapted, original


def self_distilled_regularization(adapted: Sequence[jax.Array], original: Sequence[jax.Array]) -> jax.Array:
  """R = sum_k mean |x~_k - sg(x_k)| per example (Song et al., CVPR 2023, arXiv:2303.01904, Eq. 5, L1).

  Args:
    adapted: the K adapted outputs x~_k, each [B, ...].
    original: the K frozen original outputs x_k, the same shapes.

  Returns:
    [B] the per-example regulariser (float32 or wider).
  """
  if len(adapted) != len(original) or len(adapted) == 0:
    raise ValueError(f"adapted and original must be two non-empty lists of the same length, got {len(adapted)} and "
                     f"{len(original)}")
  total = 0.0
  for k, (a, o) in enumerate(zip(adapted, original)):
    a = validation.check_floating(a, f"adapted[{k}]")
    o = validation.check_floating(o, f"original[{k}]")
    if a.shape != o.shape or a.ndim < 1:
      raise ValueError(f"adapted[{k}] and original[{k}] must share a [B, ...] shape, got {a.shape} and {o.shape}")
    d = jnp.abs(a.astype(jnp.float32) - jax.lax.stop_gradient(o).astype(jnp.float32))
    total = total + d.reshape(d.shape[0], -1).mean(-1)
  return total


def ecotta_loss(logits: jax.Array, adapted: Sequence[jax.Array], original: Sequence[jax.Array], *,
                lam: float = 0.5, entropy_threshold: float = 0.4) -> jax.Array:
  """EcoTTA's per-example test-time objective: filtered entropy + lambda * R.

  Song et al., CVPR 2023, arXiv:2303.01904, Eq. 4-6: the entropy H(p) of a prediction counts only when
  H(p) < entropy_threshold * ln C (confident samples), plus lam times `self_distilled_regularization`.

  Args:
    logits: [B, C] the adapted network's logits.
    adapted: the K adapted part outputs.
    original: the K frozen original part outputs.
    lam: lambda >= 0, the regulariser's weight (0: entropy minimisation alone).
    entropy_threshold: the filter's fraction of ln C, in (0, 1] (1 keeps every sample).

  Returns:
    [B] per-example losses (average them for the update).
  """
  z = validation.check_floating(logits, "logits")
  if z.ndim != 2 or z.shape[1] < 2:
    raise ValueError(f"logits must be [B, C] with C >= 2, got logits.shape={z.shape}")
  if not (isinstance(lam, (int, float)) and lam >= 0):
    raise ValueError(f"lam must be a float >= 0, got {lam=!r}")
  if not (isinstance(entropy_threshold, (int, float)) and 0 < entropy_threshold <= 1):
    raise ValueError(f"entropy_threshold must be in (0, 1], got {entropy_threshold=!r}")
  h = entropy_from_logits(z)
  keep = h < entropy_threshold * jnp.log(z.shape[1]) if entropy_threshold < 1 else jnp.ones_like(h, bool)
  loss = jnp.where(keep, h, 0.0)
  if lam:
    r = self_distilled_regularization(adapted, original)
    if r.shape != loss.shape:
      raise ValueError(f"the part outputs' batch {r.shape} does not match logits' {loss.shape}")
    loss = loss + lam * r
  return loss
