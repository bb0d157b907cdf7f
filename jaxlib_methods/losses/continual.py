"""MVP's gradient-similarity-based focal loss for online class-incremental learning (issue 22, paper [26]).

Paper [26]: Jun-Yeong Moon, Keon-Hee Park, Jung Uk Kim, Gyeong-Moon Park, "Online Class Incremental Learning on
Stochastic Blurry Task Boundary via Mask and Visual Prompt Tuning", ICCV 2023, arXiv:2308.09303 (Sec. 4, "gradient
similarity-based focal loss", against the class imbalance of the Si-Blurry stream). The paper's text was not
available here; the loss follows the authors' released code (github.com/KHU-AGI/Si-Blurry, methods/mvp.py,
`MVP._compute_grads`, `_get_ignore`, `loss_fn` with `use_mcr`), with its defaults `alpha = 0.5`, `gamma = 1.0`
(configuration/config.py; scripts/mvp.sh sets neither):

- g_i = d CE_i / d W_{y_i}: the gradient of example i's cross-entropy with respect to its own class's row of the
  linear head (logits z = W f + b, then the additive -inf mask of unseen classes, `data.seen_class_logit_mask`);
- gbar_c = d mean_j CE_j / d W_c: the batch gradient of class c's row;
- s_i = 1 - cos(g_i, gbar_{y_i}) in [0, 2], a constant (the code detaches the features and uses a copy of the head):
  examples whose gradient disagrees with their class's batch gradient (minority-class or hard examples) get more
  weight;
- the loss of example i is ((1 - alpha) + alpha * s_i ** gamma) * CE_i.

For a linear head, g_i = (p_{i,y_i} - 1) f_i and gbar_c = (1/B) sum_j (p_{j,c} - [y_j = c]) f_j in closed form, so
the scores need the logits and features only (no per-example backward pass; tested against autodiff of the head).

One difference from the released code, on purpose: its `F.nll_loss` averages the cross-entropy over the batch
before the focal factor multiplies it, so its objective is mean_j CE_j * mean_i ((1 - alpha) + alpha s_i^gamma) (a
per-batch scale, not a per-example focus). This module keeps the per-example form the name "focal" describes; the
code's value is `ce.mean() * (1 - alpha + alpha * s ** gamma).mean()` with `s = gradient_similarity_scores(...)` and
`ce = losses.softmax_cross_entropy_with_integer_labels(logits, labels)` (the tests check both).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods._norms import safe_l2_norm


def _scores_inputs(logits: Any, features: Any, labels: Any, where: Any):
  z = validation.check_floating(logits, "logits")
  f = validation.check_floating(features, "features")
  if z.ndim != 2 or f.ndim != 2 or z.shape[0] != f.shape[0]:
    raise ValueError(f"logits must be [B, K] and features [B, D] with the same B, got logits.shape={z.shape}, "
                     f"features.shape={f.shape}")
  c = validation.classification_inputs(z, labels, where=where)
  return c, f.astype(c.logits.dtype)


def _similarity_scores(c: validation.ClassificationInputs, f: jax.Array) -> jax.Array:
  """1 - cos(g_i, gbar_{y_i}) from prepared inputs (rows excluded by `where` take no part in gbar)."""
  p = jax.nn.softmax(c.logits, axis=-1)                                  # [B, K]; -inf logits give exactly 0
  onehot = jax.nn.one_hot(c.labels, p.shape[-1], dtype=p.dtype)
  w = jnp.ones(p.shape[0], p.dtype) if c.where is None else c.where.astype(p.dtype)
  f = jnp.where(w[:, None] > 0, f, jnp.zeros((), f.dtype))               # excluded rows: no NaN into gbar
  n = jnp.maximum(jnp.sum(w), 1.0)
  g_batch = jnp.einsum("bk,bd->kd", (p - onehot) * w[:, None], f) / n    # [K, D]: d mean CE / d W
  g_own = (jnp.sum(p * onehot, axis=-1) - 1.0)[:, None] * f              # [B, D]: d CE_i / d W_{y_i}
  gbar = g_batch[c.labels]                                               # [B, D]
  eps = 1e-8                                                             # torch.cosine_similarity's eps
  cos = jnp.sum(g_own * gbar, axis=-1) / (safe_l2_norm(g_own, min_norm=eps) * safe_l2_norm(gbar, min_norm=eps))
  return 1.0 - cos


def gradient_similarity_scores(logits: jax.Array, features: jax.Array, labels: jax.Array, *,
                               where: Optional[jax.Array] = None) -> jax.Array:
  """MVP's ignore score s_i = 1 - cos(g_i, gbar_{y_i}) of each example (Moon et al., "Online Class Incremental
  Learning on Stochastic Blurry Task Boundary via Mask and Visual Prompt Tuning", ICCV 2023, arXiv:2308.09303,
  Sec. 4; the released `MVP._get_ignore`).

  g_i is the gradient of example i's cross-entropy with respect to its class's row W_{y_i} of the linear head that
  made `logits` from `features`, gbar_c the gradient of the batch-mean cross-entropy with respect to W_c. Batch-level
  coupling (gbar): pass the whole batch. The scores are constants (stop-gradient), as in the code.

  Args:
    logits: [B, K] floating, `features @ W.T + b` of a linear head, optionally with unseen classes at -inf
      (`data.seen_class_logit_mask`).
    features: [B, D] floating, the head's input.
    labels: [B] integer classes in [0, K) (a label on a -inf class gives a non-finite score).
    where: optional bool [B]: examples to include; excluded ones take no part in gbar and get score 0.

  Returns:
    [B] scores in [0, 2], in the logits' dtype (float32 for half precision).
  """
  c, f = _scores_inputs(logits, features, labels, where)
  s = jax.lax.stop_gradient(_similarity_scores(c, f))
  return validation.finish_per_example(s, c.valid, c.where, c.logits.dtype)


def gradient_similarity_focal_loss(logits: jax.Array, features: jax.Array, labels: jax.Array, *,
                                   alpha: float = 0.5, gamma: float = 1.0,
                                   where: Optional[jax.Array] = None) -> jax.Array:
  """MVP's gradient-similarity-based focal loss per example: ((1 - alpha) + alpha * s_i ** gamma) * CE_i.

  Moon et al., "Online Class Incremental Learning on Stochastic Blurry Task Boundary via Mask and Visual Prompt
  Tuning", ICCV 2023, arXiv:2308.09303 (Sec. 4; the released `MVP.loss_fn` with `use_mcr`, defaults alpha = 0.5,
  gamma = 1). s_i = `gradient_similarity_scores(logits, features, labels)` is a constant; CE_i is the softmax
  cross-entropy of `logits` (unseen classes may be -inf, MVP's additive mask: they get probability 0 and gradient
  exactly 0). alpha = 0 is plain cross-entropy. The batch is coupled through the scores: pass the whole batch.
  The released code multiplies the batch-mean CE instead (see the module docstring for how to get its value).

  Args:
    logits: [B, K] floating, a linear head's output on `features` (optionally with -inf for unseen classes).
    features: [B, D] floating, the head's input (only the scores use it; the gradient flows through `logits`).
    labels: [B] integer classes in [0, K).
    alpha: weight of the focal term, in [0, 1].
    gamma: focusing exponent >= 0.
    where: optional bool [B]: examples to include (the others give 0, no gradient, and take no part in gbar).

  Returns:
    [B] per-example loss in the logits' dtype; reduce outside (`loss.sum() / where.sum()`).
  """
  validation.check_in_interval(alpha, "alpha", 0.0, 1.0)
  validation.check_nonnegative(gamma, "gamma")
  c, f = _scores_inputs(logits, features, labels, where)
  s = jax.lax.stop_gradient(_similarity_scores(c, f))
  z_y = jnp.take_along_axis(c.logits, c.labels[:, None], axis=-1)[:, 0]
  ce = jax.nn.logsumexp(c.logits, axis=-1) - z_y
  loss = ((1.0 - alpha) + alpha * s ** gamma) * ce
  return validation.finish_per_example(loss, c.valid, c.where, c.dtype)


__all__ = ["gradient_similarity_focal_loss", "gradient_similarity_scores"]
