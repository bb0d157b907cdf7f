"""Cauchy-Schwarz divergence estimators and the CS information-bottleneck objective for regression.

Paper [4]: Shujian Yu, Xi Yu, Sigurd Lokse, Robert Jenssen, Jose C. Principe, "Cauchy-Schwarz Divergence Information
Bottleneck for Regression", ICLR 2024, arXiv:2404.17951 (Sec. 3: prediction term D_CS(p(y|x) || q(yhat|x)),
compression term I_CS(x; t), objective min D_CS + beta I_CS). The conditional estimator is from Yu et al., "The
Conditional Cauchy-Schwarz Divergence with Applications to Time-Series Data and Sequential Decision Making",
arXiv:2301.08970 (Sec. 3).

D_CS(p || q) = -log[ (int p q)^2 / (int p^2 int q^2) ] >= 0, = 0 iff p = q. With Gaussian-kernel (Parzen) density
estimates, every integral becomes a mean of a Gram matrix, k(a, b) = exp(-||a - b||^2 / (2 sigma^2)) (the kernel
normalising constants cancel in the ratio), so

  D_CS = log mean(K_xx) + log mean(K_yy) - 2 log mean(K_xy).

Note on scale: a KDE of width s gives integrals with a Gaussian of variance 2 s^2, so `sigma` here equals
sqrt(2) * (KDE width); the estimator converges to D_CS of the densities convolved with N(0, sigma^2 / 2 I).

We use natural logarithms (the official code uses log2: divide by log(2) to compare). Log-means are computed with
logsumexp so small bandwidths do not underflow to log(0).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods.validation import check_nonnegative, check_positive


def _as_2d(name: str, a: jax.Array) -> jax.Array:
  """[n] or [n, d] floating with n >= 1 -> [n, d] in float32 or wider (half precision is computed in float32)."""
  a = validation.check_floating(a, name)
  shape = a.shape
  if a.ndim == 1:
    a = a[:, None]
  if a.ndim != 2 or a.shape[0] < 1:
    raise ValueError(f"{name} must be [n] or [n, d] with n >= 1, got {name}.shape={shape}")
  return a.astype(validation.compute_dtype_for(a.dtype))


def _check_same_dtype(a_name: str, a, b_name: str, b) -> None:
  validation.check_floating(a, a_name)
  validation.check_floating(b, b_name)
  if jnp.asarray(a).dtype != jnp.asarray(b).dtype:
    raise ValueError(f"{a_name} and {b_name} must share a dtype, got {a_name}.dtype={jnp.asarray(a).dtype}, "
                     f"{b_name}.dtype={jnp.asarray(b).dtype}")


def _sq_dists(a: jax.Array, b: jax.Array) -> jax.Array:
  # Exact pairwise squared distances (difference form: no cancellation, >= 0).
  return jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), axis=-1)


def gaussian_gram_log(a: jax.Array, b: jax.Array, sigma: float) -> jax.Array:
  """log k(a_i, b_j) = -||a_i - b_j||^2 / (2 sigma^2), the Gaussian kernel of the estimators (Yu et al. 2024,
  arXiv:2404.17951, Sec. 2). a: [n, d], b: [m, d] floating -> [n, m] (float32 or wider)."""
  _check_same_dtype("a", a, "b", b)
  a = _as_2d("a", a)
  b = _as_2d("b", b)
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"a and b must share the feature dim, got a.shape={a.shape}, b.shape={b.shape}")
  check_positive(sigma, "sigma")
  return -_sq_dists(a, b) / (2.0 * jnp.square(jnp.asarray(sigma, a.dtype)))


def _log_mean(log_k: jax.Array) -> jax.Array:
  return jax.nn.logsumexp(log_k) - jnp.log(jnp.asarray(log_k.size, log_k.dtype))


def cs_divergence(x: jax.Array, y: jax.Array, sigma: float) -> jax.Array:
  """Kernel estimator of D_CS(p || q) from samples x ~ p, y ~ q (Yu et al. 2024, Sec. 2; Jenssen et al. 2006).

    D_CS = log mean_ij k(x_i, x_j) + log mean_ij k(y_i, y_j) - 2 log mean_ij k(x_i, y_j)

  Symmetric, >= 0 (Cauchy-Schwarz in the kernel's RKHS), = 0 when the two samples coincide.

  Args:
    x: [m, d] (or [m]); y: [n, d] (or [n]); sigma: kernel width > 0.

  Returns:
    Scalar divergence (nats), float32 or wider; NaN if an input holds NaN.
  """
  _check_same_dtype("x", x, "y", y)
  x = _as_2d("x", x)
  y = _as_2d("y", y)
  if x.shape[1] != y.shape[1] or x.dtype != y.dtype:
    raise ValueError(f"x and y must share feature dim and dtype, got {x.shape=}, {y.shape=}, {x.dtype=}, {y.dtype=}")
  check_positive(sigma, "sigma")
  return (_log_mean(gaussian_gram_log(x, x, sigma)) + _log_mean(gaussian_gram_log(y, y, sigma))
          - 2.0 * _log_mean(gaussian_gram_log(x, y, sigma)))


def conditional_cs_divergence(x: jax.Array, y: jax.Array, y_hat: jax.Array, sigma_x: float,
                              sigma_y: Optional[float] = None, *,
                              official_code_denominator: bool = False) -> jax.Array:
  """Estimator of D_CS(p(y|x) || q(y_hat|x)) from paired samples (x_j, y_j, y_hat_j) (Yu et al. 2023, Sec. 3).

  With K_ji = k(x_j, x_i), L1_ji = k(y_j, y_i), L2_ji = k(yh_j, yh_i), L21_ji = k(yh_j, y_i):

    D = log sum_j [sum_i K_ji L1_ji / (sum_i K_ji)^2] + log sum_j [sum_i K_ji L2_ji / (sum_i K_ji)^2]
        - 2 log sum_j [sum_i K_ji L21_ji / (sum_i K_ji)^2]

  (resubstitution estimate of int int p(x, y)^2 / p(x)^2 etc.). The CS-IB official code (`loss_cs.CS_Div`) divides
  by sum_i K_ji^2 instead of (sum_i K_ji)^2; set `official_code_denominator=True` to reproduce it.

  Args:
    x: [n, dx] inputs (or [n]); y: [n, dy] targets; y_hat: [n, dy] predictions.
    sigma_x: kernel width on x; sigma_y: on y (default sigma_x, as in the official code).

  Returns:
    Scalar (nats); 0 when y_hat == y.
  """
  _check_same_dtype("y", y, "y_hat", y_hat)
  x = _as_2d("x", x)
  y = _as_2d("y", y)
  y_hat = _as_2d("y_hat", y_hat)
  if not (x.shape[0] == y.shape[0] == y_hat.shape[0]) or y.shape != y_hat.shape:
    raise ValueError(f"x, y, y_hat must be paired: got {x.shape=}, {y.shape=}, {y_hat.shape=}")
  sigma_y = sigma_x if sigma_y is None else sigma_y
  check_positive(sigma_x, "sigma_x")
  check_positive(sigma_y, "sigma_y")
  log_k = gaussian_gram_log(x, x, sigma_x)
  if official_code_denominator:
    log_den = jax.nn.logsumexp(2.0 * log_k, axis=1)
  else:
    log_den = 2.0 * jax.nn.logsumexp(log_k, axis=1)

  def term(log_l):
    return jax.nn.logsumexp(jax.nn.logsumexp(log_k + log_l, axis=1) - log_den)

  t1 = term(gaussian_gram_log(y, y, sigma_y))
  t2 = term(gaussian_gram_log(y_hat, y_hat, sigma_y))
  t21 = term(gaussian_gram_log(y_hat, y, sigma_y))
  return t1 + t2 - 2.0 * t21


def cs_qmi(x: jax.Array, t: jax.Array, sigma_x: float, sigma_t: Optional[float] = None) -> jax.Array:
  """CS quadratic mutual information I_CS(x; t) = D_CS(p(x, t) || p(x) p(t)) (Yu et al. 2024, Sec. 3.2).

    I_CS = log[(1/N^2) sum_ij K_ij L_ij] + log[(1/N^4) sum_ij K_ij sum_ij L_ij] - 2 log[(1/N^3) sum_i sum_j K_ij
           sum_k L_ik]

  with K the Gram matrix of x and L that of t (product kernel on the joint). >= 0; -> 0 for independent x, t.

  Args:
    x: [n, dx]; t: [n, dt]; sigma_x, sigma_t (default sigma_x) > 0.

  Returns:
    Scalar (nats).
  """
  x = _as_2d("x", x)
  t = _as_2d("t", t)
  if x.shape[0] != t.shape[0]:
    raise ValueError(f"x and t must be paired (same n), got {x.shape=}, {t.shape=}")
  sigma_t = sigma_x if sigma_t is None else sigma_t
  check_positive(sigma_x, "sigma_x")
  check_positive(sigma_t, "sigma_t")
  n = x.shape[0]
  log_n = jnp.log(jnp.asarray(n, x.dtype))
  lk = gaussian_gram_log(x, x, sigma_x)
  ll = gaussian_gram_log(t, t, sigma_t)
  joint = jax.nn.logsumexp(lk + ll) - 2 * log_n
  marg = jax.nn.logsumexp(lk) + jax.nn.logsumexp(ll) - 4 * log_n
  # sum_i sum_j K_ij sum_k L_ik = sum_i (K 1)_i (L 1)_i
  cross = jax.nn.logsumexp(jax.nn.logsumexp(lk, axis=1) + jax.nn.logsumexp(ll, axis=1)) - 3 * log_n
  return joint + marg - 2.0 * cross


def cs_ib_loss(x: jax.Array, t: jax.Array, y: jax.Array, y_hat: jax.Array, *, beta: float, sigma_x: float,
               sigma_t: Optional[float] = None, sigma_y: Optional[float] = None) -> jax.Array:
  """CS-IB regression objective D_CS(p(y|x) || q(y_hat|x)) + beta I_CS(x; t) (Yu et al. 2024, Sec. 3, Eq. of the
  CS-IB objective).

  Batch-level objective (a scalar, not per example): both terms are functionals of the whole minibatch.

  Args:
    x: [n, dx] inputs; t: [n, dt] bottleneck representation; y: [n, dy] targets; y_hat: [n, dy] predictions.
    beta: >= 0 compression weight. sigma_x, sigma_t, sigma_y: kernel widths (sigma_t, sigma_y default sigma_x).

  Returns:
    Scalar loss.
  """
  check_nonnegative(beta, "beta")
  pred = conditional_cs_divergence(x, y, y_hat, sigma_x, sigma_y)
  return pred + beta * cs_qmi(x, t, sigma_x, sigma_t)
