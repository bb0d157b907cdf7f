"""Eager hyperparameter and shape checks shared by every public function.

They run in Python, before tracing, on concrete values only: a traced value (e.g. a learning rate lifted by
`optax.inject_hyperparams`, or a schedule) is passed through unchecked, since it cannot be inspected without a
host sync. Messages name the argument and the value (``f"{x=}"`` style), so a user knows what to change.
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
from typing import Any, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete_number(x: Any) -> bool:
  """True for Python/NumPy scalars and concrete 0-d arrays (not tracers, not callables)."""
  if isinstance(x, jax.core.Tracer) or callable(x):
    return False
  if isinstance(x, numbers.Number):
    return True
  return isinstance(x, (np.ndarray, np.generic, jax.Array)) and np.ndim(x) == 0


# Traced hyperparameters seen by the checks below while `collect_traced_checks` is active: their validity as bool
# scalars, so an optimizer factory called by `optax.inject_hyperparams` inside `jit` can make its updates NaN
# (docs/conventions.md 5) where a concrete value would have raised.
_TRACED_CHECKS: contextvars.ContextVar = contextvars.ContextVar("jaxlib_methods_traced_checks", default=None)


@contextlib.contextmanager
def collect_traced_checks() -> Iterator[list]:
  """Within the block, `check_learning_rate` and `check_in_interval` (and so `check_positive`, `check_nonnegative`)
  append the validity of each traced value (a tracer) they are given, as a bool scalar, to the yielded list; concrete
  values are checked as always (ValueError for a scalar). Nested blocks collect separately."""
  token = _TRACED_CHECKS.set([])
  try:
    yield _TRACED_CHECKS.get()
  finally:
    _TRACED_CHECKS.reset(token)


def _record_traced(x: Any, valid: Any) -> None:
  """Append valid(x) (all elements) to the active `collect_traced_checks` list, for a numeric tracer (a concrete
  array that is not a scalar is passed through, as outside the block)."""
  sink = _TRACED_CHECKS.get()
  if sink is None or not isinstance(x, jax.core.Tracer):
    return
  if not (jnp.issubdtype(jnp.result_type(x), jnp.floating) or jnp.issubdtype(jnp.result_type(x), jnp.integer)):
    return
  sink.append(jnp.all(valid(jnp.asarray(x, jnp.result_type(float)))))


def check_learning_rate(learning_rate: Any, name: str = "learning_rate") -> None:
  """Raise ValueError for a negative or non-finite constant learning rate (schedules are not checked; a traced
  value is recorded for `collect_traced_checks`)."""
  if is_concrete_number(learning_rate):
    v = float(learning_rate)
    if not np.isfinite(v) or v < 0:
      raise ValueError(f"{name} must be a finite number >= 0 (or a schedule), got {name}={learning_rate!r}")
    return
  _record_traced(learning_rate, lambda v: jnp.isfinite(v) & (v >= 0))


def check_in_interval(x: Any, name: str, low: float, high: float, *, closed_low: bool = True,
                      closed_high: bool = True) -> None:
  """Raise ValueError if the constant `x` lies outside [low, high] (ends open where asked); a traced value is
  recorded for `collect_traced_checks`."""
  if not is_concrete_number(x):
    _record_traced(x, lambda v: jnp.isfinite(v) & ((v >= low) if closed_low else (v > low))
                   & ((v <= high) if closed_high else (v < high)))
    return
  v = float(x)
  ok_low = v >= low if closed_low else v > low
  ok_high = v <= high if closed_high else v < high
  if not (np.isfinite(v) and ok_low and ok_high):
    lo = "[" if closed_low else "("
    hi = "]" if closed_high else ")"
    raise ValueError(f"{name} must lie in {lo}{low}, {high}{hi}, got {name}={x!r}")


def scalar_in_interval(x: Any, name: str, low: float, high: float) -> jax.Array | None:
  """A scalar hyperparameter in [low, high], checked by the library's rule for values: a concrete number outside is
  a ValueError (`check_in_interval`); an array (e.g. traced under jit, or a Beta draw) must be 0-d and floating, and
  its validity comes back as a bool scalar for `nan_where_invalid` (None: concrete and valid), so a traced value
  outside gives NaN rather than a silent extrapolation."""
  check_in_interval(x, name, low, high)
  if is_concrete_number(x):
    return None
  x = check_floating(x, name)
  if x.ndim != 0:
    raise ValueError(f"{name} must be a scalar, got {name}.shape={x.shape}")
  return check_values(jnp.isfinite(x) & (x >= low) & (x <= high), x, name, f"in [{low}, {high}]")


def check_positive(x: Any, name: str) -> None:
  """Raise ValueError unless the constant `x` is finite and > 0."""
  check_in_interval(x, name, 0.0, float("inf"), closed_low=False, closed_high=False)


def check_nonnegative(x: Any, name: str) -> None:
  """Raise ValueError unless the constant `x` is finite and >= 0."""
  check_in_interval(x, name, 0.0, float("inf"), closed_high=False)


def check_int(x: Any, name: str, minimum: int | None = None, *, value_error: bool = False) -> int:
  """Return the Python int `x`: TypeError unless it is an int (not a bool), ValueError if it is below `minimum`.

  With `value_error=True` both failures raise one ValueError, ``"{name} must be an int >= {minimum}, got ..."``
  (the convention of the layer constructors in `jaxlib_methods.nn`, kept for their callers).
  """
  bad_type = isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer))
  if value_error:
    if bad_type or (minimum is not None and x < minimum):
      bound = "" if minimum is None else f" >= {minimum}"
      raise ValueError(f"{name} must be an int{bound}, got {name}={x!r}")
    return int(x)
  if bad_type:
    raise TypeError(f"{name} must be an int, got {name}={x!r}")
  if minimum is not None and x < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {name}={x!r}")
  return int(x)


def check_same_shape_and_dtype(a_name: str, a: Any, b_name: str, b: Any) -> None:
  """Raise ValueError unless arrays `a` and `b` share shape and dtype (e.g. the two views of a contrastive pair)."""
  if a.shape != b.shape or a.dtype != b.dtype:
    raise ValueError(f"{a_name} and {b_name} must share shape and dtype, got {a_name}.shape={a.shape}, "
                     f"{b_name}.shape={b.shape}, {a_name}.dtype={a.dtype}, {b_name}.dtype={b.dtype}")


# ----------------------------------------------------------------------------------------------------------------------
# Array arguments of losses and diagnostics (see docs/conventions.md).
#
# The rule for invalid VALUES inside arrays (labels out of range, duplicate indices, sigma > sigma_next, ...):
#   * concrete arrays (eager calls, and every argument that is not being traced): a ValueError naming the argument,
#     raised before any work;
#   * traced arrays (inside jit / vmap / grad of that argument), whose values cannot be inspected without a host sync:
#     the affected outputs are NaN, in value AND gradient (`nan_where_invalid` multiplies by NaN, so the gradient of
#     the offending rows is NaN too and `optax.apply_if_finite` or the runner's non-finite guard sees it). Rows
#     excluded by a `where` mask are neither checked nor poisoned.
# Wrong dtypes are TypeErrors, wrong shapes ValueErrors: both are static, so they are raised even under jit.
# ----------------------------------------------------------------------------------------------------------------------

def is_traced(x: Any) -> bool:
  """True when `x` is a tracer (its values are unknown: inside jit, vmap, or a transformation of `x`)."""
  return isinstance(x, jax.core.Tracer)


def _dtype_of(x: Any):
  return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype  # lists and scalars: NumPy's reading


def check_floating(x: Any, name: str) -> jax.Array:
  """`x` as a jax array; TypeError unless its dtype is a real floating type (not int, bool or complex).

  Python int/float scalars are accepted (weakly typed, as jax treats them) and become float arrays.
  """
  if isinstance(x, (int, float)) and not isinstance(x, bool):
    return jnp.asarray(float(x))
  dtype = _dtype_of(x)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"{name} must be a floating-point array (float16/bfloat16/float32/float64), got {name}.dtype="
                    f"{np.dtype(dtype).name}")
  return jnp.asarray(x)


def check_integer(x: Any, name: str) -> jax.Array:
  """`x` as a jax array; TypeError unless its dtype is a (signed or unsigned) integer type (bool is not)."""
  dtype = _dtype_of(x)
  if not jnp.issubdtype(dtype, jnp.integer):
    raise TypeError(f"{name} must be an integer array, got {name}.dtype={np.dtype(dtype).name}")
  return jnp.asarray(x)


def check_bool(x: Any, name: str) -> jax.Array:
  """`x` as a jax array; TypeError unless its dtype is bool."""
  dtype = _dtype_of(x)
  if dtype != jnp.bool_:
    raise TypeError(f"{name} must be a boolean array, got {name}.dtype={np.dtype(dtype).name}")
  return jnp.asarray(x)


def check_min_size(x: Any, name: str, minimum: int, axis: int = 0, what: str = "examples") -> None:
  """ValueError unless `x.shape[axis] >= minimum` (e.g. a batch-level loss given an empty batch)."""
  n = np.shape(x)[axis]
  if n < minimum:
    raise ValueError(f"{name} needs at least {minimum} {what} along axis {axis}, got {name}.shape={tuple(np.shape(x))}")


def compute_dtype_for(dtype: Any) -> jnp.dtype:
  """Dtype a loss computes in: float32 for float16/bfloat16 inputs (the result is cast back), else the input's."""
  return jnp.promote_types(dtype, jnp.float32)


