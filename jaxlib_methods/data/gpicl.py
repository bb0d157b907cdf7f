"""General-purpose in-context learning (GPICL) tasks: one base data set turned into many by random linear input
projections and label permutations [40].

Kirsch, Harrison, Sohl-Dickstein, Metz, "General-Purpose In-Context Learning by Meta-Learning Transformers", 2022,
arXiv:2212.04458, Sec. 2 ("Generating tasks for learning-to-learn"): from a supervised data set {(x_i, y_i)}, with
x_i in R^{N_x} and y_i in {0, ..., N_y - 1}, a task is

    tau = {(A x_i, rho(y_i))},   A_jk ~ N(0, 1 / N_x) i.i.d.,   rho a uniformly random permutation of the N_y labels.

The number of distinct tasks seen in meta-training is controlled by drawing each sequence's task from a finite pool
of `num_tasks` task seeds (the paper's x-axis "number of tasks", 2^k); `num_tasks=None` draws a fresh task per
sequence. The sequence model sees at step t the projected input and the previous step's one-hot label
(zeros at t = 0) and predicts the permuted label of step t. Here only the task generator; experiments/
analysis_wave3e.py meta-trains a small Transformer on it (the memorisation-to-generalisation transition).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


class GPICLBatch(NamedTuple):
  """A batch of GPICL sequences.

  Kirsch et al., "General-Purpose In-Context Learning by Meta-Learning Transformers", 2022, arXiv:2212.04458, Sec. 2.

  Attributes:
    inputs: [B, T, N_x] projected inputs A_b x.
    labels: [B, T] int32 permuted labels rho_b(y).
    tokens: [B, T, N_x + N_y] model inputs: inputs concatenated with the previous step's one-hot label (0 at t = 0).
    task_ids: [B] int32 index of each sequence's task in the pool (-1 when tasks are fresh).
    indices: [B, T] int32 rows of the base data set each step was drawn from.
  """
  inputs: jax.Array
  labels: jax.Array
  tokens: jax.Array
  task_ids: jax.Array
  indices: jax.Array


def gpicl_task(task_key, num_features: int, num_classes: int):
  """The projection and label permutation of one GPICL task (Kirsch et al. 2022, arXiv:2212.04458, Sec. 2).

  Args:
    task_key: PRNG key of the task.
    num_features: N_x >= 1, the input dimension.
    num_classes: N_y >= 2, the number of labels.

  Returns:
    A tuple of A [N_x, N_x] float32 with entries N(0, 1 / N_x) and rho [N_y] int32, a permutation of range(N_y).
  """
  nx = validation.check_int(num_features, "num_features", 1)
  ny = validation.check_int(num_classes, "num_classes", 2)
  k_a, k_p = jax.random.split(task_key)
  A = jax.random.normal(k_a, (nx, nx), jnp.float32) / np.sqrt(nx)
  rho = jax.random.permutation(k_p, ny).astype(jnp.int32)
  return A, rho


def gpicl_batch(key, x, y, *, num_classes: int, batch_size: int, seq_len: int, num_tasks: Optional[int] = None,
                pool_key=None):
  """A batch of GPICL sequences from a base data set (Kirsch et al. 2022, arXiv:2212.04458, Sec. 2).

  Sequence b uses task tau_b = (A_b, rho_b) = `gpicl_task(task key)`: with a pool, task id t_b is uniform in
  [0, num_tasks) and the task key is `fold_in(pool key, t_b)` (the same id always gives the same task); without one
  every sequence gets a fresh task. Its T steps are base examples drawn uniformly with replacement. Meta-training
  on a fixed pool passes a fixed `pool_key` and a new `key` per step: fresh batches, the same `num_tasks` tasks.

  Args:
    key: PRNG key (unless `pool_key` is given, the pool key is `fold_in(key, 0)`, so a fixed key fixes the pool).
    x: [N, N_x] float base inputs (the paper z-normalises them first).
    y: [N] int base labels in [0, num_classes).
    num_classes: N_y >= 2.
    batch_size: B >= 1 sequences.
    seq_len: T >= 1 steps per sequence.
    num_tasks: size of the task pool (int >= 1), or None for a fresh task per sequence.
    pool_key: PRNG key of the task pool (task id t is `gpicl_task(fold_in(pool_key, t))`); None (the default) uses
      `fold_in(key, 0)`.

  Returns:
    A `GPICLBatch` (inputs [B, T, N_x] float32, labels [B, T] int32, tokens [B, T, N_x + N_y], task_ids [B],
    indices [B, T]).
  """
  x = validation.check_floating(x, "x")
  if x.ndim != 2 or x.shape[0] < 1:
    raise ValueError(f"x must be [N, N_x] with N >= 1, got x.shape={x.shape}")
  ny = validation.check_int(num_classes, "num_classes", 2)
  y = validation.check_integer(y, "y")
  if y.shape != (x.shape[0],):
    raise ValueError(f"y must be [N] = [{x.shape[0]}] labels, got y.shape={y.shape}")
  validation.check_labels(y, ny, "y")
  if not validation.is_traced(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
    raise ValueError("x must be finite (no NaN/Inf)")
  B = validation.check_int(batch_size, "batch_size", 1)
  T = validation.check_int(seq_len, "seq_len", 1)
  if num_tasks is not None:
    num_tasks = validation.check_int(num_tasks, "num_tasks", 1)
  n, nx = x.shape
  # the pool depends on the (pool) key alone, not on B, T or num_tasks
  k_pool = jax.random.fold_in(key, 0) if pool_key is None else pool_key
  k_task, k_idx = jax.random.split(jax.random.fold_in(key, 1))
  if num_tasks is None:
    task_ids = jnp.full((B,), -1, jnp.int32)
    task_keys = jax.random.split(k_task, B)
  else:
    task_ids = jax.random.randint(k_task, (B,), 0, num_tasks, jnp.int32)
    task_keys = jax.vmap(lambda t: jax.random.fold_in(k_pool, t))(task_ids)
  A, rho = jax.vmap(lambda k: gpicl_task(k, nx, ny))(task_keys)  # [B, N_x, N_x], [B, N_y]
  idx = jax.random.randint(k_idx, (B, T), 0, n, jnp.int32)
  xs = x.astype(jnp.float32)[idx]  # [B, T, N_x]
  inputs = jnp.einsum("bjk,btk->btj", A, xs, precision=jax.lax.Precision.HIGHEST)
  labels = jnp.take_along_axis(rho, y.astype(jnp.int32)[idx], axis=1)
  prev = jax.nn.one_hot(labels, ny, dtype=jnp.float32)
  prev = jnp.concatenate([jnp.zeros_like(prev[:, :1]), prev[:, :-1]], axis=1)
  tokens = jnp.concatenate([inputs, prev], axis=-1)
  return GPICLBatch(inputs, labels, tokens, task_ids, idx)
