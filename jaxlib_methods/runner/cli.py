"""`python -m experiments list | run NAME [--preset P] [--set key=value ...] [--workdir D] [--fresh]`
(or `run --all`, `run --demo`). Multi-process: `run NAME --distributed [--set dist.coordinator=HOST:PORT
--set dist.num_processes=N --set dist.process_id=I]` is one process of a job; `launch --processes N -- run NAME ...`
starts N local CPU processes of that command (see `jaxlib_methods.runner.distributed`).

Exit status:
  0    every claim passed.
  1    a claim failed (the claims table is printed; the runs themselves completed).
  2    usage error, in one line, before any work and before the workdir is touched: an unknown experiment, preset or
       config key; a value of the wrong type or out of its declared range; a mesh larger than the visible devices;
       a workdir (or its checkpoints) holding a run of another config (pass --fresh to discard it).
  3    a run crashed: its traceback is printed, the other runs still go on, and the table marks it RUN FAILED.
  4    I/O failure, in one line: the workdir is a file, lies under a file, is read-only or unwritable; the disk (or
       `ulimit -f`) filled up mid-run; config.json is damaged; no checkpoint restores; another run holds the workdir.
       Checkpoints already written are kept: fix the cause and rerun the same command to resume.
  130  interrupted by Ctrl-C (143: SIGTERM): the run stopped after its current chunk with a checkpoint, and the
       command to resume was printed. A second Ctrl-C aborts at once (the last checkpoint stays intact).
With several runs (--all, --demo) the status is the most severe one: 130/143, then 4, 3, 1, 0.

What happens, in order: the configs are resolved and validated (each Config declares its constraints, see
runner/constraints.py); the mesh is checked against the visible devices; each workdir is proved writable, locked
against a second concurrent run, and checked against the config it holds (config.json and the config fingerprint in
its checkpoints); only then does `--fresh` clear anything, and the runs start.

Compiled programs go to JAX's persistent compilation cache, ~/.cache/jaxlib-methods/xla unless
$JAX_COMPILATION_CACHE_DIR says otherwise (empty: off); see `configure_compilation_cache`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import pathlib
import platform
import shlex
import signal
import sys
import textwrap
import threading
import time
import traceback
import typing
from typing import Any, Iterator, Optional, Sequence

from jaxlib_methods.runner import control as run_control
from jaxlib_methods.runner import distributed
from jaxlib_methods.runner import experiment as exp_lib
from jaxlib_methods.runner import io
from jaxlib_methods.runner import workdir as workdir_lib
from jaxlib_methods.runner.claims import Claim
from jaxlib_methods.runner.progress import QUIET_ENV

DEFAULT_RESULTS = pathlib.Path("results")
# `--matmul-precision`: the names jax.default_matmul_precision takes ("float32" = HIGHEST, "tensorfloat32" = HIGH on
# GPUs, "bfloat16" = DEFAULT's one pass, "default" = the backend's own choice).
MATMUL_PRECISIONS = ("float32", "tensorfloat32", "bfloat16", "default")

EXIT_OK, EXIT_CLAIM_FAILED, EXIT_USAGE, EXIT_CRASHED, EXIT_IO = 0, 1, 2, 3, 4
EXIT_INTERRUPTED_BASE = 128   # + the signal number: 130 for SIGINT, 143 for SIGTERM

# ----------------------------------------------------------------------------------------------------------------------
# XLA settings the CLI needs before jax initialises its backend.
# ----------------------------------------------------------------------------------------------------------------------

# Simulated devices on CPU are threads that meet at every collective; on a loaded machine one can be starved past
# XLA's stuck-collective abort (SIGABRT in InProcessCommunicator::AllReduce after 40 s by default). A slow CPU run
# should be slow, not dead: raise the abort to an hour (a true deadlock still ends) and the warning to 5 minutes.
XLA_CPU_COLLECTIVE_FLAGS = {
    "xla_cpu_collective_call_terminate_timeout_seconds": "3600",
    "xla_cpu_collective_call_warn_stuck_timeout_seconds": "300",
    "xla_cpu_collective_timeout_seconds": "3600",
}
# XLA aborts the process on an unknown flag, so they are added only for jaxlib versions known to have them.
XLA_CPU_COLLECTIVE_FLAGS_SINCE = (0, 10)


def xla_flags_with_collective_timeouts(current: str, jaxlib_version: Optional[str]) -> str:
  """`current` XLA_FLAGS plus the CPU collective timeouts above; a flag the user already set is left as it is.

  Returns `current` unchanged when `jaxlib_version` is unknown or older than the flags."""
  try:
    version = tuple(int(p) for p in (jaxlib_version or "").split(".")[:2])
  except ValueError:
    return current
  if len(version) < 2 or version < XLA_CPU_COLLECTIVE_FLAGS_SINCE:
    return current
  present = {tok.lstrip("-").split("=", 1)[0] for tok in current.split()}
  extra = [f"--{k}={v}" for k, v in XLA_CPU_COLLECTIVE_FLAGS.items() if k not in present]
  return " ".join([current.strip()] + extra).strip() if extra else current


def configure_xla_environment(environ=os.environ) -> None:
  """Append the collective timeouts to $XLA_FLAGS; call before jax initialises a backend (experiments/__main__.py
  does, first thing)."""
  try:
    from importlib.metadata import version
    jaxlib_version = version("jaxlib")
  except Exception:  # not installed as a distribution: leave XLA_FLAGS alone
    return
  environ["XLA_FLAGS"] = xla_flags_with_collective_timeouts(environ.get("XLA_FLAGS", ""), jaxlib_version)


# JAX's persistent compilation cache: XLA:CPU spends most of a toy experiment's time compiling (layers_wave1_moe's
# cpu preset: four programs of 20-38 s each, about 160 of its ~250 s), and a rerun, a resumed run or a `--set`
# mutation compiles the same programs again. Cached executables are the compiled programs themselves (keyed by the
# program, jax/jaxlib versions, devices, compile options and XLA_FLAGS), so the numbers are the same; only programs
# that took >= 1 s to compile are written (jax's default), and only by process 0 of a multi-process job.
COMPILATION_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"


def default_compilation_cache_dir(environ=os.environ) -> pathlib.Path:
  """$XDG_CACHE_HOME/jaxlib-methods/xla, else ~/.cache/jaxlib-methods/xla (a relative $XDG_CACHE_HOME is ignored,
  as the XDG spec says). Relative only when there is no home directory either: then no cache is used."""
  xdg = environ.get("XDG_CACHE_HOME", "")
  base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
  return pathlib.Path(base) / "jaxlib-methods" / "xla"


def compilation_cache_dir(environ=os.environ) -> Optional[str]:
  """The persistent-compilation-cache directory this process should use, recorded in `environ` for its children:
  $JAX_COMPILATION_CACHE_DIR when set (empty: None, the cache stays off), else `default_compilation_cache_dir()`,
  created here. None, and `environ` left alone, when that directory cannot be created or written (the run goes
  on uncached)."""
  if COMPILATION_CACHE_ENV in environ:
    return environ[COMPILATION_CACHE_ENV] or None
  target = default_compilation_cache_dir(environ)
  if not target.is_absolute():   # no home directory: never a cache under the working directory
    return None
  try:
    target.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None
  if not os.access(target, os.W_OK | os.X_OK):
    return None
  environ[COMPILATION_CACHE_ENV] = str(target)
  return str(target)


def configure_compilation_cache(environ=os.environ) -> Optional[str]:
  """Turn on JAX's persistent compilation cache for this process and its children at `compilation_cache_dir()`
  (~/.cache/jaxlib-methods/xla unless $JAX_COMPILATION_CACHE_DIR says otherwise; set it empty to turn the cache
  off). Returns the directory, or None when the cache is off. Call before the first compilation;
  experiments/__main__.py does, first thing. The cache is never evicted: delete the directory to reclaim its space.
  """
  import jax  # already imported by the runner modules above; it read $JAX_COMPILATION_CACHE_DIR then: set it here
  path = compilation_cache_dir(environ)
  if path is not None:
    jax.config.update("jax_compilation_cache_dir", path)
  return path


# ----------------------------------------------------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
  def error(self, message: str):  # one line, exit 2 (argparse's own behaviour, without the usage dump)
    raise exp_lib.UsageError(message)


EXIT_STATUS_HELP = """exit status:
  0    every claim passed
  1    a claim failed (the table is printed; every run completed)
  2    usage error (bad name, key or value, out-of-range config, a workdir of another config), before any work
  3    a run crashed (traceback printed; the table marks it RUN FAILED)
  4    I/O failure: unusable workdir (a file, under a file, read-only, in use by another run), full disk,
       damaged config.json, no checkpoint that restores
  130  interrupted by Ctrl-C (143: SIGTERM), after a checkpoint; the resume command is printed"""


@functools.cache
def _parser() -> argparse.ArgumentParser:
  # Built once per process (about 4 ms, most of it argparse's gettext lookups) and reused: parse_args keeps no state
  # between calls (each call fills a fresh Namespace; the `append` default is copied, not extended).
  p = _Parser(prog="python -m experiments", description="Reproduce paper claims.", epilog=EXIT_STATUS_HELP,
              formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
  sub.add_parser("list", help="list the experiments")
  sh = sub.add_parser("show", help="print an experiment's paper, config fields (type, default, valid values, the "
                                   "presets' values), cross-field checks, mutations and TINY overrides")
  sh.add_argument("name", help="experiment name (see `list`)")
  r = sub.add_parser("run", help="run experiments and print their claims table", epilog=EXIT_STATUS_HELP,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
  r.add_argument("name", nargs="?", help="experiment name (see `list`)")
  r.add_argument("--all", action="store_true", help="run every experiment")
  r.add_argument("--demo", action="store_true", help="run the default set (the DEMO experiments)")
  r.add_argument("--preset", default=None, help="config preset (cpu, gpu, tpu); default cpu")
  r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config field (dotted for nested, e.g. mesh.data=8); repeatable")
  r.add_argument("--workdir", default=None, help="output directory (default results/NAME; with several runs, "
                                                 "the parent of one directory per experiment)")
  r.add_argument("--matmul-precision", default="float32", choices=MATMUL_PRECISIONS,
                 help="precision of float32 matrix products whose code leaves it unset (jax.default_matmul_precision): "
                      "float32 (default; what every claim's tolerance was set on, and all a CPU computes), "
                      "tensorfloat32 (faster on NVIDIA GPUs, ~1e-3 relative), bfloat16, or default (the backend's "
                      "own: TF32 on NVIDIA GPUs, one bfloat16 pass on TPUs)")
  r.add_argument("--quiet", action="store_true", help="no progress bar")
  r.add_argument("--tensorboard", action="store_true",
                 help="also write the metrics as TensorBoard event files in WORKDIR/tensorboard (needs tensorboardX: "
                      "pip install 'jaxlib-methods[tensorboard]'); metrics.jsonl is written either way")
  r.add_argument("--fresh", action="store_true", help="discard the workdir's previous run (checkpoints, metrics, "
                                                       "summary) and start over (implied by --demo)")
  r.add_argument("--distributed", action="store_true",
                 help="this is one process of a multi-process job: call jax.distributed.initialize() (auto-detected "
                      "on TPU pods, Slurm, Open MPI; or --set dist.coordinator=HOST:PORT --set dist.num_processes=N "
                      "--set dist.process_id=I)")
  la = sub.add_parser("launch", help="run a command in N local CPU processes (a multi-process job on one machine)")
  la.add_argument("--processes", type=int, default=2, help="number of processes (default 2)")
  la.add_argument("--devices-per-process", type=int, default=4, help="simulated CPU devices per process (default 4)")
  la.add_argument("--timeout", type=float, default=3600.0, help="stop every process after this many seconds")
  la.add_argument("--port", type=int, default=None, help="coordinator port (default: a free one)")
  la.add_argument("--log-dir", default=None, help="one log file per process (default: a temporary directory)")
  la.add_argument("launch_command", nargs=argparse.REMAINDER, metavar="-- run NAME ...",
                  help="the command each process runs")
  return p


def environment() -> dict:
  import jax
  import flax
  import optax
  import orbax.checkpoint as ocp
  import numpy as np
  dev = jax.devices()
  return {
      "python": platform.python_version(),
      "platform": platform.platform(),
      "versions": {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                   "orbax-checkpoint": getattr(ocp, "__version__", "?"), "numpy": np.__version__},
      "backend": jax.default_backend(),
      "devices": [str(d) for d in dev],
      "device_kind": dev[0].device_kind if dev else "?",
      "cpu_model": cpu_model(),
      "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }


def cpu_model() -> str:
  """The host CPU's model name ("model name" of /proc/cpuinfo on Linux, else `platform.processor()`), "?" if none.

  Recorded with every run: XLA:CPU's code differs between CPUs, and a verdict that float32 rounding can flip (a
  chaotic training run) may differ with it (docs/measurements/epyc-2026-12-02: 5 of 90 records)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.lower().startswith("model name"):
          return line.split(":", 1)[1].strip() or "?"
  except OSError:
    pass
  return platform.processor() or "?"


