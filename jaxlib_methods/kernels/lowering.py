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

import contextlib
import dataclasses
import os
import re
import subprocess
import tempfile
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
    archs: the GPU architectures (compute capability x 10) whose resources a default config must fit: both by
      default; (90,) for tiles used on Hopper only.
  """
  name: str
  fn: Callable[..., Any]
  args: tuple
  platform: str
  default: bool = True
  archs: tuple = (80, 90)

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
  with _target_device(platform):
    return export.export(jax.jit(fn), platforms=[platform], disabled_checks=list(DISABLED_CHECKS))(*args)


# jax >= 0.11 asks Pallas' Triton lowering for the GPU it compiles for; with no GPU attached it must be told, through
# an abstract mesh naming an abstract device (jax 0.10, the tested range, lowers for a generic target without one).
ABSTRACT_GPU_KIND = "NVIDIA H100"


def _target_device(platform: str):
  abstract_device = getattr(jax.sharding, "AbstractDevice", None)
  if platform != "cuda" or abstract_device is None or jax.default_backend() == "gpu":
    return contextlib.nullcontext()
  mesh = jax.sharding.AbstractMesh((), (), abstract_device=abstract_device(ABSTRACT_GPU_KIND, None, "gpu"))
  return jax.sharding.use_abstract_mesh(mesh)


def lower_case(case: LoweringCase) -> export.Exported:
  """`lower(case.fn, case.args, case.platform)`."""
  return lower(case.fn, case.args, case.platform)


# ----------------------------------------------------------------------------------------------------------------------
# Triton IR capture and offline compile (resources per GPU architecture, no GPU needed)
# ----------------------------------------------------------------------------------------------------------------------

# Shared memory one thread block may use (opt-in maximum), bytes: H100/H200 (sm_90a) and A100 (sm_80).
SHARED_MEMORY_LIMIT = {90: 232_448, 80: 166_912}
REGISTER_LIMIT = 255    # per thread, every architecture since sm_50
ARCH_NAMES = {90: "sm_90a", 80: "sm_80"}


@dataclasses.dataclass(frozen=True)
class TritonKernel:
  """One `pallas_call` lowered for `cuda` through Triton: its module text (TTIR) and launch parameters."""
  name: str
  ttir: str
  num_warps: int
  num_stages: int
  grid: tuple


@dataclasses.dataclass(frozen=True)
class KernelResources:
  """What `ptxas` reports for one compiled kernel."""
  arch: int
  shared_bytes: int       # Triton's static + dynamic shared memory (metadata.shared)
  registers: int          # per thread
  spill_store_bytes: int
  spill_load_bytes: int
  stack_bytes: int
  mma: str                # "wgmma" (Hopper warp-group MMA), "mma" (Ampere mma.sync) or "none"

  @property
  def fits(self) -> bool:
    return self.shared_bytes <= SHARED_MEMORY_LIMIT[self.arch]

  @property
  def spills(self) -> bool:
    return self.spill_store_bytes > 0 or self.spill_load_bytes > 0


@contextlib.contextmanager
def _capturing_triton_modules(sink: list):
  """Wrap jax's Pallas->Triton lowering to record (kernel name, TTIR text, grid) of every `pallas_call` lowered.

  jax offers no public hook for this: it patches `jax._src.pallas.triton.lowering.lower_jaxpr_to_triton_module`, an
  internal function whose name and signature may change between jax versions (checked with jax 0.10.2).
  """
  try:
    from jax._src.pallas.triton import lowering as triton_lowering   # pylint: disable=import-outside-toplevel
    original = triton_lowering.lower_jaxpr_to_triton_module
  except (ImportError, AttributeError) as e:
    raise RuntimeError(
        f"cannot capture Triton IR with jax {jax.__version__}: the internal "
        f"jax._src.pallas.triton.lowering.lower_jaxpr_to_triton_module is gone ({e!r}); update "
        f"jaxlib_methods/kernels/lowering.py for this jax version") from e

  def capture(jaxpr, *args, **kwargs):
    result = original(jaxpr, *args, **kwargs)
    from jax._src.interpreters import mlir   # pylint: disable=import-outside-toplevel
    sink.append((mlir.sanitize_name(jaxpr.debug_info.func_name),
                 result.module.operation.get_asm(enable_debug_info=False), tuple(result.grid)))
    return result

  triton_lowering.lower_jaxpr_to_triton_module = capture
  try:
    yield
  finally:
    triton_lowering.lower_jaxpr_to_triton_module = original


_BACKEND_CONFIG = re.compile(
    r"custom_call @__gpu\$xla\.gpu\.triton\(.*?mhlo\.backend_config = \{(.*?)\}, operand_layouts")


def capture_triton_kernels(case: LoweringCase) -> list:
  """Lower `case` for cuda and return its Triton kernels (`TritonKernel`), in lowering order.

  num_warps / num_stages are read from each custom call's backend config, matched to the captured module by name.
  Side effect: clears jax's in-process caches (`jax.clear_caches()`), since a cached lowering skips the hook.
  """
  if case.platform != "cuda":
    raise ValueError(f"Triton kernels exist for platform 'cuda' only, got {case.platform!r}")
  captured = []
  # jax caches lowered pallas_calls; clear so that every kernel of this case goes through the hook.
  jax.clear_caches()
  with _capturing_triton_modules(captured):
    text = lower_case(case).mlir_module()
  params = {}
  for body in _BACKEND_CONFIG.findall(text):
    name = re.search(r'name = "([^"]+)"', body).group(1)
    warps = int(re.search(r"num_warps = (\d+)", body).group(1))
    stages = int(re.search(r"num_stages = (\d+)", body).group(1))
    params.setdefault(name, set()).add((warps, stages))
  kernels = []
  for name, ttir, grid in captured:
    options = params.get(name)
    if not options or len(options) != 1:
      raise RuntimeError(f"cannot match kernel {name!r} of {case.name} to one launch config: {options}")
    (warps, stages), = options
    kernels.append(TritonKernel(name, ttir, warps, stages, grid))
  return kernels


def _ptxas(arch: int) -> str:
  """The ptxas Triton itself uses for `arch` (pip triton bundles one per architecture family)."""
  from triton.backends.nvidia import compiler as nvidia_compiler   # pylint: disable=import-outside-toplevel
  return nvidia_compiler.get_ptxas(arch).path


def compile_triton(kernel: TritonKernel, arch: int) -> KernelResources:
  """Compile `kernel`'s TTIR with pip `triton` for `arch` (80: sm_80, 90: sm_90a) and read off its resources.

  No GPU is needed: Triton lowers TTIR -> TTGIR -> LLVM -> PTX and runs its bundled `ptxas -v` (registers, spills).
  XLA's bundled Triton may differ slightly from pip's, so treat the numbers as a close estimate.

  Raises:
    RuntimeError: triton is not installed (`pip install '.[kernels-dev]'`).
  """
  if arch not in SHARED_MEMORY_LIMIT:
    raise ValueError(f"arch must be one of {tuple(SHARED_MEMORY_LIMIT)}, got {arch!r}")
  os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")   # Triton 3.9's default, stated to silence its warning
  try:
    import triton   # pylint: disable=import-outside-toplevel
    from triton.backends.compiler import GPUTarget   # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise RuntimeError("compiling Triton IR offline needs pip triton: pip install '.[kernels-dev]'") from e
  with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, f"{kernel.name}.ttir")
    with open(src, "w") as f:
      f.write(kernel.ttir)
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                              options=dict(num_warps=kernel.num_warps, num_stages=kernel.num_stages))
    ptx = os.path.join(tmp, "k.ptx")
    with open(ptx, "w") as f:
      f.write(compiled.asm["ptx"])
    # The same ptxas invocation as Triton's (make_cubin), with -v: registers, stack frame and spill bytes.
    log = subprocess.run([_ptxas(arch), "-lineinfo", "-v", "--regAllocOptLevel=2",
                          f"--gpu-name={ARCH_NAMES[arch]}", ptx, "-o", os.path.join(tmp, "k.cubin")],
                         capture_output=True, text=True, check=False)
  if log.returncode != 0:
    raise RuntimeError(f"ptxas failed on {kernel.name} for {ARCH_NAMES[arch]}: {log.stderr[-2000:]}")
  log = log.stderr
  regs = re.search(r"Used (\d+) registers", log)
  frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log)
  if regs is None or frame is None:
    raise RuntimeError(f"cannot parse ptxas output for {kernel.name}:\n{log}")
  ttgir = compiled.asm.get("ttgir", "")
  mma = "wgmma" if "warp_group_dot" in ttgir else ("mma" if "nvidia_mma" in ttgir else "none")
  return KernelResources(arch=arch, shared_bytes=int(compiled.metadata.shared), registers=int(regs.group(1)),
                         spill_store_bytes=int(frame.group(2)), spill_load_bytes=int(frame.group(3)),
                         stack_bytes=int(frame.group(1)), mma=mma)
