"""FlashAttention-2 Pallas kernel (interpret mode on CPU) vs independent references.

References used here, none derived from the kernel's code:
  * `_np_attention`: a float64 NumPy transcription of softmax attention with the masks, written in this file;
  * `_naive`: a plain-jnp attention written in this file (float32, HIGHEST precision), for gradients via jax.vjp;
  * `jax.nn.dot_product_attention(implementation="xla")` for the options it supports.
Interpret-mode outputs start as NaN buffers (Pallas' interpreter fills uninitialised outputs with NaN, eagerly and
under jit), so an unwritten block fails the comparisons. The forward + vjp checks run the kernel (and the reference)
as one jitted program each: the same kernels, one compile instead of one per eager op.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.kernels import attention, flash_attention, flash_attention_reference
from jaxlib_methods.kernels.flash_attention import BlockSizes, gpu_arch

F32_TOL = 1e-5
BF16_REL = 2e-2


def _visible(t, s, causal, window, seg):
  qi = np.arange(t)[:, None]
  kj = np.arange(s)[None, :]
  m = np.ones((t, s), bool)
  if causal:
    m &= qi >= kj
  if window is not None:
    left, right = (window, window) if isinstance(window, int) else window
    m &= (qi <= kj + left) & (qi >= kj - right)
  m = np.broadcast_to(m, (1, t, s))
  if seg is not None:
    seg = np.asarray(seg)
    m = m & (seg[:, :, None] == seg[:, None, :])
  return m                                                          # [B or 1, T, S]


def _np_attention(q, k, v, *, causal=False, scale=None, segment_ids=None, window=None, softcap=None):
  """float64 NumPy softmax attention; fully masked rows give 0."""
  q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
  b, t, n, h = q.shape
  s, kh = k.shape[1], k.shape[2]
  g = n // kh
  scale = 1.0 / math.sqrt(h) if scale is None else scale
  out = np.zeros((b, t, n, v.shape[-1]))
  vis = _visible(t, s, causal, window, segment_ids)
  for bi in range(b):
    m = vis[min(bi, vis.shape[0] - 1)]
    for ni in range(n):
      logits = scale * q[bi, :, ni] @ k[bi, :, ni // g].T
      if softcap is not None:
        logits = softcap * np.tanh(logits / softcap)
      logits = np.where(m, logits, -np.inf)
      mx = np.max(logits, axis=1, keepdims=True)
      mx = np.where(np.isfinite(mx), mx, 0.0)
      p = np.where(m, np.exp(logits - mx), 0.0)
      den = p.sum(1, keepdims=True)
      p = p / np.where(den > 0, den, 1.0)
      out[bi, :, ni] = p @ v[bi, :, ni // g]
  return out


def _naive(q, k, v, *, causal=False, scale=None, segment_ids=None, window=None, softcap=None):
  """Plain jnp attention (fp32, HIGHEST precision), written independently of the library, for gradients."""
  b, t, n, h = q.shape
  s, kh = k.shape[1], k.shape[2]
  k = jnp.repeat(k.astype(jnp.float32), n // kh, axis=2)
  v = jnp.repeat(v.astype(jnp.float32), n // kh, axis=2)
  scale = 1.0 / math.sqrt(h) if scale is None else scale
  logits = jnp.einsum("bqnh,bknh->bnqk", q.astype(jnp.float32), k, precision="highest") * scale
  if softcap is not None:
    logits = softcap * jnp.tanh(logits / softcap)
  vis = jnp.asarray(_visible(t, s, causal, window, segment_ids))[:, None]
  logits = jnp.where(vis, logits, -1e30)
  p = jax.nn.softmax(logits, axis=-1) * vis
  return jnp.einsum("bnqk,bknh->bqnh", p, v, precision="highest")


def _inputs(b, t, s, n, kh, h, hv, dtype=jnp.float32, seed=0):
  ks = jax.random.split(jax.random.PRNGKey(seed), 4)
  q = jax.random.normal(ks[0], (b, t, n, h), jnp.float32).astype(dtype)
  k = jax.random.normal(ks[1], (b, s, kh, h), jnp.float32).astype(dtype)
  v = jax.random.normal(ks[2], (b, s, kh, hv), jnp.float32).astype(dtype)
  do = jax.random.normal(ks[3], (b, t, n, hv), jnp.float32).astype(dtype)
  return q, k, v, do


def _value_and_pullback(f, q, k, v, do):
  """f(q, k, v) and its vjp at `do`, as ONE jitted program: the forward runs (and compiles) once for both. Eagerly,
  every small op of the wrappers and of the vjp would compile on its own (about 3x the time of one program)."""
  def run(q, k, v, do):
    out, vjp = jax.vjp(f, q, k, v)
    return out, vjp(do)
  return jax.jit(run)(q, k, v, do)


def _check_fwd_bwd(shape, opts, *, block_q=16, block_k=16, dtype=jnp.float32, block_sizes=None):
  q, k, v, do = _inputs(*shape, dtype=dtype)
  kern = lambda q, k, v: flash_attention(q, k, v, block_q=block_q, block_k=block_k, block_sizes=block_sizes,
                                         interpret=True, **opts)
  out, grads = _value_and_pullback(kern, q, k, v, do)
  assert out.dtype == dtype and out.shape == shape[:2] + (shape[3], shape[6])
  want = _np_attention(q, k, v, **opts)
  _, ref_grads = _value_and_pullback(lambda q, k, v: _naive(q, k, v, **opts), q.astype(jnp.float32),
                                     k.astype(jnp.float32), v.astype(jnp.float32), do.astype(jnp.float32))
  assert np.all(np.isfinite(np.asarray(out, np.float32)))
  for g in grads:
    assert np.all(np.isfinite(np.asarray(g, np.float32)))
  if dtype == jnp.float32:
    np.testing.assert_allclose(np.asarray(out), want, atol=F32_TOL, rtol=0)
    for name, got, ref in zip("qkv", grads, ref_grads):
      np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=F32_TOL, rtol=0, err_msg=f"d{name}")
  else:
    def rel(a, b):
      a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
      return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)
    assert rel(out, want) < BF16_REL
    for name, got, ref in zip("qkv", grads, ref_grads):
      assert rel(got, ref) < BF16_REL, f"d{name}"
  return out


# (batch, T, S, heads, kv heads, head_dim, value head_dim), options: lengths are not multiples of the blocks (16).
CASES = {
    "MQA-causal-segments": ((2, 45, 45, 4, 1, 32, 32),
                            dict(causal=True, segment_ids=np.array([[0] * 10 + [1] * 20 + [2] * 15, [7] * 45]))),
    "window-softcap-causal": ((1, 50, 50, 2, 2, 32, 32), dict(causal=True, window=(5, 3), softcap=3.0, scale=0.3)),
}
SLOW_CASES = {
    # Covered by default by test_masked_head_dims_gqa_grid_ragged_lengths (same _check_fwd_bwd, F32_TOL): cross
    # attention with T < S, both ragged, G > 1 query heads per kv head in the dK/dV grid, Hv != H, no mask; several kv
    # heads (kh = 2) in test_kernel_bf16_gqa_causal and test_hopper_tiles_match_reference.
    "GQA-cross-T37-S53-dv48": ((1, 37, 53, 4, 2, 32, 48), dict()),
    # Its branches run by default: causal fp32 forward + vjp in MQA-causal-segments and window-softcap-causal (also
    # test_unmasked_blocks_with_unequal_tiles: causal unmasked + masked diagonal loops, fp32 grads), plain causal
    # without window or segments in test_kernel_bf16_gqa_causal and test_default_blocks_first_call_no_nan, one query
    # head per kv head (MHA) in window-softcap-causal, a length that is not a block multiple in every case.
    "causal-MHA-T40": ((1, 40, 40, 2, 2, 32, 32), dict(causal=True)),
    "window-bidirectional": ((1, 33, 33, 2, 1, 16, 16), dict(window=(4, 2))),
    "head_dim96-dv64": ((1, 24, 24, 2, 2, 96, 64), dict(causal=True)),
}


@pytest.mark.parametrize("name", list(CASES) + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW_CASES])
def test_kernel_matches_reference_fp32(name):
  shape, opts = {**CASES, **SLOW_CASES}[name]
  if "segment_ids" in opts:
    opts = dict(opts, segment_ids=jnp.asarray(opts["segment_ids"], jnp.int32))
  _check_fwd_bwd(shape, opts)


def test_kernel_bf16_gqa_causal():
  _check_fwd_bwd((1, 40, 40, 4, 2, 64, 64), dict(causal=True), dtype=jnp.bfloat16)


def test_masked_head_dims_gqa_grid_ragged_lengths():
  """Head dims 40 / 24 (tiles padded to 64 / 32 in-kernel, masked loads: nothing padded in memory), G = 3 query
  heads per kv head summed by the dK/dV grid's single loop, T and S not multiples of the tiles, Hv != H."""
  _check_fwd_bwd((1, 37, 45, 3, 1, 40, 24), dict(), block_q=16, block_k=32)


