"""MatryoshkaKV [82]: r_K = r_V = H reproduces the base MultiHeadAttention exactly (with trained, non-identity
orthogonal projections); truncated attention against a NumPy transcription that slices U[:, :r] (the mask form equals
slicing, and a traced r equals a static r); Cayley matrices are orthogonal; the PCA basis against NumPy's eigh and its
nested-prefix optimality (Eckart-Young); the NNX contract; bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.attention import MultiHeadAttention
from jaxlib_methods.nn.matryoshka_kv import (MatryoshkaKVAttention, cayley_orthogonal, matryoshka_attention,
                                             pca_basis)
from tests.nn._layer_contract import check_layer_contract


def _np_trunc_attn(q, k, v, uk, uv, rk, rv):        # [T, N, H], slicing U[:, :r]
  T = q.shape[0]
  out = np.zeros_like(q)
  for n in range(q.shape[1]):
    a, b = uk[n][:, :rk], uv[n][:, :rv]
    s = (q[:, n] @ a) @ (k[:, n] @ a).T / np.sqrt(q.shape[2])
    s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    out[:, n] = p @ (v[:, n] @ b) @ b.T
  return out


def test_exact_full_rank_truncation_cayley_and_pca_vs_numpy():
  base = MultiHeadAttention(16, 2, use_rope=False, implementation="xla", rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 6, 16))
  rng = np.random.default_rng(0)
  m = MatryoshkaKVAttention(base)
  m.s_k[...] = jnp.asarray(rng.normal(size=(2, 8, 8)), jnp.float32)          # non-trivial projections
  m.s_v[...] = jnp.asarray(rng.normal(size=(2, 8, 8)), jnp.float32)
  uk, uv = (np.asarray(u) for u in nnx.jit(lambda m: m.projections())(m))
  np.testing.assert_allclose(np.einsum("nhg,nhf->ngf", uk, uk), np.broadcast_to(np.eye(8), (2, 8, 8)), atol=1e-5)
  np.testing.assert_allclose(np.asarray(nnx.jit(lambda m, x: m(x, 8, 8))(m, x)),
                             np.asarray(nnx.jit(lambda b, x: b(x))(base, x)), atol=2e-5)
  # truncated ranks vs NumPy slicing (float64), and a traced rank equals the static one
  with jax.enable_x64(True):
    q, k, v = (rng.normal(size=(1, 5, 2, 8)) for _ in range(3))
    cayley = jax.jit(cayley_orthogonal)
    ukd = np.asarray(cayley(jnp.asarray(rng.normal(size=(2, 8, 8)))))
    uvd = np.asarray(cayley(jnp.asarray(rng.normal(size=(2, 8, 8)))))
    args = [jnp.asarray(a) for a in (q, k, v, ukd, uvd)]
    got = np.asarray(jax.jit(matryoshka_attention, static_argnums=(5, 6))(*args, 3, 5))  # static Python ranks
    traced = np.asarray(jax.jit(matryoshka_attention)(*args, jnp.int32(3), jnp.int32(5)))
  np.testing.assert_allclose(got[0], _np_trunc_attn(q[0], k[0], v[0], ukd, uvd, 3, 5), rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(traced, got, rtol=1e-12, atol=1e-14)
  # PCA: columns = eigenvectors by decreasing eigenvalue; the prefix r is the best rank-r reconstruction
  states = rng.normal(size=(200, 2, 8)) * np.linspace(3, 0.2, 8)
  u0 = np.asarray(pca_basis(jnp.asarray(states, jnp.float32)))
  for n in range(2):
    w, vec = np.linalg.eigh(states[:, n].T @ states[:, n])
    np.testing.assert_allclose(np.abs(np.sum(u0[n] * vec[:, ::-1], 0)), 1.0, atol=1e-4)
    for r in (2, 4):
      err = np.linalg.norm(states[:, n] - states[:, n] @ u0[n][:, :r] @ u0[n][:, :r].T) ** 2
      np.testing.assert_allclose(err, w[: 8 - r].sum(), rtol=1e-3)


@pytest.mark.slow  # nnx.jit, pure train step, bf16 and orbax: compile-heavy, kept out of the default run
def test_contract(tmp_path):
  x = jax.random.normal(jax.random.key(0), (2, 5, 8))
  base = MultiHeadAttention(8, 2, use_rope=False, implementation="xla", rngs=nnx.Rngs(0))

  class _Rank(nnx.Module):
    def __init__(self, dt):
      self.m = MatryoshkaKVAttention(base, param_dtype=dt)
      self.m.s_k[...] = (0.1 * jnp.triu(jnp.ones((2, 4, 4)), 1)).astype(dt)

    def __call__(self, x):
      return self.m(x, 2, 3)

  check_layer_contract(_Rank, x, tmp_path, loss=lambda m, x: jnp.mean((m(x) - base(x)) ** 2))


def test_bad_inputs():
  x = jnp.ones((2, 5, 8))
  base = MultiHeadAttention(8, 2, use_rope=False, implementation="xla", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="use_rope"):
    MatryoshkaKVAttention(MultiHeadAttention(8, 2, rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match="rank_k"):
    MatryoshkaKVAttention(base)(x, 5, 2)
  with pytest.raises(ValueError, match="u0_k"):
    MatryoshkaKVAttention(base, u0_k=jnp.eye(4))


def test_causal_decode_with_fewer_queries_aligns_bottom_right():
  # audit 2026-12-03: T < S used a top-left tril, so a one-token decode step saw only key 0. The last T queries of
  # a full causal pass must equal a decode of those T queries against all S keys (float64 NumPy softmax reference).
  rng = np.random.default_rng(0)
  b, s, n, h = 1, 6, 1, 4
  q, k, v = (rng.normal(size=(b, s, n, h)) for _ in range(3))
  eye = np.broadcast_to(np.eye(h), (n, h, h))
  with jax.enable_x64(True):
    full = np.asarray(matryoshka_attention(q, k, v, eye, eye, h, h, causal=True))
    last2 = np.asarray(matryoshka_attention(q[:, -2:], k, v, eye, eye, h, h, causal=True))
  np.testing.assert_allclose(last2, full[:, -2:], rtol=1e-12)
  logits = q[0, -1, 0] @ k[0, :, 0].T / np.sqrt(h)
  p = np.exp(logits - logits.max()); p /= p.sum()
  np.testing.assert_allclose(last2[0, -1, 0], p @ v[0, :, 0], rtol=1e-12)   # the last query sees every key
  with pytest.raises(ValueError, match="T <= S"):
    matryoshka_attention(q, k[:, :3], v[:, :3], eye, eye, h, h, causal=True)
