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

from typing import Any, Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods.validation import check_nonnegative, check_positive


def _log_softmax_t(logits: jax.Array, temperature: Any) -> jax.Array:
  return jax.nn.log_softmax(logits / temperature, axis=-1)


def _class_last(x: Any, name: str, axis: Any) -> jax.Array:
  x = validation.check_floating(x, name)
  if x.ndim < 1:
    raise ValueError(f"{name} must have a class axis (rank >= 1), got {name}.shape={x.shape}")
  if x.shape[validation.check_axis(axis, x.ndim)] < 1:
    raise ValueError(f"{name} needs at least one class along axis {axis}, got {name}.shape={x.shape}")
  return jnp.moveaxis(x, validation.check_axis(axis, x.ndim), -1)


def kl_divergence_from_logits(p_logits: jax.Array, q_logits: jax.Array, *, temperature: Any = 1.0,
                              axis: int = -1) -> jax.Array:
  """KL(p || q) with p = softmax(p_logits / T), q = softmax(q_logits / T) (Amara et al. 2022, arXiv:2212.12965).

  Args:
    p_logits: [..., K] floating (class axis `axis`).
    q_logits: [..., K] floating, the same shape as `p_logits`.
    temperature: T > 0.
    axis: the class axis.

  Returns:
    [...] float32 or wider; NaN where a logit is NaN. A class at -inf in p_logits adds 0 (0 log 0 = 0); one at -inf in
    q_logits only gives +inf where p puts mass on it.
  """
  check_positive(temperature, "temperature")
  p = _class_last(p_logits, "p_logits", axis)
  q = _class_last(q_logits, "q_logits", axis)
  if p.shape != q.shape:
    raise ValueError(f"p_logits and q_logits must have the same shape, got p_logits.shape={jnp.shape(p_logits)}, "
                     f"q_logits.shape={jnp.shape(q_logits)}")
  ct = validation.compute_dtype_for(jnp.result_type(p, q))
  logp = _log_softmax_t(p.astype(ct), temperature)
  logq = _log_softmax_t(q.astype(ct), temperature)
  # 0 log(0 / q) = 0: a class masked to -inf in p (and in q) adds 0, not 0 * (-inf + inf) = NaN, to value and gradient.
  diff = jnp.where(jnp.isneginf(logp), 0.0, logp - logq)
  return jnp.sum(jnp.exp(logp) * diff, axis=-1)


def entropy_from_logits(logits: jax.Array, *, temperature: Any = 1.0, axis: int = -1) -> jax.Array:
  """Shannon entropy of softmax(logits / T) (Amara et al. 2022, arXiv:2212.12965): [..., K] -> [...] (float32 or
  wider; NaN where a logit is NaN)."""
  check_positive(temperature, "temperature")
  z = _class_last(logits, "logits", axis)
  logp = _log_softmax_t(z.astype(validation.compute_dtype_for(z.dtype)), temperature)
  return -jnp.sum(jnp.exp(logp) * jnp.where(jnp.isneginf(logp), 0.0, logp), axis=-1)  # 0 log 0 = 0 (-inf logits)


def bd_kd_entropy_weights(student_logits: jax.Array, teacher_logits: jax.Array, *, temperature: Any = 1.0,
                          high: Any = 1.0, low: Any = 0.0, axis: int = -1) -> tuple[jax.Array, jax.Array]:
  """Per-sample (w_f, w_r): reverse-KL-heavy where H(p_s^T) > H(p_t^T), forward-KL-heavy elsewhere. UNVERIFIED.

  See the module note: this is our reading of BD-KD's balancing (Amara et al. 2022, arXiv:2212.12965), not a
  transcription of the paper's equation.

  Args:
    student_logits, teacher_logits: [B, K] (class axis `axis`).
    temperature: T > 0.
    high, low: the two weight values (>= 0).

  Returns:
    (w_f, w_r), each [B] float32, no gradient; NaN rows where a logit is NaN.
  """
  check_nonnegative(high, "high")
  check_nonnegative(low, "low")
  s = jax.lax.stop_gradient(_class_last(student_logits, "student_logits", axis))
  t = jax.lax.stop_gradient(_class_last(teacher_logits, "teacher_logits", axis))
  if s.shape != t.shape:
    raise ValueError(f"teacher_logits must have the shape of student_logits, got {jnp.shape(teacher_logits)=}, "
                     f"{jnp.shape(student_logits)=}")
  h_s = entropy_from_logits(s, temperature=temperature)
  h_t = entropy_from_logits(t, temperature=temperature)
  less_confident = h_s > h_t
  nan = jnp.isnan(h_s) | jnp.isnan(h_t)
  w_f = jnp.where(nan, jnp.nan, jnp.where(less_confident, low, high)).astype(jnp.float32)
  w_r = jnp.where(nan, jnp.nan, jnp.where(less_confident, high, low)).astype(jnp.float32)
  return w_f, w_r


