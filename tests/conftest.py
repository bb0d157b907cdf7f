"""Test-session settings, applied before any test module imports jax.

XLA:CPU compiles at backend optimization level 1 in the tests (children started by the tests inherit it). Most unit
test time is compiling many small programs once each; level 1 compiles them faster without slowing what runs long.
Measured on the 2-core machine, quiet, single process (user CPU seconds):
  signal + heads + distillation + Hutchinson tests (compile-bound):  level 3 (default) 30.3, level 1 22.1
  isogclr + cs_ib mutation tests (run-bound, hundreds of steps):     level 3 22.0,          level 1 22.4
  (level 0 compiles faster still but ran the mutation tests 3.4x slower: 75.7.)
LLVM does not reassociate floating-point operations at any level (XLA does not enable fast-math on CPU), so the
numbers are the same; experiments and benchmarks outside the tests compile at the default level. A level the user set
in XLA_FLAGS is kept.
"""

import os
from importlib import metadata

import pytest

_FLAG = "--xla_backend_optimization_level"
_USER_SET_LEVEL = _FLAG in os.environ.get("XLA_FLAGS", "")
if not _USER_SET_LEVEL:
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {_FLAG}=1").strip()


@pytest.fixture
def fast_xla(monkeypatch):
  """Child processes (and notebook kernels) started in this test compile at XLA backend optimization level 0: for
  compile-bound children it is about 2.5x less compile time on CPU, and every configuration compared in a test is
  compiled the same way. Appended to XLA_FLAGS (XLA takes a flag's last value); a level the user set is kept."""
  if not _USER_SET_LEVEL:
    monkeypatch.setenv("XLA_FLAGS", os.environ["XLA_FLAGS"] + f" {_FLAG}=0")


def _jaxlib_minor() -> tuple[int, int] | None:
  try:
    return tuple(int(p) for p in metadata.version("jaxlib").split(".")[:2])
  except (metadata.PackageNotFoundError, ValueError):
    return None


# XLA:CPU's legacy elemental emitters instead of its MLIR fusion emitters: about 30% less compile time per program
# (one process, small jit: 0.13 -> 0.09 s; a new-shape jax.random.normal: 0.30 -> 0.19 s), and the suite is mostly
# compiling. tests/losses + tests/analysis (-n 2): 170 -> 131 s wall; tests/experiments + tests/kernels: 195 -> 162 s,
# every test passing either way and no run-bound test measurably slower. Only for the jaxlib versions whose
# libjax_common.so has the flag (checked 0.10.2 and 0.12.0; XLA aborts on an unknown flag). A value the user set is
# kept.
_EMITTERS = "--xla_cpu_use_fusion_emitters"
if _EMITTERS not in os.environ.get("XLA_FLAGS", "") and (0, 10) <= (_jaxlib_minor() or (0, 0)) < (0, 13):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {_EMITTERS}=false").strip()


# `make test-ci-extra`, which .ci/run runs after the default suite, selects `-m ci_extra`: the first mutation of each
# MUTATION_TEST_SLOW experiment (marked in tests/experiments/test_mutations.py) and, marked here, every slow case of
# the optimizer contract suite, so that every transform passes every contract in CI (215 cases, 240 s on 2 cores).
_CI_EXTRA_FILES = ("tests/optim/test_conformance.py",)


@pytest.hookimpl(tryfirst=True)   # before pytest's own -m selection
def pytest_collection_modifyitems(config, items):
  for item in items:
    if item.get_closest_marker("slow") and item.nodeid.split("::")[0] in _CI_EXTRA_FILES:
      item.add_marker(pytest.mark.ci_extra)
