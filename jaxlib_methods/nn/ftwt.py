"""FTWT per-layer mask predictor and its self-supervised target (dynamic channel pruning).

Paper [65]: Sara Elkerdawy, Mostafa Elhoushi, Hong Zhang, Nilanjan Ray, "Fire Together Wire Together: A Dynamic
Pruning Approach with Self-Supervised Mask Prediction", CVPR 2022, arXiv:2110.08232 (Sec. 3). A small decoder
(global max pool + 1x1 conv, i.e. a dense layer on the pooled vector) reads the layer's input and predicts which
output channels of the conv fire for this input. Its target is the binarised heatmap mass of the layer's own
(post-activation) output, as in the authors' code (`utils/layers.py` of github.com/selkerdawy/FTWT,
`get_gt_mask_ratio`): per channel the heatmap peak h_c = max_{h,w} |a_c|, normalised to sum 1 over channels, sorted
in decreasing order; a channel is kept while the cumulative normalised mass up to and including it is <= tau
(+1e-5), i.e. the kept set covers at most the fraction tau of the mass (tau = 1 keeps every channel with a non-zero
peak; a channel whose own share exceeds tau is dropped, as in the authors' code) (`ftwt_mask_target`). The
mask-prediction loss is binary cross-entropy against that target, with stop-gradient on the target
(`ftwt_mask_loss`); the predicted (thresholded at sigmoid = 0.5) mask gates the conv's output channels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx


def ftwt_mask_target(activations: jax.Array, tau: float) -> jax.Array:
  """Binarised heatmap-mass target (Elkerdawy et al. 2022, arXiv:2110.08232, Sec. 3; the authors' code).

  Per example: h_c = max over space of |a_c|, p_c = h_c / sum_c h_c, channels sorted by decreasing p; a sorted
  channel is kept iff the cumulative p up to and including it is <= tau + 1e-5 (tau = 1: kept iff p_c > 1e-5). An
  all-zero activation map gives an all-zero target.

  Args:
    activations: (B, H, W, C) post-activation output of the layer.
    tau: heatmap-mass fraction in (0, 1].

  Returns:
    (B, C) float mask in {0, 1}, under stop_gradient.
  """
  if not 0.0 < float(tau) <= 1.0:
    raise ValueError(f"tau must be in (0, 1], got {tau}")
  if activations.ndim != 4:
    raise ValueError(f"activations must be (B, H, W, C), got shape {activations.shape}")
  delta = 1e-5
  heat = jnp.max(jnp.abs(activations), axis=(1, 2))                    # (B, C) global max pool of |a|
  total = jnp.sum(heat, axis=-1, keepdims=True)
  p = heat / jnp.where(total > 0, total, 1.0)
  if float(tau) == 1.0:
    mask = (p > delta).astype(heat.dtype)
  else:
    order = jnp.argsort(-p, axis=-1)
    cum = jnp.cumsum(jnp.take_along_axis(p, order, axis=-1), axis=-1)
    keep_sorted = (cum - tau <= delta).astype(heat.dtype)
    mask = jnp.zeros_like(p).at[jnp.arange(p.shape[0])[:, None], order].set(keep_sorted)
  mask = jnp.where(total > 0, mask, 0.0)
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
    param_dtype: dtype of the conv's and the predictor's parameters (float32 default).
    rngs: nnx.Rngs.
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, *, param_dtype=jnp.float32,
               rngs: nnx.Rngs):
    self.conv = nnx.Conv(in_features, out_features, (kernel_size, kernel_size), padding="SAME",
                         param_dtype=param_dtype, rngs=rngs)
    self.predictor = nnx.Linear(in_features, out_features, param_dtype=param_dtype, rngs=rngs)

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