def check_where(where: Any, shape: tuple, name: str = "where") -> jax.Array | None:
  """The optional boolean example mask: None, or a bool array of exactly `shape` (TypeError / ValueError)."""
  if where is None:
    return None
  where = check_bool(where, name)
  if where.shape != tuple(shape):
    raise ValueError(f"{name} must be a boolean mask with the loss's output shape {tuple(shape)}, got "
                     f"{name}.shape={where.shape}")
  return where


def check_values(ok: Any, x: Any, name: str, requirement: str, where: Any = None) -> jax.Array | None:
  """Apply the library's rule for invalid values to the boolean array `ok` (True where `x` is valid).

  Args:
    ok: bool array, True where the corresponding element of `x` is valid (computed by the caller with jnp ops).
    x: the argument the values come from (decides concrete vs traced).
    name: the argument's name, for the message.
    requirement: what valid means, e.g. "in [0, 10)".
    where: optional bool mask broadcastable to `ok`; False entries are not checked.

  Returns:
    None when `x` (and `where`) are concrete and every checked entry is valid (nothing to poison), else the bool
    array `valid` (True where ok or excluded) to pass to `nan_where_invalid`.

  Raises:
    ValueError: `x` is concrete and some checked entry is invalid.
  """
  ok = jnp.asarray(ok)
  valid = ok if where is None else (ok | ~jnp.asarray(where))
  if is_traced(x) or is_traced(where) or is_traced(valid):
    return valid
  bad = ~np.asarray(valid)
  if bad.any():
    vals = np.asarray(x)
    example = f" (e.g. {np.unique(vals[bad])[:5].tolist()})" if vals.shape == bad.shape else ""
    n_bad = int(bad.sum())
    raise ValueError(f"{name} must be {requirement}; {n_bad} entr{'y is' if n_bad == 1 else 'ies are'} not{example}")
  return None


