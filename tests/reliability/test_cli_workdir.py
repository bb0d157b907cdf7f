"""The CLI's promises about the workdir and a run's life, in-process (fast): exit statuses and one-line messages,
no data loss before validation, no wrong resume, a lock, no stale figure, no duplicate metrics, the umask, Ctrl-C.

The experiment's `run` is replaced by small functions (a recorder, a crash, a disk-full error, a loop through
`runner.train`); the real experiments under real faults are in test_fault_injection.py (subprocesses).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import pathlib
import signal
import stat
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import lion_k_constrained as lion
from jaxlib_methods.runner import Claim, MetricsLog, atomic_write_json, save_figure, train
from jaxlib_methods.runner import cli
from jaxlib_methods.runner import experiment as exp_lib
from jaxlib_methods.runner import workdir as workdir_lib

ROOT = pathlib.Path(__file__).resolve().parents[2]
NAME = "lion_k_constrained"


class Fake:
  """Stands in for the experiment's run/claims and records what the CLI asked of it."""

  def __init__(self, body=None):
    self.calls = []
    self.body = body

  def run(self, config, workdir):
    self.calls.append((config, pathlib.Path(workdir)))
    return self.body(config, pathlib.Path(workdir)) if self.body else {"ok": True}

  @staticmethod
  def claims(results):
    return [Claim.holds("recorded", True)]


@pytest.fixture
def fake(monkeypatch):
  def install(body=None):
    f = Fake(body)
    monkeypatch.setattr(lion, "run", f.run)
    monkeypatch.setattr(lion, "claims", f.claims)
    return f
  return install


def _main(capsys, *argv):
  rc = cli.main(list(argv))
  out, err = capsys.readouterr()
  return rc, out, [l for l in err.splitlines() if l.strip()]


def _snapshot(root: pathlib.Path) -> dict:
  return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _earlier_run(workdir: pathlib.Path, config) -> pathlib.Path:
  """A workdir as a finished run of `config` leaves it (with stand-in checkpoint files)."""
  (workdir / "checkpoints" / "2000").mkdir(parents=True)
  (workdir / "checkpoints" / "2000" / "data").write_bytes(b"\x01" * 32)
  (workdir / "metrics.jsonl").write_text('{"step": 0, "f_A": 1.0}\n{"step": 500, "f_A": 0.5}\n')
  (workdir / "summary.json").write_text('{"experiment": "earlier"}\n')
  atomic_write_json(workdir / "config.json", exp_lib.config_to_dict(config))
  return workdir


# ----------------------------------------------------------------------------------------------------------------------
# Exit 2 never touches the workdir; a different config is refused, with or without config.json.
# ----------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [[], ["--fresh"]])
def test_a_rejected_command_deletes_nothing(extra, tmp_path, fake, capsys, reliability):
  # The probe: `--set mesh.data=8` on 1 device deleted the previous run's checkpoints/ and metrics.jsonl.
  f = fake()
  wd = _earlier_run(tmp_path / "w", lion.Config())
  before = _snapshot(wd)
  reliability.tried()
  rc, _, err = _main(capsys, "run", NAME, "--set", "mesh.data=8", "--workdir", str(wd), *extra)
  assert rc == 2 and len(err) == 1 and "mesh.data=8 but 1 device(s) are visible" in err[0], err
  assert _snapshot(wd) == before and f.calls == []
  reliability.clear_error()


def test_another_config_is_refused_not_restarted(tmp_path, fake, capsys, reliability):
  f = fake()
  wd = _earlier_run(tmp_path / "w", lion.Config())
  before = _snapshot(wd)
  reliability.tried()
  rc, _, err = _main(capsys, "run", NAME, "--set", "seed=1", "--workdir", str(wd))
  assert rc == 2 and len(err) == 1, err
  assert "holds a run of another config (seed: 0 -> 1)" in err[0] and "--fresh" in err[0]
  assert _snapshot(wd) == before and f.calls == []
  reliability.clear_error()
  # --fresh is the explicit way to discard it
  rc, _, err = _main(capsys, "run", NAME, "--set", "seed=1", "--workdir", str(wd), "--fresh", "--quiet")
  assert rc == 0 and len(f.calls) == 1
  assert not (wd / "checkpoints").exists() and json.loads((wd / "config.json").read_text())["seed"] == 1


