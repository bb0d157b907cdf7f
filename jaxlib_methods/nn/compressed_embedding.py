"""Compressed embedding tables: the hashing trick, quotient-remainder (QR) and tensor-train (TT) embeddings.

Zhang, Zhao, Miao, Shao, Liu, Yang, Cui, "Experimental Analysis of Large-scale Learnable Vector Storage
Compression", VLDB 2024, arXiv:2311.15578 (Sec. 3, the compression methods it benchmarks; originally Weinberger et
al. 2009 (hashing), Shi et al. 2020, arXiv:1909.02107 (QR), Yin et al. 2021, arXiv:2101.11714 (TT-Rec)). Each
module maps integer ids [...] in [0, N) to embeddings [..., d] with far fewer than N d parameters:

- `HashEmbed`: id -> table[h(id)], h(id) = (((a id + b) mod 2^32) >> 8) mod B a fixed multiply-shift hash (a odd,
  seeded); B d parameters, colliding ids share a row.
- `QREmbed`: id -> E_q[id // m] (op) E_r[id mod m] with op in {mult, add, concat}; (ceil(N / m) + m) d parameters
  (concat: half the width per table); (id // m, id mod m) is unique per id, so no two ids share both rows.
- `TTEmbed`: N = prod_k n_k, d = prod_k d_k; id's mixed-radix digits (i_1..i_K) select core slices
  G_k[i_k] of shape (r_{k-1}, d_k, r_k) (r_0 = r_K = 1) whose chained product is the embedding;
  sum_k n_k r_{k-1} d_k r_k parameters. `full_table()` contracts the cores into the dense [N, d] table it represents.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

def _check_ids(ids, N: int) -> jax.Array:
  ids = jnp.asarray(ids)
  if not jnp.issubdtype(ids.dtype, jnp.integer):
    raise TypeError(f"ids must be an integer array, got ids.dtype={ids.dtype}")
  if not isinstance(ids, jax.core.Tracer):
    import numpy as np
    v = np.asarray(ids)
    if v.size and (v.min() < 0 or v.max() >= N):
      raise ValueError(f"ids must lie in [0, num_embeddings={N}), got min={v.min()}, max={v.max()}")
  return ids


def _normal_tables(key, shapes, scales, offsets, dtype) -> list:
  """offset + scale * N(0, 1) tables of the given shapes from ONE normal draw (one compilation per module size,
  not one per table shape and op: construction stays cheap outside jit)."""
  import numpy as np
  sizes = [math.prod(sh) for sh in shapes]
  flat = np.asarray(jax.random.normal(key, (sum(sizes),), jnp.float32), np.float64)
  out, start = [], 0
  for sh, size, sc, off in zip(shapes, sizes, scales, offsets):
    out.append(jnp.asarray((off + sc * flat[start:start + size]).reshape(sh), dtype))
    start += size
  return out


def _check_positive_int(name: str, v) -> None:
  if isinstance(v, bool) or not isinstance(v, int):
    raise TypeError(f"{name} must be an int, got {name}={v!r}")
  if v < 1:
    raise ValueError(f"{name} must be >= 1, got {name}={v!r}")


class HashEmbed(nnx.Module):
  """Hashing-trick embedding (Zhang et al. 2024, arXiv:2311.15578, Sec. 3): B buckets shared by N ids.

  Args:
    num_embeddings: int N, the id range.
    num_buckets: int B <= N rows stored.
    features: int d.
    hash_seed: int, picks the universal hash's (a, b).
    param_dtype: dtype of the table.
    rngs: nnx.Rngs with a 'params' stream.
  """

  def __init__(self, num_embeddings: int, num_buckets: int, features: int, *, hash_seed: int = 0,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    for name, v in (("num_embeddings", num_embeddings), ("num_buckets", num_buckets), ("features", features)):
      _check_positive_int(name, v)
    if num_buckets > num_embeddings:
      raise ValueError(f"num_buckets must be <= num_embeddings, got {num_buckets=}, {num_embeddings=}")
    if num_embeddings >= 2 ** 31:
      raise ValueError(f"num_embeddings must be < 2^31, got {num_embeddings=}")
    import random
    r = random.Random(hash_seed)
    self.a, self.b = r.randrange(0, 2 ** 31) * 2 + 1, r.randrange(0, 2 ** 32)
    self.num_embeddings, self.num_buckets = num_embeddings, num_buckets
    (table,) = _normal_tables(rngs.params(), [(num_buckets, features)], [features ** -0.5], [0.0], param_dtype)
    self.table = nnx.Param(table)

  def bucket(self, ids) -> jax.Array:
    """h(id) = (((a id + b) mod 2^32) >> 8) mod B (uint32 wrap-around arithmetic, a odd); [...] int32 buckets."""
    ids = _check_ids(ids, self.num_embeddings).astype(jnp.uint32)
    h = ids * jnp.uint32(self.a) + jnp.uint32(self.b)  # wraps mod 2^32
    return ((h >> 8) % jnp.uint32(self.num_buckets)).astype(jnp.int32)

  def __call__(self, ids) -> jax.Array:
    return self.table[...][self.bucket(ids)]


class QREmbed(nnx.Module):
  """Quotient-remainder embedding (Shi et al. 2020; Zhang et al. 2024, arXiv:2311.15578, Sec. 3).

  Args:
    num_embeddings: int N.
    num_collisions: int m >= 1: ids share a quotient row in blocks of m; the remainder table has m rows.
    features: int d (even for op='concat').
    op: 'mult' (elementwise product, the paper's default), 'add' or 'concat'.
    param_dtype: dtype of the tables.
    rngs: nnx.Rngs with a 'params' stream.
  """

  def __init__(self, num_embeddings: int, num_collisions: int, features: int, *,
               op: Literal["mult", "add", "concat"] = "mult", param_dtype=jnp.float32, rngs: nnx.Rngs):
    for name, v in (("num_embeddings", num_embeddings), ("num_collisions", num_collisions), ("features", features)):
      _check_positive_int(name, v)
    if op not in ("mult", "add", "concat"):
      raise ValueError(f"op must be 'mult', 'add' or 'concat', got {op=}")
    if op == "concat" and features % 2:
      raise ValueError(f"op='concat' needs an even number of features, got {features=}")
    self.num_embeddings, self.m, self.op = num_embeddings, num_collisions, op
    width = features // 2 if op == "concat" else features
    nq = -(-num_embeddings // num_collisions)
    # mult: 1 + 0.1 N(0, 1) (products start near 1); add / concat: N(0, 1 / d).
    scale, offset = (0.1, 1.0) if op == "mult" else (features ** -0.5, 0.0)
    quotient, remainder = _normal_tables(rngs.params(), [(nq, width), (num_collisions, width)], [scale] * 2,
                                         [offset] * 2, param_dtype)
    self.quotient = nnx.Param(quotient)
    self.remainder = nnx.Param(remainder)

  def indices(self, ids):
    """(id // m, id mod m): unique per id."""
    ids = _check_ids(ids, self.num_embeddings)
    return ids // self.m, ids % self.m

  def __call__(self, ids) -> jax.Array:
    q, r = self.indices(ids)
    eq, er = self.quotient[...][q], self.remainder[...][r]
    if self.op == "mult":
      return eq * er
    if self.op == "add":
      return eq + er
    return jnp.concatenate([eq, er], axis=-1)


class TTEmbed(nnx.Module):
  """Tensor-train embedding (TT-Rec, Yin et al. 2021; Zhang et al. 2024, arXiv:2311.15578, Sec. 3).

  Args:
    vocab_factors: (n_1, ..., n_K), N = prod n_k ids.
    dim_factors: (d_1, ..., d_K), d = prod d_k features.
    ranks: (r_1, ..., r_{K-1}) inner TT ranks.
    param_dtype: dtype of the cores.
    rngs: nnx.Rngs with a 'params' stream.
  """

  def __init__(self, vocab_factors: Sequence[int], dim_factors: Sequence[int], ranks: Sequence[int], *,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    vocab_factors, dim_factors, ranks = tuple(vocab_factors), tuple(dim_factors), tuple(ranks)
    K = len(vocab_factors)
    if K < 1 or len(dim_factors) != K or len(ranks) != K - 1:
      raise ValueError(f"need K >= 1 vocab_factors, K dim_factors and K - 1 ranks, got {vocab_factors=}, "
                       f"{dim_factors=}, {ranks=}")
    for name, seq in (("vocab_factors", vocab_factors), ("dim_factors", dim_factors), ("ranks", ranks)):
      for v in seq:
        _check_positive_int(name, v)
    self.vocab_factors, self.dim_factors = vocab_factors, dim_factors
    self.num_embeddings, self.features = math.prod(vocab_factors), math.prod(dim_factors)
    r = (1,) + ranks + (1,)
    # Entries of core k ~ N(0, 1 / (r_{k-1} d^{1/K})): the chained product has variance ~1 / d per feature.
    shapes = [(vocab_factors[k], r[k], dim_factors[k], r[k + 1]) for k in range(K)]
    scales = [r[k] ** -0.5 * self.features ** (-0.5 / K) for k in range(K)]
    cores = _normal_tables(rngs.params(), shapes, scales, [0.0] * K, param_dtype)
    self.cores = nnx.List([nnx.Param(c) for c in cores])

  def digits(self, ids):
    """Mixed-radix digits (i_1, ..., i_K) of id, i_1 most significant."""
    ids = _check_ids(ids, self.num_embeddings)
    out, rest = [], ids
    for n in reversed(self.vocab_factors):
      out.append(rest % n)
      rest = rest // n
    return out[::-1]

  def __call__(self, ids) -> jax.Array:
    digits = self.digits(ids)
    g = self.cores[0][...][digits[0]]  # [..., 1, d_1, r_1]
    acc = g[..., 0, :, :]  # [..., D, r]
    for k in range(1, len(digits)):
      core = self.cores[k][...][digits[k]]  # [..., r_{k-1}, d_k, r_k]
      acc = jnp.einsum("...ar,...rbs->...abs", acc, core)
      acc = acc.reshape(acc.shape[:-3] + (-1, acc.shape[-1]))
    return acc[..., 0]

  def full_table(self) -> jax.Array:
    """The dense [N, d] table the cores represent (for tests and small N)."""
    return self(jnp.arange(self.num_embeddings))
