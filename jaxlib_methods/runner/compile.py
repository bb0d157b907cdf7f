"""`jit_fast_compile`: `jax.jit` that asks XLA:CPU for its lower backend optimisation level, for the small experiments
whose run time is mostly XLA:CPU compiling their vmapped training programs.

Measured on the 2-core CPU machine (2026-12-02, jax 0.10.2, empty compilation cache, run time of the cpu preset):
layers_wave1_moe 246 s at XLA's default level, 152 s at level 1, bitwise the same results (every number in its
summary.json); layers_wave2_local 174 s and 129 s, bitwise the same except one part (HyperTab's one-view arm moved
by up to 0.026 in accuracy on 3 of 4 seeds), which therefore stays on `jax.jit`; gla_vs_softmax 193 s and 141 s,
accuracies and claim values bitwise the same, reported losses within 3.4e-7 (relative). So the level CAN change
numbers: compare an experiment's results before switching it. How much it gains depends on the machine: on a later
2-core AMD EPYC machine (2026-12-02, where the cpu presets ran 2-3x faster than above, alone) losses_wave2_p6 went
from 26 / 17 s to 17 / 13 s (two cold runs each, results bitwise the same) and was switched, while layers_wave1_p2b
(74 -> 84 s; results moved, up to 6% relative in one reported number), bottlenecks_wave2 (58 -> 62 s; two claim
values moved by 30%, the verdicts did not), layers_wave2_gates (80 -> 80 s, bitwise) and mixup_feature_learning
(27 / 16 -> 21 / 16 s, bitwise) gained nothing there and stay on `jax.jit`. Only the CPU backend is affected: on GPU
and TPU this is plain `jax.jit` (their backends' code generation is where an accelerator's speed comes from).
"""

from __future__ import annotations

from typing import Any, Callable

import jax

# XLA's DebugOptions.xla_backend_optimization_level (default 3 on CPU): the LLVM optimisation level of generated code.
FAST_COMPILE_OPTIONS = {"xla_backend_optimization_level": 1}


def jit_fast_compile(fun: Callable, **jit_kwargs: Any) -> Callable:
  """`jax.jit(fun, **jit_kwargs)`, compiled at XLA's backend optimisation level 1 when the default backend is CPU.

  For programs whose XLA:CPU compile time dwarfs their run time (toy experiments that vmap seeds over a scanned
  training loop). Compare the results with `jax.jit`'s before switching an experiment whose records exist: the
  level usually leaves every number bitwise the same, but not always (see the module docstring).

  Args:
    fun: the function to jit.
    **jit_kwargs: passed to `jax.jit` (not `compiler_options`, which this sets).

  Returns:
    The jitted function.
  """
  if "compiler_options" in jit_kwargs:
    raise TypeError("jit_fast_compile sets compiler_options itself; use jax.jit for other compiler options")
  if jax.default_backend() != "cpu":
    return jax.jit(fun, **jit_kwargs)
  return jax.jit(fun, compiler_options=dict(FAST_COMPILE_OPTIONS), **jit_kwargs)
