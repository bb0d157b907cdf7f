"""FSDP and tensor sharding on 8 simulated CPU devices (one child process, with a timeout and its output tail on
failure): the project's transformer LM gives the 1-device losses on meshes data=2 x fsdp=4 and data=2 x fsdp=2 x
tensor=2 for AdamW and GaLore; with fsdp=8 each device holds 1/8 of params + optimizer state (measured from the
arrays' addressable shards); the two mutations of `lm_scaleout` (replicated optimizer state, per-shard data seeding)
make those claims fail. The default run checks AdamW; GaLore and the mutations run under `-m slow`."""

from __future__ import annotations

import pytest

import dataclasses

from experiments import lm_scaleout
from jaxlib_methods.runner import distributed


TINY = lm_scaleout.Config(vocab_size=32, d_model=32, num_layers=1, num_heads=4, seq_len=16, pool_sequences=64,
                          eval_sequences=16, batch_size=8, check_steps=2, check_processes=0,
                          check_meshes=("2x4x1", "2x2x2"), check_optimizers=("adamw", "galore"))


def _claims(checks: dict, config) -> dict:
  results = {"main": {"final_eval_loss": 0.0, "initial_eval_loss": 1.0}, "scaleout": checks, "rtol": config.rtol}
  return {c.claim: c for c in lm_scaleout.claims(results)[1:]}


def child(payload: dict) -> dict:
  """Runs in the 8-device child: the checks for TINY (adamw only unless payload["full"]) and, when full, for the
  two variants of `lm_scaleout.CHECK_MUTATIONS`."""
  if not payload.get("full"):
    return {"tiny": lm_scaleout.run_checks(dataclasses.replace(TINY, check_optimizers=("adamw",)), None)}
  out = {"tiny": lm_scaleout.run_checks(TINY, None)}
  # the mutations, each only where it shows (the 1-device reference of the second is TINY's: one shard, same rows)
  out["replicated_optimizer_state"] = lm_scaleout.run_checks(
      dataclasses.replace(TINY, shard_optimizer_state=False, check_optimizers=("adamw",)), None, equality=False)
  per_shard = lm_scaleout.run_checks(dataclasses.replace(TINY, data_seed_per_shard=True, check_meshes=("2x4x1",),
                                                         check_optimizers=("adamw",)), None, measure_bytes=False)
  out["per_shard_data_seed"] = per_shard
  return out


def _check_tiny(res: dict, optimizers) -> None:
  assert res["tiny"]["devices"] == 8
  claims = _claims(res["tiny"], TINY)
  equality = [c for k, c in claims.items() if "= 1-device loss" in k]
  assert len(equality) == 2 * len(optimizers) and all(c.passed for c in equality), [(c.claim, c.ours)
                                                                                   for c in equality]
  for opt in optimizers:
    b = res["tiny"]["bytes"][opt]
    assert b["fsdp"] == 8 and b["max_per_device"] <= b["total"] / 8 + b["unshardable"], b
    assert b["unshardable_nonscalar"] == 0   # only scalars replicated: step counters, GaLore's per-leaf flags


def test_fsdp_and_tensor_meshes_equal_one_device_and_shard_the_bytes(fast_xla):
  """The default run's version: AdamW on data=2 x fsdp=4 and data=2 x fsdp=2 x tensor=2, bytes with fsdp=8."""
  res = distributed.call_with_cpu_devices("tests.runner.test_sharding_multidevice:child", {}, devices=8,
                                          timeout_s=400)
  _check_tiny(res, ("adamw",))


@pytest.mark.slow
def test_adamw_and_galore_and_the_mutations(fast_xla):
  res = distributed.call_with_cpu_devices("tests.runner.test_sharding_multidevice:child", {"full": True}, devices=8,
                                          timeout_s=600)
  _check_tiny(res, ("adamw", "galore"))
  for opt in ("adamw", "galore"):
    assert res["tiny"]["bytes"][opt]["unshardable_nonscalar"] == 0
  # the mutations break what they should
  mut = _claims(res["replicated_optimizer_state"], dataclasses.replace(TINY))
  bytes_claim = [c for k, c in mut.items() if "per-device bytes" in k]
  assert bytes_claim and not bytes_claim[0].passed
  mut = _claims(res["per_shard_data_seed"], TINY)
  eq = [c for k, c in mut.items() if "= 1-device loss" in k]
  assert eq and not any(c.passed for c in eq)