def check_labels(labels: Any, num_classes: int, name: str = "labels", where: Any = None) -> jax.Array | None:
  """Integer class labels in [0, num_classes): TypeError for a non-integer dtype, then `check_values`.

  Returns None (all valid, concrete) or the traced `valid` mask for `nan_where_invalid`.
  """
  labels = check_integer(labels, name)
  return check_values((labels >= 0) & (labels < num_classes), labels, name,
                      f"integer class indices in [0, {num_classes})", where)


def nan_where_invalid(x: jax.Array, valid: jax.Array | None) -> jax.Array:
  """`x` where `valid`, NaN elsewhere, in value and in gradient (the rule for invalid traced values).

  Multiplies by 1 or NaN, so the gradient of an invalid entry is NaN as well (a `jnp.where` would give it a
  silent zero gradient). `valid` broadcasts against `x`; for a scalar `x` any invalid entry makes it NaN.
  """
  if valid is None:
    return x
  valid = jnp.asarray(valid)
  x_ndim = jnp.ndim(x)
  if valid.ndim > x_ndim:  # e.g. a scalar batch-level loss: any invalid entry poisons it
    valid = jnp.all(valid.reshape(valid.shape[:x_ndim] + (-1,)), axis=-1)
  elif valid.ndim < x_ndim:  # e.g. per-example validity of a [..., K] output
    valid = valid.reshape(valid.shape + (1,) * (x_ndim - valid.ndim))
  scale = jnp.where(valid, jnp.ones((), x.dtype), jnp.full((), jnp.nan, x.dtype))
  return x * scale


