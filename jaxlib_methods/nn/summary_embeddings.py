"""Music2Latent2's summary embeddings: learned tokens appended to a chunk's tokens in a transformer layer, whose
outputs are the chunk's latents (an unordered set of global embeddings instead of a time-aligned sequence).

Paper [199]: Marco Pasini, Stefan Lattner, George Fazekas, "Music2Latent2: Audio Compression with Summary Embeddings
and Autoregressive Decoding", ICASSP 2025, arXiv:2501.17578 (Sec. 2, the encoder: the patchified audio embeddings of a
chunk and K learned embeddings go through the transformer modules together; the outputs at the learned positions are
the summary embeddings, each free to capture a global feature of the whole chunk, and the latent has K of them
whatever the chunk's length; the project page's architecture figure labels audio embeddings A and learned/summary
embeddings L). One pre-LayerNorm bidirectional self-attention layer (the project's `nn.MultiHeadAttention` without
RoPE, so the summary slots carry no position) and a linear map to the latent width are built here; the consistency-model
decoder and its chunked causal masking are not.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxlib_methods.nn.attention import MultiHeadAttention
from jaxlib_methods.validation import check_floating


class SummaryEmbeddings(nnx.Module):
  """Summary-embedding encoder layer (Pasini et al. 2025, arXiv:2501.17578, Sec. 2).

  z = [x ; L] (the chunk's T tokens, then the K learned tokens L [K, D]); h = z + MHA(LayerNorm(z)) with full
  (bidirectional) attention and no positional encoding of the summary slots; the latents are h[T:] W_out + b_out.
  Add positions to x before calling if the chunk's order matters (the audio tokens carry it in the paper).

  Args:
    d_model: D, token width.
    num_summary: K, number of summary embeddings per chunk.
    latent_dim: width of each summary latent.
    num_heads: attention heads (dividing D).
    param_dtype: parameter dtype.
    rngs: `nnx.Rngs`.
  """

  def __init__(self, d_model: int, num_summary: int, latent_dim: int, *, num_heads: int = 1,
               param_dtype: Any = jnp.float32, rngs: nnx.Rngs):
    for name, v in (("d_model", d_model), ("num_summary", num_summary), ("latent_dim", latent_dim)):
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {name}={v!r}")
    self.d_model, self.num_summary = d_model, num_summary
    self.summary_tokens = nnx.Param(0.02 * jax.random.normal(rngs.params(), (num_summary, d_model), param_dtype))
    self.norm = nnx.LayerNorm(d_model, param_dtype=param_dtype, rngs=rngs)
    self.attention = MultiHeadAttention(d_model, num_heads, causal=False, use_rope=False, param_dtype=param_dtype,
                                        rngs=rngs)
    self.out = nnx.Linear(d_model, latent_dim, param_dtype=param_dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, T, D] chunk tokens -> [B, K, latent_dim] summary latents."""
    x = check_floating(x, "x")
    if x.ndim != 3 or x.shape[-1] != self.d_model:
      raise ValueError(f"x must be [B, T, {self.d_model}], got x.shape={x.shape}")
    tokens = jnp.broadcast_to(self.summary_tokens[...].astype(x.dtype), (x.shape[0],) + self.summary_tokens.shape)
    z = jnp.concatenate([x, tokens], axis=1)
    h = z + self.attention(self.norm(z))
    return self.out(h[:, x.shape[1]:])


__all__ = ["SummaryEmbeddings"]
