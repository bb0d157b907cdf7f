"""The shared training loop: jitted chunks of steps, metrics every chunk, orbax checkpoints, exact resume.

An experiment supplies its whole training state as one pytree of arrays (params, optimizer state, PRNG key, any
running statistics) and two pure functions:

    advance(state, start_step, num_steps) -> state    # jitted; usually a lax.scan over steps, data folded from step
                                                      # (`scan_steps(one_step)` builds that one)
    measure(state, step) -> dict of scalars           # what goes into metrics.jsonl

`train` calls `advance` in chunks of `log_every` steps, logs `measure` after each chunk, and saves an orbax
checkpoint (CheckpointManager, last `keep` kept) every `checkpoint_every` steps and at the end. Rerunning with the
same workdir restores the latest checkpoint and continues: since chunks always start at multiples of `log_every`
and every step is a pure function of (state, step), a killed-and-resumed run ends bitwise equal to an uninterrupted
one on CPU. A non-finite value in `measure` stops the run with a clear error (the last good checkpoint is kept).

Checkpoints carry a fingerprint: the sha256 of the run's config (when run by the CLI, which sets it through
`runner.control`) and a sha256 of the state's bytes, both in orbax's per-step custom metadata. On resume:
  - a checkpoint written by another config is refused (`ConfigMismatchError`, exit status 2), even when config.json
    has been deleted;
  - a checkpoint past `num_steps` (a longer run's) is refused too (`ConfigMismatchError`), not returned as the result;
  - a damaged checkpoint (orbax cannot restore it, its metadata is gone, or its bytes no longer match the digest, as
    after a bit flip that TensorStore reads back without complaint) is moved to `damaged_checkpoints/` and the run
    falls back to the newest one that restores, and says so on stderr; when none restores, `CheckpointError`
    (exit status 4) says what was tried.
A stop request (the CLI's first Ctrl-C or SIGTERM) ends the loop after the current chunk with a checkpoint and raises
`control.Interrupted`; rerunning the same command resumes from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import os
import pathlib
import re
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.runner import control as run_control
from jaxlib_methods.runner.constraints import UsageError
from jaxlib_methods.runner.io import MetricsLog
from jaxlib_methods.runner.progress import progress
from jaxlib_methods.runner.workdir import WorkdirError, clear as _clear_workdir

if TYPE_CHECKING:   # imported where checkpoints are written or read: a usage error or `list` does not pay for it
  import orbax.checkpoint as ocp

CONFIG_KEY = "config_sha256"    # per-step custom metadata: the fingerprint of the config that wrote the checkpoint
DIGEST_KEY = "state_sha256"     # ... and of the state's bytes
DAMAGED_DIR = "damaged_checkpoints"


class NonFiniteError(FloatingPointError):
  """A logged metric became NaN/Inf: the run stops instead of silently training on garbage."""


class ConfigMismatchError(UsageError):
  """The workdir's checkpoints were written by another config: resuming them would be silently wrong (exit 2)."""


class CheckpointError(WorkdirError):
  """Checkpoints exist but none of them restores (exit 4): the message lists each one and why."""


@dataclasses.dataclass(frozen=True)
class TrainResult:
  state: Any
  resumed_from: Optional[int]   # the checkpoint step the run resumed from (None: started fresh)
  rows: list                    # all metrics rows, including those logged before a resume


def _to_host(x: Any) -> Any:
  v = np.asarray(jax.device_get(x))
  return v.item() if v.ndim == 0 else v.tolist()


def scan_steps(one_step: Callable[[Any, jax.Array], tuple[Any, Any]]) -> Callable[[Any, int, int], Any]:
  """The usual `advance` for `train`: one jitted `lax.scan` of `one_step(state, step) -> (state, aux)` over the int32
  steps start, ..., start + n - 1 (aux is dropped). The steps are an argument, so the chunks compile once per length
  (`log_every`, and a shorter last chunk), not once per start.
  """
  @jax.jit
  def run(state, steps):
    return jax.lax.scan(one_step, state, steps)[0]

  def advance(state, start, n):
    return run(state, jnp.arange(start, start + n, dtype=jnp.int32))
  return advance


