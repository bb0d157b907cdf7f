"""Lowering the Pallas kernels for accelerators from any machine: `jax.export` for `cuda` and `tpu`.

A kernel is only done when it compiles for the hardware it targets, and that can be checked without the hardware:
`jax.export.export(jax.jit(f), platforms=["cuda"])` runs the whole lowering (Pallas -> Triton IR for GPU, Pallas ->
Mosaic for TPU) on a CPU-only machine. The tests lower every kernel config this way, and
`benchmarks/kernel_resources.py` additionally compiles the captured Triton IR offline for sm_80 / sm_90a to read off
shared memory, registers and spills.

Each kernel module offers `lowering_cases(platform)`: a list of `LoweringCase` (a name like
`fa-fwd-B1-T256-N4-K4-H128-bf16-causal`, the function to lower, its abstract arguments, and whether the config is a
*default* one, i.e. one that must fit the hardware's resources).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
from jax import export

PLATFORMS = ("cuda", "tpu")

# Custom calls that a Pallas kernel lowers to. jax.export refuses custom calls it does not know to be stable across
# versions unless told otherwise; an export here is a compile check, not an artifact to keep, so that is fine.
_KERNEL_CUSTOM_CALLS = ("__gpu$xla.gpu.triton", "triton_kernel_call_ffi", "mosaic_gpu", "mosaic_gpu_v2",
                        "tpu_custom_call")
DISABLED_CHECKS = tuple(export.DisabledSafetyCheck.custom_call(n) for n in _KERNEL_CUSTOM_CALLS)


@dataclasses.dataclass(frozen=True)
class LoweringCase:
  """One kernel config to lower.

  Attributes:
    name: a test id (`fa-vjp-B1-T256-N8-K2-H128-bf16-causal`).
    fn: the function to lower (plain, not jitted); takes `args` positionally.
    args: `jax.ShapeDtypeStruct`s of the arguments.
    platform: "cuda" or "tpu".
    default: True when this is a config users get by default (it must fit the hardware: see kernel_resources).
  """
  name: str
  fn: Callable[..., Any]
  args: tuple
  platform: str
  default: bool = True

  def __post_init__(self):
    if self.platform not in PLATFORMS:
      raise ValueError(f"platform must be one of {PLATFORMS}, got {self.platform!r}")


def lower(fn: Callable[..., Any], args: Sequence[Any], platform: str) -> export.Exported:
  """`jax.export` `fn` for `platform` ("cuda" or "tpu") at the abstract `args`; raises whatever the lowering raises.

  Args:
    fn: a function of `args`.
    args: `jax.ShapeDtypeStruct`s (or arrays).
    platform: "cuda" or "tpu".

  Returns:
    The `jax.export.Exported`; `.mlir_module()` is its StableHLO text, with the kernels as custom calls.
  """
  if platform not in PLATFORMS:
    raise ValueError(f"platform must be one of {PLATFORMS}, got {platform!r}")
  return export.export(jax.jit(fn), platforms=[platform], disabled_checks=list(DISABLED_CHECKS))(*args)


def lower_case(case: LoweringCase) -> export.Exported:
  """`lower(case.fn, case.args, case.platform)`."""
  return lower(case.fn, case.args, case.platform)
