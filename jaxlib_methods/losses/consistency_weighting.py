"""AdaWAC: per-sample weights between the supervised loss and the augmentation-consistency regulariser.

Paper:
  [51] Yijun Dong, Yuege Xie, Rachel Ward, "Adaptively Weighted Data Augmentation Consistency Regularization for
       Robust Optimization under Concept Shift", ICML 2023, arXiv:2210.01891 (Sec. 3: the min-max objective and
       Algorithm 1, online mirror descent; official code gail-yxie/adawac `models.py`, `update_weights`).

The min-max problem: min over the model theta, max over one weight vector (beta_i, 1 - beta_i) on the 2-simplex per
sample i, of sum_i beta_i l_CE(theta; x_i) + (1 - beta_i) l_AC(theta; x_i). The max player's step is exponentiated
gradient (mirror ascent with the entropy mirror map); at the saddle point label-dense samples (large supervised loss)
go to the supervised loss and label-sparse ones to the consistency regulariser. The official code initialises every
beta_i at 1/2 and, per step, first updates the weights of the batch's samples, then trains theta on the objective
with the updated (detached) weights.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods.validation import check_nonnegative


def _check(beta: Any, sup_loss: Any, cons_loss: Any):
  beta = validation.check_floating(beta, "beta")
  sup_loss = validation.check_floating(sup_loss, "sup_loss")
  cons_loss = validation.check_floating(cons_loss, "cons_loss")
  if sup_loss.shape != cons_loss.shape:
    raise ValueError(f"sup_loss and cons_loss must share a shape (one value per sample), got sup_loss.shape="
                     f"{sup_loss.shape}, cons_loss.shape={cons_loss.shape}")
  if beta.shape != sup_loss.shape:
    raise ValueError(f"beta must have the losses' shape {sup_loss.shape} (one weight per sample), got "
                     f"beta.shape={beta.shape}")
  valid = validation.check_values(jnp.isfinite(beta) & (beta >= 0) & (beta <= 1), beta, "beta",
                                  "in [0, 1] (the supervised weight of a point on the 2-simplex)")
  return beta, sup_loss, cons_loss, valid


def adawac_objective(sup_loss: jax.Array, cons_loss: jax.Array, beta: jax.Array) -> jax.Array:
  """AdaWAC's per-sample objective of the model (min) player (Dong et al., "Adaptively Weighted Data Augmentation
  Consistency Regularization for Robust Optimization under Concept Shift", ICML 2023, arXiv:2210.01891, Eq. (3)):

    l_i = beta_i sup_loss_i + (1 - beta_i) cons_loss_i

  with the weights held fixed (no gradient reaches beta, as the official code detaches them).

  Args:
    sup_loss: [...] per-sample supervised loss (e.g. the pixel-mean cross-entropy).
    cons_loss: [...] per-sample augmentation-consistency loss (e.g. the distance between the features of two
      augmented views).
    beta: [...] the samples' supervised weights in [0, 1] (out of range: ValueError eagerly, NaN under jit).

  Returns:
    [...] per-sample objective (in the promoted dtype of the losses).
  """
  beta, sup_loss, cons_loss, valid = _check(beta, sup_loss, cons_loss)
  dtype = jnp.promote_types(sup_loss.dtype, cons_loss.dtype)
  b = jax.lax.stop_gradient(beta).astype(validation.compute_dtype_for(dtype))
  out = b * sup_loss.astype(b.dtype) + (1 - b) * cons_loss.astype(b.dtype)
  return validation.nan_where_invalid(out, valid).astype(dtype)


def adawac_weight_update(beta: jax.Array, sup_loss: jax.Array, cons_loss: jax.Array, *,
                         learning_rate: float) -> jax.Array:
  """AdaWAC's weight (max player) step: exponentiated-gradient ascent on each sample's 2-simplex (Dong et al.,
  "Adaptively Weighted Data Augmentation Consistency Regularization for Robust Optimization under Concept Shift",
  ICML 2023, arXiv:2210.01891, Algorithm 1; official `update_weights`):

    beta_i <- beta_i e^{eta sup_i} / (beta_i e^{eta sup_i} + (1 - beta_i) e^{eta cons_i})
            = sigmoid(logit(beta_i) + eta (sup_i - cons_i))

  computed in the second, overflow-free form. The losses are not differentiated. Repeated steps drive beta_i to 1
  when the supervised loss stays the larger one and to 0 when the consistency loss does.

  Args:
    beta: [...] current supervised weights in [0, 1] (start: 1/2).
    sup_loss: [...] per-sample supervised loss.
    cons_loss: [...] per-sample consistency loss.
    learning_rate: the step size eta >= 0 of the weights (official `lr_w`).

  Returns:
    [...] the updated weights in [0, 1] (beta's dtype); NaN where a loss is NaN or infinite.
  """
  beta, sup_loss, cons_loss, valid = _check(beta, sup_loss, cons_loss)
  check_nonnegative(learning_rate, "learning_rate")
  ct = jnp.promote_types(validation.compute_dtype_for(beta.dtype),
                         validation.compute_dtype_for(jnp.promote_types(sup_loss.dtype, cons_loss.dtype)))
  b = beta.astype(ct)
  gap = jax.lax.stop_gradient(sup_loss.astype(ct) - cons_loss.astype(ct))
  new = jax.nn.sigmoid(jnp.log(b) - jnp.log1p(-b) + learning_rate * gap)
  new = validation.nan_where_invalid(new, jnp.isfinite(gap))   # an infinite loss: NaN, as the official inf / inf
  return validation.nan_where_invalid(new, valid).astype(beta.dtype)
