"""SlimSAM's label-free structured pruning: disturbed Taylor importance, channel-group scores, masks, and the
distillation loss of the alternate slimming steps.

Paper [121]: Zigeng Chen, Gongfan Fang, Xinyin Ma, Xinchao Wang, "SlimSAM: 0.1% Data Makes Segment Anything Slim",
NeurIPS 2024, arXiv:2312.05284 (Sec. 3.3, disturbed Taylor pruning: with no labels, the pruning loss is the distance
between the student's embedding and the teacher's; at the start student = teacher, so that loss and its gradient are
exactly zero and the first-order Taylor score |W * dL/dW| is useless; adding Gaussian noise N(0, sigma^2) to the
teacher embedding gives a non-zero gradient aligned with the later distillation target. Sec. 3.2, alternate slimming:
prune one decoupled sub-structure (the embedding channels, then the bottleneck ones), distil, repeat). Details follow
the authors' code (github.com/czg1225/SlimSAM, prune_distill_step1.py: MSE loss, sigma = 0.01, gradients accumulated
one image at a time; torch_pruning's Taylor importance |w * dw| summed over each channel's weights and averaged over
the coupled layers of a group, `norm_type='mean'`; the distillation loss (1 - a) MSE(final) + a sum MSE(intermediate),
a = 0.5).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.validation import check_bool, check_floating, is_traced


def disturbed_taylor_importance(embed_fn: Callable[[Any, jax.Array], jax.Array], params: Any, inputs: jax.Array,
                                key: jax.Array, *, sigma: float = 0.01) -> Any:
  """Disturbed Taylor importance |W * dL/dW| of every weight (Chen et al. 2024, arXiv:2312.05284, Sec. 3.3).

  L = sum_n MSE(embed_fn(params, x_n), stop_gradient(embed_fn(params, x_n)) + sigma * eps_n), eps_n ~ N(0, I): the
  teacher is the unpruned model itself (student = teacher at pruning time), disturbed by noise; the gradient is
  accumulated over the examples as the authors' loop over images does.

  Args:
    embed_fn: (params, x [batch, ...]) -> embedding [batch, ...], the model whose weights are scored.
    params: pytree of weights.
    inputs: [N, ...] examples (each scored as a batch of one).
    key: PRNG key of the disturbance.
    sigma: standard deviation of the disturbance, >= 0 (0 gives all-zero scores, the paper's point); may be traced.

  Returns:
    pytree like `params`: the element-wise importance |w * g|.
  """
  if not is_traced(sigma) and not (np.ndim(sigma) == 0 and float(sigma) >= 0):
    raise ValueError(f"sigma must be a number >= 0, got {sigma=!r}")
  x = check_floating(inputs, "inputs")
  if x.ndim < 1 or x.shape[0] < 1:
    raise ValueError(f"inputs must be [N, ...] with N >= 1, got {x.shape=}")

  def loss(p):
    def one(xn, k):
      emb = embed_fn(p, xn[None])
      target = jax.lax.stop_gradient(emb) + sigma * jax.random.normal(k, emb.shape, emb.dtype)
      return jnp.mean((emb - target) ** 2)
    return jnp.sum(jax.vmap(one)(x, jax.random.split(key, x.shape[0])))

  grads = jax.grad(loss)(params)
  return jax.tree.map(lambda w, g: jnp.abs(w * g), params, grads)


def group_channel_importance(importances: Sequence[jax.Array], channel_axes: Sequence[int]) -> jax.Array:
  """Score of each channel of a coupled group (torch_pruning's Taylor importance with `norm_type='mean'`, as SlimSAM
  uses; Chen et al. 2024, arXiv:2312.05284, Sec. 3.3): each layer's element-wise importance is summed over every
  axis but its channel axis, and the group's layers are averaged.

  Args:
    importances: per-layer element-wise importances (e.g. from `disturbed_taylor_importance`).
    channel_axes: the channel axis of each layer (e.g. 1 for the output channels of a [in, out] kernel, 0 for the
      input channels of the next layer).

  Returns:
    [C] channel scores.
  """
  if len(importances) != len(channel_axes) or not importances:
    raise ValueError("need one channel axis per importance array, and at least one array")
  per_layer = []
  for imp, ax in zip(importances, channel_axes):
    imp = jnp.asarray(imp)
    ax = ax % imp.ndim
    per_layer.append(jnp.sum(imp, axis=tuple(a for a in range(imp.ndim) if a != ax)))
  sizes = {p.shape[0] for p in per_layer}
  if len(sizes) != 1:
    raise ValueError(f"the group's layers disagree on the channel count: {sorted(sizes)}")
  return jnp.mean(jnp.stack(per_layer), axis=0)


def channel_keep_mask(scores: jax.Array, ratio: float) -> jax.Array:
  """Keep mask of structured pruning: drop the floor(C * ratio) channels of lowest score (ties: lower index dropped
  first). The pruning step of SlimSAM's alternate slimming (Chen et al., "SlimSAM: 0.1% Data Makes Segment Anything
  Slim", NeurIPS 2024, arXiv:2312.05284, Sec. 3.2-3.3).

  Args:
    scores: [C] channel scores.
    ratio: fraction of channels to prune, in [0, 1).

  Returns:
    [C] bool, True for kept channels.
  """
  s = check_floating(scores, "scores")
  if s.ndim != 1:
    raise ValueError(f"scores must be [C], got {s.shape=}")
  if not (isinstance(ratio, (int, float)) and 0 <= ratio < 1):
    raise ValueError(f"ratio must be in [0, 1), got {ratio=!r}")
  n_prune = int(np.floor(s.shape[0] * ratio))
  order = jnp.argsort(s, stable=True)
  return jnp.ones(s.shape, bool).at[order[:n_prune]].set(False)


def apply_channel_mask(weight: jax.Array, keep: jax.Array, axis: int) -> jax.Array:
  """Zero the pruned channels of `weight` along `axis` (exact zeros; slice them out for the dense small model).
  SlimSAM's structured pruning (Chen et al., "SlimSAM: 0.1% Data Makes Segment Anything Slim", NeurIPS 2024,
  arXiv:2312.05284, Sec. 3.2).

  Args:
    weight: array with C entries along `axis`.
    keep: [C] bool keep mask (`channel_keep_mask`).
    axis: channel axis of `weight`.

  Returns:
    `weight` with the pruned channels set to 0 (same shape and dtype).
  """
  w = jnp.asarray(weight)
  keep = check_bool(keep, "keep")
  ax = axis % w.ndim
  if keep.shape != (w.shape[ax],):
    raise ValueError(f"keep must be [{w.shape[ax]}] for axis {axis} of weight {w.shape}, got {keep.shape}")
  shape = [1] * w.ndim
  shape[ax] = -1
  return jnp.where(keep.reshape(shape), w, jnp.zeros((), w.dtype))


def slimsam_distillation_loss(student: jax.Array, teacher: jax.Array, student_intermediates: Sequence[jax.Array] = (),
                              teacher_intermediates: Sequence[jax.Array] = (), *, a: float = 0.5) -> jax.Array:
  """SlimSAM's distillation objective after a pruning step (Chen et al. 2024, arXiv:2312.05284, Sec. 3.2; the
  authors' code): (1 - a) MSE(student, teacher) + a sum_i MSE(student_i, teacher_i) over aligned intermediate
  features (bottleneck aligning); with no intermediates it is the plain embedding MSE.

  Args:
    student: [...] student embedding.
    teacher: [...] teacher embedding (treated as a constant).
    student_intermediates: intermediate student features.
    teacher_intermediates: the matching teacher features.
    a: weight of the intermediate terms, in [0, 1].

  Returns:
    scalar loss (batch-level).
  """
  if len(student_intermediates) != len(teacher_intermediates):
    raise ValueError("student_intermediates and teacher_intermediates must pair up")
  if not (isinstance(a, (int, float)) and 0 <= a <= 1):
    raise ValueError(f"a must be in [0, 1], got {a=!r}")
  mse = lambda s, t: jnp.mean((check_floating(s, "student") - jax.lax.stop_gradient(t)) ** 2)
  if not student_intermediates:
    return mse(student, teacher)
  return (1 - a) * mse(student, teacher) + a * sum(mse(s, t) for s, t in zip(student_intermediates,
                                                                               teacher_intermediates))


__all__ = ["apply_channel_mask", "channel_keep_mask", "disturbed_taylor_importance", "group_channel_importance",
           "slimsam_distillation_loss"]