def minimize(loss_fn: Callable[..., Any], params: Any, tx: Any, xs: Any = None, *, length: Optional[int] = None,
             has_aux: bool = False) -> tuple[Any, Any]:
  """The in-memory optimisation loop of the experiments: one `lax.scan` of optax steps on `loss_fn`.

  Each step is `value, g = value_and_grad(loss_fn)(p[, x]); u, s = tx.update(g, s, p); p = apply_updates(p, u)`,
  from `s = tx.init(params)`. With `xs` (a pytree whose leaves have a leading axis of the number of steps: the
  step indices, a split PRNG key, minibatch indices ...) step t calls `loss_fn(p, x_t)`; without it,
  `loss_fn(p)` (full batch) for `length` steps. `has_aux` as in `jax.value_and_grad`: the value is then
  `(loss, aux)`.

  Returns `(params, values)`: the final parameters and the stacked per-step values ([steps] losses, or
  `(losses, aux)` stacked), each measured before that step's update. Pure and traceable (call it inside `jit` or
  `vmap`); no checkpoints or logging: a long run that should survive interruption goes through `train`.
  """
  if xs is None and length is None:
    raise UsageError("minimize: give `xs` (one slice per step) or `length` (the number of full-batch steps)")
  import optax    # here, not at the top: the runner's usage errors do not pay for it
  value_and_grad = jax.value_and_grad(loss_fn, has_aux=has_aux)

  def step(carry, x):
    p, s = carry
    value, g = value_and_grad(p) if xs is None else value_and_grad(p, x)
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), value

  (params, _), values = jax.lax.scan(step, (params, tx.init(params)), xs, length=length)
  return params, values


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
    keep: how many checkpoints to keep (>= 1; None keeps every one).
    desc: progress-bar label.
    state_sharding: optional pytree of shardings for restore (default: the shardings of `state`).
  """
  if num_steps < 1 or log_every < 1:
    raise ValueError(f"num_steps and log_every must be >= 1, got {num_steps=}, {log_every=}")
  if checkpoint_every is not None and (checkpoint_every < 1 or checkpoint_every % log_every):
    raise ValueError(f"checkpoint_every must be a positive multiple of log_every, got {checkpoint_every=}, "
                     f"{log_every=}")
  if keep is not None and keep < 1:   # orbax keeps none at 0, not even the final one: the run could never resume
    raise ValueError(f"keep must be >= 1 (or None: keep every checkpoint), got {keep=}")
  # Host leaves (NumPy arrays, Python numbers) as the jax.Arrays `advance` would make of them: the restore template
  # needs each leaf's sharding, which only a jax.Array has.
  state = jax.tree.map(lambda x: x if isinstance(x, jax.Array) else jnp.asarray(x), state)
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  metrics = MetricsLog(workdir)
  ckpt_dir = (workdir / "checkpoints").absolute()
  control = run_control.current()
  config_hash = control.config_hash if control is not None else None
  import orbax.checkpoint as ocp
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
  handler = ocp.StandardCheckpointHandler()
  with ocp.CheckpointManager(ckpt_dir, options=options, item_handlers=handler) as manager:
    shardings = state_sharding if state_sharding is not None else jax.tree.map(lambda x: x.sharding, state)
    start, restored = _restore_newest(manager, state, shardings, config_hash, workdir)
    resumed_from = start
    if start is not None and start > num_steps:   # continuing would return a state trained past what was asked
      raise ConfigMismatchError(
          f"the newest checkpoint in {ckpt_dir} is at step {start}, past num_steps={num_steps}: that run trained "
          "longer; pass --fresh (or clear the workdir) to start over, or use another --workdir")
    if start is not None:
      state = restored
      metrics.truncate_after(start)
    else:
      start = 0
      metrics.reset()
      _log(metrics, measure(state, 0), 0)

    def save(step):
      custom = {DIGEST_KEY: state_digest(state)}
      if config_hash is not None:
        custom[CONFIG_KEY] = config_hash
      with _without_event_loop_noise():
        manager.save(step, args=ocp.args.StandardSave(state), custom_metadata=custom)
        manager.wait_until_finished()

    bar = progress(num_steps, initial=start, desc=desc)
    step = start
    if control is not None:
      control.in_loop += 1
    try:
      while step < num_steps:
        n = min(log_every, num_steps - step)
        state = advance(state, step, n)
        step += n
        _log(metrics, measure(state, step), step)
        bar.update(n)
        saved = step == num_steps or bool(checkpoint_every and step % checkpoint_every == 0)
        if saved:
          save(step)
        if control is not None and control.stop.is_set() and step < num_steps:
          if not saved:
            save(step)
          raise run_control.Interrupted(step, num_steps, str(ckpt_dir))
    finally:
      if control is not None:
        control.in_loop -= 1
      bar.close()
    manager.wait_until_finished()
  return TrainResult(state=state, resumed_from=resumed_from, rows=metrics.rows)


def state_digest(state: Any) -> Optional[str]:
  """sha256 over every leaf's path, dtype, shape and bytes (typed PRNG keys by their key data); None when a leaf is
  not fully addressable from this process (multi-process arrays: orbax's own checks are all there is then)."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    if isinstance(leaf, jax.Array):
      if not leaf.is_fully_addressable:
        return None
      if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    a = np.ascontiguousarray(np.asarray(jax.device_get(leaf)))
    h.update(f"{jax.tree_util.keystr(path)}|{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def step_metadata(manager: ocp.CheckpointManager, step: int) -> dict:
  """The custom metadata a step was saved with ({} when it has none).

  Raises:
    MetadataError: the step's metadata cannot be read (a damaged or empty step directory).
  """
  try:
    with _without_event_loop_noise():
      md = manager.metadata(step)
  except Exception as e:  # a damaged step: orbax raises various types here
    raise MetadataError(f"{type(e).__name__}: {_first_line(e)}") from e
  custom = getattr(md, "custom_metadata", None)
  return dict(custom) if custom else {}


class MetadataError(Exception):
  """A checkpoint step's metadata cannot be read."""


def _try_metadata(manager, step) -> tuple[Optional[dict], str]:
  try:
    return step_metadata(manager, step), ""
  except MetadataError as e:
    return None, str(e)


def checkpoint_config_hashes(ckpt_dir: pathlib.Path) -> dict[int, Optional[str]]:
  """Step -> the config fingerprint it carries (None: not recorded or unreadable), read without restoring."""
  ckpt_dir = pathlib.Path(ckpt_dir).absolute()
  if not ckpt_dir.is_dir():
    return {}
  import orbax.checkpoint as ocp
  options = ocp.CheckpointManagerOptions(create=False, enable_async_checkpointing=False)
  # Reads metadata only; saves nothing.
  with ocp.CheckpointManager(ckpt_dir, options=options, item_handlers=ocp.StandardCheckpointHandler()) as manager:
    out = {}
    for step in manager.all_steps():
      md, _ = _try_metadata(manager, step)
      out[step] = (md or {}).get(CONFIG_KEY)
    return out


def _restore_newest(manager, state, shardings, config_hash, workdir: pathlib.Path):
  """(step, restored state) of the newest checkpoint that restores intact, or (None, None) when there is none.

  Refuses checkpoints of another config; moves damaged ones newer than the one restored to damaged_checkpoints/.
  """
  import orbax.checkpoint as ocp
  steps = sorted(manager.all_steps(), reverse=True)
  if not steps:
    return None, None
  metas = {step: _try_metadata(manager, step) for step in steps}
  if config_hash is not None:
    foreign = [s for s in steps if metas[s][0] and metas[s][0].get(CONFIG_KEY) not in (None, config_hash)]
    if foreign:
      raise ConfigMismatchError(
          f"the checkpoints in {manager.directory} (steps {', '.join(map(str, sorted(foreign)))}) were written by "
          f"another config: pass --fresh to discard them, or use another --workdir")
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)
  damaged = []
  for step in steps:
    meta, why = metas[step]
    if meta is None:
      damaged.append((step, f"its metadata cannot be read ({why})"))
      continue
    if config_hash is not None and CONFIG_KEY not in meta:
      damaged.append((step, "it carries no config fingerprint (metadata missing), so it cannot be verified"))
      continue
    try:
      with _without_event_loop_noise(), _x64_visible_to_orbax(abstract):
        restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # orbax/TensorStore raise many types for damaged files
      damaged.append((step, f"orbax cannot restore it ({type(e).__name__}: {_first_line(e)})"))
      continue
    expected = meta.get(DIGEST_KEY)
    if expected is not None and state_digest(restored) != expected:
      damaged.append((step, "its bytes do not match the digest saved with it (corrupted data file)"))
      continue
    if damaged:
      _set_aside(manager, [s for s, _ in damaged], workdir)
      for s, why in damaged:
        print(f"[train] checkpoint step {s} is damaged: {why}; moved to {workdir / DAMAGED_DIR}", file=sys.stderr)
      print(f"[train] falling back to checkpoint step {step}, the newest that restores intact", file=sys.stderr)
    return step, restored
  reasons = "; ".join(f"step {s}: {why}" for s, why in damaged)
  raise CheckpointError(f"no checkpoint in {manager.directory} restores ({reasons}): pass --fresh to start over "
                        "(this discards them)")


_NOISE = (re.compile(r'Traceback \(most recent call last\):'),
          re.compile(r'File "[^"]*asyncio[/\\]base_events\.py", line \d+, in (call_soon_threadsafe|_check_closed)'),
          re.compile(r"self\._check_closed\(\)"),
          re.compile(r"raise RuntimeError\('Event loop is closed'\)"),
          re.compile(r"RuntimeError: Event loop is closed"))


_NOISE_LINES = ("Traceback (most recent call last):", "self._check_closed()",
                "raise RuntimeError('Event loop is closed')", "RuntimeError: Event loop is closed", 'File "')


def _noise_fragment(line: str) -> bool:
  """A piece of a noise line cut short (the temp file hit the same full disk or `ulimit -f`)."""
  text = line.strip()
  return any(noise.startswith(text) for noise in _NOISE_LINES) or ("asyncio" in text and text.startswith('File "'))


@contextlib.contextmanager
def _x64_visible_to_orbax(abstract: Any):
  """Make 64-bit dtypes survive a restore when the caller enabled them with the thread-local `jax.enable_x64()`.

  orbax may build the restored arrays in a worker thread (it does whenever an event loop already runs in the calling
  thread, e.g. in Jupyter), where the caller's thread-local x64 setting does not apply: float64 leaves would come back
  as float32, silently rounded (the state digest catches it). While restoring a state with 64-bit leaves, the global
  flag is set to the calling thread's effective value and put back afterwards.
  """
  wide = any(np.dtype(x.dtype).itemsize == 8 and np.dtype(x.dtype).kind in "fiuc"
             for x in jax.tree.leaves(abstract) if hasattr(x, "dtype") and not jax.dtypes.issubdtype(
                 x.dtype, jax.dtypes.prng_key))
  effective = bool(jax.config.jax_enable_x64)          # includes a thread-local enable_x64 context
  try:
    from jax._src import config as jax_config           # internal: the global value, without thread-local contexts
    previous = bool(jax_config.enable_x64.get_global())
  except (ImportError, AttributeError):                 # a jax without it: nothing to fix up (the digest still checks)
    previous = effective
  if not wide or effective == previous:
    yield
    return
  jax.config.update("jax_enable_x64", effective)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", previous)


@contextlib.contextmanager
def _without_event_loop_noise():
  """Quiet orbax while it fails in a way the caller reports in one line (a damaged checkpoint, a full disk): drop the
  "RuntimeError: Event loop is closed" tracebacks that TensorStore's threads print (from C, past every Python hook)
  and orbax's own error log of the exception it then raises. Everything else written to stderr is kept."""
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.setLevel(logging.CRITICAL)
  unraisable = sys.unraisablehook

  def drop_event_loop_closed(info):
    if not (isinstance(info.exc_value, RuntimeError) and "Event loop is closed" in str(info.exc_value)):
      unraisable(info)

  sys.unraisablehook = drop_event_loop_closed
  try:
    with _filtered_stderr():
      yield
  finally:
    sys.unraisablehook = unraisable
    absl_logger.setLevel(level)


@contextlib.contextmanager
def _filtered_stderr(settle_s: float = 3.0):
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, ValueError, AttributeError):
    yield
    return
  with tempfile.TemporaryFile() as tmp:
    os.dup2(tmp.fileno(), 2)
    failed = True
    try:
      yield
      failed = False
    finally:
      if failed:  # TensorStore's threads print after orbax has raised: wait until they fall silent (<= settle_s)
        deadline, size, quiet_since = time.monotonic() + settle_s, -1, time.monotonic()
        while time.monotonic() < deadline:
          now = os.fstat(tmp.fileno()).st_size
          if now != size:
            size, quiet_since = now, time.monotonic()
          elif time.monotonic() - quiet_since > 0.5:
            break
          time.sleep(0.05)
      try:
        sys.stderr.flush()
      except (OSError, ValueError):
        pass
      os.dup2(saved, 2)
      os.close(saved)
      tmp.seek(0)
      text = tmp.read().decode("utf-8", errors="replace")
      for pattern in _NOISE:
        text = pattern.sub("", text)
      kept = "\n".join(line for line in text.splitlines() if line.strip() and not _noise_fragment(line))
      if kept:
        print(kept, file=sys.stderr)


