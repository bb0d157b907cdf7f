"""Gated Linear Attention: recurrent reference vs a float64 NumPy loop, chunked Pallas kernel (interpret) vs reference.

Chain of checks (the fla test pattern): `_np_recurrence` (float64 NumPy transcription of S_t = diag(a_t) S_{t-1} +
k_t v_t^T, o_t = S_t^T q_t, written here) checks the library's lax.scan reference, its gradients are checked by
central finite differences in float64, and the chunked kernel is checked against the reference on outputs, final
state and every gradient (q, k, v, log_gates, initial_state).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.kernels import gated_linear_attention, gated_linear_attention_reference, gla_attention

TOL = 2e-5


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


def _compare(q, k, v, lg, h0, do, dht, *, tol=TOL, **opts):
  """Kernel vs reference: outputs, final state and all gradients (cotangents on both outputs)."""
  kern = lambda q, k, v, lg, h0: gated_linear_attention(q, k, v, lg, initial_state=h0, interpret=True, **opts)
  ref_opts = {key: val for key, val in opts.items() if key in ("scale", "segment_ids")}
  ref = lambda q, k, v, lg, h0: gated_linear_attention_reference(q, k, v, lg, initial_state=h0, **ref_opts)
  (o, ht), vjp = jax.vjp(kern, q, k, v, lg, h0)
  (o_r, ht_r), vjp_r = jax.vjp(ref, q, k, v, lg, h0)
  np.testing.assert_allclose(np.asarray(o, np.float32), np.asarray(o_r, np.float32), atol=tol, rtol=tol, err_msg="o")
  np.testing.assert_allclose(np.asarray(ht), np.asarray(ht_r), atol=tol, rtol=tol, err_msg="final_state")
  for name, a, b in zip(["dq", "dk", "dv", "dlog_gates", "dinitial_state"], vjp((do.astype(o.dtype), dht)),
                        vjp_r((do.astype(o.dtype), dht))):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    assert np.all(np.isfinite(a)), name
    np.testing.assert_allclose(a, b, atol=tol * max(1.0, np.abs(b).max()), rtol=tol, err_msg=name)
  return o, ht


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


def test_bf16_inputs():
  q, k, v, lg, h0, _, _ = _inputs(1, 40, 2, 16, 16, seed=8, dtype=jnp.bfloat16)
  o, ht = gated_linear_attention(q, k, v, lg, initial_state=h0, chunk_size=16, interpret=True)
  o_r, ht_r = gated_linear_attention_reference(q.astype(jnp.float32), k.astype(jnp.float32),
                                               v.astype(jnp.float32), lg, initial_state=h0)
  assert o.dtype == jnp.bfloat16
  rel = np.linalg.norm(np.asarray(o, np.float32) - np.asarray(o_r)) / np.linalg.norm(np.asarray(o_r))
  assert rel < 2e-2
  np.testing.assert_allclose(np.asarray(ht), np.asarray(ht_r), atol=1e-4, rtol=1e-4)


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
