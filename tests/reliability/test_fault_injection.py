"""Faults injected into real runs (`python -m experiments run lion_k_constrained`, subprocesses): Ctrl-C and SIGKILL
at random points, damaged checkpoints, a file-size limit (`ulimit -f`), a full or read-only file system, concurrent
runs, a workdir of another config. Each asserts the exact outcome (resumed bitwise identically / fell back to step N /
refused with status and message) and that no earlier result was lost.

A fast subset runs by default (one Ctrl-C and its resume, the file-size limit, a concurrent run); the rest, with the
reruns that prove nothing was lost, is `-m slow`.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# ~6000 steps in chunks of 250, a checkpoint every 500: about 5 s of training on a 2-core CPU.
SETS = ("horizon=6", "log_every=250", "checkpoint_every=500")
NUM_STEPS = 6000
COMPARED = ("x_final_A", "lyapunov_max_increase_B", "lyapunov_increase_fraction_B", "phase1_max_excess",
            "box_max_violation_B", "dist_to_constrained_opt_A")


def _cmd(workdir, *extra_sets):
  args = [sys.executable, "-m", "experiments", "run", "lion_k_constrained", "--workdir", str(workdir), "--quiet"]
  for s in SETS + extra_sets:
    args += ["--set", s]
  return args


def _env():
  return dict(os.environ, PYTHONPATH=str(ROOT))


def _run(workdir, *extra_sets, file_size_limit_kb=None, timeout=300) -> subprocess.CompletedProcess:
  cmd = _cmd(workdir, *extra_sets)
  if file_size_limit_kb is not None:  # `ulimit -f` in a shell (no preexec_fn: forking a threaded process is unsafe)
    cmd = ["sh", "-c", f'ulimit -f {file_size_limit_kb} && exec "$@"', "sh", *cmd]
  return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)


def _start(workdir) -> subprocess.Popen:
  return subprocess.Popen(_cmd(workdir), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def _wait_for_checkpoint(workdir, proc, timeout=240):
  deadline = time.time() + timeout
  ckpts = pathlib.Path(workdir) / "checkpoints"
  while time.time() < deadline and proc.poll() is None:
    if ckpts.exists() and any(p.name.isdigit() for p in ckpts.iterdir()):
      return
    time.sleep(0.02)
  raise AssertionError("the run wrote no checkpoint in time (or ended first)")


def _results(workdir) -> dict:
  return json.loads((pathlib.Path(workdir) / "summary.json").read_text())["results"]


def _assert_identical(ref: pathlib.Path, other: pathlib.Path):
  a, b = _results(ref), _results(other)
  for key in COMPARED:
    assert a[key] == b[key], key  # bitwise: JSON floats round-trip exactly
  assert (ref / "metrics.jsonl").read_text() == (other / "metrics.jsonl").read_text()


def _error_lines(stderr: str) -> list:
  return [l for l in stderr.splitlines() if l.startswith("error:")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pathlib.Path:
  wd = tmp_path_factory.mktemp("reference") / "w"
  proc = _run(wd)
  assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # claims may fail at this short horizon
  assert json.loads((wd / "summary.json").read_text())["error"] is None
  return wd


def _interrupt_and_resume(seed, tmp_path, reference, reliability, *, twice=False):
  rng = random.Random(seed)
  wd = tmp_path / f"sigint{seed}"
  proc = _start(wd)
  _wait_for_checkpoint(wd, proc)
  # a random point inside the loop: the steps after the first checkpoint take ~1-2 s on a quiet
  # 2-core machine (a wait of up to 1.5 s sometimes let the loop finish first: interrupted outside it)
  time.sleep(rng.uniform(0.0, 0.5))
  reliability.tried()
  proc.send_signal(signal.SIGINT)
  if twice:
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
  out, err = proc.communicate(timeout=240)
  assert not (wd / "summary.json").exists() or json.loads((wd / "summary.json").read_text())["interrupted"], \
      "the run finished before it was interrupted: make it longer"
  if twice:  # the second Ctrl-C kills the process at once; the checkpoints on disk stay whole
    assert proc.returncode in (130, -signal.SIGINT), err
  else:
    assert proc.returncode == 130, err
    assert "Ctrl-C: stopping after the current chunk" in err and "Resume with:" in err, err
    step = json.loads((wd / "summary.json").read_text())["interrupted"]["step"]
    assert 0 < step < NUM_STEPS and (wd / "checkpoints" / str(step)).is_dir()
  assert "Traceback" not in err and "never awaited" not in err, err
  resumed = _run(wd)
  assert resumed.returncode in (0, 1), resumed.stdout + resumed.stderr
  assert _results(wd)["resumed_from"] is not None
  _assert_identical(reference, wd)
  reliability.recovered()


# ----------------------------------------------------------------------------------------------------------------------
# Default run.
# ----------------------------------------------------------------------------------------------------------------------

def test_ctrl_c_mid_run_then_rerun_is_identical(tmp_path, reference, reliability):
  _interrupt_and_resume(0, tmp_path, reference, reliability)


def _file_size_limit_case(tmp_path, reliability) -> pathlib.Path:
  # `ulimit -f 1`: the first checkpoint cannot be written (SIGXFSZ used to kill the process, or a traceback, exit 1).
  wd = tmp_path / "w"
  reliability.tried()
  proc = _run(wd, file_size_limit_kb=1)
  assert proc.returncode == 4, proc.stdout + proc.stderr
  errors = _error_lines(proc.stderr)
  assert len(errors) == 1 and "I/O failure in lion_k_constrained:" in errors[0] and "File too large" in errors[0], \
      proc.stderr
  assert "Traceback" not in proc.stderr and "Event loop is closed" not in proc.stderr, proc.stderr
  assert json.loads((wd / "config.json").read_text())["horizon"] == 6.0
  reliability.clear_error()
  return wd


def test_file_size_limit_is_exit_4_in_one_line(tmp_path, reliability):
  _file_size_limit_case(tmp_path, reliability)


def _concurrent_case(tmp_path, reliability, *, let_first_finish: bool) -> pathlib.Path:
  wd = tmp_path / "w"
  first = _start(wd)
  try:
    _wait_for_checkpoint(wd, first)
    reliability.tried()
    second = _run(wd)
    assert second.returncode == 4, second.stderr
    errors = _error_lines(second.stderr)
    assert len(errors) == 1 and f"workdir {wd} is in use by another run (pid {first.pid})" in errors[0], \
        second.stderr
    assert first.poll() is None  # the first run goes on
    reliability.clear_error()
    if let_first_finish:
      out, err = first.communicate(timeout=240)
      assert first.returncode in (0, 1), err
  finally:
    if first.poll() is None:
      first.kill()
      first.communicate()
  return wd


def test_a_concurrent_run_in_the_same_workdir_is_refused(tmp_path, reliability):
  _concurrent_case(tmp_path, reliability, let_first_finish=False)


# ----------------------------------------------------------------------------------------------------------------------
# Slow.
# ----------------------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_file_size_limit_then_rerun_is_identical(tmp_path, reference, reliability):
  wd = _file_size_limit_case(tmp_path, reliability)
  rerun = _run(wd)  # the cause fixed: the same command completes, equal to a run that never failed
  assert rerun.returncode in (0, 1), rerun.stderr
  _assert_identical(reference, wd)
  reliability.recovered()


@pytest.mark.slow
def test_a_concurrent_run_leaves_the_first_undisturbed(tmp_path, reference, reliability):
  wd = _concurrent_case(tmp_path, reliability, let_first_finish=True)
  _assert_identical(reference, wd)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ctrl_c_at_random_points(seed, tmp_path, reference, reliability):
  _interrupt_and_resume(seed, tmp_path, reference, reliability)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_a_second_ctrl_c_aborts_at_once_and_loses_nothing(seed, tmp_path, reference, reliability):
  _interrupt_and_resume(seed, tmp_path, reference, reliability, twice=True)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_at_random_points_then_rerun_is_identical(seed, tmp_path, reference, reliability):
  rng = random.Random(100 + seed)
  wd = tmp_path / "w"
  proc = _start(wd)
  _wait_for_checkpoint(wd, proc)
  time.sleep(rng.uniform(0.0, 2.0))
  reliability.tried()
  proc.kill()
  proc.communicate()
  assert not (wd / "summary.json").exists(), "the run finished before it could be killed: make it longer"
  resumed = _run(wd)
  assert resumed.returncode in (0, 1), resumed.stderr
  assert _results(wd)["resumed_from"] is not None
  _assert_identical(reference, wd)
  reliability.recovered()


def _flip_largest(step_dir: pathlib.Path):
  p = max((q for q in (step_dir / "default").rglob("*") if q.is_file()), key=lambda q: q.stat().st_size)
  b = bytearray(p.read_bytes())
  b[len(b) // 2] ^= 0x10
  p.write_bytes(bytes(b))


CLI_DAMAGE = {
    "deleted _METADATA": lambda s: os.remove(s / "default" / "_METADATA"),
    "deleted _CHECKPOINT_METADATA": lambda s: os.remove(s / "_CHECKPOINT_METADATA"),
    "truncated data file": lambda s: [os.truncate(p, p.stat().st_size // 2) for p in (s / "default" / "d").iterdir()],
    "bit-flipped data file": _flip_largest,
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CLI_DAMAGE) + ["empty newer step directory"])
def test_damaged_checkpoint_mid_run_falls_back(kind, tmp_path, reference, reliability):
  wd = tmp_path / "w"
  proc = _start(wd)
  deadline = time.time() + 240
  while not (wd / "checkpoints" / "2000").is_dir() and time.time() < deadline and proc.poll() is None:
    time.sleep(0.02)
  proc.kill()
  proc.communicate()
  ckpts = wd / "checkpoints"
  latest = max(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
  if kind == "empty newer step directory":
    (ckpts / str(latest + 500)).mkdir()
    expected = latest
  else:
    CLI_DAMAGE[kind](ckpts / str(latest))
    expected = latest - 500
  reliability.tried()
  resumed = _run(wd)
  assert resumed.returncode in (0, 1), resumed.stderr
  assert f"falling back to checkpoint step {expected}" in resumed.stderr, resumed.stderr
  assert "Traceback" not in resumed.stderr and "Event loop is closed" not in resumed.stderr, resumed.stderr
  assert _results(wd)["resumed_from"] == expected
  _assert_identical(reference, wd)
  reliability.recovered()


@pytest.mark.slow
@pytest.mark.parametrize("keep_config_json", [True, False])
def test_workdir_of_another_config_is_refused_and_kept(keep_config_json, tmp_path, reference, reliability):
  wd = tmp_path / "w"
  shutil.copytree(reference, wd)
  shutil.rmtree(wd / ".lock", ignore_errors=True)
  if not keep_config_json:
    (wd / "config.json").unlink()
  before = {p: p.read_bytes() for p in wd.rglob("*") if p.is_file() and p.name != ".lock"}
  reliability.tried()
  proc = _run(wd, "seed=7")
  assert proc.returncode == 2, proc.stderr
  errors = _error_lines(proc.stderr)
  needle = "holds a run of another config (seed: 0 -> 7)" if keep_config_json else \
      "were written by another config (config.json is missing)"
  assert len(errors) == 1 and needle in errors[0], proc.stderr
  assert {p: p.read_bytes() for p in wd.rglob("*") if p.is_file() and p.name != ".lock"} == before
  reliability.clear_error()


def _unshare_available() -> bool:
  return shutil.which("unshare") is not None and subprocess.run(
      ["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
def test_read_only_and_full_file_systems(tmp_path, reliability):
  """A read-only bind mount and a 64 KiB tmpfs, each in a private mount namespace (`unshare -rm`, no root needed)."""
  if not _unshare_available():
    pytest.skip("needs `unshare -rm` (user and mount namespaces) to mount a read-only / tiny file system")
  ro, small = tmp_path / "ro", tmp_path / "small"
  ro.mkdir()
  small.mkdir()
  (ro / "kept.txt").write_text("earlier result\n")
  script = (f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && "
            f"mount -t tmpfs -o size=64k tmpfs {small} && "
            f"{sys.executable} -m experiments run lion_k_constrained --workdir {ro}/w --quiet; echo rc=$?; "
            f"{sys.executable} -m experiments run lion_k_constrained --workdir {small}/w --quiet "
            + " ".join(f"--set {s}" for s in SETS) + "; echo rc=$?")
  proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ROOT, env=_env(), capture_output=True, text=True,
                        timeout=600)
  codes = [l for l in proc.stdout.splitlines() if l.startswith("rc=")]
  errors = _error_lines(proc.stderr)
  reliability.tried(2)
  assert codes == ["rc=4", "rc=4"], proc.stdout + proc.stderr
  assert "is not writable: Read-only file system" in errors[0], proc.stderr
  assert "I/O failure in lion_k_constrained:" in errors[1] and "No space left on device" in errors[1], proc.stderr
  assert len(errors) == 2 and "Traceback" not in proc.stderr, proc.stderr
  assert (ro / "kept.txt").read_text() == "earlier result\n"
  reliability.clear_error(2)


@pytest.mark.slow
def test_frugal_vs_galore_rerun_does_not_duplicate_metrics(tmp_path, reliability):
  wd = tmp_path / "w"
  sets = ["steps=2", "log_every=2", "warmup=1", "d_model=16", "heads=2", "vocab=8", "seq_len=8", "batch=4",
          "eval_batches=1", "update_gap=2"]
  args = [sys.executable, "-m", "experiments", "run", "frugal_vs_galore", "--workdir", str(wd), "--quiet"]
  for s in sets:
    args += ["--set", s]
  reliability.tried()
  texts = []
  for _ in range(2):
    proc = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr
    texts.append((wd / "metrics.jsonl").read_text())
  assert texts[1] == texts[0] and texts[0].count("\n") == 1  # step 2 of every optimizer, in one row, once
  reliability.recovered()
