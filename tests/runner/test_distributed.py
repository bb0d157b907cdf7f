"""Multi-process runs on CPU: `launch` starts 2 processes (gloo collectives, 4 simulated devices each) of
`run lm_scaleout`; their per-step losses equal the same run in 1 process on 8 devices, and the orbax checkpoint the
2 processes wrote restores in 1 process. A failing or hanging process fails the launch with its log tail, never a
hang; `--distributed` options are checked before anything starts."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest

from experiments import lm_scaleout
from jaxlib_methods.runner import UsageError, distributed


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = lm_scaleout.Config(vocab_size=32, d_model=32, num_layers=1, num_heads=4, seq_len=16, pool_sequences=64,
                          eval_sequences=16, batch_size=8, check_steps=3, check_meshes=(), check_optimizers=(),
                          process_mesh="2x4x1")


def _launch_run(workdir, config, **kw):
  command = ["run", "lm_scaleout", "--workdir", str(workdir), "--quiet", "--fresh"]
  for item in lm_scaleout._overrides(lm_scaleout.child_config(config)):
    command += ["--set", item]
  return distributed.launch(command, processes=2, devices_per_process=4, log_dir=workdir.parent / "logs",
                            env=distributed.cpu_child_env(1), echo=False, **kw)


def test_two_processes_equal_one_and_the_checkpoint_restores_in_one(tmp_path, fast_xla):
  mp = tmp_path / "multiprocess"
  res = _launch_run(mp, TINY, timeout_s=400)
  assert res.failed is None and res.returncode in (0, 1), res.tail(res.failed or 0)
  summary = json.loads((mp / "summary.json").read_text())
  assert summary["error"] is None, summary["error"]
  multi = summary["results"]["main"]
  assert multi["processes"] == 2 and multi["devices"] == 8 and multi["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1}
  assert (mp / "checkpoints").exists() and not (mp / "launch_logs").exists()
  # only process 0 wrote the outputs: one metrics row per step, no duplicate lines
  rows = [json.loads(l) for l in (mp / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == list(range(TINY.check_steps + 1))
  one = distributed.call_with_cpu_devices(
      "experiments.lm_scaleout:checks_entry", {"config": dataclasses.asdict(TINY), "multiprocess_dir": str(mp)},
      devices=8, timeout_s=400)
  single, restored = one["single_process"], one["restored"]
  assert single["processes"] == 1 and single["devices"] == 8
  assert lm_scaleout._rel(multi["train_losses"], single["train_losses"]) <= TINY.rtol
  assert restored["processes"] == 1 and restored["resumed_from"] == TINY.check_steps
  assert lm_scaleout._rel([restored["state_checksum"]], [multi["state_checksum"]]) <= TINY.rtol
  assert abs(restored["final_eval_loss"] - multi["final_eval_loss"]) <= TINY.rtol * multi["final_eval_loss"]


def test_a_failing_process_fails_the_launch_with_its_log_tail(tmp_path):
  res = distributed.launch(["run", "no_such_experiment"], processes=2, devices_per_process=1,
                           log_dir=tmp_path, timeout_s=120, echo=False)
  assert res.failed is not None and res.returncode == 2
  assert "unknown experiment 'no_such_experiment'" in res.tail(res.failed)


def test_a_hanging_launch_is_stopped_at_the_timeout(tmp_path):
  t0 = time.monotonic()
  # starting two JAX processes takes longer than 1.5 s: the launch stops them at its timeout
  res = distributed.launch(["run", "lion_k_constrained", "--quiet", "--workdir", str(tmp_path / "w")],
                           processes=2, devices_per_process=1, log_dir=tmp_path / "logs", timeout_s=1.5,
                           echo=False, term_grace_s=1.0)
  assert res.returncode == 124 and res.failed is not None
  assert time.monotonic() - t0 < 60


def test_dist_config_is_checked_before_anything_starts():
  with pytest.raises(UsageError, match="all of dist.coordinator"):
    distributed.DistConfig(coordinator="127.0.0.1:1234").check()
  with pytest.raises(UsageError, match="HOST:PORT"):
    distributed.DistConfig(coordinator="localhost", num_processes=2, process_id=0).check()
  with pytest.raises(UsageError, match="process_id must be in 0..1"):
    distributed.DistConfig(coordinator="h:1", num_processes=2, process_id=2).check()
  distributed.DistConfig().check()
  with pytest.raises(UsageError, match="launch sets --distributed"):
    distributed.launch(["run", "x", "--distributed"], processes=2)
  with pytest.raises(UsageError, match="term_grace_s must be >= 0"):
    distributed.launch(["run", "x"], processes=2, term_grace_s=-1.0)


def test_cli_rejects_dist_options_without_distributed(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-m", "experiments", "run", "lion_k_constrained", "--set",
                         "dist.process_id=1", "--workdir", str(tmp_path)], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2 and "add --distributed" in proc.stderr


def test_collective_timeouts_are_raised_unless_set():
  env = distributed.collective_timeouts({"XLA_FLAGS": "--xla_cpu_collective_timeout_seconds=7"})
  assert "--xla_cpu_collective_timeout_seconds=7" in env["XLA_FLAGS"]
  assert "--xla_cpu_collective_call_terminate_timeout_seconds=3600" in env["XLA_FLAGS"]


def test_simulated_devices_get_thread_pool_headroom():
  env = distributed.cpu_thread_pool_headroom({"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
  assert int(env["PJRT_NPROC"]) >= 32                  # 4 x the simulated devices: room for queued programs
  assert "PJRT_NPROC" not in distributed.cpu_thread_pool_headroom({"XLA_FLAGS": ""})      # 1 device: untouched
  kept = distributed.cpu_thread_pool_headroom({"JAX_NUM_CPU_DEVICES": "4", "PJRT_NPROC": "3"})
  assert kept["PJRT_NPROC"] == "3"                     # the user's setting wins
  child = distributed.cpu_child_env(4, base={"PJRT_NPROC": "2", "PATH": os.environ.get("PATH", "")})
  assert int(child["PJRT_NPROC"]) >= 16                # a child is sized for its own devices