def _train_body(num_steps=40, stop_at=None):
  """A run through runner.train on a tiny state; optionally sends itself SIGINT during the chunk ending at stop_at."""
  def body(config, workdir):
    def advance(s, start, n):
      if stop_at is not None and start < stop_at <= start + n:
        os.kill(os.getpid(), signal.SIGINT)
      return {"x": s["x"] * 0.5 + jnp.float32(start + n)}
    result = train(workdir=workdir, state={"x": jnp.float32(config.seed)}, advance=advance,
                   measure=lambda s, step: {"x": s["x"]}, num_steps=num_steps, log_every=10, checkpoint_every=20)
    return {"x": float(result.state["x"]), "resumed_from": result.resumed_from}
  return body


def test_checkpoints_of_another_config_are_refused_without_config_json(tmp_path, fake, capsys, reliability):
  fake(_train_body())
  wd = tmp_path / "w"
  rc, _, err = _main(capsys, "run", NAME, "--workdir", str(wd), "--quiet")
  assert rc == 0, err
  (wd / "config.json").unlink()
  before = _snapshot(wd)
  reliability.tried()
  rc, _, err = _main(capsys, "run", NAME, "--set", "seed=3", "--workdir", str(wd), "--quiet")
  assert rc == 2 and len(err) == 1, err
  assert "were written by another config (config.json is missing)" in err[0]
  assert _snapshot(wd) == before
  reliability.clear_error()
  # the same config as the checkpoints resumes (and config.json is written again)
  reliability.tried()
  f = fake(_train_body())
  rc, _, err = _main(capsys, "run", NAME, "--workdir", str(wd), "--quiet")
  assert rc == 0 and len(f.calls) == 1
  assert json.loads((wd / "summary.json").read_text())["results"]["resumed_from"] == 40
  assert (wd / "config.json").exists()
  reliability.recovered()


def test_fresh_discards_training_runs_kept_in_sub_directories(tmp_path, fake, capsys, reliability):
  # An experiment that trains in workdir/stage1 (mcl_feature_suppression does): --fresh used to leave those
  # checkpoints, so a --fresh run resumed them, or refused them as another config's, telling the user to pass --fresh.
  inner = _train_body()
  fake(lambda config, workdir: inner(config, workdir / "stage1"))
  wd = tmp_path / "w"
  rc, _, err = _main(capsys, "run", NAME, "--workdir", str(wd), "--quiet")
  assert rc == 0 and (wd / "stage1" / "checkpoints").is_dir(), err
  (wd / "keep.txt").write_text("not a run output")
  for extra in ([], ["--set", "seed=1"]):
    reliability.tried()
    rc, _, err = _main(capsys, "run", NAME, *extra, "--workdir", str(wd), "--fresh", "--quiet")
    assert rc == 0, err
    assert json.loads((wd / "summary.json").read_text())["results"]["resumed_from"] is None
    reliability.recovered()
  assert (wd / "keep.txt").read_text() == "not a run output"


def test_a_truncated_config_json_is_a_clear_error(tmp_path, fake, capsys, reliability):
  f = fake()
  wd = _earlier_run(tmp_path / "w", lion.Config())
  (wd / "config.json").write_text((wd / "config.json").read_text()[:40])
  before = _snapshot(wd)
  reliability.tried()
  rc, _, err = _main(capsys, "run", NAME, "--workdir", str(wd))
  assert rc == 4 and len(err) == 1 and "config.json is damaged (JSONDecodeError" in err[0], err
  assert _snapshot(wd) == before and f.calls == []
  reliability.clear_error()


# ----------------------------------------------------------------------------------------------------------------------
# I/O failures: exit 4, one line, no traceback.
# ----------------------------------------------------------------------------------------------------------------------

