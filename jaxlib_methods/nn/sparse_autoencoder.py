"""Sparse autoencoders over frozen embeddings: one family with four sparsifiers (L1-ReLU, TopK, Feature Choice,
Mutual Choice), the SAE objective, dead-latent counts, and discover-then-name's concept naming.

Papers:
  [166] Kola Ayonrinde, "Adaptive Sparse Allocation with Mutual Choice & Feature Choice Sparse Autoencoders", 2024,
        arXiv:2411.02124 (Sec. 3). An SAE encodes z = sigma(W_enc (x - b_dec) + b_enc) and decodes
        x_hat = W_dec z + b_dec; the sparsifier sigma picks token-feature matches in the [B, F] pre-activation matrix
        under a total budget of k * B matches: TopK (each token keeps its k largest features; Gao et al. 2024),
        Feature Choice (each feature keeps its m = k B / F largest tokens: at most m tokens per feature, a variable
        number of features per token) and Mutual Choice (the k B largest entries of the whole matrix: no per-token or
        per-feature constraint). Selected entries pass through a ReLU; the gradient reaches exactly the selected,
        positive pre-activations (the selection itself is piecewise constant). The paper's Feature Choice uses a
        Zipf-shaped per-feature capacity; here every feature gets the same capacity m (stated, not the paper's
        default). The paper's auxiliary `aux_zipf_loss` is not implemented.
  [20]  Sukrut Rao, Sweta Mahajan, Moritz Boehle, Bernt Schiele, "Discover-then-Name: Task-Agnostic Concept
        Bottlenecks via Automated Concept Discovery", ECCV 2024, arXiv:2407.14499 (Sec. 3.1-3.2). A ReLU SAE trained
        on frozen CLIP image embeddings with L = ||x - x_hat||_2^2 + lambda ||z||_1 discovers concepts; each concept
        (a dictionary vector, a column of the decoder, living in CLIP space) is named by the vocabulary word whose
        CLIP text embedding has the largest cosine similarity with it; a sparse linear probe on z is the CBM.

The decoder's dictionary vectors are unit-norm (the convention of both papers, which renormalise the columns after
each step): here they are normalised in the forward pass, W_dec = V / ||V||_row, a reparametrisation with exactly the
same constraint set that needs no projection step in the training loop (so a pure optax step stays pure).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods import validation
from jaxlib_methods._norms import l2_normalize

Sparsifier = Literal["relu", "topk", "feature_choice", "mutual_choice"]
SPARSIFIERS = ("relu", "topk", "feature_choice", "mutual_choice")


def _check_count(val, name, high, what):
  if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= high:
    raise ValueError(f"{name} must be an int in [1, {high}] ({what}), got {name}={val!r}")


def _check_matrix(pre):
  pre = validation.check_floating(pre, "pre_activations")
  if pre.ndim != 2 or 0 in pre.shape:
    raise ValueError(f"pre_activations must be a non-empty [tokens, features] matrix, got shape {pre.shape}")
  return pre


def topk_activation(pre_activations: jax.Array, k: int) -> jax.Array:
  """TopK sparsifier: per token, ReLU of its k largest pre-activations, zeros elsewhere (Gao et al. 2024, as framed
  in Ayonrinde 2024, arXiv:2411.02124, Sec. 3: each token matches at most k features).

  Ties go to the lower feature index (jax.lax.top_k). Gradient: d z / d pre = 1 on the selected positive entries, 0
  elsewhere.

  Args:
    pre_activations: [..., F] encoder pre-activations.
    k: features kept per token, in [1, F].

  Returns:
    [..., F] codes with at most k non-zeros per token (exactly k when the k largest are positive).
  """
  pre = validation.check_floating(pre_activations, "pre_activations")
  if pre.ndim < 1:
    raise ValueError(f"pre_activations must be [..., F], got a scalar")
  _check_count(k, "k", pre.shape[-1], "features kept per token")
  vals, idx = jax.lax.top_k(pre, k)
  return jnp.put_along_axis(jnp.zeros_like(pre), idx, jax.nn.relu(vals), axis=-1, inplace=False)


def feature_choice_activation(pre_activations: jax.Array, m: int) -> jax.Array:
  """Feature Choice sparsifier: per feature, ReLU of its m largest pre-activations over the batch's tokens (Ayonrinde
  2024, arXiv:2411.02124, Sec. 3.1: each feature matches at most m tokens; a token may match any number of features).

  Ties go to the lower token index. Gradient as in `topk_activation`, on the selected entries.

  Args:
    pre_activations: [B, F] pre-activations of a batch of B tokens.
    m: tokens kept per feature, in [1, B] (equal total sparsity with TopK-k: m = k B / F).

  Returns:
    [B, F] codes with at most m non-zeros per feature column (exactly m when its m largest are positive).
  """
  pre = _check_matrix(pre_activations)
  _check_count(m, "m", pre.shape[0], "tokens kept per feature")
  vals, idx = jax.lax.top_k(pre.T, m)
  return jnp.put_along_axis(jnp.zeros_like(pre.T), idx, jax.nn.relu(vals), axis=-1, inplace=False).T


def mutual_choice_activation(pre_activations: jax.Array, budget: int) -> jax.Array:
  """Mutual Choice sparsifier: ReLU of the `budget` largest entries of the whole [B, F] token x feature matrix
  (Ayonrinde 2024, arXiv:2411.02124, Sec. 3.2: the unconstrained allocation of a total budget, k B for TopK's k).

  Ties go to the lower flat (row-major) index. Gradient as in `topk_activation`, on the selected entries.

  Args:
    pre_activations: [B, F] pre-activations of a batch of B tokens.
    budget: total token-feature matches, in [1, B F].

  Returns:
    [B, F] codes with at most `budget` non-zeros in total (exactly `budget` when those entries are positive).
  """
  pre = _check_matrix(pre_activations)
  _check_count(budget, "budget", pre.size, "total matches in the batch")
  flat = pre.reshape(-1)
  vals, idx = jax.lax.top_k(flat, budget)
  return jnp.zeros_like(flat).at[idx].set(jax.nn.relu(vals)).reshape(pre.shape)


class SparseAutoencoder(nnx.Module):
  """Sparse autoencoder on embeddings: z = sparsifier(W_enc (x - b_dec) + b_enc), x_hat = z W_dec + b_dec, with
  unit-norm dictionary rows W_dec[j] (Ayonrinde 2024, arXiv:2411.02124, Sec. 3; Rao et al. 2024, arXiv:2407.14499,
  Sec. 3.1).

  `sparsifier`: "relu" (DN-CBM's L1 SAE: sparsity from the loss's lambda ||z||_1), "topk" (k per token),
  "feature_choice" (m = k B / F tokens per feature; k B must be a multiple of F) or
  "mutual_choice" (k B matches in the batch). The three budgeted sparsifiers use the same total k B, so they compare at
  equal total sparsity. Feature and mutual choice couple the tokens of a batch: call them on [B, d] batches.

  Args:
    dim: d, embedding dimension.
    num_features: F, dictionary size.
    sparsifier: one of "relu", "topk", "feature_choice", "mutual_choice".
    k: mean number of active features per token (ignored by "relu"), in [1, F].
    rngs: PRNG streams (`params`).
    dtype: compute dtype (default: the parameters').
    param_dtype: parameter dtype.

  Shapes: __call__ [B, d] -> (x_hat [B, d], z [B, F]); "relu" and "topk" also take [..., d].
  """

  def __init__(self, dim: int, num_features: int, *, sparsifier: Sparsifier = "topk", k: int = 4, rngs: nnx.Rngs,
               dtype=None, param_dtype=jnp.float32):
    _check_count(dim, "dim", 2 ** 31, "embedding dimension")
    _check_count(num_features, "num_features", 2 ** 31, "dictionary size")
    if sparsifier not in SPARSIFIERS:
      raise ValueError(f"sparsifier must be one of {SPARSIFIERS}, got {sparsifier=}")
    if sparsifier != "relu":
      _check_count(k, "k", num_features, "mean active features per token")
    self.dim, self.num_features, self.sparsifier, self.k = dim, num_features, sparsifier, k
    self.dtype, self.param_dtype = dtype, param_dtype
    v = jax.random.normal(rngs.params(), (num_features, dim), jnp.float32)
    v = v / jnp.linalg.norm(v, axis=1, keepdims=True)
    self.dictionary_fd = nnx.Param(v.astype(param_dtype))                 # V: W_dec = V / ||V||_row
    self.encoder_df = nnx.Param(v.T.astype(param_dtype))                   # tied initialisation W_enc = W_dec^T
    self.encoder_bias = nnx.Param(jnp.zeros((num_features,), param_dtype))
    self.decoder_bias = nnx.Param(jnp.zeros((dim,), param_dtype))

  def decoder_weights(self) -> jax.Array:
    """[F, d] unit-norm dictionary vectors W_dec (rows), the discovered concepts in embedding space."""
    v = self.dictionary_fd[...]
    v32 = v.astype(jnp.float32)
    return l2_normalize(v32, axis=1).astype(v.dtype)

  def _check_x(self, x):
    x = validation.check_floating(x, "x")
    if x.ndim < 1 or x.shape[-1] != self.dim:
      raise ValueError(f"x must be [..., dim={self.dim}], got x.shape={x.shape}")
    if self.sparsifier in ("feature_choice", "mutual_choice"):
      if x.ndim != 2:
        raise ValueError(f"sparsifier={self.sparsifier!r} couples the tokens of a batch: x must be [B, {self.dim}], "
                         f"got x.shape={x.shape}")
      if self.sparsifier == "feature_choice" and (x.shape[0] * self.k) % self.num_features:
        raise ValueError(f"feature_choice needs m = k * B / F to be an integer: k={self.k}, B={x.shape[0]}, "
                         f"F={self.num_features}")
    return x

  def pre_activations(self, x: jax.Array) -> jax.Array:
    """[..., F] W_enc (x - b_dec) + b_enc."""
    x = self._check_x(x)
    dt = self.dtype or self.param_dtype
    return (jnp.einsum("...d,df->...f", (x - self.decoder_bias[...]).astype(dt), self.encoder_df[...].astype(dt))
            + self.encoder_bias[...].astype(dt))

  def encode(self, x: jax.Array) -> jax.Array:
    """[..., d] -> [..., F] sparse codes z."""
    pre = self.pre_activations(x)
    if self.sparsifier == "relu":
      return jax.nn.relu(pre)
    if self.sparsifier == "topk":
      return topk_activation(pre, self.k)
    budget = self.k * pre.shape[0]
    if self.sparsifier == "feature_choice":
      return feature_choice_activation(pre, budget // self.num_features)
    return mutual_choice_activation(pre, budget)

  def decode(self, z: jax.Array) -> jax.Array:
    """[..., F] -> [..., d] z W_dec + b_dec."""
    dt = self.dtype or self.param_dtype
    return jnp.einsum("...f,fd->...d", z.astype(dt), self.decoder_weights().astype(dt)) + self.decoder_bias[...].astype(dt)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    z = self.encode(x)
    return self.decode(z), z


def sae_loss(x: jax.Array, x_hat: jax.Array, z: jax.Array, *, l1_coeff: float = 0.0) -> jax.Array:
  """Per-example SAE objective ||x - x_hat||_2^2 + lambda ||z||_1 (Rao et al. 2024, arXiv:2407.14499, Sec. 3.1;
  lambda = 0 gives the budgeted SAEs' plain reconstruction loss, Ayonrinde 2024, arXiv:2411.02124, Sec. 3).

  Args:
    x: [..., d] inputs.
    x_hat: [..., d] reconstructions.
    z: [..., F] codes.
    l1_coeff: lambda >= 0.

  Returns:
    [...] per-example losses (reduce outside), float32 for half-precision inputs.
  """
  x = validation.check_floating(x, "x")
  x_hat = validation.check_floating(x_hat, "x_hat")
  z = validation.check_floating(z, "z")
  if x.shape != x_hat.shape or x.ndim < 1 or z.shape[:-1] != x.shape[:-1]:
    raise ValueError(f"need x [..., d], x_hat of x's shape and z [..., F] with x's leading shape; got {x.shape=}, "
                     f"{x_hat.shape=}, {z.shape=}")
  if not validation.is_traced(l1_coeff):
    validation.check_nonnegative(l1_coeff, "l1_coeff")
  dt = validation.compute_dtype_for(jnp.result_type(x, x_hat, z))
  rec = jnp.sum((x.astype(dt) - x_hat.astype(dt)) ** 2, -1)
  return rec + l1_coeff * jnp.sum(jnp.abs(z.astype(dt)), -1)


def dead_latents(z: jax.Array) -> jax.Array:
  """Features that never fire on the given tokens: [F] bool, True where z[:, j] == 0 for every token (Ayonrinde 2024,
  arXiv:2411.02124, Sec. 4: the dead-feature count, measured over a window of tokens).

  Args:
    z: [..., F] codes of a window of tokens.

  Returns:
    [F] bool.
  """
  z = validation.check_floating(z, "z")
  if z.ndim < 1:
    raise ValueError("z must be [..., F]")
  return ~jnp.any(z.reshape(-1, z.shape[-1]) != 0, axis=0)


def name_concepts(dictionary: jax.Array, text_embeddings: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Discover-then-name's naming: each dictionary vector gets the vocabulary entry of highest cosine similarity
  (Rao et al. 2024, arXiv:2407.14499, Sec. 3.2: name(c) = argmax_v cos(W_dec[c], T(v))). Ties go to the lower index.

  Args:
    dictionary: [F, d] concept vectors (e.g. `SparseAutoencoder.decoder_weights()`).
    text_embeddings: [V, d] embeddings of the V vocabulary entries, in the same space.

  Returns:
    (names, similarity): [F] int32 vocabulary index per concept and [F] its cosine similarity.
  """
  w = validation.check_floating(dictionary, "dictionary")
  t = validation.check_floating(text_embeddings, "text_embeddings")
  if w.ndim != 2 or t.ndim != 2 or w.shape[1] != t.shape[1] or 0 in w.shape or 0 in t.shape:
    raise ValueError(f"need dictionary [F, d] and text_embeddings [V, d] (same d, non-empty), got {w.shape=}, "
                     f"{t.shape=}")
  dt = jnp.promote_types(jnp.result_type(w, t), jnp.float32)
  unit = lambda a: l2_normalize(a.astype(dt), axis=1)
  cos = unit(w) @ unit(t).T
  return jnp.argmax(cos, 1).astype(jnp.int32), jnp.max(cos, 1)


__all__ = ["SparseAutoencoder", "topk_activation", "feature_choice_activation", "mutual_choice_activation",
           "sae_loss", "dead_latents", "name_concepts"]