def test_unmasked_blocks_with_unequal_tiles():
  """Causal + window with block_q != block_k: e.g. query block 3 (rows 96..127) sees key blocks 2..7 of 16, of which
  2-3 (left window edge) and 6-7 (diagonal) take the masked loops and 4-5 the unmasked one; the result must not
  depend on which loop a block went through."""
  _check_fwd_bwd((1, 128, 128, 1, 1, 16, 16), dict(causal=True, window=(64, 0)), block_q=32, block_k=16)


def test_block_ranges_against_brute_force():
  """The block classification both kernel families use (`_kv_ranges` for forward/dQ, `_q_ranges` for dK/dV) vs a
  brute-force NumPy mask: every block with a visible entry is inside [lo, hi), and every block put on the unmasked
  path [f_lo, f_hi) is visible everywhere (for all real query rows and real keys)."""
  from jaxlib_methods.kernels.flash_attention import _kv_ranges, _q_ranges

  class Cfg:
    def __init__(self, t, s, causal, window):
      self.q_len, self.kv_len, self.causal, self.window = t, s, causal, window

  n_starts = 8
  checked = 0
  for t, s in ((17, 17), (48, 48), (64, 100), (100, 37), (1, 30)):
    for bq, bk in ((16, 16), (32, 16), (16, 32)):
      for causal in (False, True):
        for window in (None, (0, 0), (5, 3), (40, 0), (16, 16), (0, 50)):
          cfg = Cfg(t, s, causal, window)
          vis = _visible(t, s, causal, window, None)[0]                 # [T, S] over real rows and keys
          nq, nk = -(-t // bq), -(-s // bk)
          tiles = np.pad(vis, ((0, nq * bq - t), (0, nk * bk - s)), constant_values=False)
          real = np.zeros((nq * bq, nk * bk), bool)
          real[:t, :s] = True
          blk = lambda a, i, j: a[i * bq:(i + 1) * bq, j * bk:(j + 1) * bk]
          # All block starts in one vector of fixed length n_starts (>= nq, nk; the extra starts are ignored), so
          # the eager jnp ops inside compile once for all configs instead of once per block count.
          assert max(nq, nk) <= n_starts
          lo, f_lo, f_hi, hi = (np.broadcast_to(np.asarray(x), (n_starts,))[:nq]
                                for x in _kv_ranges(jnp.arange(n_starts) * bq, bq, bk, cfg))
          for i in range(nq):
            for j in range(nk):
              sub, r = blk(tiles, i, j), blk(real, i, j)
              if sub.any():
                assert lo[i] <= j < hi[i], (t, s, bq, bk, causal, window, i, j)
              if f_lo[i] <= j < f_hi[i]:
                assert np.all(sub | ~r), (t, s, bq, bk, causal, window, i, j)
                assert r[0].all(), "unmasked key block must hold only real keys"
          lo, f_lo, f_hi, hi = (np.broadcast_to(np.asarray(x), (n_starts,))[:nk]
                                for x in _q_ranges(jnp.arange(n_starts) * bk, bq, bk, cfg))
          for j in range(nk):
            for i in range(nq):
              if blk(tiles, i, j).any():
                assert lo[j] <= i < hi[j], (t, s, bq, bk, causal, window, i, j)
              if f_lo[j] <= i < f_hi[j]:
                sub, r = blk(tiles, i, j), blk(real, i, j)
                assert np.all(sub | ~r), (t, s, bq, bk, causal, window, i, j)
                assert r[:, 0].all(), "unmasked query block must hold only real rows"
          checked += 1
  assert checked == 5 * 3 * 2 * 6


def test_default_blocks_first_call_no_nan():
  """Default blocks on a short ragged length (tiles shrink to 128 / 64 > 96; the tail is masked): no NaN, matches."""
  q, k, v, _ = _inputs(1, 96, 96, 2, 2, 64, 64, seed=3)
  out = flash_attention(q, k, v, causal=True, interpret=True)
  np.testing.assert_allclose(np.asarray(out), _np_attention(q, k, v, causal=True), atol=F32_TOL, rtol=0)


def test_rows_with_no_visible_key_are_zero_with_finite_grads():
  """Window (0, 0) with more queries than keys: queries t >= S see nothing -> output 0, gradients finite."""
  q, k, v, do = _inputs(1, 40, 24, 2, 2, 16, 16, seed=4)
  f = lambda q, k, v: flash_attention(q, k, v, window=(0, 0), block_q=16, block_k=16, interpret=True)
  out, grads = _value_and_pullback(f, q, k, v, do)
  np.testing.assert_allclose(np.asarray(out), _np_attention(q, k, v, window=(0, 0)), atol=F32_TOL, rtol=0)
  assert np.all(np.asarray(out[:, 24:]) == 0)
  for g in grads:
    assert np.all(np.isfinite(np.asarray(g)))


def test_interpret_mode_outputs_start_as_nan():
  """The premise of the NaN-buffer checks: an output block a kernel never writes comes back NaN in interpret mode."""
  from jax.experimental import pallas as pl

  def kernel(x_ref, o_ref):
    del x_ref, o_ref

  call = lambda x: pl.pallas_call(kernel, out_shape=jax.ShapeDtypeStruct((8, 4), jnp.float32), interpret=True)(x)
  assert np.all(np.isnan(np.asarray(call(jnp.zeros(4)))))
  assert np.all(np.isnan(np.asarray(jax.jit(call)(jnp.zeros(4)))))    # also under jit (_value_and_pullback)


def test_library_reference_agrees_with_numpy_and_jax():
  """The pure-jnp reference (the CPU path) vs float64 NumPy and jax.nn.dot_product_attention."""
  q, k, v, _ = _inputs(2, 30, 30, 4, 2, 16, 16, seed=5)
  # Jitted: one compile per call instead of one per eager op.
  reference = jax.jit(flash_attention_reference, static_argnames=("causal", "window", "softcap"))
  dot_product_attention = jax.jit(jax.nn.dot_product_attention,
                                  static_argnames=("is_causal", "local_window_size", "implementation"))
  for opts in (dict(causal=True, window=(3, 0)), dict(window=(2, 5))):
    ref = reference(q, k, v, **opts)
    np.testing.assert_allclose(np.asarray(ref), _np_attention(q, k, v, **opts), atol=2e-6, rtol=0)
    jx = dot_product_attention(q, k, v, is_causal=opts.get("causal", False), local_window_size=opts.get("window"),
                               implementation="xla")
    np.testing.assert_allclose(np.asarray(ref), np.asarray(jx), atol=2e-6, rtol=0)
  seg = jnp.asarray([[0] * 12 + [1] * 18, [3] * 30], jnp.int32)
  ref = reference(q, k, v, causal=True, segment_ids=seg, softcap=2.0)
  want = _np_attention(q, k, v, causal=True, segment_ids=np.asarray(seg), softcap=2.0)
  np.testing.assert_allclose(np.asarray(ref), want, atol=2e-6, rtol=0)


def test_block_sizes_do_not_change_result():
  q, k, v, _ = _inputs(1, 48, 48, 2, 1, 16, 16, seed=6)
  outs = [flash_attention(q, k, v, causal=True, block_q=bq, block_k=bk, interpret=True)
          for bq, bk in ((16, 32), (64, 64))]
  for o in outs[1:]:
    np.testing.assert_allclose(np.asarray(o), np.asarray(outs[0]), atol=F32_TOL, rtol=0)


@pytest.mark.slow
def test_jit_and_grad_through_jit():
  q, k, v, _ = _inputs(1, 20, 20, 2, 2, 16, 16, seed=7)
  f = jax.jit(lambda q, k, v: jnp.sum(flash_attention(q, k, v, causal=True, block_q=16, block_k=16,
                                                      interpret=True) ** 2))
  g = jax.grad(f, argnums=(0, 1, 2))(q, k, v)
  gr = jax.grad(lambda q, k, v: jnp.sum(_naive(q, k, v, causal=True) ** 2), argnums=(0, 1, 2))(q, k, v)
  for a, b in zip(g, gr):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=3e-5, rtol=0)


