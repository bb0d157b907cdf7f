"""Randomized-smoothing certification: Cohen et al.'s l2 radius and Dual Randomized Smoothing (DRS).

Paper [155]: Song Xia, Yi Yu, Xudong Jiang, Henghui Ding, "Mitigating the Curse of Dimensionality for Certified
Robustness via Dual Randomized Smoothing", ICLR 2024, arXiv:2404.09586. Building block: Jeremy Cohen, Elan
Rosenfeld, J. Zico Kolter, "Certified Adversarial Robustness via Randomized Smoothing", ICML 2019, arXiv:1902.02918
(Theorem 1 and Alg. CERTIFY, with the Clopper-Pearson lower bound).

Randomized smoothing (RS): g(x) = argmax_c P(f(x + eps) = c), eps ~ N(0, sigma^2 I_d). If the top class has
probability >= p_A > 1/2 (and the runner-up <= 1 - p_A), g is constant on the l2 ball of radius
R = sigma Phi^{-1}(p_A) (Cohen et al., Theorem 1 with p_B = 1 - p_A).

DRS (Xia et al., the method of the abstract and Fig. 1(a)): the input x is down-sampled into two complementary sub-images x_1 (m pixels) and x_2
(n pixels, m + n = d), each smoothed in its own lower-dimensional space by its own base classifier; the smoothed
classifier is G(x) = argmax_c [P(f_1(x_1 + eps_1) = c) + P(f_2(x_2 + eps_2) = c)], eps_i ~ N(0, sigma_i^2 I).
Because the sub-images partition the pixels, a perturbation delta splits into delta_1, delta_2 with
||delta||^2 = ||delta_1||^2 + ||delta_2||^2, and Cohen's bound applies to each half: p_A,i(x + delta) >=
Phi(a_i - ||delta_i|| / sigma_i), a_i = Phi^{-1}(p_A,i). G keeps class A while the two bounds sum to > 1, i.e. while
||delta_1|| / sigma_1 + ||delta_2|| / sigma_2 < a_1 + a_2; the smallest ||delta|| on that boundary gives the radius

    R_DRS = (a_1 + a_2) / sqrt(1 / sigma_1^2 + 1 / sigma_2^2)     (= sigma (a_1 + a_2) / sqrt(2) for equal sigmas),

which is tight for half-space base classifiers (the tests attack it). For a_1 = a_2 it equals the paper code's
sqrt(R_1^2 + R_2^2) (R_i = sigma_i a_i); for a_1 != a_2 that expression exceeds R_DRS and is not a valid radius for
G (see `dual_smoothing_radius`). With sigma_i = c / sqrt(m_i) (a fixed noise norm c), R_DRS = (a_1 + a_2) c /
sqrt(d), twice RS's a c / sqrt(d) at equal confidence: the paper's (1/sqrt(m) + 1/sqrt(n)) vs 1/sqrt(d) rates.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc
from jax.scipy.stats import norm

from jaxlib_methods import validation


def _check_alpha(alpha: Any) -> None:
  if not validation.is_concrete_number(alpha):
    raise TypeError(f"alpha must be a Python number in (0, 1), got {alpha!r}")
  validation.check_in_interval(alpha, "alpha", 0.0, 1.0, closed_low=False, closed_high=False)


def clopper_pearson_lower(successes: Any, trials: int, alpha: float) -> jax.Array:
  """One-sided (1 - alpha) Clopper-Pearson lower confidence bound on a binomial proportion: the alpha-quantile of
  Beta(k, n - k + 1), and 0 for k = 0 (Cohen et al. 2019, arXiv:1902.02918, Alg. CERTIFY's LowerConfBound).

  Computed by bisection on the regularised incomplete beta function (jit- and vmap-safe).

  Args:
    successes: [...] integer counts k in [0, trials] (ValueError when concrete and out of range; NaN when traced).
    trials: Python int n >= 1.
    alpha: the failure probability, in (0, 1).

  Returns:
    [...] float32 (float64 under x64) lower bounds p with P(p <= true proportion) >= 1 - alpha.
  """
  k = validation.check_integer(successes, "successes")
  n = validation.check_int(trials, "trials", 1, value_error=True)
  _check_alpha(alpha)
  valid = validation.check_values((k >= 0) & (k <= n), k, "successes", f"counts in [0, trials={n}]")
  dt = jnp.promote_types(jnp.float32, jnp.asarray(1.0).dtype)
  kf = jnp.clip(k, 1, n).astype(dt)
  lo, hi = jnp.zeros(k.shape, dt), jnp.ones(k.shape, dt)

  def body(_, bounds):
    lo, hi = bounds
    mid = (lo + hi) / 2
    below = betainc(kf, n - kf + 1, mid) < alpha     # the Beta(k, n - k + 1) CDF at mid is below alpha
    return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

  lo, hi = jax.lax.fori_loop(0, 60, body, (lo, hi))
  out = jnp.where(k == 0, jnp.zeros((), dt), (lo + hi) / 2)
  return validation.nan_where_invalid(out, valid)


def _check_p(p: Any, name: str) -> tuple[jax.Array, Any]:
  p = validation.check_floating(p, name)
  valid = validation.check_values((p >= 0) & (p <= 1), p, name, "probabilities in [0, 1]")
  return p.astype(validation.compute_dtype_for(p.dtype)), valid


def smoothing_radius(p_lower: Any, sigma: Any) -> jax.Array:
  """Cohen et al.'s certified l2 radius R = sigma Phi^{-1}(p_A) for p_A > 1/2, else 0 (abstain) (Cohen, Rosenfeld,
  Kolter 2019, arXiv:1902.02918, Theorem 1 with p_B = 1 - p_A; the RS baseline of Xia et al. 2024,
  arXiv:2404.09586, its RS baseline).

  Args:
    p_lower: [...] float lower bound on the top class's probability under noise, in [0, 1].
    sigma: the noise standard deviation, > 0 (a number, or an array broadcasting against p_lower).

  Returns:
    [...] float radii >= 0 (+inf for p_lower = 1).
  """
  p, valid = _check_p(p_lower, "p_lower")
  s = validation.check_floating(sigma, "sigma")
  valid_s = validation.check_positive_values(s, "sigma")
  r = jnp.where(p > 0.5, s * norm.ppf(p), jnp.zeros((), p.dtype))
  return validation.nan_where_invalid(validation.nan_where_invalid(r, valid), valid_s)


def dual_smoothing_radius(p1_lower: Any, p2_lower: Any, sigma1: Any, sigma2: Any) -> jax.Array:
  """The certified l2 radius of Dual Randomized Smoothing, R = (a_1 + a_2) / sqrt(1/sigma_1^2 + 1/sigma_2^2) with
  a_i = Phi^{-1}(p_i), when a_1 + a_2 > 0, else 0 (Xia, Yu, Jiang, Ding, ICLR 2024, arXiv:2404.09586: two
  complementary sub-images smoothed separately, G = argmax of the summed smoothed probabilities).

  The derivation (module docstring) is the paper's argument: the sub-images partition the input, Cohen's Theorem 1
  bounds each half, and the radius is the distance to {||d_1|| / sigma_1 + ||d_2|| / sigma_2 = a_1 + a_2}. It is
  tight (half-space base classifiers reach the boundary) and equals sqrt(R_1^2 + R_2^2) of the authors' code for
  p_1 = p_2; for p_1 != p_2 that expression is larger than the radius G actually has.

  Args:
    p1_lower: [...] float lower bound on sub-classifier 1's top-class probability, in [0, 1].
    p2_lower: [...] float lower bound on sub-classifier 2's probability of the same class, in [0, 1].
    sigma1: noise standard deviation on sub-image 1, > 0.
    sigma2: noise standard deviation on sub-image 2, > 0.

  Returns:
    [...] float radii >= 0 (broadcast of the inputs).
  """
  p1, v1 = _check_p(p1_lower, "p1_lower")
  p2, v2 = _check_p(p2_lower, "p2_lower")
  s1 = validation.check_floating(sigma1, "sigma1")
  s2 = validation.check_floating(sigma2, "sigma2")
  vs1 = validation.check_positive_values(s1, "sigma1")
  vs2 = validation.check_positive_values(s2, "sigma2")
  a = norm.ppf(p1) + norm.ppf(p2)
  r = jnp.where(a > 0, a / jnp.sqrt(1 / s1 ** 2 + 1 / s2 ** 2), jnp.zeros((), a.dtype))
  for v in (v1, v2, vs1, vs2):
    if v is not None:
      r = validation.nan_where_invalid(r, jnp.broadcast_to(v, r.shape) if jnp.ndim(v) else v)
  return r


def checkerboard_split(x: Any) -> tuple[jax.Array, jax.Array]:
  """Down-sample images into DRS's two complementary sub-images by a 2 x 2 checkerboard: x_1 keeps the pixels with
  (row + column) even, x_2 those with (row + column) odd, each packed along the width (Xia et al. 2024,
  arXiv:2404.09586: "down-sampling with predefined 2x2 pixel indexes").

  Every pixel lands in exactly one sub-image, so ||delta||^2 = ||delta_1||^2 + ||delta_2||^2.

  Args:
    x: [..., H, W] float images (channels, if any, before H), W even.

  Returns:
    (x_1, x_2), each [..., H, W // 2].
  """
  x = validation.check_floating(x, "x")
  if x.ndim < 2 or x.shape[-1] % 2:
    raise ValueError(f"x must be [..., H, W] with an even width W, got x.shape={x.shape}")
  h, w = x.shape[-2:]
  cols1 = 2 * np.arange(w // 2)[None, :] + (np.arange(h) % 2)[:, None]   # row i keeps columns j with i + j even
  cols2 = 2 * np.arange(w // 2)[None, :] + (1 - np.arange(h) % 2)[:, None]
  take = lambda cols: jnp.take_along_axis(x, jnp.broadcast_to(jnp.asarray(cols), x.shape[:-1] + (w // 2,)), axis=-1)
  return take(cols1), take(cols2)


def _counts(classify, x, key, sigma, num, num_classes):
  noise = jax.random.normal(key, (num,) + x.shape, x.dtype) * jnp.asarray(sigma, x.dtype)
  labels = classify(x[None] + noise)
  if labels.shape != (num,) or not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"classify must map [N, ...] inputs to [N] integer labels, got {labels.shape} {labels.dtype}")
  return jnp.zeros((num_classes,), jnp.int32).at[labels].add(1, mode="drop")


def _check_certify(num_classes, n0, n, alpha):
  validation.check_int(num_classes, "num_classes", 2, value_error=True)
  validation.check_int(n0, "n0", 1, value_error=True)
  validation.check_int(n, "n", 1, value_error=True)
  _check_alpha(alpha)


def smoothed_certify(classify: Callable[[jax.Array], jax.Array], x: Any, key: jax.Array, *, sigma: float,
                     num_classes: int, n0: int = 100, n: int = 10000,
                     alpha: float = 0.001) -> tuple[jax.Array, jax.Array]:
  """Cohen et al.'s CERTIFY: pick the top class from n0 noisy samples, lower-bound its probability from n fresh
  samples (Clopper-Pearson at level alpha), return it with radius sigma Phi^{-1}(p_A), or -1 and 0 (abstain) when
  p_A <= 1/2 (Cohen, Rosenfeld, Kolter 2019, arXiv:1902.02918, CERTIFY; the RS baseline of arXiv:2404.09586).

  With probability >= 1 - alpha over the noise, a returned class c with radius R > 0 satisfies g(x + delta) = c
  for all ||delta||_2 < R.

  Args:
    classify: base classifier, [N, *x.shape] float -> [N] integer labels in [0, num_classes).
    x: [...] float input (one example).
    key: PRNG key.
    sigma: noise standard deviation, > 0.
    num_classes: K >= 2.
    n0: selection samples.
    n: estimation samples.
    alpha: failure probability in (0, 1).

  Returns:
    (class: int32 scalar, -1 on abstention; radius: float scalar >= 0).
  """
  x = validation.check_floating(x, "x")
  validation.check_positive(sigma, "sigma")
  _check_certify(num_classes, n0, n, alpha)
  k0, k1 = jax.random.split(key)
  c_a = jnp.argmax(_counts(classify, x, k0, sigma, n0, num_classes))
  n_a = _counts(classify, x, k1, sigma, n, num_classes)[c_a]
  p = clopper_pearson_lower(n_a, n, alpha)
  r = smoothing_radius(p, jnp.asarray(sigma, p.dtype))
  return jnp.where(r > 0, c_a, -1).astype(jnp.int32), r


def dual_smoothed_certify(classify1: Callable[[jax.Array], jax.Array], classify2: Callable[[jax.Array], jax.Array],
                          x1: Any, x2: Any, key: jax.Array, *, sigma1: float, sigma2: float, num_classes: int,
                          n0: int = 100, n: int = 10000, alpha: float = 0.001) -> tuple[jax.Array, jax.Array]:
  """DRS certification of one input given as its two sub-images (`checkerboard_split`): the top class of the summed
  selection counts, a Clopper-Pearson lower bound on each sub-classifier's probability of it (level alpha / 2 each,
  so both hold together with probability >= 1 - alpha), and the radius `dual_smoothing_radius` (Xia, Yu, Jiang,
  Ding, ICLR 2024, arXiv:2404.09586).

  Args:
    classify1: base classifier of sub-image 1, [N, *x1.shape] -> [N] integer labels in [0, num_classes).
    classify2: base classifier of sub-image 2, [N, *x2.shape] -> [N] integer labels.
    x1: [...] float sub-image 1.
    x2: [...] float sub-image 2 (pixels disjoint from x1's).
    key: PRNG key.
    sigma1: noise standard deviation on sub-image 1, > 0.
    sigma2: noise standard deviation on sub-image 2, > 0.
    num_classes: K >= 2.
    n0: selection samples per sub-image.
    n: estimation samples per sub-image.
    alpha: overall failure probability in (0, 1).

  Returns:
    (class: int32 scalar, -1 on abstention; radius: float scalar >= 0).
  """
  x1 = validation.check_floating(x1, "x1")
  x2 = validation.check_floating(x2, "x2")
  validation.check_positive(sigma1, "sigma1")
  validation.check_positive(sigma2, "sigma2")
  _check_certify(num_classes, n0, n, alpha)
  k = jax.random.split(key, 4)
  sel = _counts(classify1, x1, k[0], sigma1, n0, num_classes) + _counts(classify2, x2, k[1], sigma2, n0, num_classes)
  c_a = jnp.argmax(sel)
  p1 = clopper_pearson_lower(_counts(classify1, x1, k[2], sigma1, n, num_classes)[c_a], n, alpha / 2)
  p2 = clopper_pearson_lower(_counts(classify2, x2, k[3], sigma2, n, num_classes)[c_a], n, alpha / 2)
  r = dual_smoothing_radius(p1, p2, jnp.asarray(sigma1, p1.dtype), jnp.asarray(sigma2, p1.dtype))
  return jnp.where(r > 0, c_a, -1).astype(jnp.int32), r