# ----------------------------------------------------------------------------------------------------------------------
# Checks before any work: devices, workdirs, resume safety.
# ----------------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Run:
  experiment: exp_lib.Experiment
  config: Any
  workdir: pathlib.Path
  config_hash: str


def _mesh_configs(config: Any, prefix: str = "") -> Iterator[tuple[str, exp_lib.MeshConfig]]:
  for f in dataclasses.fields(config):
    v = getattr(config, f.name)
    if isinstance(v, exp_lib.MeshConfig):
      yield prefix + f.name, v
    elif dataclasses.is_dataclass(v):
      yield from _mesh_configs(v, prefix + f.name + ".")


def _check_devices(config: Any) -> None:
  """A mesh the visible devices cannot hold is a usage error before any work (make_mesh raises UsageError)."""
  meshes = list(_mesh_configs(config))
  if meshes:
    from jaxlib_methods.runner.sharding import make_mesh
    for _, mesh in meshes:
      make_mesh(mesh)


def _flatten(d: Any, prefix: str = "") -> dict:
  if not isinstance(d, dict):
    return {prefix[:-1]: d}
  out = {}
  for k, v in d.items():
    out.update(_flatten(v, f"{prefix}{k}."))
  return out


def _config_diff(old: Any, new: Any, limit: int = 3) -> str:
  a, b = _flatten(old), _flatten(new)
  keys = [k for k in dict.fromkeys(list(b) + list(a)) if a.get(k, "<absent>") != b.get(k, "<absent>")]
  parts = [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}" for k in keys[:limit]]
  return ", ".join(parts) + (f", and {len(keys) - limit} more" if len(keys) > limit else "")


