"""Discrete key-value bottleneck: frozen encoder features -> C heads -> nearest frozen key per head -> its learnable
value -> a non-parametric decoder; only the fetched values are ever updated, so learning is local.

Paper [5]: Frederik Träuble, Anirudh Goyal, Nasim Rahaman, Michael Mozer, Kenji Kawaguchi, Yoshua Bengio, Bernhard
Schölkopf, "Discrete Key-Value Bottleneck", ICML 2023, arXiv:2207.11240 (Sec. 3). The encoder's output z in R^D is
split into C heads by fixed random projections, h_c = P_c z in R^{d_k}; head c has its own codebook of N (key,
value) pairs; h_c snaps to its nearest key (squared Euclidean distance), i_c = argmin_i ||h_c - k_{c,i}||^2, and the
value v_{c, i_c} in R^{d_v} is fetched. The keys are initialised on unlabelled inputs with exponential-moving-average
k-means (the VQ-VAE codebook update, van den Oord et al. 2017, App. A.1) and then frozen; only the values are
trained. The non-parametric decoder for classification (d_v = number of classes) averages the fetched values over
the heads and applies a softmax. The selection is discrete and the keys are not parameters, so a loss's gradient
reaches exactly the fetched values: d L / d v_{c,i} = sum over examples b with i_c(b) = i of d L / d v_c(b).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import validation


class DKVBottleneck(nnx.Module):
  """C key-value codebooks over fixed random projections of frozen features (Träuble et al. 2023,
  arXiv:2207.11240, Sec. 3). Keys (`keys_cnk`, an `nnx.Variable`) are frozen after `update_keys` initialises them;
  values (`values_cnv`, an `nnx.Param`) are learned.

  Args:
    in_features: D, the frozen encoder's feature size.
    num_heads: C codebooks.
    num_keys: N (key, value) pairs per codebook.
    key_dim: d_k, the projected head size.
    value_dim: d_v (the number of classes for `dkvb_decode`).
    rngs: PRNG streams (`params`: projections, initial keys; values start at zero).
    param_dtype: dtype of the values (keys and projections are float32).

  Shapes: `heads` z [..., D] -> [..., C, d_k]; `select` z -> [..., C] int32; __call__ z -> [..., C, d_v] fetched
  values.
  """

  def __init__(self, in_features: int, num_heads: int, num_keys: int, key_dim: int, value_dim: int, *,
               rngs: nnx.Rngs, param_dtype=jnp.float32):
    for name, val in (("in_features", in_features), ("num_heads", num_heads), ("num_keys", num_keys),
                      ("key_dim", key_dim), ("value_dim", value_dim)):
      if isinstance(val, bool) or not isinstance(val, int) or val < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={val!r}")
    self.in_features, self.num_heads, self.num_keys = in_features, num_heads, num_keys
    self.proj_cdk = nnx.Variable(jax.random.normal(rngs.params(), (num_heads, in_features, key_dim))
                                 / jnp.sqrt(in_features))
    self.keys_cnk = nnx.Variable(jax.random.normal(rngs.params(), (num_heads, num_keys, key_dim)))
    self.ema_count_cn = nnx.Variable(jnp.zeros((num_heads, num_keys)))
    self.ema_sum_cnk = nnx.Variable(jnp.zeros((num_heads, num_keys, key_dim)))
    self.values_cnv = nnx.Param(jnp.zeros((num_heads, num_keys, value_dim), param_dtype))

  def heads(self, z: jax.Array) -> jax.Array:
    z = validation.check_floating(z, "z")
    if z.ndim < 1 or z.shape[-1] != self.in_features:
      raise ValueError(f"z must be [..., D={self.in_features}], got z.shape={z.shape}")
    return jnp.einsum("...d,cdk->...ck", jax.lax.stop_gradient(z).astype(jnp.float32), self.proj_cdk[...])

  def select(self, z: jax.Array) -> jax.Array:
    """[..., D] -> [..., C] int32 index of each head's nearest key (ties: the lower index)."""
    h = self.heads(z)
    keys = self.keys_cnk[...]
    d2 = (jnp.sum(h ** 2, -1)[..., None] - 2 * jnp.einsum("...ck,cnk->...cn", h, keys)
          + jnp.sum(keys ** 2, -1))
    return jnp.argmin(d2, -1).astype(jnp.int32)

  def __call__(self, z: jax.Array) -> jax.Array:
    idx = self.select(z)
    values = self.values_cnv[...]
    return values[jnp.arange(self.num_heads), idx]                                   # [..., C, d_v]

  def update_keys(self, z: jax.Array, *, decay: float = 0.95) -> None:
    """One EMA k-means step of the keys on a batch of unlabelled features z [..., D] (the key initialisation;
    van den Oord et al. 2017, arXiv:1711.00937, App. A.1): per key, count <- decay count + (1 - decay) n_i,
    sum <- decay sum + (1 - decay) (sum of its assigned heads), key <- sum / count (keys never assigned keep their
    value). With decay = 0 this is one Lloyd (k-means) step. Mutates `keys_cnk` and the EMA statistics."""
    if not validation.is_traced(decay) and not 0.0 <= float(decay) < 1.0:
      raise ValueError(f"decay must be in [0, 1), got {decay=}")
    h = self.heads(z).reshape(-1, self.num_heads, self.keys_cnk.shape[-1])              # [B, C, d_k]
    onehot = jax.nn.one_hot(self.select(z).reshape(-1, self.num_heads), self.num_keys)  # [B, C, N]
    count = decay * self.ema_count_cn[...] + (1 - decay) * onehot.sum(0)
    total = decay * self.ema_sum_cnk[...] + (1 - decay) * jnp.einsum("bcn,bck->cnk", onehot, h)
    self.ema_count_cn[...] = count
    self.ema_sum_cnk[...] = total
    self.keys_cnk[...] = jnp.where(count[..., None] > 1e-12, total / jnp.maximum(count, 1e-12)[..., None],
                                   self.keys_cnk[...])


def dkvb_decode(values: jax.Array) -> jax.Array:
  """DKVB's non-parametric classification decoder: the mean of the fetched values over the heads, used as logits
  (the softmax is the cross-entropy's) (Träuble et al. 2023, arXiv:2207.11240, Sec. 3).

  Args:
    values: [..., C, d_v] fetched values (the `DKVBottleneck` output).

  Returns:
    [..., d_v] logits.
  """
  v = validation.check_floating(values, "values")
  if v.ndim < 2:
    raise ValueError(f"values must be [..., C, d_v], got values.shape={v.shape}")
  return jnp.mean(v, -2)


__all__ = ["DKVBottleneck", "dkvb_decode"]
