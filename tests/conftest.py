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

_FLAG = "--xla_backend_optimization_level"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {_FLAG}=1").strip()
  os.environ["JAXLIB_METHODS_TEST_SET_OPT_LEVEL"] = "1"  # set here, not by the user (tests/test_notebooks.py reads it)
