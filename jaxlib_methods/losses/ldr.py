"""Label Distributionally Robust (LDR) losses: LDR-KL and the adaptive ALDR-KL.

Paper [9]: Dixian Zhu, Yiming Ying, Tianbao Yang, "Label Distributionally Robust Losses for Multi-class
Classification: Consistency, Robustness and Adaptivity", ICML 2023, arXiv:2112.14869. Official code:
https://github.com/Optimization-AI/ICML2023_LDR.

The LDR loss takes the worst case over a distribution p on the K labels, regularised towards the uniform
distribution u = 1/K:

    L(x, y) = max_{p in simplex} sum_k p_k (delta_{k,y}(c) + f_k - f_y) - lam * KL(p, u),

with the margin delta_{k,y}(c) = c * 1[k != y]. For the KL regulariser the maximum has the closed form (LDR-KL)

    L_lam(x, y) = lam * log( (1/K) * sum_k exp((c * 1[k != y] + f_k - f_y) / lam) ),

attained at p* = softmax(z / lam), z_k = c * 1[k != y] + f_k - f_y. Special cases: lam = 1, c = 0 gives softmax
cross-entropy minus log K; lam -> 0 gives the Crammer-Singer loss max_k z_k; lam -> infinity gives the mean of z.

ALDR-KL makes lam instance-adaptive: each example i keeps its own lam_i, a state the training loop carries (an
array indexed by example id), and the loss adds a maximisation over lam with a quadratic pull towards lam0. As in
the authors' `ALDRLoss_V1` (ICML2023_LDR, loss.py), per batch:

    p_i   = normalise_l1( softmax(f_i / lam_i) + 1e-5 )          (old lam_i; NO margin in p)
    lam_i <- lam0 * (1 - KL(p_i, u) / (alpha log K))            (`aldr_kl_update_lambda`)
    L_i   = LDR-KL_{lam_i}(x_i, y_i) - (alpha log K / (2 lam0)) (lam_i - lam0)^2   (`aldr_kl_loss`, new lam_i)

The lam-step is the exact maximiser over lam of -lam KL(p, u) - (alpha log K / (2 lam0)) (lam - lam0)^2 at fixed p,
and alpha > 1 keeps lam_i in [lam0 (1 - 1/alpha), lam0] (KL(p, u) <= log K): the authors require alpha > 1, and so
do we (ValueError otherwise). lam_i is a constant for the gradient (the penalty only shifts the loss's value).
The authors' ALDR normalises the logits by their mean absolute value, f / (||f||_1 / K), without softplus except on
CIFAR-100 (`normalize="l1"` here; `normalize="softplus"` or True is LDR's softplus-then-mean).

All functions are pure and return per-example losses (reduce outside).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation
from jaxlib_methods.validation import check_nonnegative, check_positive

# Kept for the modules that import them (bias, comp_sum, bd_kd use `validation.classification_inputs` now).
_compute_dtype = validation.compute_dtype_for


def normalize_logits(logits: jax.Array, eps: float = 1e-12, *, axis: int = -1) -> jax.Array:
  """The official LDR code's logit normalisation: softplus(f), then divide by its mean over classes (Zhu, Ying, Yang
  2023, arXiv:2112.14869, official code).

  Args:
    logits: [..., K] floating (class axis `axis`).
    eps: floor on the mean (it is 0 only when every softplus underflows, e.g. all logits ~ -1e4 in float32).
    axis: the class axis.

  Returns:
    Shape of `logits`: non-negative scores with mean 1 over the class axis, in the logits' dtype.
  """
  f = validation.check_floating(logits, "logits")
  if f.ndim < 1:
    raise ValueError(f"logits must have a class axis (rank >= 1), got logits.shape={f.shape}")
  ax = validation.check_axis(axis, f.ndim)
  check_positive(eps, "eps")
  z = f.astype(validation.compute_dtype_for(f.dtype))
  s = jax.nn.softplus(z)
  return (s / jnp.maximum(jnp.mean(s, axis=ax, keepdims=True), eps)).astype(f.dtype)


def _check_margin(margin: Any) -> None:
  """margin: a scalar >= 0. An array (e.g. one per example) would broadcast against the CLASS axis of [..., K]."""
  if jnp.ndim(margin) != 0:
    raise ValueError(f"margin must be a scalar (one margin for all examples), got margin.shape={jnp.shape(margin)}")
  check_nonnegative(margin, "margin")


def _margin_scores(logits: jax.Array, labels: jax.Array, margin: Any) -> jax.Array:
  """z_k = margin * 1[k != y] + f_k - f_y, shape [..., K]."""
  k = logits.shape[-1]
  f_y = jnp.take_along_axis(logits, labels[..., None], axis=-1)
  not_y = 1.0 - jax.nn.one_hot(labels, k, dtype=logits.dtype)
  return margin * not_y + logits - f_y


def _lam_log_mean_exp(z: jax.Array, lam: jax.Array, lam_b: jax.Array) -> jax.Array:
  """lam * log((1/K) sum_k exp(z_k / lam)) over the last axis, accurate for any lam > 0.

  Shifted by the (constant) max c. For large lam the mean of exp((z - c) / lam) is close to 1, and
  lam * (logsumexp - log K) loses about lam * eps * log K to cancellation (float32, lam = 1e6: an error of 0.3 in a
  loss of 8); there log1p(mean(expm1(.))) keeps full relative accuracy, so lam -> infinity gives the mean of z.
  """
  c = jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
  t = (z - c) / lam_b
  u = jnp.mean(jnp.expm1(t), axis=-1)  # mean(exp(t)) - 1, in (-1, 0]
  near_one = u > -0.5
  log_mean = jnp.where(near_one, jnp.log1p(jnp.where(near_one, u, 0.0)),
                       jnp.log(jnp.where(near_one, 1.0, jnp.mean(jnp.exp(t), axis=-1))))
  return c[..., 0] + lam * log_mean


Normalize = Union[bool, Literal["softplus", "l1"]]


def _normalize(f: jax.Array, normalize: Any) -> jax.Array:
  """The official code's logit normalisations along the last axis: 'softplus' (or True) = softplus(f) / mean,
  'l1' = f / mean |f| (ALDRLoss_V1 without softplus); False = none."""
  if normalize is False or normalize is None:
    return f
  if normalize is True or normalize == "softplus":
    s = jax.nn.softplus(f)
    return s / jnp.maximum(jnp.mean(s, axis=-1, keepdims=True), 1e-12)
  if normalize == "l1":
    return f / jnp.maximum(jnp.mean(jnp.abs(f), axis=-1, keepdims=True), 1e-12)
  raise ValueError(f"normalize must be False, True, 'softplus' or 'l1', got {normalize=}")


def _prep(logits, labels, normalize, axis, where):
  if not (isinstance(normalize, bool) or normalize in ("softplus", "l1")):
    raise ValueError(f"normalize must be False, True, 'softplus' or 'l1', got {normalize=}")
  c = validation.classification_inputs(logits, labels, axis=axis, where=where)
  return c, _normalize(c.logits, normalize)


def _lam(lam, c):
  """lam as an array broadcastable against [..., K], and its validity (scalar or one value per example)."""
  valid = validation.check_positive_values(lam, "lam", c.labels.shape, where=c.where)
  lam = jnp.asarray(lam, c.logits.dtype)
  if c.where is not None and lam.ndim:  # excluded rows: any lam (e.g. 0 in a padded state) must not give NaN
    lam = jnp.where(c.where, lam, jnp.ones((), lam.dtype))
  return lam, (lam[..., None] if lam.ndim else lam), valid


def ldr_kl_loss(logits: jax.Array, labels: jax.Array, *, lam: Any = 1.0, margin: Any = 0.1,
                normalize: Normalize = False, axis: int = -1, where: Optional[jax.Array] = None) -> jax.Array:
  """LDR-KL loss, per example (Zhu, Ying, Yang 2023, arXiv:2112.14869, the KL-regularised LDR loss).

      L = lam * log( (1/K) * sum_k exp((margin * 1[k != y] + f_k - f_y) / lam) )

  Args:
    logits: [..., K] floating (class axis `axis`; float16/bfloat16 are computed in float32, the result cast back).
    labels: [...] integer class indices in [0, K) (out of range: ValueError eagerly, NaN rows under jit).
    lam: the temperature lambda > 0: a scalar or one value per example ([...]).
    margin: the margin c >= 0, a scalar (the paper's experiments use 0.1).
    normalize: apply one of the official code's logit normalisations first: True or 'softplus' (LDR's
      `normalize_logits`: softplus, divide by the mean), 'l1' (ALDR's: divide by the mean |f|). Off by default,
      so the function is the paper's equation.
    axis: the class axis of `logits`.
    where: optional bool [...]: examples to include (excluded rows give 0 and are not checked).

  Returns:
    Per-example loss [...], in the logits' dtype. With margin = 0 and lam = 1 it equals softmax
    cross-entropy - log K.

  Example:
    >>> import jax.numpy as jnp
    >>> float(ldr_kl_loss(jnp.zeros((1, 3)), jnp.array([0]), lam=1.0, margin=0.0)[0])  # CE - log K = 0
    0.0
  """
  c, f = _prep(logits, labels, normalize, axis, where)
  lam, lam_b, lam_valid = _lam(lam, c)
  _check_margin(margin)
  out = _lam_log_mean_exp(_margin_scores(f, c.labels, margin), lam, lam_b)
  return validation.finish_per_example(out, validation.combine_valid(c.valid, lam_valid), c.where, c.dtype)


def ldr_kl_worst_case_distribution(logits: jax.Array, labels: jax.Array, *, lam: Any = 1.0, margin: Any = 0.1,
                                   normalize: Normalize = False, axis: int = -1,
                                   where: Optional[jax.Array] = None) -> jax.Array:
  """The maximising label distribution p* = softmax(z / lam) of LDR-KL (Zhu, Ying, Yang 2023, arXiv:2112.14869).

  Args and checks as `ldr_kl_loss`. Returns: [..., K] (class axis at `axis`), float32 or wider; excluded rows 0.
  """
  c, f = _prep(logits, labels, normalize, axis, where)
  lam, lam_b, lam_valid = _lam(lam, c)
  _check_margin(margin)
  p = jax.nn.softmax(_margin_scores(f, c.labels, margin) / lam_b, axis=-1)
  p = validation.finish_per_example(p, validation.combine_valid(c.valid, lam_valid), c.where, f.dtype)
  return jnp.moveaxis(p, -1, validation.check_axis(axis, jnp.ndim(logits)))


def aldr_kl_init_state(num_examples: int, lam0: float) -> jax.Array:
  """Per-example lambda state for ALDR-KL, initialised at lam0: float32 [num_examples] (Zhu, Ying, Yang 2023,
  arXiv:2112.14869, ALDR-KL)."""
  if isinstance(num_examples, bool) or not isinstance(num_examples, (int, np.integer)) or num_examples <= 0:
    raise ValueError(f"num_examples must be a positive int, got {num_examples=}")
  check_positive(lam0, "lam0")
  return jnp.full((num_examples,), lam0, jnp.float32)


def _check_alpha(alpha: Any) -> None:
  check_positive(alpha, "alpha")
  if validation.is_concrete_number(alpha) and float(alpha) <= 1.0:
    raise ValueError(f"alpha must be > 1 (the authors' ALDR-KL requires it: lambda then stays in "
                     f"[lam0 (1 - 1/alpha), lam0] and > 0), got {alpha=}")


def _num_classes(logits: Any, axis: int) -> int:
  shape = jnp.shape(logits)
  k = shape[validation.check_axis(axis, len(shape))] if len(shape) else 0
  if k < 2:
    raise ValueError(f"ALDR-KL needs at least 2 classes (its lambda-step divides by log K), got {k} classes along "
                     f"axis {axis} of logits.shape={shape}")
  return k


def aldr_kl_loss(logits: jax.Array, labels: jax.Array, lam: jax.Array, *, lam0: Any, alpha: Any,
                 margin: Any = 0.1, normalize: Normalize = False, axis: int = -1,
                 where: Optional[jax.Array] = None) -> jax.Array:
  """ALDR-KL loss at the given per-example temperatures (Zhu, Ying, Yang 2023, arXiv:2112.14869, ALDR-KL; the
  authors' `ALDRLoss_V1`).

      L_i = LDR-KL_{lam_i}(x_i, y_i) - (alpha log K / (2 lam0)) * (lam_i - lam0)^2

  lam is state (no gradient flows into it). As the authors' code, refresh it first with `aldr_kl_update_lambda` on
  the same batch and pass the NEW lambda here.

  Args:
    logits: [..., K] (K >= 2); labels: [...] integer.
    lam: [...] (or a scalar) current lambda_i > 0 (e.g. `state[example_ids]` after the update).
    lam0: the prior temperature lambda_0 > 0 (the paper's grid: 0.1, 1, 10; the authors' runs: 10).
    alpha: alpha > 1 (the authors' default 2).
    margin, normalize, axis, where: as in `ldr_kl_loss` (the authors' ALDR uses normalize='l1').

  Returns:
    Per-example loss [...], in the logits' dtype.
  """
  check_positive(lam0, "lam0")
  _check_alpha(alpha)
  k = _num_classes(logits, axis)
  lam = jax.lax.stop_gradient(jnp.asarray(lam))
  base = ldr_kl_loss(logits, labels, lam=lam, margin=margin, normalize=normalize, axis=axis, where=where)
  reg = alpha * math.log(k) / (2.0 * lam0) * (lam.astype(jnp.float32) - lam0) ** 2
  out = base.astype(jnp.float32) - reg
  if where is not None:
    out = jnp.where(where, out, 0.0)
  return out.astype(base.dtype)


def aldr_kl_update_lambda(logits: jax.Array, labels: jax.Array, lam: jax.Array, *, lam0: Any, alpha: Any,
                          normalize: Normalize = False, axis: int = -1,
                          where: Optional[jax.Array] = None) -> jax.Array:
  """The lambda-step of ALDR-KL (Zhu, Ying, Yang 2023, arXiv:2112.14869; the authors' `ALDRLoss_V1`):

      p_i = (softmax(f_i / lam_i) + 1e-5) / sum(.),   lam_i <- lam0 * (1 - KL(p_i, u) / (alpha log K))

  with f the (optionally normalised) logits, WITHOUT the margin, and the old lam_i. No gradient flows through it.

  Args:
    logits: [..., K] (K >= 2); labels: [...] integer in [0, K) (checked; the step itself does not use them).
    lam: [...] current lambda_i > 0.
    lam0: > 0; alpha: > 1 (as in `aldr_kl_loss`).
    normalize, axis: as in `ldr_kl_loss` (the authors' ALDR: 'l1').
    where: optional bool [...]: excluded examples keep their lambda.

  Returns:
    New lambda, [...] float32, in [lam0 (1 - 1/alpha), lam0] (NaN for invalid rows under jit).
  """
  check_positive(lam0, "lam0")
  _check_alpha(alpha)
  _num_classes(logits, axis)
  logits = jax.lax.stop_gradient(validation.check_floating(logits, "logits"))
  c, f = _prep(logits, labels, normalize, axis, where)
  _, lam_b, lam_valid = _lam(lam, c)
  p = jax.nn.softmax(f.astype(jnp.float32) / lam_b, axis=-1) + 1e-5
  p = p / jnp.sum(p, axis=-1, keepdims=True)
  k = f.shape[-1]
  kl = jnp.sum(p * jnp.log(k * p), axis=-1)
  new = lam0 * (1.0 - kl / (alpha * math.log(k)))
  new = validation.nan_where_invalid(new, validation.combine_valid(c.valid, lam_valid))
  if c.where is not None:
    # the caller's lambda, not `_lam`'s NaN-safe stand-in (1) for excluded rows: they keep their state
    new = jnp.where(c.where, new, jnp.asarray(lam).astype(new.dtype))
  return new.astype(jnp.float32)


def crammer_singer_loss(logits: jax.Array, labels: jax.Array, *, margin: Any = 1.0, axis: int = -1,
                        where: Optional[jax.Array] = None) -> jax.Array:
  """The lam -> 0 limit of LDR-KL: max_k (margin * 1[k != y] + f_k - f_y) (Crammer & Singer 2001; Zhu, Ying, Yang
  2023, arXiv:2112.14869). logits [..., K], labels [...] -> [...] in the logits' dtype; `axis`, `where` as
  `ldr_kl_loss`."""
  c, f = _prep(logits, labels, False, axis, where)
  _check_margin(margin)
  return validation.finish_per_example(jnp.max(_margin_scores(f, c.labels, margin), axis=-1), c.valid, c.where,
                                       c.dtype)


__all__ = [
    "aldr_kl_init_state",
    "aldr_kl_loss",
    "aldr_kl_update_lambda",
    "crammer_singer_loss",
    "ldr_kl_loss",
    "ldr_kl_worst_case_distribution",
    "normalize_logits",
]
