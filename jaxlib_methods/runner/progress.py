"""A tqdm progress bar that shows steps and ETA, off when stderr is not a TTY or when the run is quiet."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

QUIET_ENV = "JAXLIB_METHODS_QUIET"


def progress(total: int, *, initial: int = 0, desc: str = "") -> tqdm:
  """A step counter bar; disabled when stderr is not a TTY or `$JAXLIB_METHODS_QUIET` is set (by `--quiet`)."""
  disable = bool(os.environ.get(QUIET_ENV)) or not sys.stderr.isatty()
  return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=disable, dynamic_ncols=True,
              leave=False)
