"""Shared memory, registers and spills of every Pallas GPU kernel config, compiled offline for sm_80 and sm_90a.

    python benchmarks/kernel_resources.py                  # every default config of every kernel module
    python benchmarks/kernel_resources.py --all            # also the non-default ones (e.g. fp32 precisions)
    python benchmarks/kernel_resources.py --filter fa2-vjp-B1-T256-N4-K4-H128 --arch 90

No GPU is needed. For each `LoweringCase` offered by a kernel module's `lowering_cases("cuda")` (FlashAttention-2 in
`jaxlib_methods.kernels.flash_attention`, GLA in `jaxlib_methods.kernels.gla` once it offers them; any module of
`jaxlib_methods.kernels` with that function is picked up), the script lowers the case with `jax.export` for cuda,
captures the Triton IR of each `pallas_call` (`jaxlib_methods.kernels.lowering.capture_triton_kernels`), compiles it
with pip `triton` for each architecture at the kernel's own num_warps / num_stages, and prints a table of shared
memory (against the per-block limit: 232,448 B on H100/H200, 166,912 B on A100), registers per thread and spill
bytes. Kernels shared by several cases (the forward of `fwd` and `vjp`) are compiled once.

Exit status 1 when a default config exceeds shared memory on an architecture it is meant for (`LoweringCase.archs`:
both, or sm_90 only for the Hopper tiles of `_HOPPER_DEFAULTS`); the slow test relies on it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import pkgutil
import platform as host_platform
import sys
import time

import jax

import jaxlib_methods.kernels as kernels_pkg
from jaxlib_methods.kernels import lowering


def kernel_modules():
  """Modules of jaxlib_methods.kernels that offer `lowering_cases` (found by getattr: new kernels join by adding it)."""
  mods = []
  for info in pkgutil.iter_modules(kernels_pkg.__path__):
    if info.name in ("lowering", "dispatch"):
      continue
    mod = importlib.import_module(f"jaxlib_methods.kernels.{info.name}")
    if callable(getattr(mod, "lowering_cases", None)):
      mods.append(mod)
  return mods


def collect_cases(include_non_default: bool = False, name_filter: str = ""):
  cases = []
  seen = set()
  for mod in kernel_modules():
    for case in mod.lowering_cases("cuda"):
      if case.name in seen:
        continue
      seen.add(case.name)
      if (case.default or include_non_default) and name_filter in case.name:
        cases.append(case)
  return cases


def resource_rows(cases, archs=(80, 90), log=print):
  """[(case, kernel, {arch: KernelResources})] for every Triton kernel of every case (compiled once per TTIR)."""
  cache = {}
  rows = []
  for case in cases:
    for kernel in lowering.capture_triton_kernels(case):
      key = (hashlib.sha256(kernel.ttir.encode()).hexdigest(), kernel.num_warps, kernel.num_stages)
      if key not in cache:
        t0 = time.perf_counter()
        cache[key] = {arch: lowering.compile_triton(kernel, arch) for arch in archs}
        log(f"  compiled {case.name} / {kernel.name} ({time.perf_counter() - t0:.1f} s)")
      rows.append((case, kernel, cache[key]))
  return rows


def _fmt(rows, archs):
  head = ["case", "kernel", "warps", "stages"]
  for arch in archs:
    a = lowering.ARCH_NAMES[arch]
    head += [f"{a} smem B", f"{a} regs", f"{a} spill B", f"{a} mma"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for case, kernel, res in rows:
    cells = [case.name, kernel.name, str(kernel.num_warps), str(kernel.num_stages)]
    for arch in archs:
      r = res[arch]
      smem = f"{r.shared_bytes:,}" + ("" if r.fits else " **OVER**" if arch in case.archs else " (over; not targeted)")
      spill = r.spill_store_bytes + r.spill_load_bytes
      cells += [smem, str(r.registers), str(spill), r.mma]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _fmt_summary(rows, archs):
  """One line per case: the largest shared memory and register count over its kernels, and their total spill bytes."""
  head = ["case", "kernels (warps/stages)"]
  for arch in archs:
    a = lowering.ARCH_NAMES[arch]
    head += [f"{a} max smem B (of {lowering.SHARED_MEMORY_LIMIT[arch]:,})", f"{a} max regs", f"{a} spill B"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  by_case, by_arch = {}, {}
  for case, kernel, res in rows:
    by_case.setdefault(case.name, []).append((kernel, res))
    by_arch[case.name] = case.archs
  for name, items in by_case.items():
    kern = ", ".join(f"{k.name.replace('flash_attention_', '')} {k.num_warps}/{k.num_stages}" for k, _ in items)
    cells = [name, kern]
    for arch in archs:
      smem = max(r[arch].shared_bytes for _, r in items)
      over = any(not r[arch].fits for _, r in items)
      mark = (" **OVER**" if arch in by_arch[name] else " (over; not targeted)") if over else ""
      cells += [f"{smem:,}" + mark, str(max(r[arch].registers for _, r in items)),
                str(sum(r[arch].spill_store_bytes + r[arch].spill_load_bytes for _, r in items))]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def summarize(rows, archs):
  """(number over shared memory, list of messages) for the rows."""
  over, msgs = 0, []
  for arch in archs:
    targeted = [r for r in rows if arch in r[0].archs]     # tiles meant for another architecture only are not held
    worst = max((r[2][arch].shared_bytes for r in targeted), default=0)      # to this one's limits
    n_over = sum(not r[2][arch].fits for r in targeted)
    n_spill = sum(r[2][arch].spills for r in targeted)
    over += n_over
    msgs.append(f"{lowering.ARCH_NAMES[arch]}: max shared memory {worst:,} B of {lowering.SHARED_MEMORY_LIMIT[arch]:,} "
                f"B limit; {n_over} kernel(s) over; {n_spill} kernel(s) spill registers"
                + (f" (of {len(targeted)} kernels meant for it; {len(rows) - len(targeted)} others not counted)"
                   if len(targeted) < len(rows) else ""))
  return over, msgs


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--all", action="store_true", help="include non-default configs")
  parser.add_argument("--filter", default="", help="only cases whose name contains this")
  parser.add_argument("--arch", type=int, action="append", choices=sorted(lowering.SHARED_MEMORY_LIMIT),
                      help="80 (sm_80) and/or 90 (sm_90a); default both")
  parser.add_argument("--summary", action="store_true",
                      help="one line per case (vjp cases hold the forward kernel too) instead of one per kernel")
  args = parser.parse_args(argv)
  archs = tuple(args.arch or (80, 90))
  import triton   # pylint: disable=import-outside-toplevel
  t0 = time.perf_counter()
  print(f"# kernel resources: jax {jax.__version__}, pip triton {triton.__version__}, offline compile on a "
        f"{host_platform.machine()} CPU host (no GPU needed); command: python "
        f"benchmarks/kernel_resources.py {' '.join(argv if argv is not None else sys.argv[1:])}", flush=True)
  cases = collect_cases(args.all, args.filter)
  rows = resource_rows(cases, archs, log=lambda m: print(m, file=sys.stderr, flush=True))
  if args.summary:
    print(_fmt_summary([r for r in rows if "-fwd-" not in r[0].name], archs))
  else:
    print(_fmt(rows, archs))
  over, msgs = summarize([r for r in rows if r[0].default], archs)
  print()
  for m in msgs:
    print(m)
  print(f"{len(cases)} cases, {len(rows)} kernels, {time.perf_counter() - t0:.0f} s")
  return 1 if over else 0


if __name__ == "__main__":
  sys.exit(main())
