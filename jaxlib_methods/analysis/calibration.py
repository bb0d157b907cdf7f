"""Calibration: expected calibration error, Brier score and temperature scaling, all on LOGITS.

ECE and temperature scaling as in Guo, Pleiss, Sun, Weinberger, "On Calibration of Modern Neural Networks", ICML
2017, arXiv:1706.04599 (Sec. 2, Eq. 3: ECE = sum_m |B_m|/n |acc(B_m) - conf(B_m)| over equal-width confidence bins;
Sec. 4.2: a single temperature T fitted by minimising the NLL of softmax(z / T)). Used by [18] Chidambaram & Ge, "On
the Limitations of Temperature Scaling for Distributions with Overlaps", 2023, arXiv:2306.00740.

One convention for every function here (docs/conventions.md): the first argument is LOGITS [N, K] and the
probabilities are softmax(logits), as `fit_temperature` needs logits anyway; ECE after temperature scaling is
`expected_calibration_error(logits / T, labels)`. To score probabilities p from elsewhere (an ensemble average),
pass `jnp.log(p)`: softmax(log p) = p for rows that sum to 1.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def _check(logits: Any, labels: Any, where: Any):
  """logits [N, K] floating (N, K >= 1), labels [N] in [0, K), where [N] bool -> (z float32+, labels, where, valid)."""
  z = validation.check_floating(logits, "logits")
  if z.ndim != 2:
    raise ValueError(f"logits must have shape [N, K], got logits.shape={z.shape}")
  validation.check_min_size(z, "logits", 1)
  validation.check_min_size(z, "logits", 1, axis=1, what="classes")
  labels = validation.check_integer(labels, "labels")
  if labels.shape != z.shape[:1]:
    raise ValueError(f"labels must have shape [N]=({z.shape[0]},), got labels.shape={labels.shape}")
  where = validation.check_where(where, labels.shape)
  valid = validation.check_labels(labels, z.shape[1], "labels", where)
  if where is not None:
    some = validation.check_values(jnp.any(where), where, "where", "True for at least one example")
    valid = validation.combine_valid(valid, some)
  z = z.astype(validation.compute_dtype_for(z.dtype))
  if where is not None:
    z = jnp.where(where[:, None], z, jnp.zeros((), z.dtype))
  return z, jnp.clip(labels, 0, z.shape[1] - 1), where, valid


def _warn_if_probabilities(logits: Any, name: str) -> None:
  if validation.is_traced(logits) or np.shape(logits)[-1] < 2:
    return
  v = np.asarray(logits, np.float64)
  if v.size and np.all(v >= 0) and np.allclose(v.sum(-1), 1.0, atol=1e-5):
    warnings.warn(f"{name} look like probabilities (every row is non-negative and sums to 1), but this function "
                  f"takes logits; pass jnp.log(probs) to score probabilities", UserWarning, stacklevel=3)


def _mean(x: jax.Array, where: Optional[jax.Array]) -> jax.Array:
  if where is None:
    return jnp.mean(x)
  return jnp.sum(jnp.where(where, x, 0.0)) / jnp.maximum(jnp.sum(where), 1)


def expected_calibration_error(logits: jax.Array, labels: jax.Array, *, n_bins: int = 15,
                               where: Optional[jax.Array] = None) -> jax.Array:
  """Top-label ECE of softmax(logits) with `n_bins` equal-width confidence bins (Guo et al. 2017, arXiv:1706.04599,
  Eq. 3).

  Bins are (m/M, (m+1)/M], confidence = max_k p_k, accuracy = [argmax p == label], p = softmax(logits).

  Args:
    logits: [N, K] floating (N, K >= 1). Probabilities from elsewhere: pass jnp.log(probs).
    labels: [N] integer in [0, K) (out of range: ValueError eagerly, NaN under jit).
    n_bins: M >= 1 (a Python int).
    where: optional bool [N]: the examples to score (at least one).

  Returns:
    Scalar float32 in [0, 1]; NaN if a scored logit is NaN.

  Example:
    >>> import jax.numpy as jnp
    >>> float(expected_calibration_error(jnp.zeros((2, 2)), jnp.array([0, 1]), n_bins=2))  # conf 0.5, acc 0.5
    0.0
  """
  if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)):
    raise TypeError(f"n_bins must be an int, got {n_bins=}")
  if n_bins < 1:
    raise ValueError(f"n_bins must be >= 1, got {n_bins=}")
  _warn_if_probabilities(logits, "logits")
  z, labels, where, valid = _check(logits, labels, where)
  probs = jax.nn.softmax(z, axis=-1)
  conf = jnp.max(probs, axis=-1)
  correct = (jnp.argmax(probs, axis=-1) == labels).astype(conf.dtype)
  w = jnp.ones_like(conf) if where is None else where.astype(conf.dtype)
  idx = jnp.clip(jnp.ceil(jnp.nan_to_num(conf) * n_bins).astype(jnp.int32) - 1, 0, n_bins - 1)
  sum_conf = jnp.zeros(n_bins, conf.dtype).at[idx].add(w * conf)
  sum_acc = jnp.zeros(n_bins, conf.dtype).at[idx].add(w * correct)
  ece = jnp.sum(jnp.abs(sum_acc - sum_conf)) / jnp.maximum(jnp.sum(w), 1)
  return validation.nan_where_invalid(ece, valid).astype(jnp.float32)


def _nll(z: jax.Array, labels: jax.Array, temperature: jax.Array, where: Optional[jax.Array]) -> jax.Array:
  lp = jax.nn.log_softmax(z / temperature, axis=-1)
  return -_mean(jnp.take_along_axis(lp, labels[:, None], axis=-1)[:, 0], where)


def temperature_nll(logits: jax.Array, labels: jax.Array, temperature: jax.Array, *,
                    where: Optional[jax.Array] = None) -> jax.Array:
  """Mean NLL of softmax(logits / T) at the labels (Guo et al. 2017, arXiv:1706.04599, Sec. 4.2).

  Args:
    logits: [N, K] floating; labels: [N] integer in [0, K); temperature: T > 0, a scalar (invalid: ValueError
      eagerly, NaN under jit); where: optional bool [N], the examples to average.

  Returns:
    Scalar (float32 or wider).
  """
  z, labels, where, valid = _check(logits, labels, where)
  t_valid = validation.check_positive_values(temperature, "temperature", ())
  t = jnp.asarray(temperature, z.dtype)
  return validation.nan_where_invalid(_nll(z, labels, t, where), validation.combine_valid(valid, t_valid))


def fit_temperature(logits: jax.Array, labels: jax.Array, *, log_t_range: tuple[float, float] = (-7.0, 7.0),
                    num_iters: int = 80, where: Optional[jax.Array] = None) -> jax.Array:
  """The NLL-optimal temperature T* = argmin_T NLL(softmax(z / T), y) (Guo et al. 2017, arXiv:1706.04599, Sec. 4.2).

  NLL is convex in beta = 1/T (a log-sum-exp of linear functions minus a linear one), hence unimodal in log T: a
  golden-section search over log T in `log_t_range` finds the minimiser to ~1e-16 relative width after 80 steps.

  Args:
    logits: [N, K] floating; labels: [N] integer in [0, K) (out of range: ValueError eagerly, NaN under jit).
    log_t_range: search interval (lo, hi) for log T, finite, lo < hi.
    num_iters: golden-section iterations (>= 1).
    where: optional bool [N]: the examples to fit on.

  Returns:
    Scalar T* > 0 (float32 or wider); NaN if a logit is NaN.
  """
  z, labels, where, valid = _check(logits, labels, where)
  lo, hi = log_t_range
  if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
    raise ValueError(f"log_t_range must be finite and increasing, got {log_t_range=}")
  if isinstance(num_iters, bool) or not isinstance(num_iters, (int, np.integer)) or num_iters < 1:
    raise ValueError(f"num_iters must be a positive int, got {num_iters=}")
  f = lambda s: _nll(z, labels, jnp.exp(s), where)
  g = (jnp.sqrt(5.0) - 1) / 2

  def body(_, ab):
    a, b = ab
    c, d = b - g * (b - a), a + g * (b - a)
    left = f(c) < f(d)
    return jnp.where(left, a, c), jnp.where(left, d, b)

  a, b = jax.lax.fori_loop(0, num_iters, body, (jnp.asarray(lo, z.dtype), jnp.asarray(hi, z.dtype)))
  t = jnp.exp((a + b) / 2)
  # A NaN logit makes every comparison False: the search would walk to one end and return a finite T.
  return validation.nan_where_invalid(t, validation.combine_valid(valid, ~jnp.isnan(f(jnp.zeros((), z.dtype)))))


def brier_score(logits: jax.Array, labels: jax.Array, *, where: Optional[jax.Array] = None) -> jax.Array:
  """Mean squared error between softmax(logits) and the one-hot labels (Brier 1950, "Verification of forecasts
  expressed in terms of probability", Monthly Weather Review 78(1)).

  Args:
    logits: [N, K] floating (probabilities from elsewhere: pass jnp.log(probs)); labels: [N] integer in [0, K);
    where: optional bool [N], the examples to average.

  Returns:
    Scalar in [0, 2] (float32 or wider); NaN if a logit is NaN.
  """
  _warn_if_probabilities(logits, "logits")
  z, labels, where, valid = _check(logits, labels, where)
  probs = jax.nn.softmax(z, axis=-1)
  per_example = jnp.sum((probs - jax.nn.one_hot(labels, z.shape[-1], dtype=z.dtype)) ** 2, axis=-1)
  return validation.nan_where_invalid(_mean(per_example, where), valid)


__all__ = ["brier_score", "expected_calibration_error", "fit_temperature", "temperature_nll"]
