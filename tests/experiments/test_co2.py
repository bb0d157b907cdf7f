"""The CO2 [52] experiment at a tiny size on 2 simulated devices (a child process): the HLO claim holds, the
claims are computed from real runs, and the `no_penalty` mutation makes the staleness-penalty claim fail; the cpu
preset passes all its claims (slow)."""

from __future__ import annotations

import pytest

from experiments import co2
from jaxlib_methods.runner.experiment import apply_overrides


@pytest.fixture
def fast_xla(monkeypatch):
  """Child processes compile at XLA backend optimization level 0 (about 2.5x less compile time on CPU; every
  configuration compared in a test is compiled the same way). The experiments themselves run at the default level."""
  import os
  monkeypatch.setenv("XLA_FLAGS", (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip())


TINY = co2.Config(seeds=(0, 1), vocab_size=16, d_model=16, num_heads=2, seq_len=8, pool_sequences=128,
                  eval_sequences=32, replicas=2, local_batch=4, tau=2, rounds=4, log_every=2)


def test_mutation_no_penalty_fails_the_ablation_claim(tmp_path, fast_xla):
  res = co2.run(apply_overrides(TINY, co2.MUTATIONS["no_penalty"]), tmp_path)
  cl = co2.claims(res)
  assert [c.kind for c in cl] == ["paper"] * 3 and all(c.where for c in cl)
  assert cl[0].passed, cl[0]                              # the compiled programs have the paper's collectives
  assert res["hlo"]["inner"]["all-reduce"] == 0 and res["hlo"]["round"]["all-reduce"] == 1
  assert not cl[2].passed                                 # with == without the penalty: no improvement
  assert (tmp_path / "figure.png").exists()


@pytest.mark.slow
def test_cpu_preset_passes_its_claims(tmp_path):
  res = co2.run(co2.PRESETS["cpu"], tmp_path)
  assert all(c.passed for c in co2.claims(res)), [(c.claim, c.ours) for c in co2.claims(res)]