def check_axis(axis: Any, ndim: int, name: str = "axis") -> int:
  """`axis` normalised to [0, ndim): TypeError unless a Python/NumPy int, ValueError if out of range."""
  if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
    raise TypeError(f"{name} must be an int (one class axis), got {name}={axis!r}")
  if not -ndim <= int(axis) < ndim:
    raise ValueError(f"{name}={axis} is out of range for an array of rank {ndim}")
  return int(axis) % ndim


class ClassificationInputs(NamedTuple):
  """Checked inputs of a loss on class logits (see `classification_inputs`)."""
  logits: jax.Array                # [..., K]: class axis moved last, in the compute dtype, excluded rows zeroed
  labels: jax.Array                # [...]: int, clipped into [0, K) (safe to gather with)
  where: jax.Array | None          # [...] bool example mask, or None
  class_where: jax.Array | None    # [..., K] bool class mask (only where the loss allows one), or None
  valid: jax.Array | None          # [...] bool, for `nan_where_invalid` (None: all checked eagerly and valid)
  dtype: Any                       # the output dtype


def classification_inputs(logits: Any, labels: Any, *, axis: Any = -1, where: Any = None,
                          compute_dtype: Any = None, logits_name: str = "logits", labels_name: str = "labels",
                          allow_class_where: bool = False) -> ClassificationInputs:
  """Check and prepare (logits [..., K, ...], integer labels [...]) for a per-example classification loss.

  Checks (see docs/conventions.md): logits floating (TypeError), labels integer (TypeError), `axis` an int in
  range, at least one class, labels shaped like logits without the class axis, `where` bool and shaped like the
  labels (or, with `allow_class_where`, like the logits: a class mask as in optax), labels in [0, K) where
  selected (ValueError when concrete; NaN rows when traced). Half-precision logits are computed in float32 and the
  output is cast back; `compute_dtype`, when given, sets both.
  """
  logits = check_floating(logits, logits_name)
  if logits.ndim < 1:
    raise ValueError(f"{logits_name} must have a class axis (rank >= 1), got {logits_name}.shape={logits.shape}")
  full_shape = logits.shape
  ax = check_axis(axis, logits.ndim)
  logits = jnp.moveaxis(logits, ax, -1)
  k = logits.shape[-1]
  if k < 1:
    raise ValueError(f"{logits_name} needs at least one class along axis {axis}, got {logits_name}.shape={full_shape}")
  labels = check_integer(labels, labels_name)
  if labels.shape != logits.shape[:-1]:
    raise ValueError(f"{labels_name} must have the shape of {logits_name} without its class axis {axis}, i.e. "
                     f"{logits.shape[:-1]}; got {labels_name}.shape={labels.shape}, {logits_name}.shape={full_shape}")
  class_where = None
  if where is not None:
    where = check_bool(where, "where")
    if allow_class_where and where.shape == full_shape:
      class_where = jnp.moveaxis(where, ax, -1)
      where = jnp.any(class_where, axis=-1)
    elif where.shape != labels.shape:
      allowed = f" or the logits' shape {full_shape}" if allow_class_where else ""
      raise ValueError(f"where must be a boolean mask of shape {labels.shape} (one entry per example){allowed}, got "
                       f"where.shape={where.shape}")
  ok = (labels >= 0) & (labels < k)
  safe_labels = jnp.clip(labels, 0, k - 1)
  if class_where is not None:
    ok = ok & jnp.take_along_axis(class_where, safe_labels[..., None], axis=-1)[..., 0]
  requirement = f"integer class indices in [0, {k})" + (" of classes selected by where" if class_where is not None
                                                        else "")
  valid = check_values(ok, labels, labels_name, requirement, where)
  dtype = logits.dtype if compute_dtype is None else jnp.dtype(compute_dtype)
  z = logits.astype(compute_dtype_for(logits.dtype) if compute_dtype is None else compute_dtype)
  if where is not None:  # excluded rows must not send NaN into the gradient (the double-where trick)
    z = jnp.where(where[..., None], z, jnp.zeros((), z.dtype))
  return ClassificationInputs(z, safe_labels, where, class_where, valid, dtype)


