"""A shallow prototype (RBF) classifier with probabilistic reasoning, its certified l2 radius, and a margin loss.

Sascha Saralajew, Ashish Rana, Thomas Villmann, Ammar Shaker, "A Robust Prototype-Based Network with Interpretable
RBF Classifier Foundations", 2024, arXiv:2412.15499. The shallow robust CBC (classification-by-components without
indefinite reasoning): components (prototypes) w_k are detected with d_k(x) = kernel(||x - w_k||_2) in [0, 1], and
class c's probability is a reasoning mixture of positive and negative evidence,

    p_c(x) = sum_k r+_{c,k} d_k(x) + r-_{c,k} (1 - d_k(x)),   (r+_{c,:}, r-_{c,:}) = softmax(reasoning_logits[c]) over 2K,

so each p_c is in [0, 1] and affine in the detections. The certificate uses only |d(x + delta, w) - d(x, w)| <=
||delta||_2 (triangle inequality) and the kernel's monotonicity: inside radius eps every detection lies in
[kernel(d_k + eps), kernel(max(d_k - eps, 0))], and the smallest value of p_y - p_c over that box is exact for an
affine function (each coefficient picks its worst end). `certified_radius` bisects on eps for the largest radius at
which that worst case stays > 0 for every c != y: a true lower bound on the distance to the decision boundary (the
paper's Theorem rests on the same distance bound; we did not transcribe its closed form, so this is our derivation,
valid for any monotone kernel). `rbf_margin_loss` is the hinge on the probability gap, max(0, gamma - (p_y -
max_{c != y} p_c)), the paper's robustness-optimising loss in its probability-gap form.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation

KERNELS = ("exp", "gaussian")


def _kernel(dist, sigma, kernel: str):
  if kernel == "exp":
    return jnp.exp(-dist / sigma)
  return jnp.exp(-0.5 * (dist / sigma) ** 2)



class RBFClassifier(nnx.Module):
  """Shallow robust CBC / RBF classifier (Saralajew et al. 2024, arXiv:2412.15499, Sec. 3-4): detections
  d_k(x) = kernel(||x - w_k||_2 / sigma) of K components, class probabilities p_c(x) = sum_k r+_{ck} d_k +
  r-_{ck} (1 - d_k) with (r+_c, r-_c) = softmax over 2K reasoning logits (no indefinite reasoning).

  Args:
    in_features: D, the input width.
    num_components: K prototypes.
    num_classes: C >= 2.
    sigma: kernel width > 0 (a fixed hyperparameter).
    kernel: "exp" (exp(-d / sigma)) or "gaussian" (exp(-d^2 / (2 sigma^2))).
    param_dtype: dtype of the parameters.
    rngs: nnx.Rngs with a 'params' stream.
  """

  def __init__(self, in_features: int, num_components: int, num_classes: int, *, sigma: float = 1.0,
               kernel: Literal["exp", "gaussian"] = "exp", param_dtype=jnp.float32, rngs: nnx.Rngs):
    validation.check_int(in_features, "in_features", 1)
    validation.check_int(num_components, "num_components", 1)
    validation.check_int(num_classes, "num_classes", 2)
    validation.check_positive(sigma, "sigma")
    if kernel not in KERNELS:
      raise ValueError(f"kernel must be one of {KERNELS}, got {kernel=!r}")
    self.sigma, self.kernel = float(sigma), kernel
    self.in_features, self.num_components, self.num_classes = in_features, num_components, num_classes
    n = num_components * in_features                      # one normal draw for both tables (one small compile)
    flat = np.asarray(jax.random.normal(rngs.params(), (n + num_classes * 2 * num_components,), jnp.float32))
    self.components = nnx.Param(jnp.asarray(flat[:n].reshape(num_components, in_features), param_dtype))
    self.reasoning_logits = nnx.Param(jnp.asarray(0.1 * flat[n:].reshape(num_classes, 2 * num_components),
                                                  param_dtype))

  def _check_x(self, x):
    x = validation.check_floating(x, "x")
    if x.ndim < 1 or x.shape[-1] != self.in_features:
      raise ValueError(f"x must be [..., D] with D = in_features = {self.in_features}, got x.shape={x.shape}")
    return x

  def distances(self, x) -> jax.Array:
    """||x - w_k||_2: [..., K] (float32)."""
    x = self._check_x(x).astype(jnp.float32)
    w = self.components[...].astype(jnp.float32)
    sq = jnp.sum((x[..., None, :] - w) ** 2, axis=-1)
    return jnp.sqrt(jnp.maximum(sq, 1e-30))

  def reasoning(self) -> tuple[jax.Array, jax.Array]:
    """(r+, r-), each [C, K], nonnegative, summing to 1 per class together."""
    r = jax.nn.softmax(self.reasoning_logits[...].astype(jnp.float32), axis=-1)
    return r[:, :self.num_components], r[:, self.num_components:]

  def __call__(self, x) -> jax.Array:
    """Class probabilities p_c(x): [..., C] in [0, 1] (not normalised across classes)."""
    d = _kernel(self.distances(x), self.sigma, self.kernel)
    rp, rn = self.reasoning()
    return d @ rp.T + (1.0 - d) @ rn.T


def certified_radius(model: RBFClassifier, x, y=None, *, iters: int = 40, max_radius: float | None = None) -> jax.Array:
  """Certified l2 radius of an `RBFClassifier` at x: the largest eps (found by bisection, `iters` halvings) such
  that for every ||delta||_2 <= eps the prediction stays y. Radius 0 where the prediction at x already differs from
  y (certified accuracy counts radius > rho). Saralajew et al. 2024, arXiv:2412.15499 (robustness guarantee of the
  shallow robust CBC, Sec. 4); see the module docstring for the derivation.

  Args:
    model: the classifier.
    x: [B, D] inputs.
    y: [B] int labels, or None for the model's own predictions.
    iters: bisection steps (a Python int >= 1): the result is within max_radius / 2^iters below the bound.
    max_radius: upper end of the search (default: max distance to a component + 20 sigma); a radius equal to it
      means "at least this".

  Returns:
    [B] float32 radii (a lower bound on the distance to the decision boundary).
  """
  validation.check_int(iters, "iters", 1)
  dist = model.distances(x)                                    # [B, K]
  p = model(x)
  pred = jnp.argmax(p, -1)
  if y is None:
    y = pred
  y = validation.check_integer(y, "y")
  if y.shape != dist.shape[:1]:
    raise ValueError(f"y must be [B] with B = x.shape[0], got y.shape={y.shape}")
  rp, rn = model.reasoning()
  a = rp - rn                                                  # [C, K]: p_c = const_c + sum_k a_ck d_k
  const = jnp.sum(rn, -1)                                      # [C]
  ay, cy = a[y], const[y]                                      # [B, K], [B]
  hi_r = jnp.max(dist, -1) + 20.0 * model.sigma if max_radius is None else jnp.full(dist.shape[:1], max_radius)
  others = jnp.arange(model.num_classes)[None, :] != y[:, None]   # [B, C]

  def worst_gap(eps):                                          # eps [B] -> min_{c != y} min_box (p_y - p_c)
    lo = _kernel(dist + eps[:, None], model.sigma, model.kernel)
    hi = _kernel(jnp.maximum(dist - eps[:, None], 0.0), model.sigma, model.kernel)
    coef = ay[:, None, :] - a[None, :, :]                      # [B, C, K]
    worst = jnp.sum(jnp.minimum(coef * lo[:, None, :], coef * hi[:, None, :]), -1) + (cy[:, None] - const[None])
    return jnp.min(jnp.where(others, worst, jnp.inf), -1)

  def body(_, lohi):
    lo, hi = lohi
    mid = 0.5 * (lo + hi)
    ok = worst_gap(mid) > 0
    return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

  lo, hi = jax.lax.fori_loop(0, iters, body, (jnp.zeros_like(hi_r), hi_r))
  lo = jnp.where(worst_gap(hi_r) > 0, hi_r, lo)
  return jnp.where((pred == y) & (worst_gap(jnp.zeros_like(lo)) > 0), lo, 0.0)


def rbf_margin_loss(probs, labels, *, margin: float = 0.3) -> jax.Array:
  """Per-example robustness hinge max(0, margin - (p_y - max_{c != y} p_c)) on the class probabilities (Saralajew
  et al. 2024, arXiv:2412.15499, the loss that optimises the robustness guarantee, in its probability-gap form).

  Args:
    probs: [B, C] class probabilities of an `RBFClassifier`.
    labels: [B] int.
    margin: gamma >= 0.

  Returns:
    [B] per-example losses (float32).
  """
  probs = validation.check_floating(probs, "probs").astype(jnp.float32)
  labels = validation.check_integer(labels, "labels")
  if probs.ndim != 2 or labels.shape != probs.shape[:1]:
    raise ValueError(f"probs must be [B, C] and labels [B], got {probs.shape} and {labels.shape}")
  validation.check_nonnegative(margin, "margin")
  py = jnp.take_along_axis(probs, labels[:, None], -1)[:, 0]
  other = jnp.max(jnp.where(jax.nn.one_hot(labels, probs.shape[-1], dtype=bool), -jnp.inf, probs), -1)
  return jax.nn.relu(margin - (py - other))