# ----------------------------------------------------------------------------------------------------------------------
# Validation and dispatch (no kernel runs)
# ----------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, match", [
    (dict(q=jnp.zeros((2, 8, 4))), "shape"),
    (dict(k=jnp.zeros((3, 8, 2, 16))), "batch"),
    (dict(k=jnp.zeros((2, 8, 3, 16)), v=jnp.zeros((2, 8, 3, 16))), "divide"),
    (dict(k=jnp.zeros((2, 8, 2, 8))), "head_dim"),
    (dict(v=jnp.zeros((2, 9, 2, 16))), "sequence length"),
    (dict(segment_ids=jnp.zeros((2, 7), jnp.int32)), "segment_ids"),
    (dict(block_q=0), "block_q"),
    (dict(block_k=-16), "block_k"),
    (dict(window=(-1, 2)), "window"),
    (dict(softcap=0.0), "softcap"),
    (dict(scale=-1.0), "scale"),
    (dict(v=jnp.zeros((2, 8, 2, 16), jnp.bfloat16)), "dtype"),
])
def test_validation_errors(bad, match):
  args = dict(q=jnp.zeros((2, 8, 4, 16)), k=jnp.zeros((2, 8, 2, 16)), v=jnp.zeros((2, 8, 2, 16)))
  opts = {key: val for key, val in bad.items() if key not in args}
  args.update({key: val for key, val in bad.items() if key in args})
  # Wrong dtypes are TypeErrors, every other inconsistency a ValueError (docs/conventions.md).
  with pytest.raises(TypeError if match == "dtype" else ValueError, match=match):
    flash_attention(args["q"], args["k"], args["v"], interpret=True, **opts)


