"""A run's directory: checked before use, locked while used, cleared only on request; I/O failures named plainly.

What the CLI promises about `--workdir` (docs/reliability.md lists how each promise is tested):
  - `prepare(path)` refuses, with `WorkdirError` (exit status 4, one line), a path that is a file, lies under a file,
    cannot be created or is not writable (read-only file system, permissions), before anything is written there.
  - `lock(path)` takes an exclusive `flock` on `<workdir>/.lock` for the whole run; a second run in the same workdir
    is refused at once with the first one's pid (the kernel drops the lock when a process dies, even by SIGKILL).
  - `io_failure(exc)` recognises an exception caused by the file system (full disk, file-size limit, read-only,
    permission denied, including orbax/TensorStore errors that wrap one) so the CLI reports it in one line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
import shutil
import signal
from typing import Iterator, Optional

LOCK_NAME = ".lock"

# errno values that mean "the file system refused", not "the program is wrong".
IO_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
             errno.EISDIR, errno.EIO, errno.ENAMETOOLONG}
# The same failures as TensorStore / orbax spell them inside their own exception types.
IO_MESSAGES = ("No space left on device", "File too large", "Read-only file system", "Permission denied",
               "Disk quota exceeded", "Input/output error")


class WorkdirError(OSError):
  """The workdir cannot be used (not a directory, unwritable, damaged beyond recovery, in use): exit status 4."""


def _first_existing_ancestor(path: pathlib.Path) -> pathlib.Path:
  p = path
  while not p.exists() and p != p.parent:
    p = p.parent
  return p


def prepare(path: os.PathLike, *, what: str = "--workdir") -> pathlib.Path:
  """Create `path` if needed and prove it is a writable directory (a probe file is created and removed).

  Raises:
    WorkdirError: naming the path and the reason, e.g. "is a file", "is under a file", "read-only file system".
  """
  path = pathlib.Path(path)
  if path.exists() and not path.is_dir():
    raise WorkdirError(f"{what} {path} is not a directory (it is a file): pass a directory")
  ancestor = _first_existing_ancestor(path.absolute())
  if not ancestor.is_dir():
    raise WorkdirError(f"{what} {path} cannot be created: {ancestor} is a file, not a directory")
  try:
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".write-probe.{os.getpid()}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
      os.write(fd, b"ok")
    finally:
      os.close(fd)
      probe.unlink(missing_ok=True)
  except OSError as e:
    raise WorkdirError(f"{what} {path} is not writable: {e.strerror or e}") from None
  return path


@contextlib.contextmanager
def lock(path: os.PathLike) -> Iterator[pathlib.Path]:
  """Hold an exclusive lock on workdir `path` (which must exist) for the duration of the block.

  Raises:
    WorkdirError: another process holds it (its pid is in the message).
  """
  lock_path = pathlib.Path(path) / LOCK_NAME
  try:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
  except OSError as e:
    raise WorkdirError(f"cannot create the lock file {lock_path}: {e.strerror or e}") from None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
      raise WorkdirError(f"workdir {path} is in use by another run (pid {holder}): wait for it to finish, or pass "
                         "another --workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    try:
      yield lock_path
    finally:
      try:
        os.ftruncate(fd, 0)
      except OSError:
        pass
      fcntl.flock(fd, fcntl.LOCK_UN)
  finally:
    os.close(fd)


def io_failure(exc: BaseException) -> Optional[str]:
  """A one-line description when `exc` (or an exception it was raised from) is a file-system failure, else None."""
  seen = set()
  e: Optional[BaseException] = exc
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, WorkdirError):
      return str(e)
    if isinstance(e, OSError) and e.errno in IO_ERRNOS:
      where = f": {e.filename}" if e.filename else ""
      return f"[Errno {e.errno}] {e.strerror}{where}"
    text = str(e)
    for needle in IO_MESSAGES:
      if needle in text:
        return f"{needle} (raised as {type(e).__name__} while writing)"
    e = e.__cause__ or e.__context__
  return None


def ignore_file_size_signal() -> None:
  """Make a write past `ulimit -f` fail with EFBIG (reported as an I/O failure) instead of killing the process
  with SIGXFSZ and a core dump."""
  if hasattr(signal, "SIGXFSZ"):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


# Files a run writes into its workdir, and what `--fresh` removes.
RUN_OUTPUTS = ("checkpoints", "damaged_checkpoints", "subruns", "metrics.jsonl", "summary.json", "figure.png",
               "config.json")


# What `runner.train` leaves in a directory of its own: removed wherever an experiment trains in a sub-directory.
TRAIN_OUTPUTS = ("checkpoints", "damaged_checkpoints", "metrics.jsonl")


def clear(workdir: os.PathLike) -> None:
  """Remove a run's outputs (checkpoints, metrics, summary, figure, config): what `--fresh` asks for.

  Includes the checkpoints and metrics of training runs an experiment keeps in sub-directories of the workdir
  (`runner.train` into `workdir/stage1`, ...): left there, a `--fresh` run would resume them, or refuse them as
  another config's ("pass --fresh").
  """
  workdir = pathlib.Path(workdir)
  for name in RUN_OUTPUTS:
    _remove(workdir / name)
  if not workdir.is_dir():
    return
  for parent, dirs, _ in os.walk(workdir):   # does not follow symlinks
    if "checkpoints" in dirs:
      for name in TRAIN_OUTPUTS:
        _remove(pathlib.Path(parent) / name)
      dirs[:] = [d for d in dirs if d not in TRAIN_OUTPUTS]


def _remove(p: pathlib.Path) -> None:
  if p.is_dir() and not p.is_symlink():
    shutil.rmtree(p)
  else:
    p.unlink(missing_ok=True)
