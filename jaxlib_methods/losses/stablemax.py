"""StableMax cross-entropy and the Softmax Collapse diagnostics.

Paper [185]: Lucas Prieto, Melih Barsbey, Pedro A. M. Mediano, Tolga Birdal, "Grokking at the Edge of Numerical
Stability", ICLR 2025, arXiv:2501.04697 (Section 4, "StableMax").

StableMax replaces exp in the softmax by the ramp

    s(x) = x + 1            if x >= 0
         = 1 / (1 - x)      if x <  0

(continuous and C^1 at 0, strictly positive), so StableMax(z)_i = s(z_i) / sum_j s(z_j). Unlike exp, s grows
linearly for large logits, so scaling up the logits cannot drive the non-maximal probabilities to exactly 0 in
floating point ("Softmax Collapse", SC), which is what stalls grokking without regularisation.

Official-code details reproduced here (see /work/shared/notes/official-code-facts.md section 5): the official loss
casts the logits to float64 before s() and adds 1e-30 to the denominator of the negative branch; we compute in
`compute_dtype` (float64 when x64 is enabled, else float32 by default) and keep `eps=1e-30` as an argument.

All functions are pure: per-example losses, reduce outside (conventions: docs/conventions.md).
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def stablemax_s(x: jax.Array, eps: float = 1e-30) -> jax.Array:
  """The paper's s(x): x + 1 for x >= 0 and 1 / (1 - x + eps) for x < 0 (Prieto et al. 2025, arXiv:2501.04697, Sec. 4).

  Args:
    x: any shape, floating dtype.
    eps: added to the negative branch's denominator, as in the official code (1e-30).

  Returns:
    s(x), same shape and dtype as x; strictly positive for finite x, NaN (with a NaN gradient) where x is NaN.
  """
  x = validation.check_floating(x, "x")
  # Use a safe argument in each branch so that neither produces inf/NaN gradients in the unused branch.
  pos = jnp.where(x >= 0, x, jnp.zeros_like(x)) + 1
  neg = 1 / (1 - jnp.where(x < 0, x, jnp.zeros_like(x)) + eps)
  # NaN fails both comparisons: it would become s = 1 (the s of a 0 logit) with a zero gradient, a silent finite
  # value. The NaN branch xn^2 is NaN in value and in gradient (2 xn) at a NaN x, and 0 with a 0 gradient elsewhere.
  is_nan = jnp.isnan(x)
  xn = jnp.where(is_nan, x, jnp.zeros_like(x))
  return jnp.where(is_nan, xn * xn, jnp.where(x >= 0, pos, neg))


def _prepare_logits(logits: Any, axis: Any, compute_dtype: Any):
  z = validation.check_floating(logits, "logits")
  if z.ndim < 1:
    raise ValueError(f"logits must have a class axis (rank >= 1), got logits.shape={z.shape}")
  ax = validation.check_axis(axis, z.ndim)
  out_dtype = z.dtype if compute_dtype is None else jnp.dtype(compute_dtype)
  return z.astype(validation.compute_dtype_for(z.dtype) if compute_dtype is None else compute_dtype), ax, out_dtype


def stablemax(logits: jax.Array, axis: int = -1, *, compute_dtype: Optional[jnp.dtype] = None) -> jax.Array:
  """StableMax(z)_i = s(z_i) / sum_j s(z_j) (Prieto et al. 2025, arXiv:2501.04697, Sec. 4).

  Args:
    logits: [..., K] (class axis `axis`), floating.
    axis: the class axis.
    compute_dtype: dtype used for s() and the sum (default: the logits' dtype, float32 for float16/bfloat16).

  Returns:
    Probabilities, shape of `logits`, in `compute_dtype` if given, else the logits' dtype.
  """
  z, ax, out_dtype = _prepare_logits(logits, axis, compute_dtype)
  s = stablemax_s(z)
  return (s / jnp.sum(s, axis=ax, keepdims=True)).astype(out_dtype)


def log_stablemax(logits: jax.Array, axis: int = -1, *, compute_dtype: Optional[jnp.dtype] = None) -> jax.Array:
  """log StableMax(z) = log s(z) - log sum_j s(z_j) (Prieto et al. 2025, arXiv:2501.04697, Sec. 4).

  Shapes and dtypes as `stablemax`.
  """
  z, ax, out_dtype = _prepare_logits(logits, axis, compute_dtype)
  s = stablemax_s(z)
  return (jnp.log(s) - jnp.log(jnp.sum(s, axis=ax, keepdims=True))).astype(out_dtype)


def stablemax_cross_entropy(logits: jax.Array, labels: jax.Array, *, axis: int = -1, where: Optional[jax.Array] = None,
                            compute_dtype: Optional[jnp.dtype] = None) -> jax.Array:
  """StableMax cross-entropy, per example: -log StableMax(z)[y] (Prieto et al. 2025, arXiv:2501.04697, Sec. 4).

  The official code evaluates it in float64 (`compute_dtype=jnp.float64` under `jax.enable_x64(True)`).

  Args:
    logits: [..., K] floating (class axis `axis`).
    labels: [...] integer class indices in [0, K) (out of range: ValueError eagerly, NaN rows under jit).
    axis: the class axis of `logits`.
    where: optional bool mask, [...] (examples to include; excluded rows give 0 and are not checked) or the
      logits' shape (classes to include, as optax's `where`; a label on an excluded class is invalid).
    compute_dtype: dtype of the computation (default: the logits' dtype, float32 for float16/bfloat16).

  Returns:
    Per-example loss [...], in `compute_dtype` if given, else the logits' dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> float(stablemax_cross_entropy(jnp.zeros((1, 4)), jnp.array([2]))[0])  # uniform: log 4
    1.386...
  """
  c = validation.classification_inputs(logits, labels, axis=axis, where=where, compute_dtype=compute_dtype,
                                       allow_class_where=True)
  z = c.logits
  if c.class_where is not None:  # excluded classes (even NaN there) must not reach the gradient, as in optax
    z = jnp.where(c.class_where, z, jnp.zeros((), z.dtype))
  s = stablemax_s(z)
  s_y = jnp.take_along_axis(s, c.labels[..., None], axis=-1)[..., 0]
  total = jnp.sum(s, axis=-1, where=c.class_where) if c.class_where is not None else jnp.sum(s, axis=-1)
  return validation.finish_per_example(jnp.log(total) - jnp.log(s_y), c.valid, c.where, c.dtype)


def softmax_cross_entropy_with_integer_labels(logits: jax.Array, labels: jax.Array, *, axis: int = -1,
                                              where: Optional[jax.Array] = None,
                                              compute_dtype: Optional[jnp.dtype] = None) -> jax.Array:
  """Softmax cross-entropy with integer labels, log-softmax computed in `compute_dtype`: the paper's baseline.

  The same function as `optax.losses.softmax_cross_entropy_with_integer_labels` (which the tests compare against),
  plus label checks and `compute_dtype`. The official code of Prieto et al. 2025 ("Grokking at the Edge of Numerical
  Stability", arXiv:2501.04697, Sec. 3) computes log_softmax in float16/32/64 (`--softmax_precision`, default 32);
  `compute_dtype=jnp.float64` reproduces its float64 baseline ("float64 delays Softmax Collapse").

  Args:
    logits: [..., K] floating (class axis `axis`).
    labels: [...] integer class indices in [0, K) (out of range: ValueError eagerly, NaN rows under jit).
    axis: the class axis of `logits`.
    where: optional bool mask, [...] (examples to include; excluded rows give 0 and are not checked) or the
      logits' shape (classes to include, as optax's `where`; a label on an excluded class is invalid).
    compute_dtype: dtype of log_softmax (default: the logits' dtype, float32 for float16/bfloat16).

  Returns:
    Per-example loss [...], in `compute_dtype` if given, else the logits' dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(softmax_cross_entropy_with_integer_labels(jnp.zeros((1, 4)), jnp.array([2]))[0]), 4)  # log 4
    1.3863
  """
  c = validation.classification_inputs(logits, labels, axis=axis, where=where, compute_dtype=compute_dtype,
                                       allow_class_where=True)
  z_y = jnp.take_along_axis(c.logits, c.labels[..., None], axis=-1)[..., 0]
  lse = jax.nn.logsumexp(c.logits, axis=-1, where=c.class_where)
  return validation.finish_per_example(lse - z_y, c.valid, c.where, c.dtype)


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, *,
                          compute_dtype: Optional[jnp.dtype] = None) -> jax.Array:
  """DEPRECATED alias of `softmax_cross_entropy_with_integer_labels` (optax's `softmax_cross_entropy` takes one-hot
  labels; this one never did). Kept for one release; warns.

  The softmax baseline of Prieto et al., "Grokking at the Edge of Numerical Stability", ICLR 2025, arXiv:2501.04697
  (Sec. 4). logits: [..., K]; labels: [...] int; returns the per-example loss [...].
  """
  warnings.warn("jaxlib_methods.losses.softmax_cross_entropy is deprecated (it takes integer labels, unlike optax's "
                "function of that name): use softmax_cross_entropy_with_integer_labels", DeprecationWarning,
                stacklevel=2)
  return softmax_cross_entropy_with_integer_labels(logits, labels, compute_dtype=compute_dtype)


def softmax_collapse_fraction(logits: jax.Array, *, compute_dtype: Optional[jnp.dtype] = None) -> jax.Array:
  """Share of samples in Softmax Collapse, measured as the official code's logger does (Prieto et al. 2025,
  arXiv:2501.04697, Sec. 3).

  With z' = z - max_j z_j and S = sum_j exp(z'_j) in `compute_dtype` (default float32 as in the code), a sample is
  collapsed when S == 1 exactly: every non-maximal exponential underflowed or was absorbed in the sum, so the
  softmax is exactly one-hot and the correct-class gradient of softmax CE is exactly zero.

  Args:
    logits: [N, K] (or [..., K]; the mean is over all leading axes, at least one sample), floating.
    compute_dtype: floating dtype of the computation (default float32).

  Returns:
    Scalar in [0, 1] (float32); NaN if any logit is NaN or +inf.
  """
  z = validation.check_floating(logits, "logits")
  if z.ndim < 1:
    raise ValueError(f"logits must have a class axis (rank >= 1), got logits.shape={z.shape}")
  if z.size == 0:
    raise ValueError(f"logits needs at least one sample and one class, got logits.shape={z.shape}")
  z = z.astype(compute_dtype or jnp.float32)
  zp = z - jnp.max(z, axis=-1, keepdims=True)
  s = jnp.sum(jnp.exp(zp), axis=-1)
  frac = jnp.mean((s == 1).astype(jnp.float32))
  # NaN logits, or a +inf logit (z - max = inf - inf), would otherwise just count as "not collapsed".
  return jnp.where(jnp.any(jnp.isnan(zp)), jnp.float32(jnp.nan), frac)


def zero_loss_fraction(per_example_loss: jax.Array) -> jax.Array:
  """Share of per-example losses exactly equal to 0 (the official logger's `zero_terms`; Prieto et al. 2025,
  arXiv:2501.04697). [...] floating, at least one entry -> scalar float32 in [0, 1]; NaN if any loss is NaN."""
  loss = validation.check_floating(per_example_loss, "per_example_loss")
  if loss.size == 0:
    raise ValueError(f"per_example_loss needs at least one entry, got per_example_loss.shape={loss.shape}")
  frac = jnp.mean((loss == 0).astype(jnp.float32))
  return jnp.where(jnp.any(jnp.isnan(loss)), jnp.float32(jnp.nan), frac)


__all__ = [
    "log_stablemax",
    "softmax_collapse_fraction",
    "softmax_cross_entropy_with_integer_labels",
    "stablemax",
    "stablemax_cross_entropy",
    "stablemax_s",
    "zero_loss_fraction",
]
