"""Counts for the reliability suite: cases tried, clear errors, recovered faults (printed at the end of the run).

Every test here calls `record(...)` (the `reliability` fixture) once per case it checks:
  reliability.tried()              a hostile input or fault was tried
  reliability.clear_error()        ... and was refused with a clear error (exit 2/4 and one line, or a ValueError /
                                   TypeError naming the argument)
  reliability.recovered()          ... and the run recovered (resumed identically, fell back to an intact checkpoint)
  reliability.accepted()           a boundary value was accepted, as declared
The totals are printed in the terminal summary ("reliability: ...") and, with pytest-xdist, summed over workers.
docs/reliability.md records them.
"""

from __future__ import annotations

import collections

import pytest

COUNTS: collections.Counter = collections.Counter()
KINDS = ("tried", "clear_error", "recovered", "accepted")


class _Recorder:
  def __init__(self, area: str):
    self.area = area

  def _add(self, kind: str, n: int = 1) -> None:
    COUNTS[(self.area, kind)] += n

  def tried(self, n: int = 1) -> None:
    self._add("tried", n)

  def clear_error(self, n: int = 1) -> None:
    self._add("clear_error", n)

  def recovered(self, n: int = 1) -> None:
    self._add("recovered", n)

  def accepted(self, n: int = 1) -> None:
    self._add("accepted", n)


@pytest.fixture
def reliability(request) -> _Recorder:
  """A recorder for this test's module (its "area": test_cli_config_table, test_api_losses, ...)."""
  return _Recorder(request.module.__name__.rsplit(".", 1)[-1])


def pytest_sessionfinish(session):
  workeroutput = getattr(session.config, "workeroutput", None)
  if workeroutput is not None:  # an xdist worker: hand the counts to the controller
    workeroutput["reliability_counts"] = [[area, kind, n] for (area, kind), n in COUNTS.items()]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
  for area, kind, n in getattr(node, "workeroutput", {}).get("reliability_counts", []):
    COUNTS[(area, kind)] += n


def pytest_terminal_summary(terminalreporter):
  if not COUNTS:
    return
  areas = sorted({area for area, _ in COUNTS})
  tr = terminalreporter
  tr.section("reliability counts")
  tr.write_line(f"{'area':40s} {'tried':>7s} {'clear errors':>13s} {'recovered':>10s} {'accepted':>9s}")
  for area in areas:
    tr.write_line(f"{area:40s} " + " ".join(f"{COUNTS[(area, k)]:>{w}d}" for k, w in zip(KINDS, (7, 13, 10, 9))))
  total = {k: sum(COUNTS[(a, k)] for a in areas) for k in KINDS}
  tr.write_line(f"reliability: {total['tried']} cases tried, {total['clear_error']} clear errors, "
                f"{total['recovered']} recovered faults, {total['accepted']} boundary values accepted")
