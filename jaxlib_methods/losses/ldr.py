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

ALDR-KL makes lam instance-adaptive. This module implements it as an explicit per-example state lam_i that the
training loop carries (e.g. an array indexed by example id) and refreshes with `aldr_kl_update_lambda`:

    L_i = max_{p} sum_k p_k z_k - lam_i KL(p, u) - (alpha / 2) (lam_i - lam0)^2,
    lam_i <- max(lam_min, lam0 - KL(p*_i, u) / alpha)            (the lam-step with p fixed at p*_i)

NOTE (unverified): the exact ALDR-KL objective (the sign/direction of the lam-maximisation and the feasible set of
lam) could not be retrieved from the paper with the available search tools. The form above is our reading of
the paper's adaptive-LDR section (a KL-regularised max over p and lam with a quadratic pull to lam0); treat the adaptive
variant as provisional until checked against the paper. LDR-KL itself is exact.

All functions are pure and return per-example losses (reduce outside).
"""

from __future__ import annotations

from typing import Any, Optional

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


def _margin_scores(logits: jax.Array, labels: jax.Array, margin: Any) -> jax.Array:
  """z_k = margin * 1[k != y] + f_k - f_y, shape [..., K]."""
  k = logits.shape[-1]
  f_y = jnp.take_along_axis(logits, labels[..., None], axis=-1)
  not_y = 1.0 - jax.nn.one_hot(labels, k, dtype=logits.dtype)
  return margin * not_y + logits - f_y


def _prep(logits, labels, normalize, axis, where):
  c = validation.classification_inputs(logits, labels, axis=axis, where=where)
  f = c.logits
  if normalize:
    s = jax.nn.softplus(f)
    f = s / jnp.maximum(jnp.mean(s, axis=-1, keepdims=True), 1e-12)
  return c, f


def _lam(lam, c):
  """lam as an array broadcastable against [..., K], and its validity (scalar or one value per example)."""
  valid = validation.check_positive_values(lam, "lam", c.labels.shape, where=c.where)
  lam = jnp.asarray(lam, c.logits.dtype)
  if c.where is not None and lam.ndim:  # excluded rows: any lam (e.g. 0 in a padded state) must not give NaN
    lam = jnp.where(c.where, lam, jnp.ones((), lam.dtype))
  return lam, (lam[..., None] if lam.ndim else lam), valid


def ldr_kl_loss(logits: jax.Array, labels: jax.Array, *, lam: Any = 1.0, margin: Any = 0.1,
                normalize: bool = False, axis: int = -1, where: Optional[jax.Array] = None) -> jax.Array:
  """LDR-KL loss, per example (Zhu, Ying, Yang 2023, arXiv:2112.14869, the KL-regularised LDR loss).

      L = lam * log( (1/K) * sum_k exp((margin * 1[k != y] + f_k - f_y) / lam) )

  Args:
    logits: [..., K] floating (class axis `axis`; float16/bfloat16 are computed in float32, the result cast back).
    labels: [...] integer class indices in [0, K) (out of range: ValueError eagerly, NaN rows under jit).
    lam: the temperature lambda > 0: a scalar or one value per example ([...]).
    margin: the margin c >= 0 (the paper's experiments use 0.1).
    normalize: apply the official code's `normalize_logits` (softplus, divide by mean) first. Off by default, so
      the function is the paper's equation.
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
  check_nonnegative(margin, "margin")
  z = _margin_scores(f, c.labels, margin)
  k = f.shape[-1]
  out = lam * (jax.nn.logsumexp(z / lam_b, axis=-1) - jnp.log(jnp.asarray(k, f.dtype)))
  return validation.finish_per_example(out, validation.combine_valid(c.valid, lam_valid), c.where, c.dtype)


def ldr_kl_worst_case_distribution(logits: jax.Array, labels: jax.Array, *, lam: Any = 1.0, margin: Any = 0.1,
                                   normalize: bool = False, axis: int = -1,
                                   where: Optional[jax.Array] = None) -> jax.Array:
  """The maximising label distribution p* = softmax(z / lam) of LDR-KL (Zhu, Ying, Yang 2023, arXiv:2112.14869).

  Args and checks as `ldr_kl_loss`. Returns: [..., K] (class axis at `axis`), float32 or wider; excluded rows 0.
  """
  c, f = _prep(logits, labels, normalize, axis, where)
  lam, lam_b, lam_valid = _lam(lam, c)
  check_nonnegative(margin, "margin")
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


def aldr_kl_loss(logits: jax.Array, labels: jax.Array, lam: jax.Array, *, lam0: Any, alpha: Any,
                 margin: Any = 0.1, normalize: bool = False, axis: int = -1,
                 where: Optional[jax.Array] = None) -> jax.Array:
  """ALDR-KL objective at the current per-example temperatures (Zhu et al. 2023, arXiv:2112.14869, ALDR-KL).

      L_i = LDR-KL_{lam_i}(x_i, y_i) - (alpha / 2) * (lam_i - lam0)^2

  lam is state (no gradient flows into it); refresh it with `aldr_kl_update_lambda`. See the module note: the
  adaptive objective is our reading of the paper and is not verified.

  Args:
    logits: [..., K]; labels: [...] integer.
    lam: [...] (or a scalar) current lambda_i > 0 (e.g. `state[example_ids]`).
    lam0: the prior temperature lambda_0 > 0 (the paper's experiments: 0.1, 1, 10).
    alpha: strength alpha > 0 of the pull of lambda_i towards lam0.
    margin, normalize, axis, where: as in `ldr_kl_loss`.

  Returns:
    Per-example loss [...], in the logits' dtype.
  """
  check_positive(lam0, "lam0")
  check_positive(alpha, "alpha")
  lam = jax.lax.stop_gradient(jnp.asarray(lam))
  base = ldr_kl_loss(logits, labels, lam=lam, margin=margin, normalize=normalize, axis=axis, where=where)
  reg = 0.5 * alpha * (lam.astype(jnp.float32) - lam0) ** 2
  out = base.astype(jnp.float32) - reg
  if where is not None:
    out = jnp.where(where, out, 0.0)
  return out.astype(base.dtype)


def aldr_kl_update_lambda(logits: jax.Array, labels: jax.Array, lam: jax.Array, *, lam0: Any, alpha: Any,
                          margin: Any = 0.1, lam_min: Any = 1e-3, normalize: bool = False, axis: int = -1,
                          where: Optional[jax.Array] = None) -> jax.Array:
  """One lambda-step of ALDR-KL: lam_i <- max(lam_min, lam0 - KL(p*_i, u) / alpha), p*_i = softmax(z_i / lam_i).

  (Zhu et al. 2023, arXiv:2112.14869, ALDR-KL; see the module note: unverified reading.) No gradient flows through
  the update.

  Args:
    logits: [..., K]; labels: [...]; lam: [...] current lambda_i > 0.
    lam0, alpha: > 0 as in `aldr_kl_loss`; lam_min: > 0 floor keeping LDR-KL well defined.
    margin, normalize, axis: as in `ldr_kl_loss`.
    where: optional bool [...]: excluded examples keep their lambda.

  Returns:
    New lambda, [...] float32 (NaN for invalid rows under jit).
  """
  check_positive(lam0, "lam0")
  check_positive(alpha, "alpha")
  check_positive(lam_min, "lam_min")
  logits = jax.lax.stop_gradient(validation.check_floating(logits, "logits"))
  p = ldr_kl_worst_case_distribution(logits, labels, lam=lam, margin=margin, normalize=normalize, axis=axis,
                                     where=where)
  p = jnp.moveaxis(p, validation.check_axis(axis, logits.ndim), -1)
  k = p.shape[-1]
  kl = jnp.sum(jax.scipy.special.xlogy(p, p), axis=-1) + jnp.log(jnp.asarray(k, p.dtype))
  new = jnp.maximum(lam_min, lam0 - kl / alpha)  # jnp.maximum propagates NaN: invalid rows stay NaN
  if where is not None:
    new = jnp.where(where, new, jnp.asarray(lam, new.dtype))
  return new.astype(jnp.float32)


def crammer_singer_loss(logits: jax.Array, labels: jax.Array, *, margin: Any = 1.0, axis: int = -1,
                        where: Optional[jax.Array] = None) -> jax.Array:
  """The lam -> 0 limit of LDR-KL: max_k (margin * 1[k != y] + f_k - f_y) (Crammer & Singer 2001; Zhu, Ying, Yang
  2023, arXiv:2112.14869). logits [..., K], labels [...] -> [...] in the logits' dtype; `axis`, `where` as
  `ldr_kl_loss`."""
  c, f = _prep(logits, labels, False, axis, where)
  check_nonnegative(margin, "margin")
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