def _check_resume(run: _Run, matmul_precision: Optional[str] = None) -> None:
  """Refuse to continue a workdir that holds another config's run (config.json or the checkpoints' fingerprint), or
  whose checkpoints were written under another `--matmul-precision` (its summary.json says which).

  Raises:
    UsageError: the workdir's config differs (names the first differing fields), or its matmul precision; pass
      --fresh or another --workdir.
    WorkdirError: config.json is damaged (unreadable JSON).
  """
  from jaxlib_methods.runner.train import checkpoint_config_hashes
  config_path = run.workdir / "config.json"
  if not run.workdir.is_dir():
    return  # nothing to resume (prepare() reports a path that is a file)
  new = json.loads(json.dumps(io._jsonable(exp_lib.config_to_dict(run.config))))
  if config_path.exists():
    try:
      previous = json.loads(config_path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
      raise workdir_lib.WorkdirError(
          f"{config_path} is damaged ({type(e).__name__}: {e}): delete it to resume from the checkpoints (their "
          f"config fingerprint is checked), or pass --fresh to start over") from None
    if previous != new:
      raise exp_lib.UsageError(
          f"{run.workdir} holds a run of another config ({_config_diff(previous, new)}): pass --fresh to discard it "
          "(checkpoints, metrics, summary), or use another --workdir")
  try:
    hashes = checkpoint_config_hashes(run.workdir / "checkpoints")
  except Exception:  # unreadable checkpoints: the training loop falls back or says none restores
    hashes = {}
  foreign = sorted(s for s, h in hashes.items() if h is not None and h != run.config_hash)
  if foreign:
    missing = "" if config_path.exists() else " (config.json is missing)"
    raise exp_lib.UsageError(
        f"the checkpoints in {run.workdir / 'checkpoints'} (steps {', '.join(map(str, foreign))}) were written by "
        f"another config{missing}: pass --fresh to discard them, or use another --workdir")
  if matmul_precision is not None and _has_checkpoints(run.workdir):
    try:
      previous_precision = json.loads((run.workdir / "summary.json").read_text()).get("matmul_precision")
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
      previous_precision = None   # no summary (or one from before the option): nothing to compare
    if previous_precision is not None and previous_precision != matmul_precision:
      raise exp_lib.UsageError(
          f"the checkpoints in {run.workdir / 'checkpoints'} were written under --matmul-precision "
          f"{previous_precision}, not {matmul_precision}: pass --matmul-precision {previous_precision} to resume, "
          "--fresh to discard them, or use another --workdir")


# ----------------------------------------------------------------------------------------------------------------------
# Signals: a first Ctrl-C (or SIGTERM) stops after the current chunk; a second one aborts at once.
# ----------------------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _stop_signals(control: run_control.RunControl) -> Iterator[None]:
  if threading.current_thread() is not threading.main_thread():
    yield
    return

  def handler(signum, frame):
    control.stop_signal = signum
    control.stop.set()
    # A second signal takes the default action (the process ends at once; orbax's atomic saves keep the last
    # checkpoint whole).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    if control.in_loop:
      print(f"\n{name}: stopping after the current chunk and saving a checkpoint (press Ctrl-C again to abort "
            "now)", file=sys.stderr, flush=True)
    else:
      raise KeyboardInterrupt  # no training loop would see the request: stop here

  previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
  signal.signal(signal.SIGINT, handler)
  signal.signal(signal.SIGTERM, handler)
  try:
    yield
  finally:
    for s, h in previous.items():
      signal.signal(s, h)


def _resume_command(argv: Sequence[str], name: Optional[str] = None, workdir: Optional[pathlib.Path] = None) -> str:
  """The command that resumes an interrupted run: `argv` without --fresh. `--demo` implies --fresh (rerunning it
  starts over), so there the interrupted experiment `name` is resumed on its own, in its own `workdir`."""
  args = [a for a in argv if a != "--fresh"]
  if name is not None and "--demo" in args:
    kept, skip = [], False
    for a in args:
      if skip:
        skip = False
      elif a == "--workdir":
        skip = True
      elif a == "--demo" or a.startswith("--workdir="):
        continue
      else:
        kept.append(a)
    args = kept + [name, "--workdir", str(workdir)]
  return "python -m experiments " + " ".join(shlex.quote(a) for a in args)


# ----------------------------------------------------------------------------------------------------------------------
# Running.
# ----------------------------------------------------------------------------------------------------------------------

def _file_stamp(path: pathlib.Path) -> Optional[tuple]:
  try:
    st = path.stat()
  except OSError:
    return None
  return (st.st_ino, st.st_mtime_ns, st.st_size)


def _has_checkpoints(workdir: pathlib.Path) -> bool:
  ckpt = workdir / "checkpoints"
  return ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir())


