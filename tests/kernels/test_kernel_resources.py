"""Offline Triton compile of the GPU kernels (no GPU): shared memory within sm_80 / sm_90a limits, no spills.

`benchmarks/kernel_resources.py` prints the full table (docs/benchmarks.md); here a fast test compiles one small
config, and a slow one runs the whole default matrix and fails when a kernel exceeds shared memory on either
architecture, or when an FA2 kernel with head dims <= 128 spills registers.
"""

import re

import pytest

from jaxlib_methods.kernels import lowering
from jaxlib_methods.kernels.flash_attention import AttentionConfig

# Lowered as a user's program is: under JAX's default matmul precision (tests/conftest.py sets float32).
pytestmark = pytest.mark.usefixtures("jax_default_matmul_precision")

pytest.importorskip("triton", reason="needs pip triton (pip install '.[kernels-dev]'; in the test extra)")


def test_small_forward_compiles_within_limits_on_both_architectures():
  cfg = AttentionConfig(head_dim=64, causal=True)
  fwd, _ = cfg.fns("gpu")
  [kernel] = lowering.capture_triton_kernels(lowering.LoweringCase("fa2-fwd-H64", fwd, tuple(cfg.args()), "cuda"))
  assert kernel.name == "flash_attention_fwd" and "tt.func" in kernel.ttir
  for arch, mma in ((90, "wgmma"), (80, "mma")):
    res = lowering.compile_triton(kernel, arch)
    assert 0 < res.shared_bytes <= lowering.SHARED_MEMORY_LIMIT[arch], res
    assert 0 < res.registers <= lowering.REGISTER_LIMIT and not res.spills, res
    assert res.mma == mma, res                           # Hopper warp-group MMA on sm_90a, mma.sync on sm_80


def test_resource_accounting_flags_a_kernel_over_the_limit():
  """The check can fail: 10 pipeline stages of 128-row K and V tiles need more shared memory than an A100 has."""
  from jaxlib_methods.kernels.flash_attention import BlockSizes
  cfg = AttentionConfig(head_dim=64, t=2048)
  fwd, _ = cfg.fns("gpu", block_sizes=BlockSizes(block_q=64, block_k=128, num_warps_fwd=4, num_stages_fwd=10))
  [kernel] = lowering.capture_triton_kernels(lowering.LoweringCase("big-tiles", fwd, tuple(cfg.args()), "cuda"))
  res = lowering.compile_triton(kernel, 80)
  assert not res.fits and res.shared_bytes > lowering.SHARED_MEMORY_LIMIT[80]


def test_script_collects_cases_from_every_kernel_module(load_benchmark):
  script = load_benchmark("kernel_resources")
  names = [m.__name__ for m in script.kernel_modules()]
  assert "jaxlib_methods.kernels.flash_attention" in names
  cases = script.collect_cases(name_filter="fa2-")
  assert cases and all(c.platform == "cuda" and c.default for c in cases)


@pytest.mark.slow
def test_every_default_config_fits_sm80_and_sm90a(capsys, load_benchmark):
  script = load_benchmark("kernel_resources")
  rc = script.main([])
  out = capsys.readouterr().out
  assert rc == 0, out
  spills = []
  for line in out.splitlines():
    cells = [c.strip() for c in line.strip("|").split("|")]
    if len(cells) < 12 or not cells[0].startswith("fa2-"):
      continue
    dims = [int(d) for d in re.findall(r"-Hv?(\d+)", cells[0])]
    if cells[0].endswith("-sm90"):                     # Hopper tiles: chosen by measured speed, spills allowed
      continue
    if max(dims) <= 128 and (int(cells[6]) or int(cells[10])):
      spills.append(cells[:2])
  assert not spills, f"FA2 kernels with head_dim <= 128 spill registers: {spills}"