def test_compiled_kernel_needs_power_of_two_blocks():
  x = jnp.zeros((1, 8, 1, 16))
  with pytest.raises(ValueError, match="power of two"):
    flash_attention(x, x, x, block_q=24, platform="gpu")
  with pytest.raises(ValueError, match="multiple of 128"):
    flash_attention(x, x, x, block_q=64, platform="tpu")


@pytest.mark.parametrize("kwargs, match", [
    (dict(precision="fp64"), "precision"),
    (dict(platform="metal"), "platform"),
    (dict(platform=None), "default backend"),
    (dict(block_sizes=dict(block_q=64), platform="gpu"), "BlockSizes"),
    (dict(platform="tpu", block_sizes=BlockSizes()), "block_sizes"),
])
def test_option_errors(kwargs, match):
  if kwargs.get("platform", "x") is None and jax.default_backend() != "cpu":
    pytest.skip("the default-backend error is for CPU hosts")
  x = jnp.zeros((1, 8, 1, 16))
  with pytest.raises(ValueError, match=match):
    flash_attention(x, x, x, **kwargs)


def test_kernel_dtype_and_head_dim_limits():
  x = jnp.zeros((1, 8, 1, 16), jnp.float64) if jax.config.jax_enable_x64 else jnp.zeros((1, 8, 1, 16), jnp.int8)
  with pytest.raises(TypeError, match="float|dtype"):
    flash_attention(x, x, x, platform="gpu")
  big = jnp.zeros((1, 8, 1, 320))
  with pytest.raises(ValueError, match="up to 256"):
    flash_attention(big, big, big, platform="gpu")


