"""Unified Embedding: many categorical features multiplexed into ONE shared table by per-feature hashing.

Benjamin Coleman, Wang-Cheng Kang, Matthew Fahrbach, Ruoxi Wang, Lichan Hong, Ed H. Chi, Derek Zhiyuan Cheng,
"Unified Embedding: Battle-Tested Feature Representations for Web-Scale ML Systems", NeurIPS 2023,
arXiv:2305.12102 (Sec. 3 feature multiplexing; Sec. 5 Unified Embedding: each feature f looks up k_f rows of the
shared table with its own hash functions and concatenates them).

`UnifiedEmbedding`: table E [B, d]; feature f's value v is embedded as concat_j E[h_{f,j}(v)], j = 1..k, with the
multiply-shift hash h_{f,j}(v) = (((a_{f,j} v + b_{f,j}) mod 2^32) >> 8) mod B of `nn.compressed_embedding.HashEmbed`
(a_{f,j} odd), one (a, b) per feature and probe: different features collide on different rows, so the shared table's
capacity is spent where the data needs it. The baseline with one table per feature at the same parameter budget is
`HashEmbed` per feature (`per_feature_hash_embeddings`).
"""

from __future__ import annotations

import random
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxlib_methods import validation
from jaxlib_methods.nn.compressed_embedding import HashEmbed



class UnifiedEmbedding(nnx.Module):
  """One shared embedding table for F features (Coleman et al., NeurIPS 2023, arXiv:2305.12102, Sec. 3 and 5).

  Args:
    vocab_sizes: the F features' id ranges (each < 2^31).
    num_rows: B rows of the shared table.
    features: d, the width of each row (a feature's embedding has k d entries).
    num_probes: k lookups per feature, concatenated.
    hash_seed: picks every (a, b) (one per feature and probe).
    param_dtype: dtype of the table.
    rngs: nnx.Rngs with a 'params' stream.
  """

  def __init__(self, vocab_sizes: Sequence[int], num_rows: int, features: int, *, num_probes: int = 1,
               hash_seed: int = 0, param_dtype=jnp.float32, rngs: nnx.Rngs):
    vocab_sizes = tuple(vocab_sizes)
    if not vocab_sizes:
      raise ValueError("vocab_sizes must name at least one feature")
    for i, v in enumerate(vocab_sizes):
      validation.check_int(v, f"vocab_sizes[{i}]", 1)
      if v >= 2 ** 31:
        raise ValueError(f"vocab_sizes[{i}] must be < 2^31, got {v}")
    validation.check_int(num_rows, "num_rows", 1)
    validation.check_int(features, "features", 1)
    validation.check_int(num_probes, "num_probes", 1)
    self.vocab_sizes, self.num_rows, self.num_probes = vocab_sizes, num_rows, num_probes
    r = random.Random(hash_seed)
    ab = [[(r.randrange(0, 2 ** 31) * 2 + 1, r.randrange(0, 2 ** 32)) for _ in range(num_probes)]
          for _ in vocab_sizes]
    self.hash_a = tuple(tuple(a for a, _ in f) for f in ab)   # [F][k] Python ints: static, not state
    self.hash_b = tuple(tuple(b for _, b in f) for f in ab)
    table = jax.random.normal(rngs.params(), (num_rows, features), jnp.float32) * features ** -0.5
    self.table = nnx.Param(table.astype(param_dtype))

  def rows(self, ids) -> jax.Array:
    """h_{f,j}(ids[..., f]) for every probe: [..., F, k] int32 rows of the shared table."""
    ids = jnp.asarray(ids)
    if not jnp.issubdtype(ids.dtype, jnp.integer):
      raise TypeError(f"ids must be an integer array, got ids.dtype={ids.dtype}")
    if ids.ndim < 1 or ids.shape[-1] != len(self.vocab_sizes):
      raise ValueError(f"ids must be [..., F] with F = {len(self.vocab_sizes)} features, got ids.shape={ids.shape}")
    if not isinstance(ids, jax.core.Tracer):
      v = np.asarray(ids)
      if v.size and (v.min() < 0 or np.any(v.max(axis=tuple(range(v.ndim - 1))) >= np.array(self.vocab_sizes))):
        raise ValueError(f"ids[..., f] must lie in [0, vocab_sizes[f]), vocab_sizes={self.vocab_sizes}")
    a, b = jnp.asarray(self.hash_a, jnp.uint32), jnp.asarray(self.hash_b, jnp.uint32)
    h = ids.astype(jnp.uint32)[..., None] * a + b                                   # wraps mod 2^32
    return ((h >> 8) % jnp.uint32(self.num_rows)).astype(jnp.int32)

  def __call__(self, ids) -> jax.Array:
    """ids [..., F] -> [..., F, k d]: each feature's k looked-up rows, concatenated."""
    e = self.table[...][self.rows(ids)]                                     # [..., F, k, d]
    return e.reshape(e.shape[:-2] + (-1,))


def per_feature_hash_embeddings(vocab_sizes: Sequence[int], rows_per_feature: Sequence[int], features: int, *,
                                hash_seed: int = 0, param_dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.List:
  """The baseline of Coleman et al. 2023 (arXiv:2305.12102, Sec. 3): one hashed table per feature
  (`HashEmbed(vocab_f, rows_f, d)`), e.g. at the same total rows as a `UnifiedEmbedding`.

  Args:
    vocab_sizes: the F features' id ranges.
    rows_per_feature: rows of each feature's table (each <= its vocabulary).
    features: d.
    hash_seed: base hash seed (feature f uses hash_seed + f).
    param_dtype: dtype of the tables.
    rngs: nnx.Rngs.

  Returns:
    nnx.List of F `HashEmbed` modules; embed ids [..., F] with `jnp.stack([t(ids[..., f]) for f, t in ...], -2)`.
  """
  if len(vocab_sizes) != len(rows_per_feature) or not vocab_sizes:
    raise ValueError(f"vocab_sizes and rows_per_feature must have the same nonzero length, got {len(vocab_sizes)} "
                     f"and {len(rows_per_feature)}")
  return nnx.List([HashEmbed(int(v), int(min(r, v)), features, hash_seed=hash_seed + f, param_dtype=param_dtype,
                             rngs=rngs) for f, (v, r) in enumerate(zip(vocab_sizes, rows_per_feature))])
