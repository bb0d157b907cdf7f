"""The CO2 [52] experiment: the cpu preset passes all its claims (slow). At the TINY size (2 simulated devices in a
child process) tests/experiments/test_mutations.py runs it and checks that the `no_penalty` mutation fails the
staleness-penalty claim."""

from __future__ import annotations

import pytest

from experiments import co2


@pytest.mark.slow
def test_cpu_preset_passes_its_claims(tmp_path):
  res = co2.run(co2.PRESETS["cpu"], tmp_path)
  assert all(c.passed for c in co2.claims(res)), [(c.claim, c.ours) for c in co2.claims(res)]