def test_workdir_that_is_a_file_or_under_a_file(tmp_path, fake, capsys, reliability):
  f = fake()
  afile = tmp_path / "results"
  afile.write_text("not a directory\n")
  for workdir, needle in ((afile, "is not a directory (it is a file)"),
                          (afile / "sub" / "w", "is a file, not a directory")):
    reliability.tried()
    rc, out, err = _main(capsys, "run", NAME, "--workdir", str(workdir))
    assert rc == 4 and len(err) == 1 and needle in err[0] and "Traceback" not in out, err
    reliability.clear_error()
  # `make demo` with `results` a file: the demo refuses at once (it used to print "(some claims failed)", exit 0)
  reliability.tried()
  rc, _, err = _main(capsys, "run", "--demo", "--workdir", str(afile))
  assert rc == 4 and len(err) == 1 and "is not a directory" in err[0]
  reliability.clear_error()
  assert afile.read_text() == "not a directory\n" and f.calls == []


def test_disk_full_mid_run_is_exit_4_in_one_line(tmp_path, fake, capsys, reliability):
  def body(config, workdir):
    raise OSError(errno.ENOSPC, "No space left on device", str(workdir / "checkpoints" / "4000"))
  fake(body)
  reliability.tried()
  rc, out, err = _main(capsys, "run", NAME, "--workdir", str(tmp_path / "w"), "--quiet")
  assert rc == 4, err
  assert len(err) == 2 and err[0].startswith("== ") and err[1].startswith("error: I/O failure in lion_k_constrained:")
  assert "No space left on device" in err[1] and "rerun the same command to resume" in err[1]
  assert "Traceback" not in out and "I/O FAILURE" in out
  summary = json.loads((tmp_path / "w" / "summary.json").read_text())
  assert summary["error_kind"] == "io" and summary["all_passed"] is False
  reliability.clear_error()


def test_a_second_run_in_the_same_workdir_is_refused(tmp_path, fake, capsys, reliability):
  f = fake()
  wd = tmp_path / "w"
  wd.mkdir()
  reliability.tried()
  with workdir_lib.lock(wd):  # flock: a second open file description conflicts even within one process
    rc, _, err = _main(capsys, "run", NAME, "--workdir", str(wd))
  assert rc == 4 and len(err) == 1 and f"workdir {wd} is in use by another run (pid {os.getpid()})" in err[0]
  assert f.calls == []
  reliability.clear_error()
  rc, _, _ = _main(capsys, "run", NAME, "--workdir", str(wd), "--quiet")  # released: runs
  assert rc == 0 and len(f.calls) == 1


# ----------------------------------------------------------------------------------------------------------------------
# Outputs: no stale figure, no duplicate rows, the umask.
# ----------------------------------------------------------------------------------------------------------------------

def test_a_crashed_run_never_lists_the_previous_figure(tmp_path, fake, capsys):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  def ok(config, workdir):
    save_figure(plt.figure(), workdir / "figure.png")
    return {}

  def crash(config, workdir):
    raise RuntimeError("boom")

  wd = tmp_path / "w"
  fake(ok)
  assert _main(capsys, "run", NAME, "--workdir", str(wd), "--quiet")[0] == 0
  assert json.loads((wd / "summary.json").read_text())["figure"] == str(wd / "figure.png")
  fake(crash)
  rc, out, _ = _main(capsys, "run", NAME, "--workdir", str(wd), "--quiet")
  summary = json.loads((wd / "summary.json").read_text())
  assert rc == 3 and summary["error"] == "RuntimeError: boom" and summary["figure"] is None
  assert "figures:" not in out


def test_rerunning_never_duplicates_metrics_rows(tmp_path, fake, capsys, reliability):
  # frugal_vs_galore appends with MetricsLog(workdir).log(...) and never resets: a rerun used to duplicate rows.
  def appends(config, workdir):
    log = MetricsLog(workdir)
    for step in (1, 2, 3):
      log.log(step, loss=1.0 / step)
    return {}

  fake(appends)
  wd = tmp_path / "w"
  reliability.tried()
  for _ in range(2):
    assert _main(capsys, "run", NAME, "--workdir", str(wd), "--quiet")[0] == 0
  assert [r["step"] for r in MetricsLog(wd).rows] == [1, 2, 3]
  reliability.recovered()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_output_files_respect_the_umask(umask, mode, tmp_path, fake, capsys):
  fake()
  old = os.umask(umask)
  try:
    assert _main(capsys, "run", NAME, "--workdir", str(tmp_path / "w"), "--quiet")[0] == 0
  finally:
    os.umask(old)
  for name in ("config.json", "summary.json"):
    assert stat.S_IMODE((tmp_path / "w" / name).stat().st_mode) == mode, name


