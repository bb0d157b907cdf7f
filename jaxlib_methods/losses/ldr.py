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

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.validation import check_nonnegative, check_positive


def _compute_dtype(dtype) -> jnp.dtype:
  return jnp.promote_types(dtype, jnp.float32)


def _check_logits_labels(logits: Any, labels: Any, name: str = "logits") -> None:
  if jnp.ndim(logits) < 1:
    raise ValueError(f"{name} must have a class axis (rank >= 1), got {jnp.shape(logits)=}")
  if jnp.shape(labels) != jnp.shape(logits)[:-1]:
    raise ValueError(f"labels must have shape {name}.shape[:-1]; got {jnp.shape(labels)=}, {jnp.shape(logits)=}")
  if not jnp.issubdtype(jnp.asarray(labels).dtype, jnp.integer):
    raise ValueError(f"labels must be integer class indices, got {jnp.asarray(labels).dtype=}")
  if not jnp.issubdtype(jnp.asarray(logits).dtype, jnp.floating):
    raise ValueError(f"{name} must be floating point, got {jnp.asarray(logits).dtype=}")
  if not isinstance(labels, jax.core.Tracer) and np.size(labels) > 0:
    lab = np.asarray(labels)
    k = jnp.shape(logits)[-1]
    if lab.min() < 0 or lab.max() >= k:
      raise ValueError(f"labels must lie in [0, {k}), got min={lab.min()}, max={lab.max()}")


def _check_per_example(x: Any, name: str, batch_shape: tuple) -> None:
  if jnp.ndim(x) != 0 and jnp.shape(x) != batch_shape:
    raise ValueError(f"{name} must be a scalar or have shape {batch_shape} (one per example), got {jnp.shape(x)=}")
  if not isinstance(x, jax.core.Tracer):
    v = np.asarray(x)
    if not (np.all(np.isfinite(v)) and np.all(v > 0)):
      raise ValueError(f"{name} must be finite and > 0, got {name} with min={v.min()}")


def normalize_logits(logits: jax.Array, eps: float = 1e-12) -> jax.Array:
  """The official LDR code's logit normalisation: softplus(f), then divide by its mean over classes.

  Args:
    logits: [..., K].
    eps: floor on the mean (it is 0 only when every softplus underflows, e.g. all logits ~ -1e4 in float32).

  Returns:
    [..., K] non-negative scores with mean 1 over the class axis.
  """
  s = jax.nn.softplus(logits)
  return s / jnp.maximum(jnp.mean(s, axis=-1, keepdims=True), eps)


def _margin_scores(logits: jax.Array, labels: jax.Array, margin: Any) -> jax.Array:
  """z_k = margin * 1[k != y] + f_k - f_y, shape [..., K]."""
  k = logits.shape[-1]
  f_y = jnp.take_along_axis(logits, labels[..., None], axis=-1)
  not_y = 1.0 - jax.nn.one_hot(labels, k, dtype=logits.dtype)
  return margin * not_y + logits - f_y


def _prep(logits, labels, normalize):
  _check_logits_labels(logits, labels)
  dtype = jnp.asarray(logits).dtype
  f = jnp.asarray(logits).astype(_compute_dtype(dtype))
  if normalize:
    f = normalize_logits(f)
  return f, jnp.asarray(labels), dtype


def ldr_kl_loss(logits: jax.Array, labels: jax.Array, *, lam: Any = 1.0, margin: Any = 0.1,
                normalize: bool = False) -> jax.Array:
  """LDR-KL loss, per example (Zhu, Ying, Yang 2023, arXiv:2112.14869, the KL-regularised LDR loss).

      L = lam * log( (1/K) * sum_k exp((margin * 1[k != y] + f_k - f_y) / lam) )

  Args:
    logits: [..., K] floating (float16/bfloat16 are computed in float32 and the result cast back).
    labels: [...] integer class indices in [0, K).
    lam: the temperature lambda > 0: a scalar or one value per example ([...]).
    margin: the margin c >= 0 (the paper's experiments use 0.1).
    normalize: apply the official code's `normalize_logits` (softplus, divide by mean) first. Off by default, so
      the function is the paper's equation.

  Returns:
    Per-example loss [...], in the logits' dtype. With margin = 0 and lam = 1 it equals softmax
    cross-entropy - log K.

  Example:
    >>> import jax.numpy as jnp
    >>> float(ldr_kl_loss(jnp.zeros((1, 3)), jnp.array([0]), lam=1.0, margin=0.0)[0])  # CE - log K = 0
    0.0
  """
  f, y, dtype = _prep(logits, labels, normalize)
  _check_per_example(lam, "lam", f.shape[:-1])
  check_nonnegative(margin, "margin")
  lam = jnp.asarray(lam, f.dtype)
  lam_b = lam[..., None] if lam.ndim else lam
  z = _margin_scores(f, y, margin)
  k = f.shape[-1]
  out = lam * (jax.nn.logsumexp(z / lam_b, axis=-1) - jnp.log(jnp.asarray(k, f.dtype)))
  return out.astype(dtype)


