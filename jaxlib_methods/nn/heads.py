"""Heads and fusion layers of three application papers (issue 22).

Papers:

- [95] Mohammad Mahdi Derakhshani, Xiantong Zhen, Ling Shao, Cees G. M. Snoek, "Generative Kernel Continual
  Learning", 2021, arXiv:2112.13410 (after "Kernel Continual Learning", ICML 2021, arXiv:2107.05757): each task's
  classifier is kernel ridge regression on (replayed) support features, in closed form
  scores = k(X_q, X_s) (K + lambda I)^{-1} Y (`krr_classifier`; the paper's headline uses the linear kernel).
- [110] Fan et al., "MouSi: Poly-Visual-Expert Vision-Language Models", 2024, arXiv:2401.17221: the
  features of several visual experts (CLIP, SAM, OCR encoders ...) are each projected into the LLM's embedding
  space and joined (`MultiExpertFusionProjector`, the MLP variant: one 2-layer MLP per expert, tokens concatenated
  along the sequence), and an expert's many image tokens may share position ids (`image_position_ids`: SAM's 4096
  positions compressed to 64 or 1).
- [157] Wang et al., "Ensembling Diffusion Models
  via Adaptive Feature Aggregation", 2024, arXiv:2405.17082: the Spatial-Aware Block-Wise (SABW) aggregator fuses
  the same block's features of K U-Nets with per-position attention weights, softmax over the K models
  (`SpatialAttentionAggregator`). NOTE: the paper's aggregator also conditions on the timestep and prompt; this
  layer takes only the K feature maps.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import validation
from jaxlib_methods.validation import check_positive


def krr_classifier(support_feats: jax.Array, support_targets: jax.Array, query_feats: jax.Array, *, lam: Any,
                   kernel: Literal["linear", "rbf"] = "linear", gamma: Any = 1.0) -> jax.Array:
  """Kernel ridge regression head in closed form: k(X_q, X_s) (K + lambda I)^{-1} Y.

  Derakhshani et al., "Generative Kernel Continual Learning", 2021, arXiv:2112.13410 (the task-specific kernel
  ridge classifier of Kernel Continual Learning, arXiv:2107.05757): with K = k(X_s, X_s) the support Gram
  matrix, alpha = (K + lambda I)^{-1} Y and the query scores k(X_q, X_s) alpha; predict with argmax. As
  lambda -> 0 with K invertible, the head interpolates: its scores on the support set tend to Y.

  Args:
    support_feats: [N, D] floating, the support (or generator-replayed) features.
    support_targets: [N, C] floating, their targets (one-hot labels, or any regression targets).
    query_feats: [Q, D] floating.
    lam: lambda > 0, the ridge.
    kernel: "linear" (x . x') or "rbf" (exp(-gamma ||x - x'||^2)).
    gamma: gamma > 0 of the RBF kernel.

  Returns:
    [Q, C] scores in float32 (or wider; float64 under `jax.enable_x64` with float64 inputs).
  """
  check_positive(lam, "lam")
  check_positive(gamma, "gamma")
  if kernel not in ("linear", "rbf"):
    raise ValueError(f"kernel must be 'linear' or 'rbf', got {kernel=}")
  xs = validation.check_floating(support_feats, "support_feats")
  y = validation.check_floating(support_targets, "support_targets")
  xq = validation.check_floating(query_feats, "query_feats")
  if xs.ndim != 2 or xq.ndim != 2 or xs.shape[1] != xq.shape[1]:
    raise ValueError(f"support_feats [N, D] and query_feats [Q, D] must be matrices with the same D, got "
                     f"support_feats.shape={xs.shape}, query_feats.shape={xq.shape}")
  if y.ndim != 2 or y.shape[0] != xs.shape[0]:
    raise ValueError(f"support_targets must be [N, C] with N={xs.shape[0]}, got support_targets.shape={y.shape}")
  validation.check_min_size(xs, "support_feats", 1)
  ct = validation.compute_dtype_for(jnp.result_type(xs, y, xq))
  xs, y, xq = xs.astype(ct), y.astype(ct), xq.astype(ct)

  def k(a, b):
    if kernel == "linear":
      return a @ b.T
    d2 = jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :] - 2.0 * a @ b.T
    return jnp.exp(-gamma * jnp.maximum(d2, 0.0))

  gram = k(xs, xs) + lam * jnp.eye(xs.shape[0], dtype=ct)
  alpha = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(gram, lower=True), y)
  return k(xq, xs) @ alpha


def image_position_ids(num_tokens: int, *, positions: int, start: int = 0) -> jax.Array:
  """MouSi's position ids of one expert's image tokens: `positions` distinct ids for `num_tokens` tokens.

  Fan et al., "MouSi: Poly-Visual-Expert Vision-Language Models", 2024, arXiv:2401.17221 (position encoding of
  the image tokens): consecutive groups of num_tokens / positions tokens share an id, so the expert occupies only
  `positions` slots of the LLM's context positions (4096 SAM tokens -> 64 ids, one per row of the 64x64 grid, or
  -> 1 id). positions = num_tokens is the ordinary sequential numbering.

  Args:
    num_tokens: the expert's number of image tokens (>= 1).
    positions: the number of distinct ids, a divisor of num_tokens.
    start: the first id (the next free position of the sequence).

  Returns:
    [num_tokens] int32 ids in [start, start + positions); the next free position is start + positions.
  """
  for name, v in (("num_tokens", num_tokens), ("positions", positions)):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"{name} must be a positive int, got {name}={v!r}")
  if isinstance(start, bool) or not isinstance(start, int) or start < 0:
    raise ValueError(f"start must be an int >= 0, got {start=!r}")
  if num_tokens % positions:
    raise ValueError(f"positions must divide num_tokens, got {positions=}, {num_tokens=}")
  return start + jnp.arange(num_tokens, dtype=jnp.int32) // (num_tokens // positions)


class MultiExpertFusionProjector(nnx.Module):
  """MouSi's MLP fusion projector: one 2-layer MLP per visual expert, outputs joined along the token axis.

  Fan et al., "MouSi: Poly-Visual-Expert Vision-Language Models", 2024, arXiv:2401.17221 (poly-expert fusion
  network, MLP projection): expert e's tokens x_e [B, T_e, D_e] become W2_e gelu(W1_e x_e + b1_e) + b2_e
  [B, T_e, d_model]; the projected experts are concatenated into [B, sum_e T_e, d_model] image tokens for the LLM.

  Args:
    expert_dims: D_e, the feature size of each expert (one entry per expert, >= 1 expert).
    d_model: the LLM's embedding size.
    hidden_dim: the MLPs' hidden size (default d_model).
    dtype: the computation dtype.
    param_dtype: the parameters' dtype.
    rngs: nnx.Rngs with a 'params' stream.
  """

  def __init__(self, expert_dims: Sequence[int], d_model: int, *, hidden_dim: int | None = None,
               dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    dims = tuple(expert_dims)
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
      raise ValueError(f"expert_dims must be a non-empty sequence of positive ints, got {expert_dims=}")
    hidden_dim = d_model if hidden_dim is None else hidden_dim
    if d_model < 1 or hidden_dim < 1:
      raise ValueError(f"d_model and hidden_dim must be positive, got {d_model=}, {hidden_dim=}")
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.expert_dims = dims
    self.fc1 = nnx.List([nnx.Linear(d, hidden_dim, **kw) for d in dims])
    self.fc2 = nnx.List([nnx.Linear(hidden_dim, d_model, **kw) for _ in dims])

  def __call__(self, expert_feats: Sequence[jax.Array]) -> jax.Array:
    """Project and join: a sequence of [B, T_e, D_e] arrays (one per expert) -> [B, sum_e T_e, d_model]."""
    feats = list(expert_feats)
    if len(feats) != len(self.expert_dims):
      raise ValueError(f"expected {len(self.expert_dims)} expert feature arrays, got {len(feats)}")
    b = None
    for i, (x, d) in enumerate(zip(feats, self.expert_dims)):
      validation.check_floating(x, f"expert_feats[{i}]")
      if jnp.ndim(x) != 3 or jnp.shape(x)[-1] != d or (b is not None and jnp.shape(x)[0] != b):
        raise ValueError(f"expert_feats[{i}] must be [B, T, {d}] with a common B, got shape {jnp.shape(x)}")
      b = jnp.shape(x)[0]
    out = [f2(jax.nn.gelu(f1(x), approximate=False)) for x, f1, f2 in zip(feats, self.fc1, self.fc2)]
    return jnp.concatenate(out, axis=1)


class SpatialAttentionAggregator(nnx.Module):
  """SABW aggregator: per-position softmax weights over K models' block features, and their weighted sum.

  Wang et al., "Ensembling Diffusion Models via Adaptive Feature Aggregation", 2024, arXiv:2405.17082 (the
  Spatial-Aware Block-Wise aggregator): from the K feature maps f_k [B, H, W, C] of the same U-Net block, a small
  conv net predicts logits a_k(h, w), w_k = softmax_k(a_k), and the fused map is sum_k w_k f_k. The weights sum to 1
  at every position, so K equal inputs give that input back.

  Args:
    num_models: K >= 1.
    channels: C, the block's channel count.
    hidden: the width of the conv net (3x3 conv, SiLU, 1x1 conv to K logits).
    dtype: the computation dtype.
    param_dtype: the parameters' dtype.
    rngs: nnx.Rngs with a 'params' stream.
  """

  def __init__(self, num_models: int, channels: int, *, hidden: int = 32, dtype=jnp.float32,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    for name, v in (("num_models", num_models), ("channels", channels), ("hidden", hidden)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {name}={v!r}")
    self.num_models, self.channels = num_models, channels
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.conv_in = nnx.Conv(num_models * channels, hidden, kernel_size=(3, 3), padding="SAME", **kw)
    self.conv_out = nnx.Conv(hidden, num_models, kernel_size=(1, 1), **kw)

  def _check(self, feats: Any) -> jax.Array:
    f = validation.check_floating(feats, "feats")
    if f.ndim != 5 or f.shape[0] != self.num_models or f.shape[-1] != self.channels:
      raise ValueError(f"feats must be [K={self.num_models}, B, H, W, C={self.channels}], got feats.shape={f.shape}")
    return f

  def weights(self, feats: jax.Array) -> jax.Array:
    """The attention weights: feats [K, B, H, W, C] -> [B, H, W, K], non-negative and summing to 1 over K."""
    f = self._check(feats)
    x = jnp.concatenate(list(f), axis=-1)  # [B, H, W, K*C]
    return jax.nn.softmax(self.conv_out(jax.nn.silu(self.conv_in(x))), axis=-1)

  def __call__(self, feats: jax.Array) -> jax.Array:
    """Fuse: feats [K, B, H, W, C] -> [B, H, W, C], sum_k w_k f_k."""
    f = self._check(feats)
    w = self.weights(f)
    return jnp.einsum("BHWK,KBHWC->BHWC", w.astype(f.dtype), f)


__all__ = ["MultiExpertFusionProjector", "SpatialAttentionAggregator", "image_position_ids", "krr_classifier"]
