"""Multi-process runs on JAX's own engine: `jax.distributed.initialize`, and a local launcher of N CPU processes.

`python -m experiments run NAME --distributed` makes every process of a job call `initialize(DistConfig)` before
JAX touches a device: on TPU pods, Slurm (`srun`) and Open MPI (`mpirun`) the coordinator, process count and
process id are detected by `jax.distributed.initialize()` itself; elsewhere they are given with
`--set dist.coordinator=HOST:PORT --set dist.num_processes=N --set dist.process_id=I`. Afterwards `jax.devices()`
lists every device of the job, a mesh spans them, each process feeds the rows of the global batch its devices own
(`runner.sharding.shard_batch`), jit's collectives cross process boundaries (NCCL on GPU, ICI/DCN on TPU, gloo on
CPU), orbax writes each process's shards of a checkpoint, and only process 0 writes metrics, summaries and figures
(`runner.io`).

`python -m experiments launch --processes 2 -- run NAME ...` (`launch` below) starts N local CPU processes of that
command with a coordinator on 127.0.0.1, each with `--devices-per-process` simulated CPU devices: the same code path
as a cluster, for tests and for users without one. A process that fails stops the others and its log tail is
printed; a run that exceeds `--timeout` is stopped, never left hanging.

Collectives on CPU: jax 0.10.2 uses gloo (`jax_cpu_collectives_implementation="gloo"`, set explicitly here) for
cross-process collectives; in-process simulated devices use XLA's in-process communicator, whose stuck-rendezvous
watchdog aborts after 40 s by default. On a loaded machine a slow thread is not a deadlock, so `collective_timeouts`
raises that limit (the CLI applies it before JAX starts).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence

from jaxlib_methods.runner.experiment import UsageError

@dataclasses.dataclass(frozen=True)
class DistConfig:
  """How this process joins a multi-process job (`--set dist.KEY=VALUE`; all left at their defaults = auto-detect).

  Attributes:
    coordinator: "HOST:PORT" of process 0's coordination service ("" = auto-detect: TPU pod, Slurm, Open MPI).
    num_processes: processes in the job (0 = auto-detect).
    process_id: this process's index, 0..num_processes-1 (-1 = auto-detect).
    timeout_s: how long to wait for every process to join.
  """
  coordinator: str = ""
  num_processes: int = 0
  process_id: int = -1
  timeout_s: int = 300

  def check(self) -> "DistConfig":
    """Raise UsageError unless the fields form a valid job description (all given, or all auto)."""
    given = [bool(self.coordinator), self.num_processes > 0, self.process_id >= 0]
    if any(given) and not all(given):
      raise UsageError("set all of dist.coordinator, dist.num_processes and dist.process_id, or none of them "
                       f"(auto-detection); got coordinator={self.coordinator!r}, num_processes={self.num_processes}, "
                       f"process_id={self.process_id}")
    if self.coordinator:
      host, _, port = self.coordinator.rpartition(":")
      if not host or not port.isdigit():
        raise UsageError(f"dist.coordinator must be HOST:PORT, got {self.coordinator!r}")
      if not 0 <= self.process_id < self.num_processes:
        raise UsageError(f"dist.process_id must be in 0..{self.num_processes - 1}, got {self.process_id}")
    if self.timeout_s < 1:
      raise UsageError(f"dist.timeout_s must be >= 1, got {self.timeout_s}")
    return self


def collective_timeouts(env: Optional[dict] = None) -> dict:
  """Add XLA's CPU collective time limits (`runner.cli.XLA_CPU_COLLECTIVE_FLAGS`: abort after an hour instead of
  40 s) to XLA_FLAGS in `env` (default os.environ), leaving any the user set; only for a jaxlib known to have them.

  Must run before JAX creates its CPU client. Returns the environment it changed.
  """
  from jaxlib_methods.runner import cli  # cli imports this module: import lazily
  env = os.environ if env is None else env
  cli.configure_xla_environment(env)
  return env


def simulated_cpu_devices(env: Optional[dict] = None) -> int:
  """The CPU device count asked for in `env` (default os.environ): `--xla_force_host_platform_device_count=N` in
  XLA_FLAGS or JAX_NUM_CPU_DEVICES; 1 when neither is set."""
  env = os.environ if env is None else env
  n = 1
  for flag in env.get("XLA_FLAGS", "").split():
    if flag.startswith("--xla_force_host_platform_device_count="):
      value = flag.split("=", 1)[1]
      n = int(value) if value.isdigit() else n
  value = env.get("JAX_NUM_CPU_DEVICES", "")
  return int(value) if value.isdigit() and int(value) > 0 else n


def cpu_thread_pool_headroom(env: Optional[dict] = None, factor: int = 4) -> dict:
  """Give XLA:CPU's thread pool room for more than one multi-device program when CPU devices are simulated.

  XLA:CPU runs every simulated device's part of a program on one shared pool of max(PJRT_NPROC or the core count,
  device count) threads (xla/pjrt/cpu/cpu_client.cc: "Need at least CpuDeviceCount threads to launch one
  collective"). On a machine with fewer cores than simulated devices the pool is exactly the device count: with
  asynchronous dispatch a second queued program with an all-reduce can take threads that the first program's
  participants need, and both wait for ever (or until XLA's collective timeout aborts the process). Measured here
  with CO2 rounds queued on 4 simulated devices on the 2-core machine: 2 hangs in 4 runs with the default pool, none
  in 4 with PJRT_NPROC=16. This sets PJRT_NPROC to `factor` x the device count (at least the core count) unless
  PJRT_NPROC or NPROC is already set. Must run before JAX creates its CPU client. Returns the environment.
  """
  env = os.environ if env is None else env
  n = simulated_cpu_devices(env)
  if n > 1 and "PJRT_NPROC" not in env and "NPROC" not in env:
    env["PJRT_NPROC"] = str(max(factor * n, os.cpu_count() or 1))
  return env


def initialize(config: DistConfig = DistConfig()) -> None:
  """Join the job: `jax.distributed.initialize` with the config's values (or auto-detection). Idempotent.

  Must run before any JAX computation in this process (jax raises otherwise). On CPU it selects gloo collectives.

  Raises:
    UsageError: bad config; RuntimeError from JAX when the coordinator cannot be reached in `timeout_s`.
  """
  import jax
  config.check()
  if jax.distributed.is_initialized():
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs = {"initialization_timeout": config.timeout_s}
  if config.coordinator:
    kwargs.update(coordinator_address=config.coordinator, num_processes=config.num_processes,
                  process_id=config.process_id)
  jax.distributed.initialize(**kwargs)


def is_initialized() -> bool:
  import jax
  return jax.distributed.is_initialized()


def is_primary() -> bool:
  """True on process 0 (and in every single-process run): the process that writes files."""
  import jax
  return not jax.distributed.is_initialized() or jax.process_index() == 0


def barrier(name: str) -> None:
  """Wait until every process reaches this point (a no-op in single-process runs)."""
  import jax
  if jax.distributed.is_initialized() and jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


# ----------------------------------------------------------------------------------------------------------------------
# Local launcher.
# ----------------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LaunchResult:
  returncode: int           # process 0's exit status, or the first failing process's, 124 on timeout
  logs: tuple               # one log file per process
  failed: Optional[int]     # index of the process that failed (None: all exited 0 or 1)

  def tail(self, process: int, lines: int = 40) -> str:
    text = pathlib.Path(self.logs[process]).read_text(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _child_env(devices_per_process: int, base: Optional[dict] = None) -> dict:
  env = dict(os.environ if base is None else base)
  flags = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                   if not f.startswith("--xla_force_host_platform_device_count"))
  env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices_per_process}".strip()
  collective_timeouts(env)
  env.pop("PJRT_NPROC", None)   # sized for this child's devices, not inherited
  cpu_thread_pool_headroom(env)
  env["JAX_PLATFORMS"] = "cpu"
  return env


def launch(command: Sequence[str], *, processes: int, devices_per_process: int = 4, port: Optional[int] = None,
           timeout_s: float = 1800.0, log_dir: Optional[os.PathLike] = None, env: Optional[dict] = None,
           echo: bool = True, python: Optional[str] = None, term_grace_s: float = 10.0) -> LaunchResult:
  """Run `python -m experiments COMMAND --distributed` in `processes` local CPU processes and wait for them.

  Each process gets `devices_per_process` simulated CPU devices and `--set dist.coordinator=127.0.0.1:PORT
  --set dist.num_processes=N --set dist.process_id=I`; its stdout and stderr go to `log_dir/process_I.log`. When
  `echo`, process 0's log is printed when it ends. If any process exits with a status other than 0 (all passed) or
  1 (a claim failed), the others are stopped and its log tail is printed; after `timeout_s` all are stopped.

  Args:
    command: the `experiments` subcommand and its arguments, e.g. ["run", "lm_scaleout", "--set", "steps=4"].
    processes: N >= 1.
    devices_per_process: simulated CPU devices per process (>= 1).
    port: the coordinator's port (default: a free one).
    timeout_s: wall-clock limit for the whole job.
    log_dir: where the logs go (default: a new temporary directory).
    env: base environment (default os.environ).
    echo: print process 0's log (and a failing process's tail) to this process's stdout/stderr.
    python: the interpreter (default sys.executable).
    term_grace_s: when processes are stopped, how long each gets after SIGTERM (the runner checkpoints and exits
      at the next step boundary) before SIGKILL.

  Returns:
    LaunchResult.
  """
  command = list(command)
  if command and command[0] == "--":
    command = command[1:]
  if not command:
    raise UsageError("launch needs a command after --, e.g. `launch --processes 2 -- run NAME`")
  if command[0] != "run":
    raise UsageError(f"launch runs `run` commands, got {shlex.join(command)!r}")
  if processes < 1 or devices_per_process < 1:
    raise UsageError(f"--processes and --devices-per-process must be >= 1, got {processes}, {devices_per_process}")
  if not term_grace_s >= 0:
    raise UsageError(f"term_grace_s must be >= 0 seconds, got {term_grace_s}")
  if any(a.startswith("dist.") for a in command) or "--distributed" in command:
    raise UsageError("launch sets --distributed and dist.* itself; remove them from the command")
  port = free_port() if port is None else port
  log_dir = pathlib.Path(tempfile.mkdtemp(prefix="launch_") if log_dir is None else log_dir)
  log_dir.mkdir(parents=True, exist_ok=True)
  child_env = _child_env(devices_per_process, env)
  python = python or sys.executable
  procs, logs, files = [], [], []
  try:
    for i in range(processes):
      argv = [python, "-m", "experiments", *command, "--distributed",
              "--set", f"dist.coordinator=127.0.0.1:{port}", "--set", f"dist.num_processes={processes}",
              "--set", f"dist.process_id={i}"]
      log = log_dir / f"process_{i}.log"
      f = open(log, "w")
      files.append(f)
      logs.append(str(log))
      procs.append(subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=child_env,
                                    start_new_session=True))
    deadline = time.monotonic() + timeout_s
    failed, rc = None, None
    while True:
      codes = [p.poll() for p in procs]
      bad = [i for i, c in enumerate(codes) if c is not None and c not in (0, 1)]
      if bad:
        failed = bad[0]
        rc = codes[failed]
        break
      if all(c is not None for c in codes):
        rc = codes[0]
        break
      if time.monotonic() > deadline:
        rc = 124
        failed = next(i for i, c in enumerate(codes) if c is None)
        break
      time.sleep(0.1)
  finally:
    for p in procs:
      if p.poll() is None:
        try:
          os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
          pass
    for p in procs:
      try:
        p.wait(timeout=term_grace_s)
      except subprocess.TimeoutExpired:
        try:
          os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
          pass
        p.wait()
    for f in files:
      f.close()
  result = LaunchResult(returncode=int(rc), logs=tuple(logs), failed=failed)
  if echo:
    sys.stdout.write(pathlib.Path(logs[0]).read_text(errors="replace"))
    sys.stdout.flush()
    if failed is not None:
      why = "timed out" if rc == 124 else f"exited with status {rc}"
      print(f"launch: process {failed} of {processes} {why}; last lines of {logs[failed]}:\n"
            f"{result.tail(failed)}", file=sys.stderr)
  return result


def cpu_child_env(devices: int, base: Optional[dict] = None) -> dict:
  """Environment of a child process with `devices` simulated CPU devices, collective time limits raised, and this
  checkout first on PYTHONPATH."""
  env = _child_env(devices, base)
  root = str(pathlib.Path(__file__).resolve().parents[2])
  env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
  return env


def call_with_cpu_devices(target: str, payload: dict, *, devices: int, timeout_s: float = 900.0,
                          env: Optional[dict] = None) -> dict:
  """Run `target(payload) -> dict` ("package.module:function", JSON in and out) in a child process that has
  `devices` simulated CPU devices: how a 1-device CPU process runs a multi-device algorithm for real. `env` is the
  child's environment (default `cpu_child_env(devices)`).

  Raises:
    RuntimeError: the child failed or exceeded `timeout_s` (with the tail of its output).
  """
  import json
  with tempfile.TemporaryDirectory() as tmp:
    src, dst = pathlib.Path(tmp) / "in.json", pathlib.Path(tmp) / "out.json"
    src.write_text(json.dumps({"target": target, "payload": payload}))
    try:
      proc = subprocess.run([sys.executable, "-m", "jaxlib_methods.runner.distributed", str(src), str(dst)],
                            env=cpu_child_env(devices) if env is None else env, capture_output=True, text=True,
                            timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
      out = (e.stdout or b"")[-3000:] if isinstance(e.stdout, bytes) else (e.stdout or "")[-3000:]
      raise RuntimeError(f"{target} on {devices} simulated devices timed out after {timeout_s:.0f} s:\n{out}") from None
    if proc.returncode != 0:
      raise RuntimeError(f"{target} on {devices} simulated devices failed (status {proc.returncode}):\n"
                         f"{(proc.stdout + proc.stderr)[-4000:]}")
    return json.loads(dst.read_text())


def _child_main(argv: Sequence[str]) -> int:
  import importlib
  import json
  spec = json.loads(pathlib.Path(argv[0]).read_text())
  module, _, fn = spec["target"].partition(":")
  result = getattr(importlib.import_module(module), fn)(spec["payload"])
  pathlib.Path(argv[1]).write_text(json.dumps(result))
  return 0


__all__ = ["DistConfig", "LaunchResult", "barrier", "call_with_cpu_devices", "collective_timeouts", "cpu_child_env",
           "cpu_thread_pool_headroom", "free_port", "initialize", "is_initialized", "is_primary", "launch",
           "simulated_cpu_devices"]


if __name__ == "__main__":
  sys.exit(_child_main(sys.argv[1:]))
