"""Test-time adaptation losses: the robust mean teacher's symmetric cross-entropy consistency.

Paper [44]: Mario Döbler, Robert A. Marsden, Bin Yang, "Robust Mean Teacher for Continual and Gradual Test-Time
Adaptation" (RMT), CVPR 2023, arXiv:2211.13081. Official code: https://github.com/mariodoebler/test-time-adaptation
(`symmetric_cross_entropy` in methods/rmt.py).

RMT adapts a student on unlabelled test batches towards an exponential-moving-average teacher with the symmetric
cross-entropy (SCE) consistency loss (the paper's SCE equation, Sec. 3.1)

    L_SCE(x) = -1/2 sum_c p_t,c log p_s,c  -  1/2 sum_c p_s,c log p_t,c,     p = softmax(logits),

i.e. the mean of the cross-entropy of the student against the teacher's soft pseudo-label and the reverse. Its
gradient with respect to the student logits z is (checked in tests/losses/test_adaptation.py)

    dL/dz = 1/2 (p_s - p_t) - 1/2 p_s * (log p_t - <p_s, log p_t>),

where the first term is the usual CE gradient and the second, bounded by the teacher's log-probabilities weighted by
the student's own probabilities, is what makes SCE less dominated by wrong, low-confidence pseudo-labels than CE
(the paper's argument). The teacher's logits get no gradient (its weights are an EMA of the student's, not trained:
`optax.incremental_update(student_params, teacher_params, step_size=1 - momentum)` is the mean-teacher update).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def symmetric_cross_entropy(student_logits: jax.Array, teacher_logits: jax.Array, *, axis: int = -1,
                            where: Optional[jax.Array] = None) -> jax.Array:
  """RMT's symmetric cross-entropy -1/2 [sum p_t log p_s + sum p_s log p_t] per example (teacher held constant).

  Döbler, Marsden, Yang, "Robust Mean Teacher for Continual and Gradual Test-Time Adaptation", CVPR 2023,
  arXiv:2211.13081, Sec. 3.1 (the SCE consistency loss). With student == teacher it is the entropy H(p).

  Args:
    student_logits: [..., K] floating (class axis `axis`; usually [B, K]).
    teacher_logits: same shape; the mean teacher's logits, treated as constants (stop-gradient).
    axis: the class axis (an int).
    where: optional bool [...] (the logits' shape without the class axis): examples to include; the others give 0
      loss and 0 gradient, whatever their logits hold.

  Returns:
    [...] in the student logits' dtype (half precision is computed in float32 and cast back); NaN where a logit
    is NaN.
  """
  s = validation.check_floating(student_logits, "student_logits")
  t = validation.check_floating(teacher_logits, "teacher_logits")
  if s.ndim < 1:
    raise ValueError(f"student_logits must have a class axis (rank >= 1), got student_logits.shape={s.shape}")
  if t.shape != s.shape:
    raise ValueError(f"teacher_logits must have the shape of student_logits, got teacher_logits.shape={t.shape}, "
                     f"student_logits.shape={s.shape}")
  ax = validation.check_axis(axis, s.ndim)
  if s.shape[ax] < 1:
    raise ValueError(f"student_logits needs at least one class along axis {axis}, got shape {s.shape}")
  out_shape = s.shape[:ax] + s.shape[ax + 1:]
  w = validation.check_where(where, out_shape)
  ct = validation.compute_dtype_for(jnp.result_type(s, t))
  zs = jnp.moveaxis(s, ax, -1).astype(ct)
  zt = jax.lax.stop_gradient(jnp.moveaxis(t, ax, -1).astype(ct))
  if w is not None:  # excluded rows: zero logits, so garbage (even NaN) reaches neither the value nor the gradient
    zs = jnp.where(w[..., None], zs, jnp.zeros((), ct))
    zt = jnp.where(w[..., None], zt, jnp.zeros((), ct))
  log_ps, log_pt = jax.nn.log_softmax(zs, axis=-1), jax.nn.log_softmax(zt, axis=-1)
  loss = -0.5 * (jnp.sum(jnp.exp(log_pt) * log_ps, axis=-1) + jnp.sum(jnp.exp(log_ps) * log_pt, axis=-1))
  if w is not None:
    loss = jnp.where(w, loss, jnp.zeros((), ct))
  return loss.astype(s.dtype) if jnp.finfo(s.dtype).bits < 32 else loss
