"""The FedHyper [57] experiment: at a tiny size the claims are computed from real runs and the `no_hypergradient`
mutation (FedHyper = FedAvg) makes the robustness claims fail; the cpu preset passes all its claims (slow)."""

from __future__ import annotations

import pytest

from experiments import fedhyper
from jaxlib_methods.runner.experiment import apply_overrides

TINY = fedhyper.Config(seeds=(0, 1), clients=4, samples_per_client=40, test_samples=200, dim=8, classes=4,
                       rounds=10, local_steps=4, local_batch=8, log_every=5, initial_lrs=(0.01, 1.0))


def test_mutation_no_hypergradient_fails_the_paper_claims(tmp_path):
  res = fedhyper.run(apply_overrides(TINY, fedhyper.MUTATIONS["no_hypergradient"]), tmp_path)
  cl = fedhyper.claims(res)
  assert all(c.kind == "paper" and c.where for c in cl)
  # beta = 0 everywhere: FedHyper's runs are FedAvg's, so "smaller spread" and "higher accuracy" cannot hold
  for key in res["runs"]:
    if key.startswith("fedhyper"):
      assert res["runs"][key]["final_accuracy"] == res["runs"][key.replace("fedhyper", "fedavg")]["final_accuracy"]
  assert not cl[0].passed and not cl[1].passed
  assert (tmp_path / "figure.png").exists()


def test_tiny_run_adapts_the_rates(tmp_path):
  res = fedhyper.run(TINY, tmp_path)
  r = res["runs"]["fedhyper|0.01|0"]
  assert max(r["local_lr"]) > 0.01 and max(r["global_lr"]) > 1.0      # aligned updates raise both rates
  assert res["runs"]["fedavg|0.01|0"]["local_lr"] == [pytest.approx(0.01)] * len(r["local_lr"])


@pytest.mark.slow
def test_cpu_preset_passes_its_claims(tmp_path):
  res = fedhyper.run(fedhyper.PRESETS["cpu"], tmp_path)
  assert all(c.passed for c in fedhyper.claims(res)), [(c.claim, c.ours) for c in fedhyper.claims(res)]