# ----------------------------------------------------------------------------------------------------------------------
# Ctrl-C.
# ----------------------------------------------------------------------------------------------------------------------

def test_ctrl_c_stops_after_the_chunk_with_a_checkpoint_and_resumes_identically(tmp_path, fake, capsys, reliability):
  fake(_train_body(num_steps=60))
  assert _main(capsys, "run", NAME, "--workdir", str(tmp_path / "ref"), "--quiet")[0] == 0
  fake(_train_body(num_steps=60, stop_at=30))
  wd = tmp_path / "w"
  reliability.tried()
  rc, out, err = _main(capsys, "run", NAME, "--workdir", str(wd), "--quiet")
  assert rc == 130, err
  assert any("Ctrl-C: stopping after the current chunk" in l for l in err)
  assert f"interrupted at step 30, with a checkpoint. Resume with:" in "\n".join(err)
  assert any(l.strip().startswith("python -m experiments run lion_k_constrained --workdir") for l in err)
  assert not any("Traceback" in l or "never awaited" in l for l in err + out.splitlines())
  assert sorted(int(p.name) for p in (wd / "checkpoints").iterdir()) == [20, 30]  # 30: the stop's own checkpoint
  assert json.loads((wd / "summary.json").read_text())["interrupted"]["step"] == 30
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the CLI put the handler back
  fake(_train_body(num_steps=60))
  assert _main(capsys, "run", NAME, "--workdir", str(wd), "--quiet")[0] == 0
  a, b = (json.loads((d / "summary.json").read_text())["results"] for d in (tmp_path / "ref", wd))
  assert b["resumed_from"] == 30 and a["x"] == b["x"]
  assert (tmp_path / "ref" / "metrics.jsonl").read_text() == (wd / "metrics.jsonl").read_text()
  reliability.recovered()


def test_ctrl_c_outside_a_training_loop_stops_at_once(tmp_path, fake, capsys, reliability):
  def body(config, workdir):
    os.kill(os.getpid(), signal.SIGINT)
    raise AssertionError("not reached: the first Ctrl-C interrupts a run that has no loop to stop")
  fake(body)
  reliability.tried()
  rc, out, err = _main(capsys, "run", NAME, "--workdir", str(tmp_path / "w"), "--quiet")
  assert rc == 130 and "interrupted (no checkpoint)" in "\n".join(err)
  assert not any("Traceback" in l for l in err) and "INTERRUPTED" in out
  reliability.clear_error()


# ----------------------------------------------------------------------------------------------------------------------
# XLA flags; make demo.
# ----------------------------------------------------------------------------------------------------------------------

def test_xla_flags_are_appended_without_clobbering_the_users():
  f = cli.xla_flags_with_collective_timeouts
  got = f("--xla_force_host_platform_device_count=8", "0.10.2")
  assert got.startswith("--xla_force_host_platform_device_count=8 ")
  assert "--xla_cpu_collective_call_terminate_timeout_seconds=3600" in got
  assert "--xla_cpu_collective_call_warn_stuck_timeout_seconds=300" in got
  mine = "--xla_cpu_collective_call_terminate_timeout_seconds=5"
  assert f(mine, "0.10.2").split().count(mine) == 1 and "terminate_timeout_seconds=3600" not in f(mine, "0.10.2")
  assert f("", "0.4.35") == "" and f("--a=1", None) == "--a=1"  # unknown flags abort older XLA: added from 0.10
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  cli.configure_xla_environment(env)  # the installed jaxlib (0.10.x) has them
  assert env["XLA_FLAGS"].split()[0] == "--xla_force_host_platform_device_count=2"
  assert "--xla_cpu_collective_call_terminate_timeout_seconds=3600" in env["XLA_FLAGS"]