def run_one(experiment: exp_lib.Experiment, config, workdir: pathlib.Path, *, preset: str, fresh: bool = False,
            control: Optional[run_control.RunControl] = None, matmul_precision: str = "float32") -> dict:
  """Run one experiment into `workdir`; returns the summary (also written to summary.json).

  The run is traced under `jax.default_matmul_precision(matmul_precision)` (recorded in the summary): the default
  "float32" gives float32 matrix products on every backend, as on the CPU the claims were calibrated on. JAX's own
  default is TF32 on NVIDIA GPUs (10 mantissa bits): on one H200 it failed [97]'s two implementation checks in the
  demo (orthonormality 4.6e-4 against 1e-6; docs/measurements/h200-2026-12-04).

  The caller has checked the workdir (`_check_resume`) and holds its lock; `fresh` clears it first. A crash is
  recorded in the summary (`error`, with `error_kind` "crash" or "io"); an interrupt in `interrupted`.
  In a multi-process run every process runs the experiment; only process 0 clears old outputs and writes files.
  """
  import jax
  if matmul_precision not in MATMUL_PRECISIONS:
    raise exp_lib.UsageError(f"matmul_precision must be one of {MATMUL_PRECISIONS}, got {matmul_precision!r}")
  workdir.mkdir(parents=True, exist_ok=True)
  config_dict = exp_lib.config_to_dict(config)
  config_hash = exp_lib.config_hash(config)
  if distributed.is_primary():
    if fresh:
      workdir_lib.clear(workdir)
    if not _has_checkpoints(workdir):
      # Nothing to resume: the run starts over, so metrics from an earlier run go (an experiment that appends to
      # metrics.jsonl without resetting it would otherwise duplicate rows).
      (workdir / "metrics.jsonl").unlink(missing_ok=True)
    io.atomic_write_json(workdir / "config.json", config_dict)
  distributed.barrier(f"run_one:{experiment.name}:start")  # the others start once process 0 has cleared
  figure_path = workdir / "figure.png"
  figure_before = _file_stamp(figure_path)

  control = control or run_control.RunControl()
  control.config_hash = config_hash
  t0 = time.perf_counter()
  error = error_kind = None
  interrupted = None
  results: dict = {}
  claims: list[Claim] = []
  try:
    with run_control.active(control), jax.default_matmul_precision(matmul_precision):
      results = experiment.run(config, workdir) or {}
    claims = list(experiment.claims(results))
  except exp_lib.UsageError:
    raise
  except run_control.Interrupted as e:
    interrupted = {"step": e.step, "num_steps": e.num_steps, "checkpoint_dir": e.checkpoint_dir}
    error, error_kind = str(e), "interrupted"
  except KeyboardInterrupt:
    interrupted = {"step": None, "num_steps": None, "checkpoint_dir": None}
    error, error_kind = ("interrupted outside a training loop (a rerun resumes from the last checkpoint if the "
                         "experiment keeps checkpoints, and starts over otherwise)", "interrupted")
  except Exception as e:  # a crashed run is reported, not hidden; --all goes on with the others
    why = workdir_lib.io_failure(e)
    if why is not None:
      error, error_kind = why, "io"
    else:
      error, error_kind = f"{type(e).__name__}: {e}", "crash"
      traceback.print_exc()
  wall = time.perf_counter() - t0
  figure_now = _file_stamp(figure_path)
  fresh_figure = figure_now is not None and figure_now != figure_before  # never list an earlier run's figure
  paper = experiment.paper
  summary = {
      "experiment": experiment.name,
      "paper": dataclasses.asdict(paper),
      "preset": preset,
      "config": config_dict,
      "config_sha256": config_hash,
      "claims": [c.to_dict() for c in claims],
      "all_passed": error is None and bool(claims) and all(c.passed for c in claims),
      "error": error,
      "error_kind": error_kind,
      "interrupted": interrupted,
      "results": results,
      "wall_time_s": round(wall, 3),
      "matmul_precision": matmul_precision,
      "figure": str(figure_path) if fresh_figure else None,
      "environment": environment(),
  }
  try:
    io.atomic_write_json(workdir / "summary.json", summary)
  except OSError as e:  # a full disk: the run's outcome is still reported on stdout (and the status is 4)
    if summary["error_kind"] != "io":
      summary["error"], summary["error_kind"], summary["all_passed"] = (
          f"cannot write summary.json: {workdir_lib.io_failure(e) or e}", "io", False)
  return summary