def _first_line(e: BaseException, limit: int = 160) -> str:
  text = str(e).strip().splitlines()[0] if str(e).strip() else ""
  return text[:limit] + ("..." if len(text) > limit else "")


def _set_aside(manager, steps, workdir: pathlib.Path) -> None:
  """Move damaged step directories out of orbax's sight (so the run can save those steps again), keeping them."""
  target = workdir / DAMAGED_DIR
  target.mkdir(exist_ok=True)
  for step in steps:
    src = pathlib.Path(str(manager.directory)) / str(step)
    if not src.exists():
      continue
    dst, i = target / str(step), 1
    while dst.exists():
      dst, i = target / f"{step}.{i}", i + 1
    src.rename(dst)
  manager.reload()


def _log(metrics: MetricsLog, values: Mapping[str, Any], step: int) -> None:
  row = {k: _to_host(v) for k, v in values.items()}
  bad = [k for k, v in row.items() if _has_nonfinite(v)]
  metrics.log(step, **row)
  if bad:
    raise NonFiniteError(f"non-finite metric(s) {bad} at step {step}: stopping (metrics.jsonl has the row; the last "
                         "checkpoint is kept)")


def _has_nonfinite(v: Any) -> bool:
  """True when a logged value (a scalar, a per-seed list, a nested dict of them) holds a NaN or an inf."""
  if isinstance(v, Mapping):
    return any(_has_nonfinite(x) for x in v.values())
  if isinstance(v, (list, tuple)):
    return any(_has_nonfinite(x) for x in v)
  if isinstance(v, float):
    return not math.isfinite(v)
  if isinstance(v, (bool, int, str)) or v is None:
    return False
  try:
    a = np.asarray(jax.device_get(v))
  except (TypeError, ValueError):
    return False
  return a.dtype.kind in "fc" and not bool(np.all(np.isfinite(a)))


def clear(workdir: pathlib.Path) -> None:
  """Remove a run's outputs (a fresh start): see `runner.workdir.clear`."""
  _clear_workdir(workdir)
