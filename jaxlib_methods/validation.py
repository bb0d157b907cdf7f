"""Eager hyperparameter and shape checks shared by every public function.

They run in Python, before tracing, on concrete values only: a traced value (e.g. a learning rate lifted by
`optax.inject_hyperparams`, or a schedule) is passed through unchecked, since it cannot be inspected without a
host sync. Messages name the argument and the value (``f"{x=}"`` style), so a user knows what to change.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import numpy as np


def is_concrete_number(x: Any) -> bool:
  """True for Python/NumPy scalars and concrete 0-d arrays (not tracers, not callables)."""
  if isinstance(x, jax.core.Tracer) or callable(x):
    return False
  if isinstance(x, numbers.Number):
    return True
  return isinstance(x, (np.ndarray, np.generic, jax.Array)) and np.ndim(x) == 0


def check_learning_rate(learning_rate: Any, name: str = "learning_rate") -> None:
  """Raise ValueError for a negative or non-finite constant learning rate (schedules are not checked)."""
  if is_concrete_number(learning_rate):
    v = float(learning_rate)
    if not np.isfinite(v) or v < 0:
      raise ValueError(f"{name} must be a finite number >= 0 (or a schedule), got {name}={learning_rate!r}")


def check_in_interval(x: Any, name: str, low: float, high: float, *, closed_low: bool = True,
                      closed_high: bool = True) -> None:
  """Raise ValueError if the constant `x` lies outside [low, high] (ends open where asked)."""
  if not is_concrete_number(x):
    return
  v = float(x)
  ok_low = v >= low if closed_low else v > low
  ok_high = v <= high if closed_high else v < high
  if not (np.isfinite(v) and ok_low and ok_high):
    lo = "[" if closed_low else "("
    hi = "]" if closed_high else ")"
    raise ValueError(f"{name} must lie in {lo}{low}, {high}{hi}, got {name}={x!r}")


def check_positive(x: Any, name: str) -> None:
  """Raise ValueError unless the constant `x` is finite and > 0."""
  check_in_interval(x, name, 0.0, float("inf"), closed_low=False, closed_high=False)


def check_nonnegative(x: Any, name: str) -> None:
  """Raise ValueError unless the constant `x` is finite and >= 0."""
  check_in_interval(x, name, 0.0, float("inf"), closed_high=False)


def check_same_shape_and_dtype(a_name: str, a: Any, b_name: str, b: Any) -> None:
  """Raise ValueError unless arrays `a` and `b` share shape and dtype (e.g. the two views of a contrastive pair)."""
  if a.shape != b.shape or a.dtype != b.dtype:
    raise ValueError(f"{a_name} and {b_name} must share shape and dtype, got {a_name}.shape={a.shape}, "
                     f"{b_name}.shape={b.shape}, {a_name}.dtype={a.dtype}, {b_name}.dtype={b.dtype}")