def format_table(summaries: Sequence[dict]) -> str:
  """One table of all claims: paper | claim | paper's value | ours | tolerance | pass."""
  headers = ["paper", "claim", "paper's value", "ours", "tolerance", "pass"]
  widths = [26, 52, 16, 12, 30, 4]
  lines = []

  def row(cells):
    wrapped = [textwrap.wrap(str(c), w) or [""] for c, w in zip(cells, widths)]
    height = max(len(w) for w in wrapped)
    for i in range(height):
      lines.append(" | ".join((w[i] if i < len(w) else "").ljust(width) for w, width in zip(wrapped, widths)))

  row(headers)
  lines.append("-+-".join("-" * w for w in widths))
  for s in summaries:
    p = s["paper"]
    label = f"[{p['catalog_id']}] {p['title']} ({p['year']})"
    if s["error"]:
      kind = {"interrupted": "INTERRUPTED", "io": "I/O FAILURE"}.get(s.get("error_kind"), "RUN FAILED")
      row([label, f"{kind}: {s['error']}", "", "", "", "FAIL"])
    for c in s["claims"]:
      ours = c["ours"]
      ours = f"{ours:.4g}" if isinstance(ours, float) else str(ours)
      row([label, c["claim"], c["paper"], ours, c["tolerance"], "yes" if c["passed"] else "NO"])
      label = ""
    lines.append("-+-".join("-" * w for w in widths))
  return "\n".join(lines)