@pytest.mark.parametrize("bad", [dict(block_q=48), dict(num_warps_fwd=3), dict(block_k_dq=0)])
def test_block_sizes_validate(bad):
  with pytest.raises(ValueError, match="BlockSizes"):
    BlockSizes(**bad)


def test_default_block_sizes_per_head_dim_and_dtype():
  """Defaults come from the table checked by benchmarks/kernel_resources.py: 96 uses the 128 row, 192 the 256 row,
  and fp32 (twice the bytes) never gets larger tiles than bf16."""
  assert BlockSizes.get_default(96) == BlockSizes.get_default(128)
  assert BlockSizes.get_default(192, jnp.bfloat16) == BlockSizes.get_default(256, jnp.bfloat16)
  assert BlockSizes.get_default(64, jnp.bfloat16, 256) == BlockSizes.get_default(256)
  for h in (64, 128, 256):
    b16, b32 = BlockSizes.get_default(h, jnp.bfloat16), BlockSizes.get_default(h, jnp.float32)
    assert b32.block_q * b32.block_k <= b16.block_q * b16.block_k


@pytest.mark.parametrize("head_dim", [pytest.param(64, marks=pytest.mark.slow), 128])
def test_hopper_tiles_match_reference(head_dim):
  """The sm_90 tiles (measured on an H200; 128-row forward tiles, 64x64 dK/dV, 64x32 dQ at head dim 128) on a
  ragged GQA causal config with a window, segments and a softcap: several blocks per axis, partial last blocks."""
  bs = BlockSizes.get_default(head_dim, jnp.bfloat16, arch=90)
  assert bs != BlockSizes.get_default(head_dim, jnp.bfloat16, arch=80)
  # arch=None: the GPU jax runs on (an H200 gets the sm_90 tiles), the architecture-independent ones off a GPU
  on_hopper = gpu_arch() == 90
  assert BlockSizes.get_default(head_dim, jnp.bfloat16) == (bs if on_hopper else
                                                            BlockSizes.get_default(head_dim, jnp.bfloat16, arch=80))
  with pytest.raises(ValueError, match="arch"):
    BlockSizes.get_default(head_dim, jnp.bfloat16, arch="90")
  seg = np.array([[0] * 90 + [1] * 110])
  _check_fwd_bwd((1, 200, 200, 4, 2, head_dim, head_dim),
                 dict(causal=True, window=(150, 0), softcap=20.0, segment_ids=seg),
                 block_q=None, block_k=None, dtype=jnp.bfloat16, block_sizes=bs)


