"""Gated Linear Attention kernels lower for real accelerators from this CPU machine (issue 11).

`jax.export` with platforms=["cuda"] runs the Pallas -> Triton lowering of every kernel for every config of
`kernels.gla.lowering_cases("cuda")` (Dk, Dv in {64, 128, 256}, bf16 / fp32, initial state, segment ids, cu_seqlens;
forward and vjp), and platforms=["tpu"] the Pallas -> Mosaic lowering of the TPU kernels. The exported modules must
call the Triton custom call with our explicit num_warps / num_stages (not jax 0.10's Mosaic GPU default) and the TPU
custom call respectively. Shared memory, registers and spills of the compiled Triton kernels are measured by
benchmarks/kernel_resources.py; an AOT compile through libtpu's Mosaic compiler (when libtpu is installed) is below.
"""

import re

import jax
import pytest

from jaxlib_methods.kernels import gla_triton
from jaxlib_methods.kernels.gla import lowering_cases
from jaxlib_methods.kernels.lowering import lower_case

# Lowered as a user's program is: under JAX's default matmul precision (tests/conftest.py sets float32).
pytestmark = pytest.mark.usefixtures("jax_default_matmul_precision")

CUDA = lowering_cases("cuda")
TPU = lowering_cases("tpu")
# Every vjp case lowers its config's forward kernels too (the custom_vjp forward rule calls the same `forward` with
# the same Config), so each forward kernel lowers by default through the vjp cases. Standalone forwards (which check
# that the forward alone is 3 Triton kernels / a TPU custom call) run by default for plain bf16 at each Dk = Dv;
# the other gla-fwd-* cases run with -m slow (covered by the gla-vjp-* case of the same name).
STANDALONE_FWD = {f"gla-fwd-B2-T1024-H4-K{d}-V{d}-bf16-plain" for d in (64, 128, 256)}


def _params(cases):
  return [pytest.param(c, id=c.name, marks=() if "-vjp-" in c.name or c.name in STANDALONE_FWD else pytest.mark.slow)
          for c in cases]


def test_cases_cover_the_matrix():
  names = [c.name for c in CUDA]
  assert len(names) == len(set(names))
  for dk in (64, 128, 256):
    for dv in (64, 128, 256):
      for dt in ("bf16", "fp32") if dk == dv else ("bf16",):
        for mode in ("fwd", "vjp"):
          assert f"gla-{mode}-B2-T1024-H4-K{dk}-V{dv}-{dt}-plain" in names
  for variant in ("h0", "seg", "seg+h0", "varlen", "varlen+h0"):
    assert any(n.endswith(f"-{variant}") for n in names), variant
  assert all(c.default for c in CUDA if "-C128" not in c.name) and not all(c.default for c in CUDA)


@pytest.mark.parametrize("case", _params(CUDA))
def test_lowers_for_cuda_through_triton(case):
  text = lower_case(case).mlir_module()
  assert "mosaic_gpu" not in text
  n_kernels = text.count("__gpu$xla.gpu.triton")
  assert n_kernels == (9 if "vjp" in case.name else 3), n_kernels   # 3 forward kernels; + 6 backward kernels
  warps = {int(w) for w in re.findall(r"num_warps = (\d+)", text)}
  assert warps and warps <= {w for w, _ in gla_triton.TRITON_PARAMS.values()}


@pytest.mark.parametrize("case", _params(TPU))
def test_lowers_for_tpu_through_mosaic(case):
  text = lower_case(case).mlir_module()
  assert text.count("tpu_custom_call") >= (2 if "vjp" in case.name else 1)
  assert "__gpu$xla.gpu.triton" not in text


@pytest.mark.slow
def test_tpu_kernels_compile_with_libtpu():
  """Ahead-of-time compile through libtpu's Mosaic compiler for a TPU v5e topology (no TPU needed), which runs the
  layout passes that jax.export leaves to the device. Needs `pip install libtpu` matching jax (jax[tpu])."""
  pytest.importorskip("libtpu", reason="libtpu not installed (pip install 'jax[tpu]' brings it)")
  from jax.experimental import topologies
  from jax.sharding import SingleDeviceSharding
  device = topologies.get_topology_desc(topology_name="v5e:2x2", platform="tpu").devices[0]
  for case in TPU:
    args = [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=SingleDeviceSharding(device)) for a in case.args]
    jax.jit(case.fn).trace(*args).lower(lowering_platforms=("tpu",)).compile()
