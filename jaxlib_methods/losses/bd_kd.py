"""BD-KD: balancing forward and reverse KL divergences in online knowledge distillation.

Paper [76]: Ibtihel Amara, Nazanin Sepahvand, Brett H. Meyer, Warren J. Gross, James J. Clark, "BD-KD: Balancing
the Divergences for Online Knowledge Distillation", 2022 (v2 2024), arXiv:2212.12965.

In online KD (deep mutual learning) a teacher and a student train together, each distilling from the other's
temperature-softened outputs p^T = softmax(logits / T). BD-KD's student loss keeps the cross-entropy on the labels
and replaces the single forward KL by a sample-wise weighted sum of the forward and the reverse KL:

    L_s = CE(p_s, y) + T^2 * ( w_f * KL(p_t^T || p_s^T) + w_r * KL(p_s^T || p_t^T) ),

with the teacher's outputs held constant (stop-gradient) in the student's loss, and symmetrically for the teacher.
The forward KL is mode-covering (spreads the student's mass, lowering its confidence); the reverse KL is
mode-seeking (sharpens it); balancing them per sample controls the student's confidence and hence calibration.

What is exact here: the weighted objective for any given weights (scalars or one pair per example); w_r = 0,
w_f = 1 is the classic online (DML-style) KD student loss. NOTE (unverified): the paper's rule for choosing the
per-sample weights could not be retrieved with the available tools. `bd_kd_entropy_weights` implements the rule
as we understand it (give the larger weight to the reverse KL when the student is less confident than the teacher,
i.e. H(p_s) > H(p_t), and to the forward KL otherwise); check it against the paper before relying on it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.losses.ldr import _check_logits_labels, _compute_dtype
from jaxlib_methods.validation import check_nonnegative, check_positive


def _log_softmax_t(logits: jax.Array, temperature: Any) -> jax.Array:
  return jax.nn.log_softmax(logits / temperature, axis=-1)


def kl_divergence_from_logits(p_logits: jax.Array, q_logits: jax.Array, *, temperature: Any = 1.0) -> jax.Array:
  """KL(p || q) with p = softmax(p_logits / T), q = softmax(q_logits / T). [..., K], [..., K] -> [...]."""
  check_positive(temperature, "temperature")
  if jnp.shape(p_logits) != jnp.shape(q_logits):
    raise ValueError(f"p_logits and q_logits must have the same shape, got {jnp.shape(p_logits)=}, "
                     f"{jnp.shape(q_logits)=}")
  ct = _compute_dtype(jnp.result_type(p_logits, q_logits))
  logp = _log_softmax_t(jnp.asarray(p_logits).astype(ct), temperature)
  logq = _log_softmax_t(jnp.asarray(q_logits).astype(ct), temperature)
  return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)


def entropy_from_logits(logits: jax.Array, *, temperature: Any = 1.0) -> jax.Array:
  """Shannon entropy of softmax(logits / T), [..., K] -> [...] (float32 or wider)."""
  check_positive(temperature, "temperature")
  logp = _log_softmax_t(jnp.asarray(logits).astype(_compute_dtype(jnp.asarray(logits).dtype)), temperature)
  return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def bd_kd_entropy_weights(student_logits: jax.Array, teacher_logits: jax.Array, *, temperature: Any = 1.0,
                          high: Any = 1.0, low: Any = 0.0) -> tuple[jax.Array, jax.Array]:
  """Per-sample (w_f, w_r): reverse-KL-heavy where H(p_s^T) > H(p_t^T), forward-KL-heavy elsewhere. UNVERIFIED.

  See the module note: this is our reading of BD-KD's balancing (Amara et al. 2022, arXiv:2212.12965), not a
  transcription of the paper's equation.

  Args:
    student_logits, teacher_logits: [B, K].
    temperature: T > 0.
    high, low: the two weight values (>= 0).

  Returns:
    (w_f, w_r), each [B] float32, no gradient.
  """
  check_nonnegative(high, "high")
  check_nonnegative(low, "low")
  s = jax.lax.stop_gradient(jnp.asarray(student_logits))
  t = jax.lax.stop_gradient(jnp.asarray(teacher_logits))
  less_confident = entropy_from_logits(s, temperature=temperature) > entropy_from_logits(t, temperature=temperature)
  w_f = jnp.where(less_confident, low, high).astype(jnp.float32)
  w_r = jnp.where(less_confident, high, low).astype(jnp.float32)
  return w_f, w_r


def bd_kd_student_loss(student_logits: jax.Array, teacher_logits: jax.Array, labels: jax.Array, *,
                       temperature: Any = 1.0, forward_weight: Any = 1.0, reverse_weight: Any = 1.0) -> jax.Array:
  """BD-KD student loss per example: CE + T^2 (w_f KL(p_t||p_s) + w_r KL(p_s||p_t)) (Amara et al. 2022).

  The teacher's logits are treated as constants (stop-gradient), as in online KD.

  Args:
    student_logits: [B, K]; teacher_logits: [B, K]; labels: [B] integer in [0, K).
    temperature: T > 0 for the KL terms (the CE uses T = 1).
    forward_weight, reverse_weight: w_f, w_r >= 0, scalars or [B] (e.g. from `bd_kd_entropy_weights`).

  Returns:
    [B] in the student logits' dtype. With w_r = 0, w_f = 1 it is the classic online-KD student loss.
  """
  _check_logits_labels(student_logits, labels, "student_logits")
  if jnp.shape(teacher_logits) != jnp.shape(student_logits):
    raise ValueError(f"teacher_logits must have the shape of student_logits, got {jnp.shape(teacher_logits)=}, "
                     f"{jnp.shape(student_logits)=}")
  check_positive(temperature, "temperature")
  for name, w in (("forward_weight", forward_weight), ("reverse_weight", reverse_weight)):
    if jnp.ndim(w) not in (0, 1) or (jnp.ndim(w) == 1 and jnp.shape(w)[0] != jnp.shape(student_logits)[0]):
      raise ValueError(f"{name} must be a scalar or have shape [B], got {jnp.shape(w)=}")
    if not isinstance(w, jax.core.Tracer) and not bool(np.all(np.asarray(w) >= 0)):
      raise ValueError(f"{name} must be >= 0, got min={np.min(np.asarray(w))}")
  dtype = jnp.asarray(student_logits).dtype
  ct = _compute_dtype(dtype)
  s = jnp.asarray(student_logits).astype(ct)
  t = jax.lax.stop_gradient(jnp.asarray(teacher_logits)).astype(ct)
  logp = jax.nn.log_softmax(s, axis=-1)
  ce = -jnp.take_along_axis(logp, jnp.asarray(labels)[:, None], axis=-1)[:, 0]
  fkl = kl_divergence_from_logits(t, s, temperature=temperature)
  rkl = kl_divergence_from_logits(s, t, temperature=temperature)
  out = ce + temperature ** 2 * (forward_weight * fkl + reverse_weight * rkl)
  return out.astype(dtype)


def online_kd_teacher_loss(teacher_logits: jax.Array, student_logits: jax.Array, labels: jax.Array, *,
                           temperature: Any = 1.0) -> jax.Array:
  """The teacher's online-KD loss per example: CE(p_t, y) + T^2 KL(p_s^T || p_t^T), student held constant.

  This is the deep-mutual-learning teacher loss that BD-KD keeps for the teacher. Shapes as `bd_kd_student_loss`.
  """
  _check_logits_labels(teacher_logits, labels, "teacher_logits")
  if jnp.shape(teacher_logits) != jnp.shape(student_logits):
    raise ValueError(f"student_logits must have the shape of teacher_logits, got {jnp.shape(student_logits)=}, "
                     f"{jnp.shape(teacher_logits)=}")
  check_positive(temperature, "temperature")
  dtype = jnp.asarray(teacher_logits).dtype
  ct = _compute_dtype(dtype)
  t = jnp.asarray(teacher_logits).astype(ct)
  s = jax.lax.stop_gradient(jnp.asarray(student_logits)).astype(ct)
  logp = jax.nn.log_softmax(t, axis=-1)
  ce = -jnp.take_along_axis(logp, jnp.asarray(labels)[:, None], axis=-1)[:, 0]
  return (ce + temperature ** 2 * kl_divergence_from_logits(s, t, temperature=temperature)).astype(dtype)


__all__ = [
    "bd_kd_entropy_weights",
    "bd_kd_student_loss",
    "entropy_from_logits",
    "kl_divergence_from_logits",
    "online_kd_teacher_loss",
]
