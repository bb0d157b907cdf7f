"""Gated Linear Attention: recurrent reference vs a float64 NumPy loop, chunked Pallas kernels (interpret) vs reference.

Chain of checks (the fla test pattern, `tests/ops/test_gla.py`): `_np_recurrence` (float64 NumPy transcription of
S_t = diag(a_t) S_{t-1} + k_t v_t^T, o_t = S_t^T q_t, written here; the naive oracle) checks the library's lax.scan
reference (the recurrent form), its gradients are checked by central finite differences in float64, and the chunked
GPU (Triton) kernels are checked against the recurrence on outputs, final states and every gradient (q, k, v,
log_gates, initial_state), with relative-error tolerances and ids like `B2-T45-H2-K8-V12`. The TPU (Mosaic)
kernels get the same checks in tests/kernels/test_gla_tpu.py, the cuda / tpu lowerings are in
tests/kernels/test_gla_lowering.py.
The tests up to `test_grid_longer_default_chunks` predate the flash-linear-attention restructure and are kept
unchanged as its regression baseline.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.kernels import gated_linear_attention, gated_linear_attention_reference, gla_attention

TOL = 2e-5
_DT = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


def _np_recurrence(q, k, v, log_gates, *, scale=1.0, initial_state=None, segment_ids=None):
  q, k, v, g = (np.asarray(x, np.float64) for x in (q, k, v, log_gates))
  b, t, h, dk = q.shape
  dv = v.shape[-1]
  o = np.zeros((b, t, h, dv))
  final = np.zeros((b, h, dk, dv))
  for bi in range(b):
    for hi in range(h):
      s = np.zeros((dk, dv)) if initial_state is None else np.asarray(initial_state, np.float64)[bi, hi].copy()
      for ti in range(t):
        if segment_ids is not None and ti > 0 and segment_ids[bi, ti] != segment_ids[bi, ti - 1]:
          s = np.zeros((dk, dv))
        s = np.exp(g[bi, ti, hi])[:, None] * s + np.outer(k[bi, ti, hi], v[bi, ti, hi])
        o[bi, ti, hi] = s.T @ (scale * q[bi, ti, hi])
      final[bi, hi] = s
  return o, final


def _inputs(b, t, h, dk, dv, *, seed=0, gate_mean=1.0, gate_std=2.0, dtype=jnp.float32):
  ks = jax.random.split(jax.random.PRNGKey(seed), 7)
  q = jax.random.normal(ks[0], (b, t, h, dk)).astype(dtype)
  k = (0.5 * jax.random.normal(ks[1], (b, t, h, dk))).astype(dtype)
  v = jax.random.normal(ks[2], (b, t, h, dv)).astype(dtype)
  log_gates = jax.nn.log_sigmoid(gate_std * jax.random.normal(ks[3], (b, t, h, dk)) + gate_mean)
  h0 = jax.random.normal(ks[4], (b, h, dk, dv))
  do = jax.random.normal(ks[5], (b, t, h, dv))
  dht = jax.random.normal(ks[6], (b, h, dk, dv))
  return q, k, v, log_gates, h0, do, dht


@functools.cache
def _jitted_value_and_pullback(f):
  def run(args, cotangents):
    out, vjp = jax.vjp(f, *args)
    return out, vjp(cotangents)
  return jax.jit(run)


def _value_and_pullback(f, args, cotangents):
  """f(*args) and its vjp at `cotangents`, as ONE jitted program (the forward compiles once for both; eagerly the
  primal, the backward and the small ops around them compile one by one). Same kernels, same numbers. One jitted
  program per f: tests that share f (see `_fns`) and shapes share the compile."""
  return _jitted_value_and_pullback(f)(args, cotangents)


_FNS = {}


def _fns(**opts):
  """(kernel, reference) as functions of (q, k, v, log_gates, initial_state) for these kernel options; the same pair
  for the same (hashable) options, so `_value_and_pullback` compiles them once for every test that uses them."""
  def make():
    kern = lambda q, k, v, lg, h0: gated_linear_attention(q, k, v, lg, initial_state=h0, interpret=True, **opts)
    ref_opts = {key: val for key, val in opts.items() if key in ("scale", "segment_ids")}
    ref = lambda q, k, v, lg, h0: gated_linear_attention_reference(q, k, v, lg, initial_state=h0, **ref_opts)
    return kern, ref
  try:
    key = tuple(sorted(opts.items()))
    hash(key)
  except TypeError:                                                    # e.g. segment_ids arrays: not shared
    return make()
  if key not in _FNS:
    _FNS[key] = make()
  return _FNS[key]


def _compare(q, k, v, lg, h0, do, dht, *, tol=TOL, **opts):
  """Kernel vs reference: outputs, final state and all gradients (cotangents on both outputs)."""
  kern, ref = _fns(**opts)
  do = do.astype(q.dtype)                                              # o is in q's dtype
  (o, ht), grads = _value_and_pullback(kern, (q, k, v, lg, h0), (do, dht))
  (o_r, ht_r), grads_r = _value_and_pullback(ref, (q, k, v, lg, h0), (do, dht))
  np.testing.assert_allclose(np.asarray(o, np.float32), np.asarray(o_r, np.float32), atol=tol, rtol=tol, err_msg="o")
  np.testing.assert_allclose(np.asarray(ht), np.asarray(ht_r), atol=tol, rtol=tol, err_msg="final_state")
  for name, a, b in zip(["dq", "dk", "dv", "dlog_gates", "dinitial_state"], grads, grads_r):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    assert np.all(np.isfinite(a)), name
    np.testing.assert_allclose(a, b, atol=tol * max(1.0, np.abs(b).max()), rtol=tol, err_msg=name)
  return o, ht


def _np_packed(q, k, v, log_gates, cu_seqlens, initial_state=None, *, scale=1.0):
  """Float64 NumPy oracle for cu_seqlens packing: each sequence runs the recurrence from its own initial state."""
  n = len(cu_seqlens) - 1
  h, dk, dv = q.shape[2], q.shape[3], v.shape[3]
  h0 = np.zeros((n, h, dk, dv)) if initial_state is None else np.asarray(initial_state, np.float64)
  o = np.zeros(v.shape[1:])
  final = np.zeros((n, h, dk, dv))
  for i in range(n):
    lo, hi = int(cu_seqlens[i]), int(cu_seqlens[i + 1])
    o_i, f_i = _np_recurrence(*(np.asarray(x)[:, lo:hi] for x in (q, k, v, log_gates)), scale=scale,
                              initial_state=h0[i:i + 1])
    o[lo:hi], final[i] = o_i[0], f_i[0]
  return o[None], final


def test_reference_matches_numpy_recurrence():
  q, k, v, lg, h0, _, _ = _inputs(2, 13, 2, 4, 5, seed=1)
  seg = np.array([[0] * 5 + [1] * 8, [3] * 6 + [2] * 4 + [3] * 3])   # ids may repeat: every change resets
  for opts in (dict(), dict(scale=0.5, initial_state=h0, segment_ids=seg)):
    o, ht = gated_linear_attention_reference(
        q, k, v, lg, **{key: (jnp.asarray(val) if key == "segment_ids" else val) for key, val in opts.items()})
    o_np, ht_np = _np_recurrence(q, k, v, lg, **opts)
    np.testing.assert_allclose(np.asarray(o), o_np, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(ht), ht_np, atol=1e-5, rtol=1e-5)


def test_reference_gradients_match_finite_differences():
  with jax.enable_x64(True):
    q, k, v, lg, h0, _, _ = (x.astype(jnp.float64) for x in _inputs(1, 6, 1, 3, 2, seed=2))
    seg = jnp.asarray([[0, 0, 0, 1, 1, 1]])
    w = jax.random.normal(jax.random.PRNGKey(9), (1, 6, 1, 2), jnp.float64)

    def loss(q, k, v, lg, h0):
      o, ht = gated_linear_attention_reference(q, k, v, lg, initial_state=h0, segment_ids=seg)
      return jnp.sum(o * w) + jnp.sum(ht ** 2)

    loss = jax.jit(loss)
    args = [q, k, v, lg, h0]
    grads = jax.grad(loss, argnums=tuple(range(5)))(*args)
    eps = 1e-6
    rng = np.random.default_rng(0)
    for i in range(5):
      for _ in range(3):
        idx = tuple(rng.integers(0, s) for s in args[i].shape)
        plus = [a.at[idx].add(eps) if j == i else a for j, a in enumerate(args)]
        minus = [a.at[idx].add(-eps) if j == i else a for j, a in enumerate(args)]
        fd = (loss(*plus) - loss(*minus)) / (2 * eps)
        np.testing.assert_allclose(float(grads[i][idx]), float(fd), rtol=1e-5, atol=1e-7)


# Its branches run by default: T not a chunk multiple, Dk != Dv, initial state and query scale with every gradient in
# test_chunk_vs_recurrent[B1-T40-H1-K130-V80-C16-c8-h0]; ragged T + initial state under _compare's elementwise TOL in
# test_kernel_segment_resets; sub-chunk 4 (four sub-chunks per chunk) in test_kernel_extreme_gates.
@pytest.mark.slow
def test_kernel_matches_reference_ragged_length_initial_state():
  """T = 45 (not a multiple of the chunk 16), Dk != Dv, initial state, query scale; two sub-chunk sizes."""
  _compare(*_inputs(1, 45, 2, 8, 12, seed=3), scale=0.5, chunk_size=16, sub_chunk_size=4)


@pytest.mark.slow
def test_kernel_matches_reference_one_sub_chunk():
  _compare(*_inputs(2, 45, 2, 8, 12, seed=3), scale=0.5, chunk_size=16, sub_chunk_size=16)


def test_kernel_segment_resets():
  args = _inputs(2, 40, 1, 8, 8, seed=4)
  seg = jnp.asarray([[0] * 7 + [1] * 20 + [2] * 13, [5] * 16 + [4] * 24], jnp.int32)   # a boundary on a chunk edge
  o, _ = _compare(*args, segment_ids=seg, chunk_size=16, sub_chunk_size=8)
  o_np, _ = _np_recurrence(*args[:4], initial_state=args[4], segment_ids=np.asarray(seg))
  np.testing.assert_allclose(np.asarray(o), o_np, atol=TOL, rtol=TOL)


def test_kernel_extreme_gates():
  """Head 0: log alpha ~ -1e-4 (alpha ~ 1, no decay); head 1: log alpha ~ -25 (alpha ~ 1e-11 per step: cumulative
  log gates of -400 in a chunk, where a naive exp(-b_s) overflows)."""
  q, k, v, _, h0, do, dht = _inputs(1, 32, 2, 8, 8, seed=5)
  near_one = jnp.full(q.shape[:2] + (1, 8), -1e-4)
  strong = -25.0 + jax.random.uniform(jax.random.PRNGKey(0), q.shape[:2] + (1, 8))
  lg = jnp.concatenate([near_one, strong], axis=2)
  _compare(q, k, v, lg, h0, do, dht, chunk_size=16, sub_chunk_size=4, tol=1e-4)


def test_two_halves_with_state_equal_whole():
  """Chunked run on [0, T/2) then [T/2, T) with the state passed equals one pass (kernel; T/2 not a chunk multiple)."""
  q, k, v, lg, h0, _, _ = _inputs(1, 42, 2, 8, 8, seed=6)
  run = lambda sl, s: gated_linear_attention(q[:, sl], k[:, sl], v[:, sl], lg[:, sl], initial_state=s,
                                             chunk_size=16, sub_chunk_size=8, interpret=True)
  o_all, ht_all = run(slice(0, 42), h0)
  o1, h1 = run(slice(0, 21), h0)
  o2, h2 = run(slice(21, 42), h1)
  np.testing.assert_allclose(np.asarray(jnp.concatenate([o1, o2], 1)), np.asarray(o_all), atol=TOL, rtol=TOL)
  np.testing.assert_allclose(np.asarray(h2), np.asarray(ht_all), atol=TOL, rtol=TOL)


def test_chunk_size_does_not_change_result():
  q, k, v, lg, h0, _, _ = _inputs(1, 48, 1, 8, 8, seed=7)
  outs = [gated_linear_attention(q, k, v, lg, initial_state=h0, chunk_size=c, sub_chunk_size=s, interpret=True)
          for c, s in ((16, 8), (48, 16), (64, 16))]
  for o, ht in outs[1:]:
    np.testing.assert_allclose(np.asarray(o), np.asarray(outs[0][0]), atol=TOL, rtol=TOL)
    np.testing.assert_allclose(np.asarray(ht), np.asarray(outs[0][1]), atol=TOL, rtol=TOL)


@pytest.mark.slow   # covered by test_bf16_matches_fp32_recurrence_with_scale (bf16 kernel with an initial state vs the
                    # fp32 recurrence: o in bf16, rel(o) < 5e-3 (here 2e-2), rel(final_state) < 1e-5, plus gradients)
def test_bf16_inputs():
  q, k, v, lg, h0, _, _ = _inputs(1, 40, 2, 16, 16, seed=8, dtype=jnp.bfloat16)
  o, ht = gated_linear_attention(q, k, v, lg, initial_state=h0, chunk_size=16, interpret=True)
  o_r, ht_r = gated_linear_attention_reference(q.astype(jnp.float32), k.astype(jnp.float32),
                                               v.astype(jnp.float32), lg, initial_state=h0)
  assert o.dtype == jnp.bfloat16
  rel = np.linalg.norm(np.asarray(o, np.float32) - np.asarray(o_r)) / np.linalg.norm(np.asarray(o_r))
  assert rel < 2e-2
  np.testing.assert_allclose(np.asarray(ht), np.asarray(ht_r), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("platform", ["gpu", pytest.param("tpu", marks=pytest.mark.slow)])
def test_fp16_state_beyond_fp16_range(platform):
  """fp16 inputs with an fp32 initial state of 1e5 (beyond fp16's 65504) and small queries: the output (~1e3) fits
  fp16 and must match the recurrence; the kernels used to multiply the state in fp16 (inf)."""
  rng = np.random.default_rng(0)
  q = jnp.asarray(rng.uniform(0, 1e-3, (1, 40, 1, 16)), jnp.float16)
  k = jnp.asarray(rng.uniform(0, 1, (1, 40, 1, 16)), jnp.float16)
  v = jnp.asarray(rng.uniform(1000, 2000, (1, 40, 1, 16)), jnp.float16)
  lg = jnp.zeros((1, 40, 1, 16), jnp.float32)
  h0 = jnp.full((1, 1, 16, 16), 1e5, jnp.float32)
  o, ht = gated_linear_attention(q, k, v, lg, initial_state=h0, chunk_size=16, sub_chunk_size=8, platform=platform,
                                 interpret=True)
  o_np, ht_np = _np_recurrence(q, k, v, lg, initial_state=h0)
  assert o.dtype == jnp.float16
  np.testing.assert_allclose(np.asarray(o, np.float64), o_np, rtol=2e-3)
  np.testing.assert_allclose(np.asarray(ht), ht_np, rtol=1e-5)


def test_no_initial_state_and_default_chunk_first_call():
  q, k, v, lg, _, _, _ = _inputs(1, 70, 1, 16, 16, seed=9)
  o, ht = gated_linear_attention(q, k, v, lg, interpret=True)          # chunk 64, T = 70: two chunks, padded
  o_np, ht_np = _np_recurrence(q, k, v, lg)
  assert np.all(np.isfinite(np.asarray(o)))
  np.testing.assert_allclose(np.asarray(o), o_np, atol=TOL, rtol=TOL)
  np.testing.assert_allclose(np.asarray(ht), ht_np, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("bad, match", [
    (dict(q=jnp.zeros((1, 8, 2))), "shape"),
    (dict(k=jnp.zeros((1, 8, 2, 5))), "share a shape"),
    (dict(v=jnp.zeros((1, 9, 2, 4))), "v must match"),
    (dict(initial_state=jnp.zeros((1, 2, 4, 5))), "initial_state"),
    (dict(segment_ids=jnp.zeros((1, 7), jnp.int32)), "segment_ids"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(chunk_size=16, sub_chunk_size=5), "divide"),
    (dict(scale=0.0), "scale"),
])
def test_validation_errors(bad, match):
  args = dict(q=jnp.zeros((1, 8, 2, 4)), k=jnp.zeros((1, 8, 2, 4)), v=jnp.zeros((1, 8, 2, 4)),
              log_gates=jnp.zeros((1, 8, 2, 4)))
  opts = {key: val for key, val in bad.items() if key not in args}
  args.update({key: val for key, val in bad.items() if key in args})
  with pytest.raises(ValueError, match=match):
    gated_linear_attention(args["q"], args["k"], args["v"], args["log_gates"], interpret=True, **opts)


def test_dispatch():
  q, k, v, lg, _, _, _ = _inputs(1, 10, 1, 4, 4, seed=10)
  o, _ = gla_attention(q, k, v, lg)                                    # CPU: the recurrence
  np.testing.assert_allclose(np.asarray(o), _np_recurrence(q, k, v, lg)[0], atol=TOL, rtol=TOL)
  with pytest.raises(ValueError, match="implementation"):
    gla_attention(q, k, v, lg, implementation="cudnn")
  if jax.default_backend() != "gpu":
    with pytest.raises(ValueError, match="interpret=True"):
      gla_attention(q, k, v, lg, implementation="pallas")


@pytest.mark.slow
@pytest.mark.parametrize("t", [192, 250])
def test_grid_longer_default_chunks(t):
  _compare(*_inputs(1, t, 2, 64, 64, seed=11), chunk_size=64, sub_chunk_size=16, tol=5e-5)


# ----------------------------------------------------------------------------------------------------------------------
# The flash-linear-attention restructure (issue 11): chunk vs recurrent, varlen, extreme gates, in fla's style.
# ----------------------------------------------------------------------------------------------------------------------

def _rel(a, b):
  """||a - b|| / ||b|| (fla's error ratio), computed in float64."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _check_chunk_vs_recurrent(kern, ref, args, cotangents, *, rtol, names=("dq", "dk", "dv", "dlog_gates", "dh0")):
  """fla's chain, second link: outputs, final states and every gradient of `kern` against `ref` (relative error)."""
  (o, ht), grads = _value_and_pullback(kern, args, cotangents)
  (o_r, ht_r), grads_r = _value_and_pullback(ref, args, cotangents)
  assert _rel(o, o_r) < rtol, ("o", _rel(o, o_r))
  assert _rel(ht, ht_r) < rtol, ("final_state", _rel(ht, ht_r))
  for name, a, b in zip(names, grads, grads_r):
    assert np.all(np.isfinite(np.asarray(a, np.float32))), name
    assert _rel(a, b) < rtol, (name, _rel(a, b))
  return o, ht


CHUNK_CASES = [
    # (B, T, H, Dk, Dv, chunk, sub, variant). Smaller shapes, segment resets and the initial state are covered by the
    # regression tests above (same comparison); these add several 64-wide state tiles and padded head dims.
    (1, 40, 1, 130, 80, 16, 8, "h0"),         # Kp = 256, Vp = 128: 4 x 2 state tiles
    pytest.param(2, 24, 1, 70, 200, 16, 8, "seg+h0", marks=pytest.mark.slow),   # 2 x 4 tiles, segment resets
]


@pytest.mark.parametrize("b, t, h, dk, dv, chunk, sub, variant", CHUNK_CASES,
                         ids=["B1-T40-H1-K130-V80-C16-c8-h0", "B2-T24-H1-K70-V200-C16-c8-seg+h0"])
def test_chunk_vs_recurrent(b, t, h, dk, dv, chunk, sub, variant):
  q, k, v, lg, h0, do, dht = _inputs(b, t, h, dk, dv, seed=t + dk)
  seg = None
  if "seg" in variant:                                                 # a reset on a chunk edge and one inside
    seg = jnp.asarray([[0] * 16 + [1] * 3 + [2] * (t - 19)] + [[3] * 9 + [4] * (t - 9)] * (b - 1), jnp.int32)
  opts = dict(scale=0.3, segment_ids=seg)
  kern = lambda q, k, v, lg, h0: gated_linear_attention(q, k, v, lg, initial_state=h0, chunk_size=chunk,
                                                        sub_chunk_size=sub, platform="gpu", interpret=True, **opts)
  ref = lambda q, k, v, lg, h0: gated_linear_attention_reference(q, k, v, lg, initial_state=h0, **opts)
  _check_chunk_vs_recurrent(kern, ref, (q, k, v, lg, h0), (do, dht), rtol=1e-5)


def test_varlen_per_sequence_states():
  """cu_seqlens packing (an empty sequence, one shorter than a chunk, ones crossing chunk edges), each sequence from
  its own initial state to its own final state (the oracle runs every sequence on its own): reference vs the NumPy
  oracle, kernel vs reference with gradients. cu_seqlens is traced (under jit)."""
  q, k, v, lg, _, do, _ = _inputs(1, 70, 2, 16, 16, seed=12)
  cu = np.array([0, 5, 5, 40, 70])
  h0 = jax.random.normal(jax.random.PRNGKey(13), (4, 2, 16, 16))
  dht = jax.random.normal(jax.random.PRNGKey(14), (4, 2, 16, 16))
  o_np, ht_np = _np_packed(q, k, v, lg, cu, h0, scale=0.5)
  o_r, ht_r = gated_linear_attention_reference(q, k, v, lg, scale=0.5, initial_state=h0, cu_seqlens=jnp.asarray(cu))
  assert _rel(o_r, o_np) < 1e-6 and _rel(ht_r, ht_np) < 1e-6
  assert np.allclose(np.asarray(ht_r[1]), np.asarray(h0[1]))         # the empty sequence keeps its initial state
  kern = jax.jit(lambda q, k, v, lg, h0, cu: gated_linear_attention(
      q, k, v, lg, scale=0.5, initial_state=h0, cu_seqlens=cu, chunk_size=16, sub_chunk_size=8, interpret=True))
  ref = lambda q, k, v, lg, h0: gated_linear_attention_reference(q, k, v, lg, scale=0.5, initial_state=h0,
                                                                 cu_seqlens=jnp.asarray(cu))
  _check_chunk_vs_recurrent(lambda *a: kern(*a, jnp.asarray(cu, jnp.int32)), ref, (q, k, v, lg, h0), (do, dht),
                            rtol=1e-5)


def test_extreme_log_gates_stay_finite():
  """-inf and -1e30 log gates (alpha = 0: the state is wiped) give the reference's outputs and gradients, no NaN.
  Before the restructure the kernel returned NaN at -inf (exp(-inf - -inf))."""
  q, k, v, lg, h0, do, dht = _inputs(1, 32, 2, 8, 8, seed=15)
  lg = lg.at[0, 3].set(-jnp.inf).at[0, 20, 0, :4].set(-1e30).at[0, 26:30, 1].set(-jnp.inf).at[0, 17, 1].set(-1e30)
  kern, ref = _fns(chunk_size=16, sub_chunk_size=4)                   # test_kernel_extreme_gates' programs
  (o_r, ht_r), grads_r = _value_and_pullback(ref, (q, k, v, lg, h0), (do, dht))
  assert np.all(np.isfinite(np.asarray(o_r))) and np.all(np.isfinite(np.asarray(grads_r[3])))
  _check_chunk_vs_recurrent(kern, ref, (q, k, v, lg, h0), (do, dht), rtol=1e-5)


def test_bf16_matches_fp32_recurrence_with_scale():
  """bf16 inputs (bf16 matmul operands, fp32 accumulation, scale and gates in fp32) against the fp32 recurrence on
  the same bf16-rounded inputs: fla's bf16 tolerance (error ratio <= 5e-3) on outputs, states and gradients.
  On the CPU device: on a GPU, XLA folds the interpreter's f32 -> bf16 -> f32 round trip of the hi + lo split
  (`_dot_split`) into the identity, so lo = 0 and the state keeps bf16's 8 bits (1.3e-3 on an H200, 2026-12-04); the
  compiled Triton kernel keeps the casts (benchmarks/attention.py checks it on the GPU)."""
  with jax.default_device(jax.devices("cpu")[0]):
    _bf16_matches_fp32_recurrence_with_scale()


def _bf16_matches_fp32_recurrence_with_scale():
  q, k, v, lg, h0, do, dht = _inputs(1, 48, 2, 32, 32, seed=16, dtype=jnp.bfloat16)
  scale = 32 ** -0.5
  kern = lambda q, k, v, lg, h0: gated_linear_attention(q, k, v, lg, scale=scale, initial_state=h0, chunk_size=16,
                                                        interpret=True)
  ref = lambda q, k, v, lg, h0: gated_linear_attention_reference(
      q.astype(jnp.float32), k.astype(jnp.float32), v.astype(jnp.float32), lg, scale=scale, initial_state=h0)
  do = do.astype(jnp.bfloat16)
  (o, ht), grads = _value_and_pullback(kern, (q, k, v, lg, h0), (do, dht))
  (o_r, ht_r), grads_r = _value_and_pullback(ref, (q, k, v, lg, h0), (do.astype(jnp.float32), dht))
  assert o.dtype == jnp.bfloat16
  assert _rel(o, o_r) < 5e-3, _rel(o, o_r)
  assert _rel(ht, ht_r) < 1e-5, _rel(ht, ht_r)                         # the state update keeps ~16 bits (hi + lo)
  for name, a, b in zip(("dq", "dk", "dv", "dlog_gates", "dh0"), grads, grads_r):
    assert _rel(a, b) < 1e-2, (name, _rel(a, b))


def test_validation_of_new_arguments():
  q = jnp.zeros((1, 8, 2, 4))
  cu = jnp.asarray([0, 3, 8])
  with pytest.raises(ValueError, match="cu_seqlens"):
    gated_linear_attention(q, q, q, q, cu_seqlens=jnp.asarray([0, 3, 7]), interpret=True)     # does not end at T
  with pytest.raises(TypeError, match="cu_seqlens"):
    gated_linear_attention(q, q, q, q, cu_seqlens=jnp.asarray([0.0, 8.0]), interpret=True)
  with pytest.raises(ValueError, match="batch of 1"):
    gated_linear_attention(jnp.zeros((2, 8, 2, 4)), *[jnp.zeros((2, 8, 2, 4))] * 3, cu_seqlens=cu, interpret=True)
  with pytest.raises(ValueError, match="not both"):
    gated_linear_attention(q, q, q, q, cu_seqlens=cu, segment_ids=jnp.zeros((1, 8), jnp.int32), interpret=True)
  with pytest.raises(ValueError, match="num_sequences"):
    gated_linear_attention(q, q, q, q, cu_seqlens=cu, initial_state=jnp.zeros((1, 2, 4, 4)), interpret=True)
  with pytest.raises(ValueError, match="platform"):
    gated_linear_attention(q, q, q, q, platform="cuda", interpret=True)
  if jax.default_backend() == "cpu":
    with pytest.raises(ValueError, match="interpret=True"):
      gated_linear_attention(q, q, q, q)
  with pytest.raises(ValueError, match="power of two"):                # compiled tiles; interpret allows it
    gated_linear_attention(q, q, q, q, chunk_size=48, platform="gpu")
  with pytest.raises(ValueError, match="precision"):
    gated_linear_attention(q, q, q, q, precision="highest", interpret=True)


def test_dispatch_platform():
  """gla_attention: an explicit platform picks the Pallas kernels (GPU Triton here, interpreted) without a GPU."""
  q, k, v, lg, _, _, _ = _inputs(1, 20, 1, 4, 4, seed=17)
  o_np, _ = _np_recurrence(q, k, v, lg)
  o, _ = gla_attention(q, k, v, lg, platform="gpu", interpret=True, chunk_size=16)
  np.testing.assert_allclose(np.asarray(o), o_np, atol=TOL, rtol=TOL)
  if jax.default_backend() == "cpu":
    with pytest.raises(ValueError, match="platform"):
      gla_attention(q, k, v, lg, implementation="pallas")


@pytest.mark.slow
@pytest.mark.parametrize("b, t, h, d", [(2, 256, 4, 64), (1, 200, 2, 128)], ids=["B2-T256-H4-D64", "B1-T200-H2-D128"])
def test_chunk_vs_recurrent_default_chunks(b, t, h, d):
  """Default chunk 64 / sub-chunk 16 at larger sizes, segment ids and initial state (slow in the interpreter)."""
  q, k, v, lg, h0, do, dht = _inputs(b, t, h, d, d, seed=18)
  seg = jnp.asarray([[0] * 70 + [1] * (t - 70)] * b, jnp.int32)
  kern = lambda q, k, v, lg, h0: gated_linear_attention(q, k, v, lg, scale=d ** -0.5, initial_state=h0,
                                                        segment_ids=seg, interpret=True)
  ref = lambda q, k, v, lg, h0: gated_linear_attention_reference(q, k, v, lg, scale=d ** -0.5, initial_state=h0,
                                                                 segment_ids=seg)
  _check_chunk_vs_recurrent(kern, ref, (q, k, v, lg, h0), (do, dht), rtol=2e-5)


def _fla_inputs(b, t, h, d, normalizer, dtype, n_states, seed=42):
  """flash-linear-attention's test inputs: q, k, v ~ U[0, 1), g = logsigmoid(U[0, 1)) / normalizer, h0 ~ U[0, 1)."""
  ks = jax.random.split(jax.random.PRNGKey(seed), 7)
  q, k, v = (jax.random.uniform(ks[i], (b, t, h, d)).astype(dtype) for i in range(3))
  g = jax.nn.log_sigmoid(jax.random.uniform(ks[3], (b, t, h, d))) / normalizer
  h0 = jax.random.uniform(ks[4], (n_states, h, d, d))
  do = jax.random.normal(ks[5], (b, t, h, d)).astype(dtype)
  dht = jax.random.normal(ks[6], (n_states, h, d, d))
  return q, k, v, g, h0, do, dht


FLA_CHUNK_CASES = [(1, 63, 1, 64, 1.0, "fp32"), (2, 256, 4, 60, 1.0, "fp32"), (2, 256, 4, 128, 0.1, "fp32"),
                   (2, 256, 4, 128, 10.0, "bf16"), (1, 128, 2, 256, 1.0, "bf16"), (1, 64, 2, 320, 1.0, "fp32")]


@pytest.mark.slow
@pytest.mark.parametrize("b, t, h, d, normalizer, dtype", FLA_CHUNK_CASES,
                         ids=["B{}-T{}-H{}-D{}-gate_logit_normalizer{}-{}".format(*c) for c in FLA_CHUNK_CASES])
def test_fla_chunk_cases(b, t, h, d, normalizer, dtype):
  """fla's `test_chunk` (tests/ops/test_gla.py) cases, T cut to <= 256 for the interpreter: chunk vs recurrent with
  fla's error-ratio tolerances (0.004 on o, 0.005 on the rest; bf16 compared with the recurrence on the same
  bf16-rounded inputs in fp32)."""
  dt = _DT[dtype]
  q, k, v, g, h0, do, dht = _fla_inputs(b, t, h, d, normalizer, dt, b)
  kern = lambda q, k, v, g, h0: gated_linear_attention(q, k, v, g, initial_state=h0, interpret=True)
  ref = lambda q, k, v, g, h0: gated_linear_attention_reference(*(x.astype(jnp.float32) for x in (q, k, v)), g,
                                                                initial_state=h0)
  (o, ht), vjp = jax.vjp(kern, q, k, v, g, h0)
  (o_r, ht_r), vjp_r = jax.vjp(ref, q, k, v, g, h0)
  assert _rel(o, o_r) < 0.004 and _rel(ht, ht_r) < 0.005
  for name, a, r in zip(("dq", "dk", "dv", "dg", "dh0"), vjp((do, dht)), vjp_r((do.astype(jnp.float32), dht))):
    assert _rel(a, r) < 0.005, (name, _rel(a, r))


FLA_VARLEN_CASES = [(4, 64, (0, 15)), (4, 64, (0, 0, 16)), (4, 64, (0, 256, 500, 1000)),
                    (4, 100, (0, 15, 100, 300, 1200, 2000))]


@pytest.mark.slow
@pytest.mark.parametrize("h, d, cu", FLA_VARLEN_CASES,
                         ids=[f"H{h}-D{d}-cu_seqlens{'_'.join(map(str, cu))}" for h, d, cu in FLA_VARLEN_CASES])
def test_fla_varlen_cases(h, d, cu):
  """fla's `test_chunk_varlen` cases (fp32 here): packed sequences with per-sequence initial and final states, chunk
  vs recurrent on outputs, final states and every gradient (fla's tolerances), and the oracle on the forward."""
  n = len(cu) - 1
  q, k, v, g, h0, do, dht = _fla_inputs(1, cu[-1], h, d, 1.0, jnp.float32, n)
  cu_arr = jnp.asarray(cu, jnp.int32)
  kern = lambda q, k, v, g, h0: gated_linear_attention(q, k, v, g, initial_state=h0, cu_seqlens=cu_arr,
                                                       interpret=True)
  ref = lambda q, k, v, g, h0: gated_linear_attention_reference(q, k, v, g, initial_state=h0, cu_seqlens=cu_arr)
  o, ht = _check_chunk_vs_recurrent(kern, ref, (q, k, v, g, h0), (do, dht), rtol=0.004)
  if cu[-1] <= 300:
    o_np, ht_np = _np_packed(q, k, v, g, np.asarray(cu), h0)
    assert _rel(o, o_np) < 1e-5 and _rel(ht, ht_np) < 1e-5
