"""Continual-evaluation metrics of the stability gap: min-ACC, WC-ACC, windowed forgetting and windowed plasticity.

De Lange, van de Ven, Tuytelaars, "Continual Evaluation for Lifelong Learning: Identifying the Stability Gap",
ICLR 2023, arXiv:2205.13452, Sec. 3 (the definitions as implemented in the authors' released code; the equation
numbers below are our reading of the paper). Inputs are per-iteration
accuracy curves `acc` [T, K]: acc[t, i] is the accuracy on task i's evaluation set after training iteration t, and
`task_end` [K] the iteration at which training on task i ended (tasks are learnt in order, task_end increasing).

- min-ACC at iteration t (current task k, the tasks i < k finished): the average over the finished tasks of the
  minimum accuracy of task i at any iteration after its training ended, min_{task_end[i] < t' <= t} acc[t', i]
  (Eq. 3: a worst-case lower bound on the accuracy of previous tasks);
- WC-ACC at t: 1/k acc[t, k] + (1 - 1/k) min-ACC (Eq. 4), k = number of tasks seen (current included);
- windowed forgetting WF^w of task i: the largest drop max_{m < n, n - m < w} acc[m, i] - acc[n, i] within any
  window of w consecutive evaluations (Eq. 5; the paper averages it over tasks);
- windowed plasticity WP^w: the largest rise acc[n, i] - acc[m, i] within a window (Eq. 6).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def _check_acc(acc):
  a = validation.check_floating(acc, "acc")
  if a.ndim == 1:
    a = a[:, None]
  if a.ndim != 2 or a.shape[0] < 1:
    raise ValueError(f"acc must be [T, K] per-iteration accuracies (iterations x tasks), got acc.shape={a.shape}")
  return a


def _check_task_end(task_end, K):
  e = validation.check_integer(task_end, "task_end")
  if e.shape != (K,):
    raise ValueError(f"task_end must be [K] = [{K}] (the last training iteration of each task), got "
                     f"task_end.shape={e.shape}")
  if not validation.is_traced(e):
    en = np.asarray(e)
    if np.any(np.diff(en) <= 0):
      raise ValueError(f"task_end must be strictly increasing (tasks are learnt in order), got {en.tolist()}")
  return e


def _check_step(step, T):
  if step is None:
    return T - 1
  if isinstance(step, (int, np.integer)) and not isinstance(step, bool) and not 0 <= step < T:
    raise ValueError(f"step must lie in [0, T={T}), got {step=}")
  return step


def _task_minima(a, e, step):
  """[K] min_{e_i < t' <= step} acc[t', i] (inf when the range is empty) and the mask of finished tasks."""
  t = jnp.arange(a.shape[0])[:, None]
  inside = (t > e[None, :]) & (t <= step)
  minima = jnp.min(jnp.where(inside, a, jnp.inf), axis=0)
  finished = e < step
  return minima, finished


def min_acc(acc, task_end, *, step: Optional[int] = None):
  """Average minimum accuracy of the finished tasks (De Lange et al. 2023, arXiv:2205.13452, Eq. 3).

  Args:
    acc: [T, K] float accuracy of each task's evaluation set after each iteration.
    task_end: [K] int, strictly increasing: the iteration at which training on each task ended.
    step: the iteration t at which to evaluate (default the last, T - 1).

  Returns:
    scalar: mean over tasks i with task_end[i] < step of min_{task_end[i] < t' <= step} acc[t', i]; NaN when no
    task has finished (min-ACC is undefined during the first task).
  """
  a = _check_acc(acc)
  e = _check_task_end(task_end, a.shape[1])
  step = _check_step(step, a.shape[0])
  minima, finished = _task_minima(a, e, step)
  n = jnp.sum(finished)
  total = jnp.sum(jnp.where(finished, minima, 0.0))
  return jnp.where(n > 0, total / jnp.maximum(n, 1), jnp.nan)


def wc_acc(acc, task_end, *, step: Optional[int] = None):
  """Worst-case accuracy WC-ACC = 1/k acc[t, k] + (1 - 1/k) min-ACC (De Lange et al. 2023, arXiv:2205.13452, Eq. 4).

  Args:
    acc: [T, K] float accuracy of each task's evaluation set after each iteration.
    task_end: [K] int, strictly increasing: the iteration at which training on each task ended.
    step: the iteration t (default the last); the current task k is the first whose training has not ended
      before t (the last task after the end).

  Returns:
    scalar; during the first task (k = 1) it equals the current task's accuracy.
  """
  a = _check_acc(acc)
  e = _check_task_end(task_end, a.shape[1])
  step = _check_step(step, a.shape[0])
  minima, finished = _task_minima(a, e, step)
  done = jnp.sum(finished)
  current = jnp.minimum(done, a.shape[1] - 1)
  k = current + 1
  prev = finished & (jnp.arange(a.shape[1]) < current)
  mean_min = jnp.sum(jnp.where(prev, minima, 0.0)) / jnp.maximum(jnp.sum(prev), 1)
  return a[step, current] / k + (1.0 - 1.0 / k) * mean_min


def _windowed_max_delta(a, window, sign, where):
  if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
    raise ValueError(f"window must be a positive int (evaluations per window), got {window=}")
  x = sign * a
  if where is not None:
    w = validation.check_bool(where, "where")
    if w.shape != a.shape:
      raise ValueError(f"where must have acc's shape {a.shape}, got where.shape={w.shape}")
  else:
    w = jnp.ones(a.shape, bool)
  lead = jnp.where(w, x, -jnp.inf)
  # trailing max over the window [n - window + 1, n] of each column
  run = jax.lax.reduce_window(lead, -jnp.inf, jax.lax.max, (int(window), 1), (1, 1), ((int(window) - 1, 0), (0, 0)))
  delta = jnp.where(w, run - x, 0.0)
  return jnp.maximum(jnp.max(delta, axis=0), 0.0)


def windowed_forgetting(acc, window: int, *, where=None):
  """Windowed forgetting WF^w of each task: the largest accuracy drop acc[m] - acc[n], m < n < m + w, within any
  window of w consecutive evaluations (De Lange et al. 2023, arXiv:2205.13452, Eq. 5).

  Args:
    acc: [T] or [T, K] float per-iteration accuracies.
    window: int >= 1, the window length w in evaluations (the paper's WF^10 and WF^100).
    where: optional [T, K] bool; False entries (a task not evaluated at that iteration) are left out; the window
      still counts iterations.

  Returns:
    [K] float >= 0; average over tasks for the paper's WF^w.
  """
  return _windowed_max_delta(_check_acc(acc), window, 1.0, where)


def windowed_plasticity(acc, window: int, *, where=None):
  """Windowed plasticity WP^w of each task: the largest accuracy rise acc[n] - acc[m], m < n < m + w, within any
  window of w consecutive evaluations (De Lange et al. 2023, arXiv:2205.13452, Eq. 6).

  Args:
    acc: [T] or [T, K] float per-iteration accuracies.
    window: int >= 1, the window length w in evaluations.
    where: optional [T, K] bool; False entries are left out (the window still counts iterations).

  Returns:
    [K] float >= 0.
  """
  return _windowed_max_delta(_check_acc(acc), window, -1.0, where)