def _cmd_list(experiments: dict) -> int:
  for name, e in experiments.items():
    p = e.paper
    flag = " (demo)" if e.demo else ""
    print(f"{name}{flag}\n    [{p.catalog_id}] {p.title} ({p.year}, arXiv:{p.arxiv}); presets: "
          f"{', '.join(sorted(e.presets))}")
  return 0


def _field_rows(cls: type, configs: dict, prefix: str = "") -> list[list[str]]:
  """One row per leaf field: name, type, valid values, then its value in each preset."""
  from jaxlib_methods.runner import constraints as cons
  rows = []
  for spec in cons.field_specs(cls):
    name = prefix + spec.name
    if spec.is_nested:
      rows += _field_rows(spec.base, {p: getattr(c, spec.name) for p, c in configs.items()}, name + ".")
      continue
    if spec.base is typing.Literal:
      tp, valid = "choice", " | ".join(map(str, spec.choices))
    elif spec.base is tuple:
      elem = getattr(spec.element, "__name__", "choice" if spec.choices else str(spec.element))
      tp = f"tuple[{elem}]"
      parts = [spec.length.describe()] if spec.length else []
      parts += [("each " + spec.range.describe())] if spec.range else []
      parts += [("each one of " + " | ".join(map(str, spec.choices)))] if spec.choices else []
      valid = ", ".join(parts)
    else:
      tp = getattr(spec.base, "__name__", str(spec.base))
      valid = "true | false" if spec.base is bool else (spec.range.describe() if spec.range else
                                                          (spec.length.describe() if spec.length else ""))
    if spec.optional:
      tp, valid = tp + " | None", (valid + " or none").strip()
    values = []
    for c in configs.values():
      v = getattr(c, spec.name)
      values.append(",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v))
    rows.append([name, tp, valid] + values)
  return rows


def describe_experiment(e: exp_lib.Experiment) -> str:
  """The text of `python -m experiments show NAME`: paper, docstring summary, fields, checks, mutations, TINY."""
  p = e.paper
  doc = (e.module.__doc__ or "").strip().split("\n\n")[0]
  presets = {name: e.presets[name] for name in sorted(e.presets, key=lambda n: (n != "cpu", n))}
  cls = type(presets["cpu"])
  headers = ["field", "type", "valid values"] + [f"{n} preset" for n in presets]
  rows = _field_rows(cls, presets)
  widths = [max(len(r[i]) for r in rows + [headers]) for i in range(len(headers))]
  widths = [min(w, 44) for w in widths]
  fmt = lambda r: "  ".join(textwrap.shorten(c, w, placeholder="...").ljust(w) if len(c) > w else c.ljust(w)
                            for c, w in zip(r, widths)).rstrip()
  lines = [f"{e.name}: [{p.catalog_id}] {p.title} ({p.year}{', arXiv:' + p.arxiv if p.arxiv else ''})"
           + (" (demo)" if e.demo else ""), "", doc, "",
           f"Config ({cls.__module__}.{cls.__qualname__}); set a field with --set KEY=VALUE, a preset with --preset:",
           "", fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
  checks = getattr(cls, "CHECKS", ())
  if checks:
    lines += ["", "Cross-field checks:"] + [f"  {c.expr}" + (f"   ({c.why})" if c.why else "") for c in checks]
  if e.mutations:
    lines += ["", "Mutations (deliberately wrong variants under which a paper claim must fail):"]
    lines += [f"  {name}: --set {' --set '.join(sets)}" for name, sets in sorted(e.mutations.items())]
  tiny = getattr(e.module, "TINY", None)
  if tiny:
    lines += ["", f"TINY (the tests' quick run): --set {' --set '.join(tiny)}"]
  lines += ["", f"Run: python -m experiments run {e.name} [--preset P] [--set KEY=VALUE ...]"]
  return "\n".join(lines)


def _status(summaries: Sequence[dict], control: run_control.RunControl) -> int:
  kinds = {s.get("error_kind") for s in summaries}
  if "interrupted" in kinds:
    return EXIT_INTERRUPTED_BASE + (control.stop_signal or signal.SIGINT)
  if "io" in kinds:
    return EXIT_IO
  if "crash" in kinds:
    return EXIT_CRASHED
  return EXIT_OK if all(s["all_passed"] for s in summaries) else EXIT_CLAIM_FAILED


def _split_dist(overrides: Sequence[str]) -> tuple[list, list]:
  """`--set dist.*` items configure the job, not the experiment: split them off."""
  dist = [o for o in overrides if o.strip().startswith("dist.")]
  return dist, [o for o in overrides if not o.strip().startswith("dist.")]


def _cmd_run(args, argv: Sequence[str]) -> int:
  if sum([bool(args.name), args.all, args.demo]) != 1:
    raise exp_lib.UsageError("run takes exactly one of: an experiment NAME, --all, --demo")
  dist_items, args.overrides = _split_dist(args.overrides)
  if dist_items and not args.distributed:
    raise exp_lib.UsageError(f"{dist_items[0]!r} configures a multi-process job: add --distributed")
  if args.distributed:  # before anything touches a device: the mesh checks below then see the job's devices
    dist_config = exp_lib.apply_overrides(distributed.DistConfig(), [o.strip()[len("dist."):] for o in dist_items])
    distributed.initialize(dist_config)
  primary = distributed.is_primary()
  if args.name:
    selected = [exp_lib.get(args.name)]
  else:
    everything = exp_lib.discover()
    selected = [e for e in everything.values() if args.all or e.demo]
  # 1. Every config resolved and validated against its declared constraints, and every mesh against the devices,
  #    before anything is written: a typo or an out-of-range value fails at once, with exit 2.
  configs = [(e, e.config(args.preset, args.overrides)) for e in selected]
  for _, config in configs:
    _check_devices(config)
  if args.tensorboard:
    io.require_tensorboard()
  root = pathlib.Path(args.workdir) if args.workdir else DEFAULT_RESULTS
  runs = [_Run(e, config, root if (args.name and args.workdir) else root / e.name, exp_lib.config_hash(config))
          for e, config in configs]
  fresh = args.fresh or args.demo
  several = len(runs) > 1 or args.demo
  workdir_lib.ignore_file_size_signal()
  with contextlib.ExitStack() as held:
    # 2. Every workdir usable and ours alone; 3. none holds another config's run (unless --fresh discards it).
    # The resume check reads only; it runs before anything is created (a refused command leaves the workdir as it
    # was, not even a lock file) and again under the lock (another run may have written meanwhile).
    # In a multi-process job process 0 checks, prepares and locks the workdirs for the whole job.
    if not fresh and primary:
      for run in runs:
        _check_resume(run, args.matmul_precision)
    if several and primary:
      workdir_lib.prepare(root)
    for run in runs:
      if primary:
        workdir_lib.prepare(run.workdir)
        held.enter_context(workdir_lib.lock(run.workdir))
    if not fresh and primary:
      for run in runs:
        _check_resume(run, args.matmul_precision)
    # 4. The runs.
    if args.quiet and QUIET_ENV not in os.environ:
      os.environ[QUIET_ENV] = "1"
      held.callback(os.environ.pop, QUIET_ENV, None)
    control = run_control.RunControl(tensorboard=args.tensorboard)
    held.enter_context(_stop_signals(control))
    t0 = time.perf_counter()
    summaries = []
    for run in runs:
      print(f"== {run.experiment.name}: [{run.experiment.paper.catalog_id}] {run.experiment.paper.title} -> "
            f"{run.workdir}", file=sys.stderr, flush=True)
      summary = run_one(run.experiment, run.config, run.workdir, preset=args.preset or "cpu", fresh=fresh,
                        control=control, matmul_precision=args.matmul_precision)
      summaries.append(summary)
      if summary["error_kind"] == "io":
        print(f"error: I/O failure in {run.experiment.name}: {summary['error']} (workdir {run.workdir}; checkpoints "
              "already written are kept: fix the cause and rerun the same command to resume)", file=sys.stderr)
      if summary["interrupted"] is not None:
        step = summary["interrupted"]["step"]
        where = f"at step {step}, with a checkpoint" if step is not None else "(no checkpoint)"
        print(f"interrupted {where}. Resume with:\n  {_resume_command(argv, run.experiment.name, run.workdir)}",
              file=sys.stderr)
        break
  total = time.perf_counter() - t0
  table = format_table(summaries)
  print(table)
  figures = [s["figure"] for s in summaries if s["figure"]]
  n_claims = sum(len(s["claims"]) for s in summaries)
  n_pass = sum(c["passed"] for s in summaries for c in s["claims"])
  n_err = sum(bool(s["error"]) for s in summaries)
  print(f"\n{n_pass}/{n_claims} claims passed in {len(summaries)} experiment(s)"
        f"{f', {n_err} run(s) did not complete' if n_err else ''}; {total:.1f} s wall.")
  if figures:
    print("figures:\n  " + "\n  ".join(figures))
  if several and primary:
    try:
      io.atomic_write_text(root / "claims.txt", table + "\n")
      print(f"table saved to {root / 'claims.txt'}")
    except OSError as e:
      print(f"error: could not save {root / 'claims.txt'}: {workdir_lib.io_failure(e) or e}", file=sys.stderr)
      status = _status(summaries, control)
      return status if status >= EXIT_INTERRUPTED_BASE else max(status, EXIT_IO)
  return _status(summaries, control)


def _cmd_launch(args) -> int:
  result = distributed.launch(args.launch_command, processes=args.processes,
                              devices_per_process=args.devices_per_process, port=args.port, timeout_s=args.timeout,
                              log_dir=args.log_dir)
  return result.returncode


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  distributed.cpu_thread_pool_headroom()  # before JAX creates its CPU client: simulated devices must not deadlock
  try:
    args = _parser().parse_args(argv)
    if args.command == "list":
      return _cmd_list(exp_lib.discover())
    if args.command == "launch":
      return _cmd_launch(args)
    if args.command == "show":
      print(describe_experiment(exp_lib.get(args.name)))
      return EXIT_OK
    return _cmd_run(args, argv)
  except exp_lib.UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    return EXIT_USAGE
  except workdir_lib.WorkdirError as e:
    print(f"error: {e}", file=sys.stderr)
    return EXIT_IO
  except KeyboardInterrupt:  # a Ctrl-C between runs or while a summary is written: nothing left to save
    print("\ninterrupted", file=sys.stderr)
    return EXIT_INTERRUPTED_BASE + signal.SIGINT
  except OSError as e:  # any other file-system failure outside a run (e.g. while clearing with --fresh)
    why = workdir_lib.io_failure(e)
    if why is None:
      raise
    print(f"error: I/O failure: {why}", file=sys.stderr)
    return EXIT_IO
