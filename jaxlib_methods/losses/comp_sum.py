"""Comp-sum losses: the family of cross-entropy-like multi-class losses, and the smooth adversarial variant.

Paper [164]: Anqi Mao, Mehryar Mohri, Yutao Zhong, "Cross-Entropy Loss Functions: Theoretical Analysis and
Applications", ICML 2023, arXiv:2304.07288 (comp-sum losses; smooth adversarial comp-sum losses).

A comp-sum loss composes a non-decreasing Phi with the sum of exponential score differences:

    l(h, x, y) = Phi( u ),    u = sum_{y' != y} exp(h(x, y') - h(x, y)),    so 1 + u = 1 / softmax(h)_y.

The paper's parametric family Phi^tau (tau >= 0):

    Phi^tau(u) = log(1 + u)                              tau = 1   (logistic loss = softmax cross-entropy)
               = ((1 + u)^(1 - tau) - 1) / (1 - tau)     tau != 1
    tau = 0: u (sum-exponential loss);  tau = 1 + q in (1, 2]: (1 - p_y^q) / q (generalised cross-entropy, GCE);
    tau = 2: 1 - p_y (mean absolute error, MAE).

With L = -log p_y = log(1 + u) (computed stably as logsumexp(h) - h_y), Phi^tau = expm1((1 - tau) L) / (1 - tau).
For tau < 1 the loss grows like exp((1 - tau) L): the sum-exponential loss is inf in floating point once
L >~ 88 (float32), whatever the implementation; for tau >= 1 it is bounded by 1 / (tau - 1) and always finite.

Smooth adversarial comp-sum loss (the paper's adversarial-robustness section): the comp-sum loss at the clean
point plus nu times the 2-norm of the change of the score vector under the adversarial perturbation x' (found by
the caller, e.g. PGD):

    l_adv(h, x, y) = Phi^tau-comp-sum(h(x), y) + nu * || h(x') - h(x) ||_2.

NOTE: the choice of the 2-norm of the score difference is our reading of the paper (a TRADES-like smoothness
term); it was not verified against the paper's equation.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods.validation import check_in_interval, check_nonnegative, is_concrete_number

Phi = Literal["logistic", "sum_exponential", "gce", "mae"]


def comp_sum_tau(phi: Phi, q: float = 0.7) -> float:
  """The tau of the Phi^tau family for a named Phi: logistic 1, sum_exponential 0, gce 1 + q, mae 2 (Mao, Mohri,
  Zhong 2023, arXiv:2304.07288, comp-sum losses). Returns a Python float."""
  if phi == "logistic":
    return 1.0
  if phi == "sum_exponential":
    return 0.0
  if phi == "gce":
    if not is_concrete_number(q):
      raise ValueError(f"q must be a concrete number (it selects the loss; close over it, do not trace it), got {q=}")
    check_in_interval(q, "q", 0.0, 1.0, closed_low=False)
    return 1.0 + float(q)
  if phi == "mae":
    return 2.0
  raise ValueError(f"phi must be one of 'logistic', 'sum_exponential', 'gce', 'mae', got {phi=}")


def comp_sum_loss(logits: jax.Array, labels: jax.Array, phi: Phi = "logistic", *, q: float = 0.7,
                  tau: Optional[float] = None, axis: int = -1, where: Optional[jax.Array] = None) -> jax.Array:
  """Comp-sum loss Phi(sum_{y' != y} exp(h_y' - h_y)), per example (Mao, Mohri, Zhong 2023, arXiv:2304.07288).

  Args:
    logits: [..., K] scores h(x, .) (class axis `axis`; float16/bfloat16 computed in float32, result cast back).
    labels: [...] integer class indices in [0, K) (out of range: ValueError eagerly, NaN rows under jit).
    phi: 'logistic' (tau = 1, softmax CE), 'sum_exponential' (tau = 0), 'gce' (tau = 1 + q), 'mae' (tau = 2).
    q: GCE exponent in (0, 1] (Zhang & Sabuncu 2018 default 0.7), used when phi == 'gce'. Concrete (static).
    tau: if given, overrides `phi` and uses Phi^tau directly (tau >= 0). Concrete (static).
    axis: the class axis of `logits`.
    where: optional bool [...]: examples to include (excluded rows give 0 and are not checked).

  Returns:
    Per-example loss [...], in the logits' dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> float(comp_sum_loss(jnp.zeros((1, 4)), jnp.array([1]), "mae")[0])  # 1 - 1/4
    0.75
  """
  c = validation.classification_inputs(logits, labels, axis=axis, where=where)
  if tau is None:
    tau = comp_sum_tau(phi, q)
  else:
    if not is_concrete_number(tau):
      raise ValueError(f"tau must be a concrete number (close over it, do not trace it), got {tau=}")
    check_nonnegative(tau, "tau")
  h = c.logits
  h_y = jnp.take_along_axis(h, c.labels[..., None], axis=-1)[..., 0]
  ce = jax.nn.logsumexp(h, axis=-1) - h_y  # = log(1 + u) >= 0
  if float(tau) == 1.0:
    out = ce
  else:
    a = 1.0 - float(tau)
    out = jnp.expm1(a * ce) / a
  return validation.finish_per_example(out, c.valid, c.where, c.dtype)


def smooth_adv_comp_sum_loss(logits: jax.Array, adv_logits: jax.Array, labels: jax.Array,
                             phi: Phi = "logistic", *, nu: Any = 1.0, q: float = 0.7,
                             tau: Optional[float] = None, axis: int = -1,
                             where: Optional[jax.Array] = None) -> jax.Array:
  """Smooth adversarial comp-sum loss: comp_sum(h(x), y) + nu * ||h(x') - h(x)||_2 (Mao et al. 2023).

  The inner maximisation over the perturbation x' is the caller's (e.g. PGD on this same loss); pass the scores
  at the found x' as `adv_logits`. See the module note on the norm.

  Args:
    logits: [..., K] scores at the clean input; adv_logits: [..., K] scores at the perturbed input.
    labels: [...] integer.
    phi, q, tau, axis, where: as in `comp_sum_loss`.
    nu: weight of the smoothness term, >= 0.

  Returns:
    Per-example loss [...], in the logits' dtype.
  """
  adv = validation.check_floating(adv_logits, "adv_logits")
  if adv.shape != jnp.shape(logits):
    raise ValueError(f"adv_logits must have the shape of logits, got {adv.shape=}, {jnp.shape(logits)=}")
  check_nonnegative(nu, "nu")
  base = comp_sum_loss(logits, labels, phi, q=q, tau=tau, axis=axis, where=where)
  dtype = base.dtype
  ct = validation.compute_dtype_for(dtype)
  ax = validation.check_axis(axis, jnp.ndim(logits))
  d = jnp.moveaxis(adv.astype(ct) - jnp.asarray(logits).astype(ct), ax, -1)
  if where is not None:
    d = jnp.where(where[..., None], d, jnp.zeros((), d.dtype))
  # Safe 2-norm: gradient 0 (not NaN) at d = 0.
  sq = jnp.sum(d * d, axis=-1)
  safe = jnp.where(sq > 0, sq, 1.0)
  norm = jnp.where(sq > 0, jnp.sqrt(safe), jnp.where(jnp.isnan(sq), sq, 0.0))
  return (base.astype(ct) + nu * norm).astype(dtype)


__all__ = ["comp_sum_loss", "comp_sum_tau", "smooth_adv_comp_sum_loss"]
