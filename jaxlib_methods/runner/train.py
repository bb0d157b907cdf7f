"""The shared training loop: jitted chunks of steps, metrics every chunk, orbax checkpoints, exact resume.

An experiment supplies its whole training state as one pytree of arrays (params, optimizer state, PRNG key, any
running statistics) and two pure functions:

    advance(state, start_step, num_steps) -> state    # jitted; usually a lax.scan over steps, data folded from step
    measure(state, step) -> dict of scalars           # what goes into metrics.jsonl

`train` calls `advance` in chunks of `log_every` steps, logs `measure` after each chunk, and saves an orbax
checkpoint (CheckpointManager, last `keep` kept) every `checkpoint_every` steps and at the end. Rerunning with the
same workdir restores the latest checkpoint and continues: since chunks always start at multiples of `log_every`
and every step is a pure function of (state, step), a killed-and-resumed run ends bitwise equal to an uninterrupted
one on CPU. A non-finite value in `measure` stops the run with a clear error (the last good checkpoint is kept).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import shutil
from typing import Any, Callable, Mapping, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxlib_methods.runner.io import MetricsLog
from jaxlib_methods.runner.progress import progress


class NonFiniteError(FloatingPointError):
  """A logged metric became NaN/Inf: the run stops instead of silently training on garbage."""


@dataclasses.dataclass(frozen=True)
class TrainResult:
  state: Any
  resumed_from: Optional[int]   # the checkpoint step the run resumed from (None: started fresh)
  rows: list                    # all metrics rows, including those logged before a resume


def _to_host(x: Any) -> Any:
  v = np.asarray(jax.device_get(x))
  return v.item() if v.ndim == 0 else v.tolist()


def train(
    *,
    workdir: pathlib.Path,
    state: Any,
    advance: Callable[[Any, int, int], Any],
    measure: Callable[[Any, int], Mapping[str, Any]],
    num_steps: int,
    log_every: int,
    checkpoint_every: Optional[int] = None,
    keep: int = 3,
    desc: str = "",
    state_sharding: Any = None,
) -> TrainResult:
  """Run (or resume) a training loop; see the module docstring.

  Args:
    workdir: the run's directory; metrics.jsonl and checkpoints/ live there.
    state: the initial state pytree (used as is when no checkpoint exists; as the restore template otherwise).
    advance: `advance(state, start_step, n) -> state`, pure; called with n = log_every (the last chunk may be shorter).
    measure: `measure(state, step) -> {name: scalar}`; logged at step 0 and after every chunk.
    num_steps: total number of steps (>= 1).
    log_every: chunk length (>= 1).
    checkpoint_every: save every this many steps (a multiple of log_every); None saves only at the end.
    keep: how many checkpoints to keep.
    desc: progress-bar label.
    state_sharding: optional pytree of shardings for restore (default: the shardings of `state`).
  """
  if num_steps < 1 or log_every < 1:
    raise ValueError(f"num_steps and log_every must be >= 1, got {num_steps=}, {log_every=}")
  if checkpoint_every is not None and (checkpoint_every < 1 or checkpoint_every % log_every):
    raise ValueError(f"checkpoint_every must be a positive multiple of log_every, got {checkpoint_every=}, "
                     f"{log_every=}")
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  metrics = MetricsLog(workdir)
  ckpt_dir = (workdir / "checkpoints").absolute()
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
  with ocp.CheckpointManager(ckpt_dir, options=options) as manager:
    start = manager.latest_step()
    resumed_from = start
    if start is not None:
      shardings = state_sharding if state_sharding is not None else jax.tree.map(lambda x: x.sharding, state)
      abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)
      state = manager.restore(start, args=ocp.args.StandardRestore(abstract))
      metrics.truncate_after(start)
    else:
      start = 0
      metrics.reset()
      _log(metrics, measure(state, 0), 0)

    bar = progress(num_steps, initial=start, desc=desc)
    step = start
    try:
      while step < num_steps:
        n = min(log_every, num_steps - step)
        state = advance(state, step, n)
        step += n
        _log(metrics, measure(state, step), step)
        bar.update(n)
        if step == num_steps or (checkpoint_every and step % checkpoint_every == 0):
          manager.save(step, args=ocp.args.StandardSave(state))
    finally:
      bar.close()
    manager.wait_until_finished()
  return TrainResult(state=state, resumed_from=resumed_from, rows=metrics.rows)


def _log(metrics: MetricsLog, values: Mapping[str, Any], step: int) -> None:
  row = {k: _to_host(v) for k, v in values.items()}
  bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
  metrics.log(step, **row)
  if bad:
    raise NonFiniteError(f"non-finite metric(s) {bad} at step {step}: stopping (metrics.jsonl has the row; the last "
                         "checkpoint is kept)")


def clear(workdir: pathlib.Path) -> None:
  """Remove a run's checkpoints, memoised sweep sub-runs and metrics (a fresh start)."""
  workdir = pathlib.Path(workdir)
  shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
  shutil.rmtree(workdir / "subruns", ignore_errors=True)
  (workdir / "metrics.jsonl").unlink(missing_ok=True)
