"""The FedHyper [57] experiment: the rates adapt at a tiny size and the cpu preset passes all its claims (slow).
tests/experiments/test_mutations.py runs TINY in the default suite and checks that the `no_hypergradient` mutation
(FedHyper = FedAvg) fails a paper claim."""

from __future__ import annotations

import pytest

from experiments import fedhyper

TINY = fedhyper.Config(seeds=(0, 1), clients=4, samples_per_client=40, test_samples=200, dim=8, classes=4,
                       rounds=10, local_steps=4, local_batch=8, log_every=5, initial_lrs=(0.01, 1.0))


@pytest.mark.slow
def test_tiny_run_adapts_the_rates(tmp_path):
  res = fedhyper.run(TINY, tmp_path)
  r = res["runs"]["fedhyper|0.01|0"]
  assert max(r["local_lr"]) > 0.01 and max(r["global_lr"]) > 1.0      # aligned updates raise both rates
  assert res["runs"]["fedavg|0.01|0"]["local_lr"] == [pytest.approx(0.01)] * len(r["local_lr"])


@pytest.mark.slow
def test_cpu_preset_passes_its_claims(tmp_path):
  res = fedhyper.run(fedhyper.PRESETS["cpu"], tmp_path)
  assert all(c.passed for c in fedhyper.claims(res)), [(c.claim, c.ours) for c in fedhyper.claims(res)]