def test_dispatch():
  q, k, v, _ = _inputs(1, 20, 20, 2, 1, 16, 16, seed=8)
  ref = flash_attention_reference(q, k, v, causal=True)
  if jax.default_backend() == "cpu":   # CPU -> xla, the reference itself; on a GPU the kernel (1 ulp-level: 4e-7)
    np.testing.assert_array_equal(np.asarray(attention(q, k, v, causal=True)), np.asarray(ref))
  else:
    np.testing.assert_allclose(np.asarray(attention(q, k, v, causal=True)), np.asarray(ref), atol=F32_TOL)
  np.testing.assert_allclose(np.asarray(attention(q, k, v, causal=True, implementation="pallas", interpret=True,
                                                  block_q=16, block_k=16)), np.asarray(ref), atol=F32_TOL)
  with pytest.raises(ValueError, match="implementation"):
    attention(q, k, v, implementation="flash")
  if jax.default_backend() == "cpu":
    with pytest.raises(ValueError, match="interpret=True"):
      attention(q, k, v, implementation="pallas")
    with pytest.raises(ValueError, match="GPU"):
      attention(q, k, v, implementation="cudnn")
    with pytest.raises(ValueError, match="TPU"):
      attention(q, k, v, implementation="splash")
  with pytest.raises(ValueError, match="platform"):
    attention(q, k, v, platform="metal")
  with pytest.raises(ValueError, match="multiples of 128"):
    attention(q, k, v, implementation="splash", platform="tpu")
  with pytest.raises(ValueError, match="softcap"):
    attention(q, k, v, implementation="cudnn", softcap=5.0)
  with pytest.raises(ValueError, match="segment_ids"):
    attention(q, k, v, implementation="cudnn", segment_ids=jnp.zeros((1, 20), jnp.int32))
  with pytest.raises(ValueError, match="divide"):
    attention(q, jnp.zeros((1, 20, 3, 16)), jnp.zeros((1, 20, 3, 16)))


# ----------------------------------------------------------------------------------------------------------------------
# The big grid (slow): head dims, dtypes, longer ragged lengths
# ----------------------------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("head_dim", [64, 96, 128, 192])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_grid_head_dims(head_dim, causal, dtype):
  _check_fwd_bwd((1, 70, 70, 4, 2, head_dim, head_dim), dict(causal=causal), block_q=32, block_k=32, dtype=dtype)


@pytest.mark.slow
@pytest.mark.parametrize("t", [192, 200])
def test_grid_ragged_lengths_default_blocks(t):
  _check_fwd_bwd((1, t, t, 2, 1, 64, 64), dict(causal=True), block_q=128, block_k=128)


@pytest.mark.slow
def test_long_ragged_length_4092_forward():
  q, k, v, _ = _inputs(1, 4092, 4092, 1, 1, 64, 64, seed=9)
  out = flash_attention(q, k, v, causal=True, interpret=True)
  ref = flash_attention_reference(q, k, v, causal=True)
  assert np.all(np.isfinite(np.asarray(out)))
  np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=F32_TOL, rtol=0)
