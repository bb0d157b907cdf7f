"""Maximum attention logit, the instability diagnostic of [189] Wortsman et al., "Small-scale proxies for
large-scale Transformer training instabilities", ICLR 2024, arXiv:2309.14322 (Sec. 3.1: attention-logit growth).

`TransformerLM(..., return_aux=True)` reports it per layer; this function computes it from queries and keys.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp


def max_attention_logit(q: jax.Array, k: jax.Array, *, causal: bool = True,
                        scale: Optional[float] = None) -> jax.Array:
  """max over (b, n, t, s allowed) of q_{btn} . k_{bsn} * scale (default 1/sqrt(H)).

  Args:
    q, k: [B, T, N, H] (k may have S != T positions: [B, S, N, H]; causal needs S == T).
    causal: only s <= t counts.
    scale: logit scale (default 1/sqrt(H)).

  Returns:
    Scalar float32.
  """
  if q.ndim != 4 or k.ndim != 4 or q.shape[0] != k.shape[0] or q.shape[2:] != k.shape[2:]:
    raise ValueError(f"need q [B, T, N, H] and k [B, S, N, H], got {q.shape=}, {k.shape=}")
  if causal and q.shape[1] != k.shape[1]:
    raise ValueError(f"causal masking needs T == S, got {q.shape=}, {k.shape=}")
  s = (1.0 / jnp.sqrt(q.shape[-1])) if scale is None else scale
  logits = jnp.einsum("BTNH,BSNH->BNTS", q.astype(jnp.float32), k.astype(jnp.float32)) * s
  if causal:
    t = q.shape[1]
    logits = jnp.where(jnp.tril(jnp.ones((t, t), bool)), logits, -jnp.inf)
  return jnp.max(logits)
