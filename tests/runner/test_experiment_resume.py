"""Experiments that resume by sub-run or checkpoint: the same command rerun into the same workdir reads the finished
work back, recomputes nothing and returns the same results (issue 13 item 5).

Each rerun has the experiment's compute function replaced by one that raises: the second run can only succeed by
reading the stored sub-runs (`runner.sweep.memoized`) or restoring the final checkpoint (`runner.train`).
"""

from __future__ import annotations

import json

import pytest

from jaxlib_methods.runner import experiment as exp_lib

# experiment -> the module attribute that computes (not called again on a rerun)
RESUMES = {
    "comp_sum_bounds": "_violations",          # sub-runs: one per tau
    "more_is_better": "_risks",                # sub-runs: one per n
    "isogclr_temperatures": "_chunk",          # runner.train: both methods' pair state, checkpointed
    "gaqat_domain_shift": "sample",            # runner.train: every (seed, arm) run's state; sample draws each batch
    "flad_mixing": "exp3_flad_update",         # runner.train: every (seed, arm) run's state; called in every step
}


def _boom(*args, **kwargs):
  raise AssertionError("recomputed on a rerun: the stored work was not read back")


@pytest.mark.slow   # a TINY run each (their mutation tests already run them once in the default suite)
@pytest.mark.parametrize("name", sorted(RESUMES))
def test_rerun_into_the_same_workdir_reads_the_work_back(name, tmp_path, monkeypatch):
  e = exp_lib.get(name)
  config = e.config("cpu", tuple(getattr(e.module, "TINY", ())))
  first = e.run(config, tmp_path)
  monkeypatch.setattr(e.module, RESUMES[name], _boom)
  second = e.run(config, tmp_path)
  assert json.dumps(first, sort_keys=True, default=str) == json.dumps(second, sort_keys=True, default=str)
