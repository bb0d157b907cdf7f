"""Atomic writes for everything a run leaves behind: metrics, summaries, figures.

Every file is written to a temporary file in the same directory and then `os.replace`d into place, so a run killed
at any instant leaves either the old file or the new one, never a torn one. Files are created with mode 0666 minus
the process umask, like any file `open` creates (not mkstemp's 0600), so a group or a web server can read results.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import secrets
from typing import Any, Iterable, Iterator, Mapping, Optional

import numpy as np


def _jsonable(x: Any) -> Any:
  if isinstance(x, Mapping):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, (bool, str)) or x is None:
    return x
  if isinstance(x, np.bool_):
    return bool(x)
  if isinstance(x, (int, np.integer)):
    return int(x)
  if hasattr(x, "__array__"):
    # A 0-d array keeps its kind, as the elements of a larger one do through tolist(): ints stay ints, bools bools.
    return _jsonable(np.asarray(x).tolist()) if np.ndim(x) > 0 else _jsonable_scalar(np.asarray(x).item())
  return _jsonable_scalar(x)


def _jsonable_scalar(x: Any) -> Any:
  if isinstance(x, (bool, int)):
    return x
  try:
    v = float(x)
  except (TypeError, ValueError):
    return str(x)
  return v if math.isfinite(v) else str(v)  # JSON has no NaN/Inf: keep them visible as "nan"/"inf"


def is_primary_process() -> bool:
  """False only on processes other than 0 of a multi-process (`jax.distributed`) run: they write no files."""
  import sys
  jax = sys.modules.get("jax")
  return jax is None or not jax.distributed.is_initialized() or jax.process_index() == 0


def atomic_write_bytes(path: os.PathLike, data: bytes) -> None:
  """Write `data` to `path` atomically (temp file in the same directory + fsync + os.replace + fsync of the
  directory). The file gets mode 0666 & ~umask. On any error (a full disk, a read-only directory) the old file is
  left as it was and no temp file remains; the OSError propagates.

  In a multi-process run only process 0 writes (the others return at once), so metrics, summaries and figures are
  written once; orbax checkpoints are written by every process, through orbax.
  """
  if not is_primary_process():
    return
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the kernel applies the umask, as open() does
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  _fsync_dir(path.parent)


def _fsync_dir(directory: pathlib.Path) -> None:
  """Make a rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def atomic_write_text(path: os.PathLike, text: str) -> None:
  atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: os.PathLike, obj: Any) -> None:
  atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")


def read_jsonl(path: os.PathLike) -> list[dict]:
  path = pathlib.Path(path)
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsLog:
  """`metrics.jsonl` of a run: one JSON object per logged step, `{"step": s, **metrics}`.

  Each `log` rewrites the file atomically (old lines + the new one), so the file on disk is always whole. When a run
  resumes from a checkpoint at step s, `truncate_after(s)` drops lines logged after s by the interrupted run, so the
  resumed file equals the one an uninterrupted run writes. Logging is meant for every `log_every` steps, not each
  step, which keeps the rewrite cheap.

  TensorBoard: with `tensorboard=True` (or, when it is None, under `python -m experiments run --tensorboard`) every
  finite numeric metric is also written as a scalar to TensorBoard event files in `workdir/tensorboard/` (nested
  dicts as "a/b" tags; lists and strings are left to the JSON file), through tensorboardX (the `tensorboard` extra).
  `reset` starts the event files over; `truncate_after(s)` opens them with `purge_step=s + 1`, so TensorBoard drops
  the interrupted run's later points and a resumed run draws one curve. `metrics.jsonl` stays the record.
  """

  def __init__(self, workdir: os.PathLike, name: str = "metrics.jsonl", *, tensorboard: Optional[bool] = None):
    self.path = pathlib.Path(workdir) / name
    self._rows = read_jsonl(self.path)
    if tensorboard is None:
      from jaxlib_methods.runner import control
      tensorboard = bool(getattr(control.current(), "tensorboard", False))
    self._tb_dir = self.path.parent / "tensorboard" if tensorboard else None
    self._tb = None
    if self._tb_dir is not None:
      require_tensorboard()

  @property
  def rows(self) -> list[dict]:
    return list(self._rows)

  @property
  def tensorboard_dir(self) -> Optional[pathlib.Path]:
    """Where the event files go (None: TensorBoard is off)."""
    return self._tb_dir

  def truncate_after(self, step: int) -> None:
    self._rows = [r for r in self._rows if r.get("step", -1) <= step]
    self._flush()
    self._open_tensorboard(purge_step=int(step) + 1)

  def reset(self) -> None:
    self._rows = []
    self._flush()
    if self._tb_dir is not None and is_primary_process():
      self.close()
      if self._tb_dir.is_dir():
        for f in self._tb_dir.glob("events.out.tfevents.*"):
          f.unlink()

  def log(self, step: int, **metrics: Any) -> None:
    row = _jsonable({"step": int(step), **metrics})
    self._rows.append(row)
    self._flush()
    self._write_tensorboard([row])

  def extend(self, rows: Iterable[Mapping[str, Any]]) -> None:
    new = [_jsonable(dict(r)) for r in rows]
    self._rows.extend(new)
    self._flush()
    self._write_tensorboard(new)

  def close(self) -> None:
    """Close the TensorBoard writer (its files are flushed after every log anyway)."""
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def _flush(self) -> None:
    atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self._rows))

  def _open_tensorboard(self, purge_step: Optional[int] = None) -> None:
    if self._tb_dir is None or not is_primary_process():
      return
    self.close()
    from tensorboardX import SummaryWriter
    # TensorBoard reads a directory's event files in name order: a numbered suffix keeps a resumed run's file after
    # the interrupted run's one even when both were opened within the same second (the name's timestamp).
    n = len(list(self._tb_dir.glob("events.out.tfevents.*"))) if self._tb_dir.is_dir() else 0
    self._tb = SummaryWriter(logdir=str(self._tb_dir), purge_step=purge_step, flush_secs=1,
                             filename_suffix=f".{n:04d}")

  def _write_tensorboard(self, rows: list[dict]) -> None:
    if self._tb_dir is None or not is_primary_process():
      return
    if self._tb is None:
      self._open_tensorboard()
    for row in rows:
      step = row.get("step")
      if not isinstance(step, int):
        continue
      for tag, value in _scalars(row):
        self._tb.add_scalar(tag, value, global_step=step)
    self._tb.flush()


def _scalars(row: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
  """(tag, value) for every finite number of a metrics row ("a/b" for nested dicts; the step itself excluded)."""
  for k, v in row.items():
    if not prefix and k == "step":
      continue
    tag = f"{prefix}{k}"
    if isinstance(v, Mapping):
      yield from _scalars(v, tag + "/")
    elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
      yield tag, float(v)


def require_tensorboard() -> None:
  """Raise UsageError (one line, before any work) when tensorboardX, the `tensorboard` extra, is not installed."""
  try:
    import tensorboardX  # noqa: F401
  except ImportError:
    from jaxlib_methods.runner.constraints import UsageError
    raise UsageError("--tensorboard needs tensorboardX: pip install 'jaxlib-methods[tensorboard]' "
                     "(or pip install tensorboardX)") from None


def save_figure(fig, path: os.PathLike, **savefig_kwargs: Any) -> pathlib.Path:
  """Save a matplotlib figure as PNG atomically and close it. Returns the path."""
  import io
  import matplotlib.pyplot as plt
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=savefig_kwargs.pop("dpi", 120), bbox_inches="tight", **savefig_kwargs)
  plt.close(fig)
  atomic_write_bytes(path, buf.getvalue())
  return pathlib.Path(path)
