"""The Pallas attention kernels lower for the hardware they target, from this CPU-only machine (`jax.export`).

What is checked, per config of a covering design (every head dim, dtype, mask option, GQA/MQA, ragged lengths):
  * cuda: the forward and the vjp export, every kernel is a Triton custom call (not Mosaic GPU, jax 0.10's default
    when a pallas_call passes no Triton compiler params) with the num_warps / num_stages of `BlockSizes`;
  * tpu: the Mosaic kernels (and jax's splash attention through `attention(implementation="splash")`) export;
  * the Triton IR has the structure the kernels claim: an unmasked loop for fully visible blocks beside the masked
    one, TF32 / 3xTF32 / IEEE dots for the fp32 precisions, 64-bit offsets for arrays over 2^32 bytes.
"""

import re

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from jaxlib_methods.kernels import attention, lowering
from jaxlib_methods.kernels.flash_attention_tpu import lowering_cases as tpu_lowering_cases
from jaxlib_methods.kernels.flash_attention import AttentionConfig, BlockSizes, lowering_cases, lowering_matrix
from jaxlib_methods.nn import MultiHeadAttention

# Lowered as a user's program is: under JAX's default matmul precision (tests/conftest.py sets float32).
pytestmark = pytest.mark.usefixtures("jax_default_matmul_precision")

CUDA_CASES = lowering_cases("cuda")
TPU_CASES = lowering_cases("tpu")


def _triton_calls(text):
  return re.findall(r"custom_call @__gpu\$xla\.gpu\.triton\(.*?mhlo\.backend_config = \{(.*?)\}, operand_layouts", text)


def test_the_matrix_covers_every_factor():
  cfgs = lowering_matrix()
  assert {c.head_dim for c in cfgs} >= {64, 96, 128, 192, 256}
  assert {c.dtype for c in cfgs} == {"bf16", "fp16", "fp32"}
  assert {c.causal for c in cfgs} == {False, True}
  assert any(c.kv_heads == 1 for c in cfgs) and any(1 < c.kv_heads < c.heads for c in cfgs)
  assert any(c.window for c in cfgs) and any(c.segments for c in cfgs) and any(c.softcap for c in cfgs)
  assert any(c.t % 64 for c in cfgs) and any(c.s and c.s != c.t for c in cfgs)
  assert any(c.head_dim_v and c.head_dim_v != c.head_dim for c in cfgs)
  assert {c.precision for c in cfgs} == {None, "high", "highest"}
  vjp_names = {c.name for c in CUDA_CASES if "-vjp-" in c.name}
  assert vjp_names == {f"fa2-vjp-{c.name}" for c in cfgs}       # every config's vjp (which has the forward kernel)
  assert {c.head_dim for c in cfgs[:10]} == {64, 96, 128, 192, 256}   # standalone forwards


@pytest.mark.parametrize("case", CUDA_CASES, ids=lambda c: c.name)
def test_lowers_for_cuda_through_triton(case):
  text = lowering.lower_case(case).mlir_module()
  calls = _triton_calls(text)
  assert calls and len(calls) == (1 if "-fwd-" in case.name else 3), case.name
  assert "mosaic_gpu" not in text
  for body in calls:
    assert re.search(r"num_warps = \d+", body) and re.search(r"num_stages = \d+", body)


def test_launch_params_come_from_block_sizes():
  cfg = AttentionConfig(head_dim=128, causal=True)
  bs = BlockSizes(num_warps_fwd=2, num_stages_fwd=4, num_warps_dkv=4, num_stages_dkv=1, num_warps_dq=8,
                  num_stages_dq=3)
  _, vjp = cfg.fns("gpu", block_sizes=bs)
  kernels = lowering.capture_triton_kernels(lowering.LoweringCase("x", vjp, tuple(cfg.args()), "cuda"))
  got = {k.name: (k.num_warps, k.num_stages) for k in kernels}
  assert got == {"flash_attention_fwd": (2, 4), "flash_attention_bwd_dkdv": (4, 1), "flash_attention_bwd_dq": (8, 3)}


@pytest.mark.parametrize("case", TPU_CASES, ids=lambda c: c.name)
def test_lowers_for_tpu_through_mosaic(case):
  text = lowering.lower_case(case).mlir_module()
  assert text.count("tpu_custom_call") == (1 if "-fwd-" in case.name else 3)


def test_splash_attention_lowers_for_tpu():
  q = jax.ShapeDtypeStruct((1, 256, 4, 128), jnp.bfloat16)
  kv = jax.ShapeDtypeStruct((1, 256, 2, 128), jnp.bfloat16)
  f = lambda q, k, v: attention(q, k, v, causal=True, implementation="splash", platform="tpu")
  vjp = lambda q, k, v: jax.vjp(f, q, k, v)[1](q)
  assert "tpu_custom_call" in lowering.lower(f, (q, kv, kv), "tpu").mlir_module()
  assert "tpu_custom_call" in lowering.lower(vjp, (q, kv, kv), "tpu").mlir_module()


