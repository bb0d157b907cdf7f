"""MatryoshkaKV: trainable orthogonal projections of each head's keys and values, truncated to their first r columns
to compress the KV cache, trained so that every prefix r works (Matryoshka training).

Paper [82]: Bokai Lin, Zihao Zeng, Zipeng Xiao, Siqi Kou, Tianqi Hou, Xiaofeng Gao, Hao Zhang, Zhijie Deng,
"MatryoshkaKV: Adaptive KV Compression via Trainable Orthogonal Projection", ICLR 2025, arXiv:2410.14731 (Sec. 3):
per head, orthogonal U_K, U_V [H, H]; the cache stores K U_K[:, :r_K] and V U_V[:, :r_V]; attention is

    softmax(Q U_K[:, :r_K] (K U_K[:, :r_K])^T / sqrt(H)) V U_V[:, :r_V] U_V[:, :r_V]^T,

the query projected by the same U_K (so r_K = H gives Q K^T exactly) and the output mapped back by U_V^T (so
r_V = H gives the attention output exactly); U_K, U_V are initialised by PCA of the keys / values (eigenvectors of
the second-moment matrix, largest first) and kept orthogonal by the Cayley transform U = U_0 (I - S)(I + S)^(-1),
S skew-symmetric (S = 0 at init); training samples a rank per step and distils the full model's outputs
(Matryoshka training), so that the nested prefixes U[:, :r] are good for every r.

The rank enters as a column mask (U diag(1[i < r])), equal to slicing, so r may be a traced value (sampled inside a
jitted step).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods.nn.attention import MultiHeadAttention
from jaxlib_methods.validation import check_floating


def cayley_orthogonal(s_raw: jax.Array) -> jax.Array:
  """The Cayley transform (I - S)(I + S)^(-1) of the skew-symmetric S = s_raw - s_raw^T: an orthogonal matrix, I at
  s_raw = 0 (Lin et al. 2024, MatryoshkaKV, arXiv:2410.14731, Sec. 3, orthogonality by Cayley parametrisation).

  Args:
    s_raw: [..., H, H] unconstrained parameters.

  Returns:
    [..., H, H] orthogonal matrices.
  """
  s = s_raw - jnp.swapaxes(s_raw, -1, -2)
  eye = jnp.eye(s.shape[-1], dtype=s.dtype)
  return jnp.linalg.solve(eye + s, eye - s)           # (I + S)^-1 (I - S) = (I - S)(I + S)^-1: the factors commute


def pca_basis(states: jax.Array) -> jax.Array:
  """PCA initialisation of a head's projection (Lin et al. 2024, arXiv:2410.14731, Sec. 3): the eigenvectors of the
  second-moment matrix X^T X of the key (or value) states, in decreasing eigenvalue order, so that U[:, :r] is the
  best rank-r subspace for reconstructing the states. Run it eagerly (a float64 / vmapped eigh inside jit can
  deadlock XLA:CPU).

  Args:
    states: [n, N, H] the states of N heads on n calibration tokens.

  Returns:
    U_0 [N, H, H] orthogonal, columns by decreasing variance.
  """
  states = check_floating(states, "states")
  if states.ndim != 3:
    raise ValueError(f"states must be [n, N, H], got shape {states.shape}")
  cov = jnp.einsum("tnh,tng->nhg", states, states)
  _, vec = jnp.linalg.eigh(cov)
  return vec[..., ::-1]


def rank_mask(rank, size: int, dtype=jnp.float32) -> jax.Array:
  """1[i < r] for i < size: U * mask equals U[:, :r] padded with zero columns (r may be traced)."""
  return (jnp.arange(size) < rank).astype(dtype)


def matryoshka_attention(q: jax.Array, k: jax.Array, v: jax.Array, u_k: jax.Array, u_v: jax.Array, rank_k,
                         rank_v, *, causal: bool = True) -> jax.Array:
  """Attention with keys and values compressed to the first r_K / r_V columns of per-head orthogonal projections
  (Lin et al. 2024, MatryoshkaKV, arXiv:2410.14731, Sec. 3; module docstring). r = H is the exact attention.

  Args:
    q: [B, T, N, H] queries.
    k: [B, S, N, H] keys.
    v: [B, S, N, H] values.
    u_k: [N, H, H] orthogonal key projections.
    u_v: [N, H, H] orthogonal value projections.
    rank_k: r_K in [0, H] (int or traced scalar).
    rank_v: r_V in [0, H] (int or traced scalar).
    causal: causal mask aligned bottom-right: query t sees keys s <= t + S - T (T == S: the usual mask; T < S: the
      last T positions decoded against a cache of S keys; T > S is a ValueError).

  Returns:
    [B, T, N, H] the attention output in the heads' original coordinates.
  """
  if q.ndim != 4 or k.shape != v.shape or q.shape[0] != k.shape[0] or q.shape[2:] != k.shape[2:]:
    raise ValueError(f"need q [B, T, N, H], k and v [B, S, N, H], got {q.shape}, {k.shape}, {v.shape}")
  n, h = q.shape[2:]
  if causal and q.shape[1] > k.shape[1]:
    raise ValueError(f"causal attention needs T <= S (the queries are the last T of the S positions), got "
                     f"T={q.shape[1]}, S={k.shape[1]}")
  if u_k.shape != (n, h, h) or u_v.shape != (n, h, h):
    raise ValueError(f"u_k and u_v must be [N={n}, H={h}, H={h}], got {u_k.shape} and {u_v.shape}")
  for name, r in (("rank_k", rank_k), ("rank_v", rank_v)):
    if isinstance(r, (int, np.integer)) and not 0 <= r <= h:
      raise ValueError(f"{name} must be in [0, {h}], got {name}={r}")
  pk = u_k * rank_mask(rank_k, h, u_k.dtype)
  pv = u_v * rank_mask(rank_v, h, u_v.dtype)
  qc = jnp.einsum("btnh,nhr->btnr", q, pk)
  kc = jnp.einsum("bsnh,nhr->bsnr", k, pk)                     # the compressed key cache
  vc = jnp.einsum("bsnh,nhr->bsnr", v, pv)                     # the compressed value cache
  s = jnp.einsum("btnr,bsnr->bnts", qc, kc) / jnp.sqrt(jnp.asarray(h, q.dtype))
  if causal:
    s = jnp.where(jnp.tril(jnp.ones(s.shape[-2:], bool), k=k.shape[1] - q.shape[1]), s, -jnp.inf)
  o = jnp.einsum("bnts,bsnr->btnr", jax.nn.softmax(s, axis=-1), vc)
  return jnp.einsum("btnr,nhr->btnh", o, pv)


class MatryoshkaKVAttention(nnx.Module):
  """Self-attention (a `MultiHeadAttention` without RoPE) with MatryoshkaKV's orthogonal key / value projections
  (Lin et al. 2024, arXiv:2410.14731; module docstring). U_K = U0_K Cayley(S_K), U_V = U0_V Cayley(S_V); only S_K
  and S_V are `nnx.Param`s (the base attention's weights and the PCA bases U0 are `nnx.Variable`s, frozen).
  x [B, T, d], rank_k, rank_v -> [B, T, d].

  Args:
    base: the attention to compress (use_rope=False, num_kv_heads == num_heads).
    u0_k: [N, H, H] initial key basis (`pca_basis`; default identity).
    u0_v: [N, H, H] initial value basis (default identity).
    param_dtype: dtype of S_K, S_V.
  """

  def __init__(self, base: MultiHeadAttention, u0_k=None, u0_v=None, *, param_dtype: Any = jnp.float32):
    if base.use_rope or base.num_kv_heads != base.num_heads or base.qk_layernorm:
      raise ValueError("base must be a MultiHeadAttention with use_rope=False, qk_layernorm=False and "
                       "num_kv_heads == num_heads")
    n, h = base.num_heads, base.head_dim
    eye = jnp.broadcast_to(jnp.eye(h), (n, h, h))
    for name, u in (("u0_k", u0_k), ("u0_v", u0_v)):
      if u is not None and tuple(u.shape) != (n, h, h):
        raise ValueError(f"{name} must be [N={n}, H={h}, H={h}], got {tuple(u.shape)}")
    self.causal, self.num_heads, self.head_dim = base.causal, n, h
    self.wq = nnx.Variable(base.q_weight_dnh[...])
    self.wk = nnx.Variable(base.k_weight_dkh[...])
    self.wv = nnx.Variable(base.v_weight_dkh[...])
    self.wo = nnx.Variable(base.o_weight_nhd[...])
    self.u0_k = nnx.Variable(jnp.asarray(eye if u0_k is None else u0_k, jnp.float32))
    self.u0_v = nnx.Variable(jnp.asarray(eye if u0_v is None else u0_v, jnp.float32))
    self.s_k = nnx.Param(jnp.zeros((n, h, h), param_dtype))
    self.s_v = nnx.Param(jnp.zeros((n, h, h), param_dtype))

  def projections(self) -> tuple[jax.Array, jax.Array]:
    """(U_K, U_V), each [N, H, H] orthogonal."""
    uk = self.u0_k[...] @ cayley_orthogonal(self.s_k[...].astype(jnp.float32))
    uv = self.u0_v[...] @ cayley_orthogonal(self.s_v[...].astype(jnp.float32))
    return uk, uv

  def qkv(self, x: jax.Array):
    """The base attention's q, k, v [B, T, N, H]."""
    return tuple(jnp.einsum("BTD,DNH->BTNH", x, w[...].astype(x.dtype)) for w in (self.wq, self.wk, self.wv))

  def __call__(self, x: jax.Array, rank_k, rank_v) -> jax.Array:
    x = check_floating(x, "x")
    if x.ndim != 3 or x.shape[-1] != self.wq.shape[0]:
      raise ValueError(f"x must be [B, T, {self.wq.shape[0]}], got shape {x.shape}")
    q, k, v = self.qkv(x)
    uk, uv = self.projections()
    o = matryoshka_attention(q, k, v, uk.astype(x.dtype), uv.astype(x.dtype), rank_k, rank_v, causal=self.causal)
    return jnp.einsum("BTNH,NHD->BTD", o, self.wo[...].astype(x.dtype))
