"""A streaming nearest-mean classifier (NMC) over frozen features.

Janson, Zhang, Aljundi, Elhoseiny, "A Simple Baseline that Questions the Use of Pretrained-Models in Continual
Learning", NeurIPS 2022 workshop (DistShift), arXiv:2210.04428 (Sec. 3, the baseline): a frozen pretrained encoder
maps every training image to a feature; each class keeps the mean of its features, "updated continually" (so the
classifier is exemplar-free, single-headed and task-free); a test feature is assigned to the class of the nearest
mean in Euclidean distance.

The state is two arrays (a mean and a count per class), so it jits, vmaps and checkpoints; `nearest_mean_update`
folds in a batch with the running-mean rule

    n_k <- n_k + c_k,     mu_k <- mu_k + (s_k - c_k mu_k) / n_k,

(c_k, s_k: the batch's count and feature sum of class k), whose result after any sequence of batches is the mean of
all features seen for the class, whatever their order (up to rounding). Classes never seen are not predicted.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


class NearestMeanState(NamedTuple):
  """The classifier: `means` [K, D] (rows of unseen classes are 0) and `counts` [K] int32 (features seen); the
  nearest-mean baseline of Janson et al. 2022, arXiv:2210.04428, Sec. 3."""
  means: jax.Array
  counts: jax.Array


def nearest_mean_init(num_classes: int, dim: int, dtype: Any = jnp.float32) -> NearestMeanState:
  """An empty nearest-mean classifier (Janson et al. 2022, arXiv:2210.04428, Sec. 3).

  Args:
    num_classes: int >= 1, the number of classes K the stream may contain.
    dim: int >= 1, the feature dimension D.
    dtype: floating dtype of the means.

  Returns:
    NearestMeanState with means [K, D] zeros and counts [K] zeros.
  """
  for name, v in (("num_classes", num_classes), ("dim", dim)):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"{name} must be a Python int >= 1, got {name}={v!r}")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"dtype must be a floating dtype, got {dtype=}")
  return NearestMeanState(jnp.zeros((num_classes, dim), dtype), jnp.zeros((num_classes,), jnp.int32))


def _check_state(state: Any) -> NearestMeanState:
  if not isinstance(state, NearestMeanState):
    raise TypeError(f"state must be a NearestMeanState (from nearest_mean_init), got {type(state).__name__}")
  return state


def _check_features(features: Any, state: NearestMeanState) -> jax.Array:
  x = validation.check_floating(features, "features")
  d = state.means.shape[1]
  if x.ndim != 2 or x.shape[1] != d:
    raise ValueError(f"features must have shape [B, D] with D = {d} (the state's dim), got features.shape={x.shape}")
  return x


def nearest_mean_update(state: NearestMeanState, features: Any, labels: Any,
                        where: Optional[Any] = None) -> NearestMeanState:
  """Fold a batch of labelled features into the class means (the running-mean rule of the module docstring).

  Janson et al. 2022, arXiv:2210.04428, Sec. 3 ("task-free by updating the means continually").

  Args:
    state: the current NearestMeanState.
    features: [B, D] float features of the batch (from a frozen encoder); B may be 0.
    labels: [B] int class indices in [0, K).
    where: optional [B] bool mask; False rows are ignored (their labels are not checked).

  Returns:
    The updated NearestMeanState (means in the state's dtype, computed in at least float32). Traced invalid labels
    make the means NaN (the library's rule for invalid traced values).
  """
  state = _check_state(state)
  x = _check_features(features, state)
  k = state.means.shape[0]
  labels = validation.check_integer(labels, "labels")
  if labels.shape != x.shape[:1]:
    raise ValueError(f"labels must have shape [B]=({x.shape[0]},), got labels.shape={labels.shape}")
  where = validation.check_where(where, labels.shape)
  valid = validation.check_labels(labels, k, "labels", where)
  w = jnp.ones(labels.shape, bool) if where is None else where
  ct = jnp.promote_types(validation.compute_dtype_for(x.dtype), state.means.dtype)
  onehot = jax.nn.one_hot(jnp.clip(labels, 0, k - 1), k, dtype=ct) * w[:, None].astype(ct)   # [B, K]
  c = jnp.sum(onehot, axis=0)                                                                  # [K]
  s = onehot.T @ jnp.where(w[:, None], x.astype(ct), 0.0)                                      # [K, D]
  counts = state.counts + c.astype(jnp.int32)
  mu = state.means.astype(ct)
  mu = mu + (s - c[:, None] * mu) / jnp.maximum(counts, 1).astype(ct)[:, None]
  mu = validation.nan_where_invalid(mu, None if valid is None else jnp.all(valid))
  return NearestMeanState(mu.astype(state.means.dtype), counts)


def nearest_mean_distances(state: NearestMeanState, features: Any) -> jax.Array:
  """Squared Euclidean distances from each feature to each class mean, +inf for classes not seen yet.

  Janson et al. 2022, arXiv:2210.04428, Sec. 3 (the nearest-mean rule).

  Args:
    state: a NearestMeanState.
    features: [B, D] float features.

  Returns:
    [B, K] float distances (argmin over the last axis is the prediction).
  """
  state = _check_state(state)
  x = _check_features(features, state)
  ct = jnp.promote_types(validation.compute_dtype_for(x.dtype), state.means.dtype)
  x, mu = x.astype(ct), state.means.astype(ct)
  d2 = jnp.sum((x[:, None, :] - mu[None, :, :]) ** 2, axis=-1)
  return jnp.where(state.counts[None, :] > 0, d2, jnp.inf)


def nearest_mean_predict(state: NearestMeanState, features: Any) -> jax.Array:
  """The class of the nearest mean among the classes seen so far (Janson et al. 2022, arXiv:2210.04428, Sec. 3).

  Args:
    state: a NearestMeanState with at least one class seen (checked when the counts are concrete).
    features: [B, D] float features.

  Returns:
    [B] int32 predicted classes.
  """
  state = _check_state(state)
  # NumPy, not jnp: under jit a jnp op on a closed-over concrete state gives a tracer (TracerBoolConversionError).
  if not validation.is_traced(state.counts) and not np.any(np.asarray(state.counts) > 0):
    raise ValueError("state has seen no class yet (every count is 0): call nearest_mean_update first")
  return jnp.argmin(nearest_mean_distances(state, features), axis=-1).astype(jnp.int32)