def test_attention_default_dispatch_lowers_per_platform():
  """attention() with platform= picks the Pallas kernel of that platform at trace time (the CPU default is XLA)."""
  q = jax.ShapeDtypeStruct((1, 128, 2, 64), jnp.bfloat16)
  for platform, call in (("gpu", "__gpu$xla.gpu.triton"), ("tpu", "tpu_custom_call")):
    f = lambda q, k, v, p=platform: attention(q, k, v, causal=True, platform=p)
    assert call in lowering.lower(f, (q, q, q), "cuda" if platform == "gpu" else "tpu").mlir_module()


def test_nnx_layer_exports_for_cuda():
  layer = MultiHeadAttention(64, 4, 2, platform="gpu", rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(layer)

  def apply(state, x):
    return nnx.merge(graphdef, state)(x)

  x = jax.ShapeDtypeStruct((2, 40, 64), jnp.float32)
  state_sds = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state)
  assert "__gpu$xla.gpu.triton" in lowering.lower(apply, (state_sds, x), "cuda").mlir_module()


def _kernels(cfg, which="vjp"):
  fwd, vjp = cfg.fns("gpu")
  return {k.name: k for k in lowering.capture_triton_kernels(
      lowering.LoweringCase("x", fwd if which == "fwd" else vjp, tuple(cfg.args()), "cuda"))}


def test_unmasked_loop_for_full_blocks():
  """Non-causal, block-aligned: one loop per kernel (no mask code). Causal: an unmasked loop over the blocks below
  the diagonal plus a masked one for the diagonal. Window: masked loops on both edges (forward and dQ)."""
  plain = _kernels(AttentionConfig(head_dim=64))
  causal = _kernels(AttentionConfig(head_dim=64, causal=True))
  window = _kernels(AttentionConfig(head_dim=64, window=(64, 32)))
  for name in ("flash_attention_fwd", "flash_attention_bwd_dkdv", "flash_attention_bwd_dq"):
    assert plain[name].ttir.count("scf.for") == 1, name
    assert causal[name].ttir.count("scf.for") == 2, name
    assert window[name].ttir.count("scf.for") == 3, name


def test_fp32_precision_reaches_the_triton_dot():
  """fp32 dots: "default" -> TF32 (Triton's rule), "high" -> 3xTF32, "highest" -> IEEE (no inputPrecision attr).
  "default" (and None) follows `jax.default_matmul_precision` like any jax dot: IEEE under "float32", which
  tests/conftest.py sets for the whole suite (and `python -m experiments` for its runs)."""
  def precisions(prec):
    k = _kernels(AttentionConfig(head_dim=64, dtype="fp32", precision=prec), "fwd")["flash_attention_fwd"]
    return set(re.findall(r"inputPrecision = (\w+)", k.ttir))
  with jax.default_matmul_precision(None):      # JAX's own default
    assert precisions(None) == {"tf32"}
  with jax.default_matmul_precision("float32"):
    assert precisions(None) == set()
    assert precisions("high") == {"tf32x3"}
  assert precisions("high") == {"tf32x3"}
  assert precisions("highest") == set()


def test_offsets_are_64_bit_for_arrays_over_4_gib():
  """2^31 + 2^17 bf16 elements (> 2^32 bytes): pointer offsets of q/k/v/o are i64 in every kernel; a small input
  keeps 32-bit offsets. No allocation: the arrays are abstract."""
  big = jax.ShapeDtypeStruct((1, 2**21 + 128, 8, 128), jnp.bfloat16)
  small = jax.ShapeDtypeStruct((1, 256, 8, 128), jnp.bfloat16)
  fwd, vjp = AttentionConfig(causal=True).fns("gpu")
  offset_types = lambda k: set(re.findall(r"tt\.addptr [^\n]*?, tensor<\S+x(i\d+)>", k.ttir))
  for kernel in lowering.capture_triton_kernels(lowering.LoweringCase("big", vjp, (big, big, big), "cuda")):
    assert "i64" in offset_types(kernel), kernel.name
  for kernel in lowering.capture_triton_kernels(lowering.LoweringCase("small", vjp, (small,) * 3, "cuda")):
    assert offset_types(kernel) == {"i32"}, kernel.name


def test_lowering_rejects_unknown_platform():
  with pytest.raises(ValueError, match="platform"):
    lowering.lower(lambda x: x, (jnp.zeros(2),), "metal")
  with pytest.raises(ValueError, match="platform"):
    lowering.LoweringCase("x", lambda x: x, (), "rocm")
  with pytest.raises(ValueError, match="platform"):
    lowering_cases("metal")
  assert tpu_lowering_cases("cuda") == []