def ldr_kl_worst_case_distribution(logits: jax.Array, labels: jax.Array, *, lam: Any = 1.0, margin: Any = 0.1,
                                   normalize: bool = False) -> jax.Array:
  """The maximising label distribution p* = softmax(z / lam) of LDR-KL (Zhu et al. 2023). Shapes [..., K]."""
  f, y, _ = _prep(logits, labels, normalize)
  _check_per_example(lam, "lam", f.shape[:-1])
  check_nonnegative(margin, "margin")
  lam = jnp.asarray(lam, f.dtype)
  lam_b = lam[..., None] if lam.ndim else lam
  return jax.nn.softmax(_margin_scores(f, y, margin) / lam_b, axis=-1)


def aldr_kl_init_state(num_examples: int, lam0: float) -> jax.Array:
  """Per-example lambda state for ALDR-KL, initialised at lam0: float32 [num_examples]."""
  if not isinstance(num_examples, (int, np.integer)) or num_examples <= 0:
    raise ValueError(f"num_examples must be a positive int, got {num_examples=}")
  check_positive(lam0, "lam0")
  return jnp.full((num_examples,), lam0, jnp.float32)


def aldr_kl_loss(logits: jax.Array, labels: jax.Array, lam: jax.Array, *, lam0: Any, alpha: Any,
                 margin: Any = 0.1, normalize: bool = False) -> jax.Array:
  """ALDR-KL objective at the current per-example temperatures (Zhu et al. 2023, arXiv:2112.14869, ALDR-KL).

      L_i = LDR-KL_{lam_i}(x_i, y_i) - (alpha / 2) * (lam_i - lam0)^2

  lam is state (no gradient flows into it); refresh it with `aldr_kl_update_lambda`. See the module note: the
  adaptive objective is our reading of the paper and is not verified.

  Args:
    logits: [..., K]; labels: [...] integer.
    lam: [...] current lambda_i > 0 (e.g. `state[example_ids]`).
    lam0: the prior temperature lambda_0 > 0 (the paper's experiments: 0.1, 1, 10).
    alpha: strength alpha > 0 of the pull of lambda_i towards lam0.
    margin, normalize: as in `ldr_kl_loss`.

  Returns:
    Per-example loss [...], in the logits' dtype.
  """
  check_positive(lam0, "lam0")
  check_positive(alpha, "alpha")
  lam = jax.lax.stop_gradient(jnp.asarray(lam))
  base = ldr_kl_loss(logits, labels, lam=lam, margin=margin, normalize=normalize)
  reg = 0.5 * alpha * (lam.astype(jnp.float32) - lam0) ** 2
  return (base.astype(jnp.float32) - reg).astype(base.dtype)


def aldr_kl_update_lambda(logits: jax.Array, labels: jax.Array, lam: jax.Array, *, lam0: Any, alpha: Any,
                          margin: Any = 0.1, lam_min: Any = 1e-3, normalize: bool = False) -> jax.Array:
  """One lambda-step of ALDR-KL: lam_i <- max(lam_min, lam0 - KL(p*_i, u) / alpha), p*_i = softmax(z_i / lam_i).

  (Zhu et al. 2023, ALDR-KL; see the module note: unverified reading.) No gradient flows through the update.

  Args:
    logits: [..., K]; labels: [...]; lam: [...] current lambda_i > 0.
    lam0, alpha: > 0 as in `aldr_kl_loss`; lam_min: > 0 floor keeping LDR-KL well defined.

  Returns:
    New lambda, [...] float32.
  """
  check_positive(lam0, "lam0")
  check_positive(alpha, "alpha")
  check_positive(lam_min, "lam_min")
  logits = jax.lax.stop_gradient(jnp.asarray(logits))
  p = ldr_kl_worst_case_distribution(logits, labels, lam=lam, margin=margin, normalize=normalize)
  k = p.shape[-1]
  kl = jnp.sum(jax.scipy.special.xlogy(p, p), axis=-1) + jnp.log(jnp.asarray(k, p.dtype))
  return jnp.maximum(lam_min, lam0 - kl / alpha).astype(jnp.float32)


def crammer_singer_loss(logits: jax.Array, labels: jax.Array, *, margin: Any = 1.0) -> jax.Array:
  """The lam -> 0 limit of LDR-KL: max_k (margin * 1[k != y] + f_k - f_y) (Crammer & Singer 2001). Shape [...]."""
  f, y, dtype = _prep(logits, labels, False)
  check_nonnegative(margin, "margin")
  return jnp.max(_margin_scores(f, y, margin), axis=-1).astype(dtype)


__all__ = [
    "aldr_kl_init_state",
    "aldr_kl_loss",
    "aldr_kl_update_lambda",
    "crammer_singer_loss",
    "ldr_kl_loss",
    "ldr_kl_worst_case_distribution",
    "normalize_logits",
]
