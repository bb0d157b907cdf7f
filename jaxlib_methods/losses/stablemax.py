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

All functions are pure: per-example losses, reduce outside.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp


def _check_logits_labels(logits: jax.Array, labels: jax.Array) -> None:
  if jnp.ndim(logits) < 1:
    raise ValueError(f"logits must have a class axis (rank >= 1), got {jnp.shape(logits)=}")
  if jnp.shape(labels) != jnp.shape(logits)[:-1]:
    raise ValueError(f"labels must have shape logits.shape[:-1]; got {jnp.shape(labels)=}, {jnp.shape(logits)=}")
  if not jnp.issubdtype(jnp.asarray(labels).dtype, jnp.integer):
    raise ValueError(f"labels must be integer class indices, got {jnp.asarray(labels).dtype=}")


def stablemax_s(x: jax.Array, eps: float = 1e-30) -> jax.Array:
  """The paper's s(x): x + 1 for x >= 0 and 1 / (1 - x + eps) for x < 0 (Prieto et al. 2025, Sec. 4).

  Args:
    x: any shape, floating dtype.
    eps: added to the negative branch's denominator, as in the official code (1e-30).

  Returns:
    s(x), same shape and dtype as x; strictly positive.
  """
  x = jnp.asarray(x)
  # Use a safe argument in each branch so that neither produces inf/NaN gradients in the unused branch.
  pos = jnp.where(x >= 0, x, jnp.zeros_like(x)) + 1
  neg = 1 / (1 - jnp.where(x < 0, x, jnp.zeros_like(x)) + eps)
  return jnp.where(x >= 0, pos, neg)


def stablemax(logits: jax.Array, axis: int = -1, *, compute_dtype: Optional[jnp.dtype] = None) -> jax.Array:
  """StableMax(z)_i = s(z_i) / sum_j s(z_j) (Prieto et al. 2025, arXiv:2501.04697, Sec. 4).

  Args:
    logits: [..., K].
    axis: the class axis.
    compute_dtype: dtype used for s() and the sum (default: the logits' dtype).

  Returns:
    Probabilities, [..., K], in `compute_dtype`.
  """
  z = jnp.asarray(logits)
  if compute_dtype is not None:
    z = z.astype(compute_dtype)
  s = stablemax_s(z)
  return s / jnp.sum(s, axis=axis, keepdims=True)


def log_stablemax(logits: jax.Array, axis: int = -1, *, compute_dtype: Optional[jnp.dtype] = None) -> jax.Array:
  """log StableMax(z) = log s(z) - log sum_j s(z_j) (Prieto et al. 2025, Sec. 4). Shapes as `stablemax`."""
  z = jnp.asarray(logits)
  if compute_dtype is not None:
    z = z.astype(compute_dtype)
  s = stablemax_s(z)
  return jnp.log(s) - jnp.log(jnp.sum(s, axis=axis, keepdims=True))


def stablemax_cross_entropy(logits: jax.Array, labels: jax.Array, *,
                            compute_dtype: Optional[jnp.dtype] = None) -> jax.Array:
  """StableMax cross-entropy, per example: -log StableMax(z)[y] (Prieto et al. 2025, arXiv:2501.04697, Sec. 4).

  The official code evaluates it in float64 (`compute_dtype=jnp.float64` under `jax.enable_x64(True)`).

  Args:
    logits: [..., K] floating.
    labels: [...] integer class indices in [0, K).
    compute_dtype: dtype of the computation (default: the logits' dtype).

  Returns:
    Per-example loss, shape [...], in `compute_dtype`.

  Example:
    >>> import jax.numpy as jnp
    >>> float(stablemax_cross_entropy(jnp.zeros((1, 4)), jnp.array([2]))[0])  # uniform: log 4
    1.386...
  """
  _check_logits_labels(logits, labels)
  logp = log_stablemax(logits, compute_dtype=compute_dtype)
  return -jnp.take_along_axis(logp, jnp.asarray(labels)[..., None], axis=-1)[..., 0]


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, *,
                          compute_dtype: Optional[jnp.dtype] = None) -> jax.Array:
  """Softmax cross-entropy with the log-softmax computed in `compute_dtype`, the paper's baseline.

  The official code computes log_softmax in float16/32/64 (`--softmax_precision`, default 32); this lets the
  experiment reproduce the float64 baseline ("float64 delays Softmax Collapse", Prieto et al. 2025, Sec. 3).

  Args:
    logits: [..., K]; labels: [...] integer.
    compute_dtype: dtype of log_softmax (default: the logits' dtype).

  Returns:
    Per-example loss [...], in `compute_dtype`.
  """
  _check_logits_labels(logits, labels)
  z = jnp.asarray(logits)
  if compute_dtype is not None:
    z = z.astype(compute_dtype)
  logp = jax.nn.log_softmax(z, axis=-1)
  return -jnp.take_along_axis(logp, jnp.asarray(labels)[..., None], axis=-1)[..., 0]


def softmax_collapse_fraction(logits: jax.Array, *, compute_dtype: Optional[jnp.dtype] = None) -> jax.Array:
  """Share of samples in Softmax Collapse, measured as the official code's logger does (Prieto et al. 2025, Sec. 3).

  With z' = z - max_j z_j and S = sum_j exp(z'_j) in `compute_dtype` (default float32 as in the code), a sample is
  collapsed when S == 1 exactly: every non-maximal exponential underflowed or was absorbed in the sum, so the
  softmax is exactly one-hot and the correct-class gradient of softmax CE is exactly zero.

  Args:
    logits: [N, K] (or [..., K]; the mean is over all leading axes).
    compute_dtype: floating dtype of the computation (default float32).

  Returns:
    Scalar in [0, 1].
  """
  if jnp.ndim(logits) < 1:
    raise ValueError(f"logits must have a class axis, got {jnp.shape(logits)=}")
  z = jnp.asarray(logits).astype(compute_dtype or jnp.float32)
  zp = z - jnp.max(z, axis=-1, keepdims=True)
  s = jnp.sum(jnp.exp(zp), axis=-1)
  return jnp.mean((s == 1).astype(jnp.float32))


def zero_loss_fraction(per_example_loss: jax.Array) -> jax.Array:
  """Share of per-example losses exactly equal to 0 (the official logger's `zero_terms`). Scalar."""
  return jnp.mean((jnp.asarray(per_example_loss) == 0).astype(jnp.float32))


__all__ = [
    "log_stablemax",
    "softmax_collapse_fraction",
    "softmax_cross_entropy",
    "stablemax",
    "stablemax_cross_entropy",
    "stablemax_s",
    "zero_loss_fraction",
]
