"""Runs are resumable bitwise after SIGKILL, and the data-parallel mesh matches one device (subprocesses)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env(**extra):
  return dict(os.environ, PYTHONPATH=ROOT, **extra)


def _cmd(workdir, *sets):
  args = [sys.executable, "-m", "experiments", "run", "lion_k_constrained", "--workdir", str(workdir), "--quiet"]
  for s in sets:
    args += ["--set", s]
  return args


def test_sigkill_then_rerun_is_bitwise_identical(tmp_path):
  # 16,000 steps: the victim is killed after its first checkpoint (step 2000), 14,000 steps before its end (~3 s on a
  # quiet 2-core machine, 10 s under load; the directory is polled every 20 ms). Horizon 16 is about the shortest at
  # which every claim still passes (exit 0; at 12 the convergence claim fails).
  sets = ("horizon=16", "step_ratio=8", "log_every=500", "checkpoint_every=2000")
  ref = subprocess.run(_cmd(tmp_path / "ref", *sets), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                       timeout=300)
  assert ref.returncode == 0, ref.stdout + ref.stderr

  victim = tmp_path / "killed"
  proc = subprocess.Popen(_cmd(victim, *sets), cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  ckpts = victim / "checkpoints"
  while time.time() < deadline:
    if ckpts.exists() and any(p.name.isdigit() for p in ckpts.iterdir()):
      break
    if proc.poll() is not None:
      break
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (victim / "summary.json").exists(), "the run finished before it could be killed: make it longer"

  resumed = subprocess.run(_cmd(victim, *sets), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                           timeout=300)
  assert resumed.returncode == 0, resumed.stdout + resumed.stderr
  a = json.loads((tmp_path / "ref" / "summary.json").read_text())["results"]
  b = json.loads((victim / "summary.json").read_text())["results"]
  assert a["resumed_from"] is None and b["resumed_from"] is not None and b["resumed_from"] >= 2000
  for key in ("x_final_A", "lyapunov_max_increase_B", "lyapunov_increase_fraction_B", "phase1_max_excess",
              "box_max_violation_B", "dist_to_constrained_opt_A"):
    assert a[key] == b[key], key  # bitwise: JSON floats round-trip exactly
  assert (tmp_path / "ref" / "metrics.jsonl").read_text() == (victim / "metrics.jsonl").read_text()


def _run_or_fail(args, *, cwd, env, timeout):
  """Run a child with a timeout; a timeout fails the test with where the child was stuck, never hangs.

  The child runs with PYTHONFAULTHANDLER=1: on a timeout it gets SIGABRT, so faulthandler prints every Python
  thread's stack (and XLA's abort handler its native one) before it dies; the test fails with that output's tail.
  """
  proc = subprocess.Popen(args, cwd=cwd, env=dict(env, PYTHONFAULTHANDLER="1"), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True)
  try:
    out, err = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.send_signal(signal.SIGABRT)  # faulthandler dumps the stacks of all threads
    try:
      out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGKILL)
      out, err = proc.communicate()
    pytest.fail(f"timed out after {timeout} s: {' '.join(args)}\nstdout tail:\n{out[-2000:]}\n"
                f"stderr tail (faulthandler's stacks):\n{err[-8000:]}")
  return subprocess.CompletedProcess(args, proc.returncode, out, err)


def test_data_parallel_mesh_of_8_matches_one_device(tmp_path):
  # 8 simulated devices are 8 threads that meet at every all-reduce. The CLI raises XLA's stuck-collective abort
  # (40 s by default) and gives XLA:CPU's shared thread pool 4x the device count (on a 2-core machine it is exactly 8
  # threads, and two queued multi-device programs can then deadlock: the CI hang of this test); the run is short (100
  # steps, a 2-substep run C). A timeout fails with every Python thread's stack (faulthandler), never a hang.
  env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=8")
  sets = ("horizon=0.1", "log_every=50", "checkpoint_every=100", "step_ratio=2", "dtype=float32")
  out = {}
  for n in (1, 8):
    proc = _run_or_fail(_cmd(tmp_path / f"m{n}", *sets, f"mesh.data={n}"), cwd=tmp_path, env=env, timeout=400)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # claims may fail at this short horizon; no crash
    out[n] = json.loads((tmp_path / f"m{n}" / "summary.json").read_text())
    assert out[n]["error"] is None
    assert len(out[n]["environment"]["devices"]) == 8
    flags = out[n]["environment"]["xla_flags"].split()
    assert flags[0] == "--xla_force_host_platform_device_count=8"
    assert "--xla_cpu_collective_call_terminate_timeout_seconds=3600" in flags
  assert out[1]["results"]["mesh_devices"] == 1 and out[8]["results"]["mesh_devices"] == 8
  np.testing.assert_allclose(out[8]["results"]["x_final_A"], out[1]["results"]["x_final_A"], rtol=1e-5, atol=1e-5)