def test_compilation_cache_dir_defaults_under_xdg_and_keeps_the_users_choice(tmp_path):
  env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
  got = cli.compilation_cache_dir(env)
  assert got == str(tmp_path / "xdg" / "jaxlib-methods" / "xla") and os.path.isdir(got)
  assert env[cli.COMPILATION_CACHE_ENV] == got                     # children (launch, subprocesses) inherit it
  assert cli.compilation_cache_dir({cli.COMPILATION_CACHE_ENV: str(tmp_path / "mine")}) == str(tmp_path / "mine")
  off = {cli.COMPILATION_CACHE_ENV: "", "XDG_CACHE_HOME": str(tmp_path / "xdg2")}
  assert cli.compilation_cache_dir(off) is None and not (tmp_path / "xdg2").exists()   # empty: the cache stays off
  (tmp_path / "file").write_text("x")                               # the default cannot be created: run uncached
  blocked = {"XDG_CACHE_HOME": str(tmp_path / "file")}
  assert cli.compilation_cache_dir(blocked) is None and cli.COMPILATION_CACHE_ENV not in blocked
  relative = {"XDG_CACHE_HOME": "rel/cache"}                        # ignored (XDG spec): the home directory's .cache
  assert cli.default_compilation_cache_dir(relative) == pathlib.Path(os.path.expanduser("~"), ".cache",
                                                                     "jaxlib-methods", "xla")


def test_the_cli_entry_point_writes_and_reuses_the_compilation_cache(tmp_path):
  """experiments/__main__.py's order (configure, then compile) in a child without $JAX_COMPILATION_CACHE_DIR: the
  program lands in the default directory, and a second process loads it instead of compiling (jax counts both)."""
  code = ("import jax, jax.numpy as jnp\n"
          "from jaxlib_methods.runner.cli import configure_compilation_cache\n"
          "print(configure_compilation_cache())\n"
          "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)\n"
          "from jax import monitoring\n"
          "hits = []\n"
          "monitoring.register_event_listener(lambda e, **kw: hits.append(e) if e.endswith('cache_hits') else None)\n"
          "print(float(jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)(jnp.arange(8.0)).sum()), len(hits))\n")
  env = {k: v for k, v in os.environ.items() if k != cli.COMPILATION_CACHE_ENV}
  env["XDG_CACHE_HOME"] = str(tmp_path)
  runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
          for _ in range(2)]
  for r in runs:
    assert r.returncode == 0, r.stderr
  (path, line1), (path2, line2) = [r.stdout.split("\n")[:2] for r in runs]
  (first, hits1), (second, hits2) = line1.split(), line2.split()
  assert path == path2 == str(tmp_path / "jaxlib-methods" / "xla")
  assert any(p.name.endswith("-cache") for p in (tmp_path / "jaxlib-methods" / "xla").iterdir())
  assert first == second and int(hits1) == 0 and int(hits2) >= 1   # the second process loaded, the first compiled


def _make_demo(tmp_path, status: int, writes_table: bool) -> subprocess.CompletedProcess:
  """`make demo` with a stand-in python that exits `status` (and writes results/claims.txt if `writes_table`)."""
  fake_bin = tmp_path / "bin"
  fake_bin.mkdir()
  script = fake_bin / "python"
  script.write_text(textwrap.dedent(f"""\
      #!/bin/sh
      sleep 0.1
      {'mkdir -p results && echo table > results/claims.txt' if writes_table else ''}
      exit {status}
      """))
  script.chmod(0o755)
  return subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "-o", ".venv/.base-installed", "demo",
                         f"BIN={fake_bin}"], cwd=tmp_path, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("status, writes_table, ok", [
    (0, True, True), (1, True, True), (1, False, False), (2, False, False), (3, True, False), (4, False, False),
    (130, False, False)])
def test_make_demo_fails_unless_every_run_completed(status, writes_table, ok, tmp_path):
  proc = _make_demo(tmp_path, status, writes_table)
  assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
  if ok and status == 1:
    assert "some claims failed" in proc.stdout
