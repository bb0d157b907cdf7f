"""Gated Linear Attention, TPU (Mosaic) kernels in the TPU interpret mode on CPU (`pltpu.InterpretParams`).

Same chain as tests/kernels/test_gla.py: the kernels against the recurrent reference (itself checked against a
float64 NumPy oracle there) on outputs, final states and every gradient, with relative-error tolerances; plus the
NumPy oracle directly for the packed (cu_seqlens) case. The lowering for platforms=["tpu"] is tested in
tests/kernels/test_gla_lowering.py; that the default dispatch picks these kernels on TPU, in tests/nn/test_gla.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.kernels.gla import gated_linear_attention, gated_linear_attention_reference
from tests.kernels.test_gla import _check_chunk_vs_recurrent, _inputs, _np_packed, _rel


def _tpu(**opts):
  return lambda q, k, v, lg, h0: gated_linear_attention(q, k, v, lg, initial_state=h0, platform="tpu",
                                                        interpret=True, **opts)


def test_tpu_segments_initial_state_scale():
  """B2-T40-H2-K16-V16, chunk 8 / sub-chunk 4, segment resets on and inside a chunk edge, initial state, scale."""
  q, k, v, lg, h0, do, dht = _inputs(2, 40, 2, 16, 16, seed=21)
  seg = jnp.asarray([[0] * 16 + [1] * 11 + [2] * 13, [3] * 9 + [4] * 31], jnp.int32)
  opts = dict(scale=0.3, segment_ids=seg)
  ref = lambda q, k, v, lg, h0: gated_linear_attention_reference(q, k, v, lg, initial_state=h0, **opts)
  _check_chunk_vs_recurrent(_tpu(chunk_size=8, sub_chunk_size=4, **opts), ref, (q, k, v, lg, h0), (do, dht),
                            rtol=1e-5)


@pytest.mark.slow
def test_tpu_varlen_per_sequence_states_and_extreme_gates():
  """cu_seqlens with an empty sequence and per-sequence states, -inf / -1e30 log gates: NumPy oracle (forward) and
  the recurrence (forward and gradients). Slow (the TPU interpreter); the default run covers the per-sequence state
  machinery through test_tpu_segments_initial_state_scale (two sequences) and the packing through the GPU tests."""
  q, k, v, lg, _, do, _ = _inputs(1, 40, 2, 16, 16, seed=22)
  lg = lg.at[0, 3].set(-jnp.inf).at[0, 25, 1, :4].set(-1e30)
  cu = jnp.asarray([0, 5, 5, 40], jnp.int32)
  h0 = jax.random.normal(jax.random.PRNGKey(23), (3, 2, 16, 16))
  dht = jax.random.normal(jax.random.PRNGKey(24), (3, 2, 16, 16))
  kern = _tpu(cu_seqlens=cu, chunk_size=8, sub_chunk_size=4)
  ref = lambda q, k, v, lg, h0: gated_linear_attention_reference(q, k, v, lg, initial_state=h0, cu_seqlens=cu)
  o, ht = _check_chunk_vs_recurrent(kern, ref, (q, k, v, lg, h0), (do, dht), rtol=1e-5)
  o_np, ht_np = _np_packed(q, k, v, lg, np.asarray(cu), h0)
  assert _rel(o, o_np) < 1e-5 and _rel(ht, ht_np) < 1e-5
  np.testing.assert_allclose(np.asarray(ht[1]), np.asarray(h0[1]))  # the empty sequence keeps its initial state


@pytest.mark.slow
def test_tpu_bf16_default_chunks():
  q, k, v, lg, h0, do, dht = _inputs(1, 130, 2, 64, 64, seed=26, dtype=jnp.bfloat16)
  kern = _tpu(scale=0.125)
  ref = lambda q, k, v, lg, h0: gated_linear_attention_reference(
      q.astype(jnp.float32), k.astype(jnp.float32), v.astype(jnp.float32), lg, scale=0.125, initial_state=h0)
  (o, ht), vjp = jax.vjp(kern, q, k, v, lg, h0)
  (o_r, ht_r), vjp_r = jax.vjp(ref, q, k, v, lg, h0)
  assert _rel(o, o_r) < 5e-3 and _rel(ht, ht_r) < 1e-5
  for a, b in zip(vjp((do.astype(o.dtype), dht)), vjp_r((do, dht))):
    assert _rel(a, b) < 1e-2
