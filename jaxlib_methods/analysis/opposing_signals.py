"""Opposing-signal groups from per-example loss histories [195].

Elan Rosenfeld & Andrej Risteski, "Outliers with Opposing Signals Have an Outsized Effect on Neural Network
Optimization", ICLR 2024, arXiv:2311.04163 (Sec. 2, identifying the groups): paired groups of training examples with a
large feature whose gradients point in opposite directions; their losses oscillate in antiphase (one group's loss
rises while the other's falls), so they are found as the examples whose loss changes most, in opposite directions,
between consecutive checkpoints. The sharpness that these groups drive to the edge of stability is
`analysis.hessian_top_eigenvalue`.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def _check_hist(loss_hist):
  h = validation.check_floating(loss_hist, "loss_hist")
  if h.ndim != 2 or h.shape[0] < 2 or h.shape[1] < 1:
    raise ValueError(f"loss_hist must be [T, n] per-example losses at T >= 2 checkpoints, got "
                     f"loss_hist.shape={h.shape}")
  return h


def opposing_signal_groups(loss_hist, k: int, *, step: Optional[int] = None):
  """The k examples whose loss rose most and the k whose loss fell most between two consecutive checkpoints.

  Rosenfeld & Risteski, ICLR 2024, arXiv:2311.04163, Sec. 2: with d_i = loss_i(t + 1) - loss_i(t), the "rising"
  group is the top-k of d and the "falling" group the top-k of -d. `step=None` picks the transition t with the
  largest total absolute change sum_i |d_i| (the strongest swing of the history).

  Args:
    loss_hist: [T, n] float per-example losses at T >= 2 checkpoints.
    k: int, 1 <= 2 k <= n, the size of each group.
    step: None (the largest swing) or an int transition index t in [0, T - 2] (a traced int works under jit).

  Returns:
    (rising, falling, t): int32 [k] indices of the two groups (largest change first) and the int32 transition t.
  """
  h = _check_hist(loss_hist)
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
    raise TypeError(f"k must be an int, got k={k!r}")
  if not 1 <= 2 * k <= h.shape[1]:
    raise ValueError(f"k must satisfy 1 <= 2 k <= n = {h.shape[1]}, got k={k}")
  if step is not None and validation.is_concrete_number(step) and not 0 <= int(step) <= h.shape[0] - 2:
    raise ValueError(f"step must be in [0, {h.shape[0] - 2}], got step={step}")
  return _groups(h, int(k), None if step is None else jnp.asarray(step, jnp.int32))


@functools.partial(jax.jit, static_argnums=1)
def _groups(h, k, step):
  d = h[1:] - h[:-1]                                             # [T-1, n]
  t = jnp.argmax(jnp.sum(jnp.abs(d), axis=1)).astype(jnp.int32) if step is None else step
  dt = d[t]
  return jax.lax.top_k(dt, k)[1].astype(jnp.int32), jax.lax.top_k(-dt, k)[1].astype(jnp.int32), t


def group_swing_correlation(loss_hist, group_a, group_b):
  """Pearson correlation over time of the mean loss changes of two groups of examples (antiphase: close to -1).

  Rosenfeld & Risteski, ICLR 2024, arXiv:2311.04163 (Sec. 2-3): opposing-signal groups oscillate in antiphase,
  the loss of one rising while the other's falls.

  Args:
    loss_hist: [T, n] float per-example losses at T >= 3 checkpoints.
    group_a: [ka] int indices of the first group (ka >= 1).
    group_b: [kb] int indices of the second group (kb >= 1).

  Returns:
    scalar float in [-1, 1] (NaN when a group's mean loss never changes).
  """
  h = _check_hist(loss_hist)
  if h.shape[0] < 3:
    raise ValueError(f"loss_hist needs T >= 3 checkpoints (two changes) for a correlation, got T={h.shape[0]}")
  ga = validation.check_integer(group_a, "group_a")
  gb = validation.check_integer(group_b, "group_b")
  for name, g in (("group_a", ga), ("group_b", gb)):
    if g.ndim != 1 or g.shape[0] < 1:
      raise ValueError(f"{name} must be a non-empty [k] index array, got {name}.shape={g.shape}")
    if not validation.is_traced(g) and bool(jnp.any((g < 0) | (g >= h.shape[1]))):
      raise ValueError(f"{name} indices must be in [0, {h.shape[1]}), got {name}={np.asarray(g).tolist()}")
  return _swing_corr(h, ga, gb)


@jax.jit
def _swing_corr(h, ga, gb):
  da = jnp.diff(h[:, ga].mean(1))
  db = jnp.diff(h[:, gb].mean(1))
  da, db = da - da.mean(), db - db.mean()
  return jnp.sum(da * db) / jnp.sqrt(jnp.sum(da * da) * jnp.sum(db * db))
