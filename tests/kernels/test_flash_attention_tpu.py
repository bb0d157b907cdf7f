"""FlashAttention-2 Pallas TPU (Mosaic) kernels in the TPU interpret mode on CPU, against independent references.

The references are those of test_flash_attention.py (a float64 NumPy transcription of softmax attention and a plain
jnp attention for gradients), none derived from the kernels. The TPU interpret mode (`pltpu.InterpretParams`)
simulates VMEM scratch, the grid's pipelined block copies and the (8, 128) block rules; its scratch buffers start as
NaN, so a block the kernel forgets to initialise fails the comparisons.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.kernels import attention, flash_attention, flash_attention_reference

def _load_references():
  """The independent references of test_flash_attention.py, loaded by path (works however pytest is started)."""
  import importlib.util, os   # pylint: disable=C0415,C0410
  path = os.path.join(os.path.dirname(__file__), "test_flash_attention.py")
  spec = importlib.util.spec_from_file_location("_fa_references", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


_refs = _load_references()
F32_TOL, _inputs, _naive, _np_attention = _refs.F32_TOL, _refs._inputs, _refs._naive, _refs._np_attention
_value_and_pullback = _refs._value_and_pullback      # f and its vjp as one jitted program


def _check(shape, opts, **kw):
  q, k, v, do = _inputs(*shape)
  f = lambda q, k, v: flash_attention(q, k, v, platform="tpu", interpret=True, **opts, **kw)
  out, grads = _value_and_pullback(f, q, k, v, do)
  np.testing.assert_allclose(np.asarray(out), _np_attention(q, k, v, **opts), atol=F32_TOL, rtol=0)
  _, ref_grads = _value_and_pullback(lambda q, k, v: _naive(q, k, v, **opts), q, k, v, do)
  for name, got, ref in zip("qkv", grads, ref_grads):
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=F32_TOL, rtol=0, err_msg=f"d{name}")


def test_tpu_kernel_gqa_causal_window_segments_softcap_ragged():
  """Three 128-row query/key blocks (T = 300, padded to 384): causal block skipping (key block 2 for query block 0),
  the window's left edge (query block 2 vs key block 0: rows 261.. lose keys), fully visible blocks through the
  unmasked body (query block 1 vs key block 0, query block 2 vs key block 1), diagonal blocks, G = 2 query heads
  per kv head in the dK/dV grid, segment ids and softcap, Hv != H."""
  seg = jnp.asarray([[0] * 90 + [1] * 150 + [2] * 60], jnp.int32)
  _check((1, 300, 300, 2, 1, 32, 48), dict(causal=True, window=(260, 0), softcap=4.0, segment_ids=seg))


@pytest.mark.slow
@pytest.mark.parametrize("shape, opts", [
    ((1, 200, 330, 2, 2, 32, 32), dict(window=(50, 140))),                 # cross attention, ragged, both sides
    ((2, 256, 256, 4, 1, 64, 64), dict(causal=True)),                      # MQA, block-aligned
    ((1, 130, 130, 2, 2, 96, 96), dict(causal=True, scale=0.2)),           # head dim 96, 2 blocks
])
def test_tpu_kernel_more_configs(shape, opts):
  _check(shape, opts)


@pytest.mark.slow
def test_tpu_kernel_bf16_and_block_256():
  q, k, v, do = _inputs(1, 300, 300, 2, 1, 64, 64, dtype=jnp.bfloat16)
  out = flash_attention(q, k, v, causal=True, platform="tpu", interpret=True, block_q=256, block_k=128)
  want = _np_attention(q, k, v, causal=True)
  rel = np.linalg.norm(np.asarray(out, np.float64) - want) / np.linalg.norm(want)
  assert rel < 2e-2


@pytest.mark.slow
def test_splash_matches_reference_in_interpret_mode():
  q, k, v, _ = _inputs(1, 256, 256, 4, 2, 128, 128, seed=11)
  seg = jnp.asarray([[0] * 100 + [1] * 156], jnp.int32)
  for opts in (dict(causal=True), dict(window=(32, 16), softcap=5.0), dict(causal=True, segment_ids=seg)):
    got = attention(q, k, v, implementation="splash", interpret=True, **opts)
    np.testing.assert_allclose(np.asarray(got), np.asarray(flash_attention_reference(q, k, v, **opts)),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("window", [(64, 0), pytest.param((0, 0), marks=pytest.mark.slow)])
def test_splash_rows_with_no_visible_key_are_zero(window):
  """T > S with a window empties rows t > S - 1 + left. Splash left them undefined: the mean of v where their block
  is partly visible (rows 192.. with window (64, 0)), NaN where their blocks are skipped (rows 128.. with window
  (0, 0)); the convention of every implementation is 0, with finite gradients."""
  q, k, v, do = _inputs(1, 256, 128, 1, 1, 128, 128, seed=5)
  f = lambda q, k, v: attention(q, k, v, window=window, implementation="splash", interpret=True)
  out, grads = _value_and_pullback(f, q, k, v, do)
  np.testing.assert_allclose(np.asarray(out), _np_attention(q, k, v, window=window), atol=1e-5, rtol=0)
  _, ref_grads = _value_and_pullback(lambda q, k, v: _naive(q, k, v, window=window), q, k, v, do)
  for name, got, ref in zip("qkv", grads, ref_grads):
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=1e-4, rtol=0, err_msg=f"d{name}")