def _kd_prep(own_logits, other_logits, labels, own_name, other_name, axis, where, temperature):
  c = validation.classification_inputs(own_logits, labels, axis=axis, where=where, logits_name=own_name)
  other = validation.check_floating(other_logits, other_name)
  if other.shape != jnp.shape(own_logits):
    raise ValueError(f"{other_name} must have the shape of {own_name}, got {other_name}.shape={other.shape}, "
                     f"{own_name}.shape={jnp.shape(own_logits)}")
  check_positive(temperature, "temperature")
  o = jax.lax.stop_gradient(jnp.moveaxis(other, validation.check_axis(axis, other.ndim), -1)).astype(c.logits.dtype)
  if c.where is not None:
    o = jnp.where(c.where[..., None], o, jnp.zeros((), o.dtype))
  ce = -jnp.take_along_axis(jax.nn.log_softmax(c.logits, axis=-1), c.labels[..., None], axis=-1)[..., 0]
  return c, o, ce


def bd_kd_student_loss(student_logits: jax.Array, teacher_logits: jax.Array, labels: jax.Array, *,
                       temperature: Any = 1.0, forward_weight: Any = 1.0, reverse_weight: Any = 1.0,
                       axis: int = -1, where: Optional[jax.Array] = None) -> jax.Array:
  """BD-KD student loss per example: CE + T^2 (w_f KL(p_t||p_s) + w_r KL(p_s||p_t)) (Amara et al. 2022,
  arXiv:2212.12965).

  The teacher's logits are treated as constants (stop-gradient), as in online KD.

  Args:
    student_logits: [..., K] floating (class axis `axis`; usually [B, K]); teacher_logits: same shape;
      labels: [...] integer in [0, K) (out of range: ValueError eagerly, NaN rows under jit).
    temperature: T > 0 for the KL terms (the CE uses T = 1).
    forward_weight, reverse_weight: w_f, w_r >= 0, scalars or [...] (e.g. from `bd_kd_entropy_weights`).
    axis: the class axis. where: optional bool [...]: examples to include (the others give 0, unchecked).

  Returns:
    [...] in the student logits' dtype. With w_r = 0, w_f = 1 it is the classic online-KD student loss.
  """
  c, t, ce = _kd_prep(student_logits, teacher_logits, labels, "student_logits", "teacher_logits", axis, where,
                      temperature)
  valid = [c.valid]
  weights = []
  for name, w in (("forward_weight", forward_weight), ("reverse_weight", reverse_weight)):
    valid.append(validation.check_positive_values(w, name, c.labels.shape, allow_zero=True, where=c.where))
    weights.append(jnp.asarray(w, c.logits.dtype))
  fkl = kl_divergence_from_logits(t, c.logits, temperature=temperature)
  rkl = kl_divergence_from_logits(c.logits, t, temperature=temperature)
  out = ce + temperature ** 2 * (weights[0] * fkl + weights[1] * rkl)
  return validation.finish_per_example(out, validation.combine_valid(*valid), c.where, c.dtype)


def online_kd_teacher_loss(teacher_logits: jax.Array, student_logits: jax.Array, labels: jax.Array, *,
                           temperature: Any = 1.0, axis: int = -1, where: Optional[jax.Array] = None) -> jax.Array:
  """The teacher's online-KD loss per example: CE(p_t, y) + T^2 KL(p_s^T || p_t^T), student held constant (Amara et
  al. 2022, arXiv:2212.12965; deep mutual learning).

  This is the deep-mutual-learning teacher loss that BD-KD keeps for the teacher. Shapes, checks, `axis` and
  `where` as `bd_kd_student_loss`; the output is in the teacher logits' dtype.
  """
  c, s, ce = _kd_prep(teacher_logits, student_logits, labels, "teacher_logits", "student_logits", axis, where,
                      temperature)
  out = ce + temperature ** 2 * kl_divergence_from_logits(s, c.logits, temperature=temperature)
  return validation.finish_per_example(out, c.valid, c.where, c.dtype)


__all__ = [
    "bd_kd_entropy_weights",
    "bd_kd_student_loss",
    "entropy_from_logits",
    "kl_divergence_from_logits",
    "online_kd_teacher_loss",
]