def finish_per_example(loss: jax.Array, valid: jax.Array | None, where: jax.Array | None, dtype: Any) -> jax.Array:
  """The common tail of a per-example loss: NaN for invalid rows, 0 for rows excluded by `where`, output dtype."""
  loss = nan_where_invalid(loss, valid)
  if where is not None:
    loss = jnp.where(where.reshape(where.shape + (1,) * (loss.ndim - where.ndim)), loss, jnp.zeros((), loss.dtype))
  return loss.astype(dtype)


def combine_valid(*masks: jax.Array | None) -> jax.Array | None:
  """Logical AND of `valid` masks from `check_values` (None means all valid); broadcasts."""
  out = None
  for m in masks:
    if m is not None:
      out = m if out is None else (out & m)
  return out


def check_positive_values(x: Any, name: str, shape: tuple | None = None, *, allow_zero: bool = False,
                          where: Any = None) -> jax.Array | None:
  """A positive (or non-negative) floating hyperparameter given as a number or an array (e.g. one per example).

  Shape: a scalar or exactly `shape` (when given), else ValueError. Values: finite and > 0 (>= 0 with
  `allow_zero`): ValueError when concrete, a `valid` mask to poison with when traced (see `check_values`).
  """
  if shape is not None and np.ndim(x) != 0 and tuple(np.shape(x)) != tuple(shape):
    raise ValueError(f"{name} must be a scalar or have shape {tuple(shape)} (one per example), got "
                     f"{name}.shape={tuple(np.shape(x))}")
  dtype = _dtype_of(x)
  if jnp.issubdtype(dtype, jnp.complexfloating) or dtype == jnp.bool_:
    raise TypeError(f"{name} must be a real number, got {name}.dtype={np.dtype(dtype).name}")
  v = jnp.asarray(x)
  ok = jnp.isfinite(v) & ((v >= 0) if allow_zero else (v > 0))
  return check_values(ok, x, name, "finite and >= 0" if allow_zero else "finite and > 0",
                      None if where is None or np.ndim(x) == 0 else where)


def check_float_tree(tree: Any, name: str) -> None:
  """TypeError unless every leaf of the pytree `tree` is floating (it is differentiated); ValueError if it has none."""
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  if not leaves:
    raise ValueError(f"{name} has no array leaves")
  for path, leaf in leaves:
    dtype = _dtype_of(leaf)
    if not jnp.issubdtype(dtype, jnp.floating):
      raise TypeError(f"{name} must hold floating arrays (they are differentiated), got {name}"
                      f"{jax.tree_util.keystr(path)}.dtype={np.dtype(dtype).name}")
