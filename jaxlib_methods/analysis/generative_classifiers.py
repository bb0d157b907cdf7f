"""Generative vs discriminative linear classifiers: Gaussian naive Bayes and multinomial logistic regression.

[43] Chenyu Zheng, Guoqiang Wu, Fan Bao, Yue Cao, Chongxuan Li, Jun Zhu, "Revisiting Discriminative vs. Generative
Classifiers: Theory and Implications", ICML 2023, arXiv:2302.02334. The paper proves that multiclass naive Bayes
needs O(log n) samples to approach its asymptotic error while multiclass logistic regression needs O(n) (n = feature
dimension), extending Ng & Jordan (2001) from binary to multiclass and from the 0-1 loss to the logistic surrogate.

Naive Bayes here is the paper's Gaussian NB with one diagonal covariance shared by all classes (the class-prior
weighted average of the per-class variances, plus `var_smoothing`), which makes it a linear classifier like
logistic regression; logistic regression minimises sum_i CE(W x_i + b, y_i) + ||W||_F^2 / (2 C) (the L2-penalised,
unpenalised-bias objective of scikit-learn's `LogisticRegression(C=...)`, which the paper's simulation uses) by
L-BFGS (`optax.lbfgs`). Both accept a per-example `where` mask so that fits on different sample sizes share one
padded shape (one compilation, vmap over sizes).
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlib_methods import validation
from jaxlib_methods.analysis import _solvers


class NaiveBayesParams(NamedTuple):
  """Fitted Gaussian naive Bayes: means [K, D], shared diagonal variances [D], log class priors [K] (the generative
  classifier of [43], "Revisiting Discriminative vs. Generative Classifiers: Theory and Implications", ICML 2023,
  arXiv:2302.02334, Sec. 3)."""
  means: jax.Array
  variances: jax.Array
  log_prior: jax.Array


class LogisticParams(NamedTuple):
  """Fitted multinomial logistic regression: weights [D, K], bias [K] (the discriminative classifier of [43],
  "Revisiting Discriminative vs. Generative Classifiers: Theory and Implications", ICML 2023, arXiv:2302.02334)."""
  weights: jax.Array
  bias: jax.Array


def _check_xy(x, y, num_classes, where):
  x = validation.check_floating(x, "x")
  y = validation.check_integer(y, "y")
  if x.ndim != 2:
    raise ValueError(f"x must be [N, D], got shape {x.shape}")
  if y.shape != (x.shape[0],):
    raise ValueError(f"y must be [N] = {(x.shape[0],)}, got {y.shape}")
  if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
    raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
  if where is None:
    where = jnp.ones(x.shape[0], bool)
  else:
    where = validation.check_bool(where, "where")
    if where.shape != (x.shape[0],):
      raise ValueError(f"where must be [N] = {(x.shape[0],)}, got {where.shape}")
  valid = validation.check_labels(y, num_classes, "y", where=where)
  # traced labels out of range (not checkable before tracing) poison the fit with NaN instead of being dropped
  poison = jnp.asarray(1.0, x.dtype) if valid is None else jnp.where(jnp.all(valid), 1.0, jnp.nan).astype(x.dtype)
  return x * poison, y, where


def gaussian_naive_bayes(x: jax.Array, y: jax.Array, *, num_classes: int, where: Optional[jax.Array] = None,
                         var_smoothing: float = 1e-9) -> NaiveBayesParams:
  """Fit Gaussian naive Bayes with a shared diagonal covariance ([43], arXiv:2302.02334, Sec. 3 / simulation).

  Zheng et al., "Revisiting Discriminative vs. Generative Classifiers: Theory and Implications", ICML 2023,
  arXiv:2302.02334. Maximum-likelihood class means mu_k = mean of x over class k, per-class variances
  sigma_kj^2 = mean of (x_j - mu_kj)^2 over class k (+ var_smoothing), pooled as sigma_j^2 = sum_k pi_k sigma_kj^2
  with pi_k the empirical class frequencies. A class without (unmasked) samples gets mean 0, prior 0 and log prior
  -inf (it is never predicted).

  Args:
    x: features, [N, D].
    y: labels in [0, num_classes), [N].
    num_classes: number of classes K (static).
    where: optional boolean mask [N]; False rows are ignored (for fits on a prefix of a padded sample).
    var_smoothing: added to every variance (>= 0).

  Returns:
    `NaiveBayesParams` (means [K, D], variances [D], log_prior [K]).
  """
  x, y, where = _check_xy(x, y, num_classes, where)
  validation.check_nonnegative(var_smoothing, "var_smoothing")
  onehot = jax.nn.one_hot(y, num_classes, dtype=x.dtype) * where[:, None].astype(x.dtype)
  counts = jnp.sum(onehot, 0)
  safe = jnp.maximum(counts, 1.0)[:, None]
  means = (onehot.T @ x) / safe
  var_k = (onehot.T @ (x * x)) / safe - means ** 2 + var_smoothing
  prior = counts / jnp.maximum(jnp.sum(counts), 1.0)
  variances = jnp.sum(prior[:, None] * jnp.maximum(var_k, 0.0), 0)
  return NaiveBayesParams(means, variances, jnp.log(prior))


def naive_bayes_logits(params: NaiveBayesParams, x: jax.Array) -> jax.Array:
  """Class scores log pi_k - sum_j (x_j - mu_kj)^2 / (2 sigma_j^2) of Gaussian naive Bayes ([43], arXiv:2302.02334).

  The argmax is the naive-Bayes prediction (the class-independent normaliser is dropped).

  Args:
    params: a fitted `NaiveBayesParams`.
    x: features, [N, D].

  Returns:
    [N, K] scores.
  """
  x = validation.check_floating(x, "x")
  if x.ndim != 2 or x.shape[1] != params.means.shape[1]:
    raise ValueError(f"x must be [N, D] with D = {params.means.shape[1]}, got {x.shape}")
  d2 = jnp.sum((x[:, None, :] - params.means[None]) ** 2 / params.variances, -1)
  return params.log_prior - 0.5 * d2


def logistic_objective(params: LogisticParams, x: jax.Array, y: jax.Array, where: jax.Array, C: float) -> jax.Array:
  """sum_i where_i CE(x_i W + b, y_i) + ||W||_F^2 / (2 C): the L2-penalised multinomial logistic loss of [43].

  Zheng et al., "Revisiting Discriminative vs. Generative Classifiers", ICML 2023, arXiv:2302.02334 (the logistic
  regression of its simulations: scikit-learn's objective with inverse regularisation C, bias unpenalised).

  Args:
    params: `LogisticParams` (weights [D, K], bias [K]).
    x: features, [N, D].
    y: labels, [N].
    where: boolean mask, [N].
    C: inverse L2 strength (> 0).

  Returns:
    scalar objective.
  """
  x, y, where = _check_xy(x, y, params.weights.shape[1], where)
  if params.weights.shape[0] != x.shape[1]:
    raise ValueError(f"x must be [N, D] with D = {params.weights.shape[0]} (the weights' rows), got {x.shape}")
  validation.check_positive(C, "C")
  logits = x @ params.weights + params.bias
  ce = optax.losses.softmax_cross_entropy_with_integer_labels(logits, y)
  return jnp.sum(jnp.where(where, ce, 0.0)) + jnp.sum(params.weights ** 2) / (2 * C)


@functools.partial(jax.jit, static_argnames=("num_classes", "iters"))
def _fit_logistic(x, y, where, C, *, num_classes, iters):
  params = LogisticParams(jnp.zeros((x.shape[1], num_classes), x.dtype), jnp.zeros((num_classes,), x.dtype))
  return _solvers.minimize_lbfgs(lambda p: logistic_objective(p, x, y, where, C), params, iters)


def logistic_regression(x: jax.Array, y: jax.Array, *, num_classes: int, where: Optional[jax.Array] = None,
                        C: float = 1.0, iters: int = 100) -> LogisticParams:
  """Fit L2-penalised multinomial logistic regression by L-BFGS ([43], arXiv:2302.02334, the discriminative baseline).

  Zheng et al., "Revisiting Discriminative vs. Generative Classifiers: Theory and Implications", ICML 2023,
  arXiv:2302.02334. Minimises `logistic_objective` (strictly convex for C < inf) with `optax.lbfgs` (zoom line
  search) for a fixed number of iterations from zero, so it is jit- and vmap-safe.

  Args:
    x: features, [N, D].
    y: labels in [0, num_classes), [N].
    num_classes: number of classes K (static).
    where: optional boolean mask [N]; False rows are ignored.
    C: inverse L2 regularisation strength (> 0), as scikit-learn's.
    iters: L-BFGS iterations (>= 1, static).

  Returns:
    `LogisticParams` (weights [D, K], bias [K]); predictions are argmax(x @ weights + bias).
  """
  x, y, where = _check_xy(x, y, num_classes, where)
  validation.check_positive(C, "C")
  if not isinstance(iters, (int, np.integer)) or iters < 1:
    raise ValueError(f"iters must be an int >= 1, got {iters!r}")
  return _fit_logistic(x, y, where, jnp.asarray(C, x.dtype), num_classes=int(num_classes), iters=int(iters))
