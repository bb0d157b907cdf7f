"""Bias Loss: cross-entropy re-weighted by the diversity (variance) of each sample's feature maps.

Paper [50]: Lusine Abrahamyan, Valentin Ziatchin, Yiming Chen, Nikos Deligiannis, "Bias Loss for Mobile Neural
Networks", ICCV 2021, arXiv:2107.11170 (the bias loss section).
Official code: github.com/lusinlu/biasloss_skipblocknet.

    L_bias = -(1/N) sum_i z(v_i) log p_{y_i}(x_i),     z(v) = exp(alpha * v) - beta,

where v_i is the variance of sample i's feature maps (the output of the last convolutional layer), scaled to
[0, 1] across the batch by min-max normalisation, v_i = (var_i - min_j var_j) / (max_j var_j - min_j var_j).
Defaults alpha = beta = 0.3 as in the paper and the official code. The variance is treated as a constant (the
official code detaches the features). With alpha = beta = 0 the weight is 1 and the loss is cross-entropy.

The official code's current `bias_loss/biasloss.py` (commit b557bca) computes the paper's z(v) = exp(alpha v) - beta;
its earlier commits (ae6d68d, 40d67b5) computed exp(beta * v) - 1 + alpha (the roles of alpha and beta swapped):
`weight_form="official"` reproduces that earlier form, `"paper"` (default) is the paper's equation and the current
official code. The official code's default "global" normalisation keeps a running minimum across batches (state);
we use the batch minimum (its "local" mode), which keeps the function pure. When all variances in the batch are
equal (e.g. batch size 1) the official code divides by zero; we set v = 0 instead.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods.validation import is_concrete_number


def normalized_feature_variance(features: jax.Array, *, where: Optional[jax.Array] = None) -> jax.Array:
  """Per-sample variance of the feature maps, min-max scaled over the batch to [0, 1] (Abrahamyan et al. 2021,
  arXiv:2107.11170, the bias loss section).

  Args:
    features: [B, ...] feature maps (any trailing shape, e.g. [B, H, W, C]), floating; rank >= 2.
    where: optional bool [B]: samples that take part in the batch min and max (the others get 0).

  Returns:
    [B] float32 in [0, 1]; zeros if all variances are equal; NaN rows where a sample's features hold NaN (and, as
    the min and max then are NaN, in every row). Carries no gradient.
  """
  x = validation.check_floating(features, "features")
  if x.ndim < 2:
    raise ValueError(f"features must have shape [B, ...] with rank >= 2, got features.shape={x.shape}")
  where = validation.check_where(where, x.shape[:1])
  x = jax.lax.stop_gradient(x).astype(jnp.float32)
  x = x.reshape(x.shape[0], math.prod(x.shape[1:]))
  var = jnp.var(x, axis=1)
  if x.shape[0] == 0:
    return var
  if where is None:
    lo, hi = jnp.min(var), jnp.max(var)
  else:
    lo = jnp.min(jnp.where(where, var, jnp.inf))
    hi = jnp.max(jnp.where(where, var, -jnp.inf))
  rng = hi - lo
  out = jnp.where(rng > 0, (var - lo) / jnp.where(rng > 0, rng, 1.0), jnp.where(jnp.isnan(rng), rng, 0.0))
  return out if where is None else jnp.where(where, out, 0.0)


def bias_loss_weights(v: jax.Array, *, alpha: Any = 0.3, beta: Any = 0.3,
                      weight_form: Literal["paper", "official"] = "paper") -> jax.Array:
  """The weight z(v) = exp(alpha v) - beta (paper) or exp(beta v) - 1 + alpha (early official code) (Abrahamyan et al.
  2021, arXiv:2107.11170). v: any shape, floating -> same shape."""
  v = validation.check_floating(v, "v")
  for name, val in (("alpha", alpha), ("beta", beta)):
    if is_concrete_number(val) and not math.isfinite(float(val)):  # (jnp.isfinite would be staged under jit)
      raise ValueError(f"{name} must be finite, got {name}={val!r}")
  if weight_form == "paper":
    return jnp.exp(alpha * v) - beta
  if weight_form == "official":
    return jnp.exp(beta * v) - 1.0 + alpha
  raise ValueError(f"weight_form must be 'paper' or 'official', got {weight_form=}")


def bias_loss(logits: jax.Array, labels: jax.Array, features: jax.Array, *, alpha: Any = 0.3, beta: Any = 0.3,
              weight_form: Literal["paper", "official"] = "paper", axis: int = -1,
              where: Optional[jax.Array] = None) -> jax.Array:
  """Bias loss, per example: -z(v_i) log softmax(logits_i)[y_i] (Abrahamyan et al. 2021, arXiv:2107.11170).

  The batch normalisation of the variance couples the examples of a batch: pass the whole batch.

  Args:
    logits: [B, K] floating (class axis `axis`).
    labels: [B] integer in [0, K).
    features: [B, ...] feature maps of the last convolutional layer (no gradient is taken through them).
    alpha: the paper's alpha in z(v) = exp(alpha v) - beta (default 0.3).
    beta: the paper's beta in z(v) (default 0.3).
    weight_form: 'paper' (default; also the authors' current code) or 'official' (exp(beta v) - 1 + alpha, as
      the authors' code before commit b557bca).
    axis: the class axis of `logits`.
    where: optional bool [B]: examples to include (the others give 0, are not checked and do not enter the batch
      min-max of the variance).

  Returns:
    Per-example loss [B] in the logits' dtype (mean it for the paper's L_bias).
  """
  if jnp.ndim(logits) != 2:
    raise ValueError(f"logits must have shape [B, K], got logits.shape={jnp.shape(logits)}")
  c = validation.classification_inputs(logits, labels, axis=axis, where=where)
  b = c.logits.shape[0]
  if jnp.ndim(features) < 2 or jnp.shape(features)[0] != b:
    raise ValueError(f"features must have shape [B, ...] with B = {b} (the batch of logits), got "
                     f"features.shape={jnp.shape(features)}")
  logp = jax.nn.log_softmax(c.logits, axis=-1)
  ce = -jnp.take_along_axis(logp, c.labels[:, None], axis=-1)[:, 0]
  w = bias_loss_weights(normalized_feature_variance(features, where=c.where), alpha=alpha, beta=beta,
                        weight_form=weight_form)
  return validation.finish_per_example(w.astype(ce.dtype) * ce, c.valid, c.where, c.dtype)


__all__ = ["bias_loss", "bias_loss_weights", "normalized_feature_variance"]
