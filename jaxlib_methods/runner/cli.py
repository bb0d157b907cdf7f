"""`python -m experiments list | run NAME [--preset P] [--set key=value ...] [--workdir D] | run --all | run --demo`
`python -m experiments run NAME --distributed [--set dist.coordinator=HOST:PORT --set dist.num_processes=N
--set dist.process_id=I]` (one process of a multi-process job) | `launch --processes N -- run NAME ...` (N local
CPU processes of that command; see `jaxlib_methods.runner.distributed`).

Exit status: 0 when every claim passed; 1 when a claim failed (the table is still printed); 2 for a usage error
(unknown experiment, preset or config key, a bad value), reported in one line, no traceback; 3 when a run crashed
(its traceback is printed, the other runs still go on, and the table marks it RUN FAILED).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import sys
import textwrap
import time
import traceback
from typing import Optional, Sequence

from jaxlib_methods.runner import distributed
from jaxlib_methods.runner import experiment as exp_lib
from jaxlib_methods.runner import io
from jaxlib_methods.runner.progress import QUIET_ENV
from jaxlib_methods.runner.train import clear as clear_run
from jaxlib_methods.runner.claims import Claim

DEFAULT_RESULTS = pathlib.Path("results")


class _Parser(argparse.ArgumentParser):
  def error(self, message: str):  # one line, exit 2 (argparse's own behaviour, without the usage dump)
    raise exp_lib.UsageError(message)


def _parser() -> argparse.ArgumentParser:
  p = _Parser(prog="python -m experiments", description="Reproduce paper claims.")
  sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
  sub.add_parser("list", help="list the experiments")
  r = sub.add_parser("run", help="run experiments and print their claims table")
  r.add_argument("name", nargs="?", help="experiment name (see `list`)")
  r.add_argument("--all", action="store_true", help="run every experiment")
  r.add_argument("--demo", action="store_true", help="run the default set (the DEMO experiments)")
  r.add_argument("--preset", default=None, help="config preset (cpu, gpu, tpu); default cpu")
  r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config field (dotted for nested, e.g. mesh.data=8); repeatable")
  r.add_argument("--workdir", default=None, help="output directory (default results/NAME; with several runs, "
                                                 "the parent of one directory per experiment)")
  r.add_argument("--quiet", action="store_true", help="no progress bar")
  r.add_argument("--fresh", action="store_true", help="ignore existing checkpoints and start over "
                                                       "(implied by --demo, which always reruns)")
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
  }


def run_one(experiment: exp_lib.Experiment, config, workdir: pathlib.Path, *, preset: str, fresh: bool = False
            ) -> dict:
  """Run one experiment into `workdir`; returns the summary (also written to summary.json).

  In a multi-process run every process runs the experiment; only process 0 clears old outputs and writes files.
  """
  workdir.mkdir(parents=True, exist_ok=True)
  config_dict = exp_lib.config_to_dict(config)
  config_path = workdir / "config.json"
  if distributed.is_primary():
    previous = json.loads(config_path.read_text()) if config_path.exists() else None
    if fresh or (previous is not None and previous != json.loads(json.dumps(config_dict))):
      if previous is not None and not fresh:
        print(f"[{experiment.name}] config differs from the one in {workdir}: starting fresh", file=sys.stderr)
      clear_run(workdir)
    io.atomic_write_json(config_path, config_dict)
  distributed.barrier(f"run_one:{experiment.name}:start")

  t0 = time.perf_counter()
  error = None
  results: dict = {}
  claims: list[Claim] = []
  try:
    results = experiment.run(config, workdir) or {}
    claims = list(experiment.claims(results))
  except exp_lib.UsageError:
    raise
  except Exception as e:  # a crashed run is reported, not hidden; --all goes on with the others
    error = f"{type(e).__name__}: {e}"
    traceback.print_exc()
  wall = time.perf_counter() - t0
  paper = experiment.paper
  summary = {
      "experiment": experiment.name,
      "paper": dataclasses.asdict(paper),
      "preset": preset,
      "config": config_dict,
      "claims": [c.to_dict() for c in claims],
      "all_passed": error is None and bool(claims) and all(c.passed for c in claims),
      "error": error,
      "results": results,
      "wall_time_s": round(wall, 3),
      "figure": str(workdir / "figure.png") if (workdir / "figure.png").exists() else None,
      "environment": environment(),
  }
  io.atomic_write_json(workdir / "summary.json", summary)
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
      row([label, f"RUN FAILED: {s['error']}", "", "", "", "FAIL"])
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


def _split_dist(overrides: Sequence[str]) -> tuple[list, list]:
  """`--set dist.*` items configure the job, not the experiment: split them off."""
  dist = [o for o in overrides if o.strip().startswith("dist.")]
  return dist, [o for o in overrides if not o.strip().startswith("dist.")]


def _cmd_run(args) -> int:
  if sum([bool(args.name), args.all, args.demo]) != 1:
    raise exp_lib.UsageError("run takes exactly one of: an experiment NAME, --all, --demo")
  dist_items, args.overrides = _split_dist(args.overrides)
  if dist_items and not args.distributed:
    raise exp_lib.UsageError(f"{dist_items[0]!r} configures a multi-process job: add --distributed")
  if args.distributed:
    dist_config = exp_lib.apply_overrides(distributed.DistConfig(), [o.strip()[len("dist."):] for o in dist_items])
    distributed.initialize(dist_config)
  if args.quiet:
    os.environ[QUIET_ENV] = "1"
  if args.name:
    selected = [exp_lib.get(args.name)]
  else:
    everything = exp_lib.discover()
    selected = [e for e in everything.values() if args.all or e.demo]
  # Resolve every config before running anything, so a typo fails at once.
  configs = [(e, e.config(args.preset, args.overrides)) for e in selected]
  root = pathlib.Path(args.workdir) if args.workdir else DEFAULT_RESULTS
  t0 = time.perf_counter()
  summaries = []
  for e, config in configs:
    workdir = root if (args.name and args.workdir) else root / e.name
    print(f"== {e.name}: [{e.paper.catalog_id}] {e.paper.title} -> {workdir}", file=sys.stderr, flush=True)
    summaries.append(run_one(e, config, workdir, preset=args.preset or "cpu", fresh=args.fresh or args.demo))
  total = time.perf_counter() - t0
  table = format_table(summaries)
  print(table)
  figures = [s["figure"] for s in summaries if s["figure"]]
  n_claims = sum(len(s["claims"]) for s in summaries)
  n_pass = sum(c["passed"] for s in summaries for c in s["claims"])
  n_err = sum(bool(s["error"]) for s in summaries)
  print(f"\n{n_pass}/{n_claims} claims passed in {len(summaries)} experiment(s)"
        f"{f', {n_err} run(s) failed' if n_err else ''}; {total:.1f} s wall.")
  if figures:
    print("figures:\n  " + "\n  ".join(figures))
  if len(summaries) > 1 or args.demo:
    io.atomic_write_text(root / "claims.txt", table + "\n")
    print(f"table saved to {root / 'claims.txt'}")
  if n_err:
    return 3
  return 0 if all(s["all_passed"] for s in summaries) else 1


def _cmd_launch(args) -> int:
  result = distributed.launch(args.launch_command, processes=args.processes, devices_per_process=args.devices_per_process,
                              port=args.port, timeout_s=args.timeout, log_dir=args.log_dir)
  return result.returncode


def main(argv: Optional[Sequence[str]] = None) -> int:
  # A slow CPU run must be slow, not dead: raise XLA's stuck-collective abort (40 s by default) before JAX starts.
  distributed.collective_timeouts()
  try:
    args = _parser().parse_args(argv)
    experiments_needed = args.command == "list"
    if experiments_needed:
      return _cmd_list(exp_lib.discover())
    if args.command == "launch":
      return _cmd_launch(args)
    return _cmd_run(args)
  except exp_lib.UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
