"""What the CLI tells a running experiment without changing its `run(config, workdir)` signature.

`python -m experiments run` wraps each run in `active(RunControl(config_hash=...))`. The training loop
(`runner.train`) reads it with `current()`:
  - `config_hash`: the fingerprint every checkpoint it saves carries, and that a checkpoint must carry to be resumed
    (a workdir written by another config is refused, even when config.json is gone);
  - `stop`: set by the CLI's first Ctrl-C (SIGINT) or SIGTERM; the loop finishes its current chunk, saves a
    checkpoint and raises `Interrupted`;
  - `in_loop`: > 0 while a training loop runs (outside it, a first Ctrl-C interrupts at once: nothing would check
    the flag);
  - `tensorboard`: `--tensorboard` was given: every `MetricsLog` of the run also writes TensorBoard event files.
Called directly (tests, notebooks), `train` sees no control and behaves as a plain function of its arguments.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
from typing import Iterator, Optional


@dataclasses.dataclass
class RunControl:
  config_hash: Optional[str] = None
  stop: threading.Event = dataclasses.field(default_factory=threading.Event)
  stop_signal: Optional[int] = None       # the signal that asked to stop (2 = SIGINT, 15 = SIGTERM)
  in_loop: int = 0
  tensorboard: bool = False


class Interrupted(Exception):
  """A run stopped on request (Ctrl-C / SIGTERM) after a chunk, with a checkpoint at `step` (None: no checkpoint,
  the experiment keeps none)."""

  def __init__(self, step: Optional[int], num_steps: Optional[int] = None, checkpoint_dir: Optional[str] = None):
    self.step, self.num_steps, self.checkpoint_dir = step, num_steps, checkpoint_dir
    where = f" at step {step}" + (f" of {num_steps}" if num_steps else "") if step is not None else ""
    saved = f"; checkpoint saved in {checkpoint_dir}" if checkpoint_dir else ""
    super().__init__(f"interrupted{where}{saved}")


_CURRENT: contextvars.ContextVar[Optional[RunControl]] = contextvars.ContextVar("jaxlib_methods_run_control",
                                                                                default=None)


def current() -> Optional[RunControl]:
  """The control of the run in progress, or None outside `python -m experiments run`."""
  return _CURRENT.get()


@contextlib.contextmanager
def active(control: RunControl) -> Iterator[RunControl]:
  token = _CURRENT.set(control)
  try:
    yield control
  finally:
    _CURRENT.reset(token)
