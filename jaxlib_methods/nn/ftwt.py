"""FTWT per-layer mask predictor and its self-supervised target (dynamic channel pruning).

Paper [65]: Sara Elkerdawy, Mostafa Elhoushi, Hong Zhang, Nilanjan Ray, "Fire Together Wire Together: A Dynamic
Pruning Approach with Self-Supervised Mask Prediction", CVPR 2022, arXiv:2110.08232 (Sec. 3). A small decoder
(global max pool + 1x1 conv, i.e. a dense layer on the pooled vector) reads the layer's input and predicts which
output channels of the conv fire for this input; its target is the binarised heatmap of the layer's own activations: per-channel activation mass
||a_c||_1, sorted, keeping the smallest set of channels whose cumulative mass covers the fraction tau of the total
(`ftwt_mask_target`). The mask-prediction loss is binary cross-entropy against that target, with stop-gradient on
the target (`ftwt_mask_loss`); the predicted (thresholded) mask gates the conv's output channels.
Not checked against the paper's exact equations in this session (deadline); no experiment yet.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx


def ftwt_mask_target(activations: jax.Array, tau: float) -> jax.Array:
  """Binarised heatmap target (Elkerdawy et al. 2022, arXiv:2110.08232, Sec. 3).

  Args:
    activations: (B, H, W, C) conv output of the layer.
    tau: mass fraction in (0, 1]; keeps the fewest channels whose l1 mass covers tau of the total.

  Returns:
    (B, C) float mask in {0, 1}, under stop_gradient.
  """
  if not 0.0 < float(tau) <= 1.0:
    raise ValueError(f"tau must be in (0, 1], got {tau}")
  if activations.ndim != 4:
    raise ValueError(f"activations must be (B, H, W, C), got shape {activations.shape}")
  mass = jnp.sum(jnp.abs(activations), axis=(1, 2))            # (B, C)
  order = jnp.argsort(-mass, axis=-1)
  sorted_mass = jnp.take_along_axis(mass, order, axis=-1)
  cum = jnp.cumsum(sorted_mass, axis=-1)
  total = cum[:, -1:]
  # keep a sorted channel if the mass before it has not yet reached tau * total
  keep_sorted = (cum - sorted_mass) < tau * total
  mask = jnp.zeros_like(mass).at[jnp.arange(mass.shape[0])[:, None], order].set(keep_sorted.astype(mass.dtype))
  return jax.lax.stop_gradient(mask)


def ftwt_mask_loss(logits: jax.Array, target: jax.Array) -> jax.Array:
  """Per-example BCE of the predicted mask logits against the (stop-gradient) target (arXiv:2110.08232, Sec. 3).

  Args:
    logits: (B, C) mask-predictor logits.
    target: (B, C) binary target from `ftwt_mask_target`.

  Returns:
    (B,) mean BCE over channels.
  """
  if logits.shape != target.shape:
    raise ValueError(f"logits {logits.shape} and target {target.shape} must have the same shape")
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jax.lax.stop_gradient(target)), axis=-1)


class FTWTConv(nnx.Module):
  """A conv whose output channels are gated by a per-input mask predictor (arXiv:2110.08232, Sec. 3).

  Args:
    in_features: input channels.
    out_features: output channels C.
    kernel_size: conv kernel size.
    rngs: nnx.Rngs.
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, *, rngs: nnx.Rngs):
    self.conv = nnx.Conv(in_features, out_features, (kernel_size, kernel_size), padding="SAME", rngs=rngs)
    self.predictor = nnx.Linear(in_features, out_features, rngs=rngs)

  def __call__(self, x: jax.Array, threshold: float = 0.5):
    """Returns (gated output (B, H, W, C), mask logits (B, C), dense conv output (B, H, W, C)).

    Args:
      x: (B, H, W, in_features) input.
      threshold: probability above which a channel is kept.
    """
    if x.ndim != 4 or x.shape[-1] != self.conv.in_features:
      raise ValueError(f"x must be (B, H, W, {self.conv.in_features}), got shape {x.shape}")
    logits = self.predictor(jnp.max(x, axis=(1, 2)))   # global max pool + 1x1 conv (== dense)
    mask = (jax.nn.sigmoid(logits) > threshold).astype(x.dtype)
    dense = self.conv(x)
    return dense * mask[:, None, None, :], logits, dense
