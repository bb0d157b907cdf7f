"""Maximum attention logit, the instability diagnostic of [189] Wortsman et al., "Small-scale proxies for
large-scale Transformer training instabilities", ICLR 2024, arXiv:2309.14322 (Sec. 3.1: attention-logit growth).

`TransformerLM(..., return_aux=True)` reports it per layer; this function computes it from queries and keys.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation


def max_attention_logit(q: jax.Array, k: jax.Array, *, causal: bool = True,
                        scale: Optional[float] = None) -> jax.Array:
  """max over (b, n, t, s allowed) of q_{btn} . k_{bsn} * scale (default 1/sqrt(H)) (Wortsman et al. 2024,
  arXiv:2309.14322, Sec. 3.1).

  Args:
    q, k: [B, T, N, H] floating (k may have S != T positions: [B, S, N, H]; causal needs S == T); every axis >= 1.
    causal: only s <= t counts.
    scale: logit scale, finite and > 0 (default 1/sqrt(H)).

  Returns:
    Scalar float32; NaN if an allowed logit is NaN.
  """
  q = validation.check_floating(q, "q")
  k = validation.check_floating(k, "k")
  if q.ndim != 4 or k.ndim != 4 or q.shape[0] != k.shape[0] or q.shape[2:] != k.shape[2:]:
    raise ValueError(f"need q [B, T, N, H] and k [B, S, N, H], got q.shape={q.shape}, k.shape={k.shape}")
  if 0 in q.shape or 0 in k.shape:
    raise ValueError(f"q and k need every axis >= 1 (no attention logits otherwise), got q.shape={q.shape}, "
                     f"k.shape={k.shape}")
  if causal and q.shape[1] != k.shape[1]:
    raise ValueError(f"causal masking needs T == S, got q.shape={q.shape}, k.shape={k.shape}")
  if scale is not None:
    validation.check_positive(scale, "scale")
  s = (1.0 / jnp.sqrt(q.shape[-1])) if scale is None else scale
  logits = jnp.einsum("BTNH,BSNH->BNTS", q.astype(jnp.float32), k.astype(jnp.float32)) * s
  if causal:
    t = q.shape[1]
    logits = jnp.where(jnp.tril(jnp.ones((t, t), bool)), logits, -jnp.inf)
  return jnp.max(logits)
