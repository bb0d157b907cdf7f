"""EnsLoss: stochastic calibrated loss ensembles, via random loss *derivatives*.

Paper [75]: Ben Dai, "EnsLoss: Stochastic Calibrated Loss Ensembles for Preventing Overfitting in Classification",
2024, arXiv:2409.00908. Official code: github.com/statmlben/ensLoss (`losses.py`, class `ensLoss`).

For binary classification with margins s_i = y_i f(x_i) (y in {-1, +1}), SGD only sees a loss phi through its
derivative phi'(s_i). A convex, classification-calibrated (CC) loss has a derivative that is non-decreasing with
phi'(0) < 0. EnsLoss draws a fresh random derivative satisfying these conditions at every step ("doubly
stochastic gradients": random batch and random calibrated loss) and never forms the loss itself.

Sampling (as in the official code):
  1. draw B standard normals e_i and map them through the inverse Box-Cox transform with parameter lam
     (lam = 0: exp(e), a log-normal; lam != 0: max(1 + lam e, 0)^(1/lam)); set g = -BC^{-1}(e) < 0;
  2. sort g ascending and assign it to the margins in ascending order, so g is a non-decreasing function of s
     on the batch (convexity);
  3. clip g >= -1;
  4. superlinear tail: for s_i > 1 divide g_i by s_i;
  5. subtract 1e-6 so every derivative is strictly negative (phi'(0) < 0, calibration).

`ensloss` returns the per-example surrogate g_i * s_i whose gradient with respect to s_i is exactly g_i (a
`jax.custom_vjp`, so it plugs into `jax.grad` of any model producing the margins). Its value is a linearisation
and carries no meaning beyond its gradient.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods.validation import is_concrete_number


def ensloss_margins(logits: jax.Array, labels: jax.Array, *, where: Optional[jax.Array] = None) -> jax.Array:
  """Binary margins s = y * f with y = 2 * labels - 1 for labels in {0, 1} (Dai 2024, arXiv:2409.00908).

  Args:
    logits: [B] floating scores f(x). labels: [B] integer or bool in {0, 1} (anything else: ValueError eagerly,
      NaN margins under jit; float labels such as 0.5 are a TypeError).
    where: optional bool [B]: examples to include (the others give margin 0 and are not checked).

  Returns:
    [B] margins in the logits' dtype (float32 or wider).
  """
  f = validation.check_floating(logits, "logits")
  dtype = labels.dtype if hasattr(labels, "dtype") else jnp.result_type(labels)
  if not (jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_):
    raise TypeError(f"labels must be integer or bool class labels in {{0, 1}}, got "
                    f"labels.dtype={jnp.dtype(dtype).name}")
  labels = jnp.asarray(labels)
  if f.shape != labels.shape or f.ndim != 1:
    raise ValueError(f"logits and labels must both have shape [B], got logits.shape={f.shape}, "
                     f"labels.shape={labels.shape}")
  where = validation.check_where(where, f.shape)
  lab = labels.astype(jnp.int32)
  # checked in the labels' own dtype: an int32 cast first would wrap e.g. 2**32 + 1 (int64 under x64) to a valid 1
  binary = (labels == 0) | (labels == 1)
  valid = validation.check_values(binary, labels, "labels", "binary labels in {0, 1}", where)
  y = 2.0 * lab.astype(jnp.float32) - 1.0
  s = y.astype(jnp.promote_types(f.dtype, jnp.float32)) * f
  return validation.finish_per_example(s, valid, where, s.dtype)


def _inverse_box_cox(e: jax.Array, lam: float) -> jax.Array:
  if lam == 0.0:
    return jnp.exp(e)
  return jnp.maximum(1.0 + lam * e, 0.0) ** (1.0 / lam)


def sample_calibrated_derivatives(key: jax.Array, margins: jax.Array, *, box_cox_lambda: float = 0.0,
                                  lower: float = -1.0, eps: float = 1e-6) -> jax.Array:
  """A random CC loss-derivative evaluated at the batch margins (Dai 2024, arXiv:2409.00908; official code).

  Args:
    key: PRNG key (fold the step in to get a fresh loss every step).
    margins: [B] margins y_i f(x_i).
    box_cox_lambda: lam of the inverse Box-Cox transform of the normal draws (official default 0: log-normal).
    lower: clip value, derivatives >= lower (official -1).
    eps: subtracted at the end so every derivative is < 0 (official 1e-6).

  Returns:
    [B] derivatives g_i = phi'(s_i): g is non-decreasing in s over the batch and g < 0; NaN where s is NaN (the
    ranks of the other margins are then unreliable too). No gradient.
  """
  validation.check_floating(margins, "margins")
  if jnp.ndim(margins) != 1:
    raise ValueError(f"margins must have shape [B], got margins.shape={jnp.shape(margins)}")
  if not is_concrete_number(box_cox_lambda):
    raise ValueError(f"box_cox_lambda must be a concrete number, got {box_cox_lambda=}")
  if not (is_concrete_number(lower) and float(lower) < 0):
    raise ValueError(f"lower must be a number < 0, got {lower=}")
  if not (is_concrete_number(eps) and float(eps) > 0):
    raise ValueError(f"eps must be a number > 0, got {eps=}")
  s = jax.lax.stop_gradient(jnp.asarray(margins)).astype(jnp.float32)
  b = s.shape[0]
  e = jax.random.normal(key, (b,), jnp.float32)
  g_sorted = jnp.sort(-_inverse_box_cox(e, float(box_cox_lambda)))
  order = jnp.argsort(s)
  g = jnp.zeros((b,), jnp.float32).at[order].set(g_sorted)
  g = jnp.maximum(g, lower)
  g = jnp.where(s > 1.0, g / jnp.where(s > 1.0, s, 1.0), g)
  return jnp.where(jnp.isnan(s), s, g - eps)  # a NaN margin would otherwise get a finite derivative


@jax.custom_vjp
def _linearised(s: jax.Array, g: jax.Array) -> jax.Array:
  return g * s


def _linearised_fwd(s, g):
  return g * s, g


def _linearised_bwd(g, ct):
  return (ct * g).astype(ct.dtype), jnp.zeros_like(g)


_linearised.defvjp(_linearised_fwd, _linearised_bwd)


def ensloss(margins: jax.Array, key: jax.Array, *, box_cox_lambda: float = 0.0) -> jax.Array:
  """EnsLoss per-example surrogate: value g_i * s_i, gradient d/ds_i = g_i, g a random CC derivative (Dai 2024,
  arXiv:2409.00908).

  Args:
    margins: [B] margins s_i = y_i f(x_i) (see `ensloss_margins`), floating.
    key: PRNG key; a new key per step gives a new random calibrated loss per step.
    box_cox_lambda: see `sample_calibrated_derivatives`.

  Returns:
    [B] in the margins' dtype. `jnp.mean(ensloss(...))` has gradient mean_i g_i * ds_i/dtheta, as the official
    code's `(g.detach() * s).mean()`.
  """
  s = validation.check_floating(margins, "margins")
  g = sample_calibrated_derivatives(key, s, box_cox_lambda=box_cox_lambda)
  return _linearised(s, g.astype(s.dtype))


__all__ = ["ensloss", "ensloss_margins", "sample_calibrated_derivatives"]
