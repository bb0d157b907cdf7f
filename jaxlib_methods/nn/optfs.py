"""OptFS feature-level gates (Lyu et al., 2023, "Optimizing Feature Set for Click-Through Rate Prediction",
arXiv:2301.10909).

One learnable gate logit ``m`` per feature value; during search the embedding of value ``v`` is multiplied by the
soft gate ``sigmoid(beta * m_v)``, with ``beta`` raised over training (learning by continuation, schedule
``beta_t = beta_0 * gamma**t``, following Continuous Sparsification which the paper adopts; the exact constants were
not re-verified against the paper in this session). At the end the hard mask ``m_v > 0`` keeps exactly the
positive-logit features for the re-training step.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["OptFSGate", "optfs_beta"]


def optfs_beta(step, *, beta0: float = 1.0, gamma: float = 1.05):
  """Continuation temperature ``beta_t = beta0 * gamma**t`` (OptFS, arXiv:2301.10909, learning by continuation).

  Args:
    step: scalar epoch/step counter ``t``.
    beta0: initial temperature (> 0).
    gamma: per-step growth factor (>= 1).

  Returns:
    Scalar temperature.
  """
  if not beta0 > 0:
    raise ValueError(f"beta0 must be > 0, got {beta0}")
  if not gamma >= 1:
    raise ValueError(f"gamma must be >= 1, got {gamma}")
  return beta0 * jnp.power(gamma, jnp.asarray(step, jnp.float32))


class OptFSGate(nnx.Module):
  """Feature-value gates of OptFS (Lyu et al., 2023, arXiv:2301.10909, Sec. 3).

  Holds one logit per feature value (``num_values``), initialised to ``init`` (> 0 so every feature starts kept).

  Args:
    num_values: total number of feature values (vocabulary over all fields).
    init: initial gate logit.
    rngs: unused (kept for the NNX constructor convention).
  """

  def __init__(self, num_values: int, *, init: float = 0.5, rngs: nnx.Rngs | None = None):
    if isinstance(num_values, bool) or not isinstance(num_values, int) or num_values < 1:
      raise ValueError(f"num_values must be a positive int, got {num_values!r}")
    self.num_values = num_values
    self.logits = nnx.Param(jnp.full((num_values,), init, jnp.float32))

  def gate(self, ids, beta, *, hard: bool = False):
    """Gate values for integer ids ``ids`` (any shape): ``sigmoid(beta * m[ids])`` or the hard ``m[ids] > 0``."""
    ids = jnp.asarray(ids)
    if not jnp.issubdtype(ids.dtype, jnp.integer):
      raise TypeError(f"ids must be integer feature ids, got dtype {ids.dtype}")
    m = self.logits[...][ids]
    if hard:
      return (m > 0).astype(m.dtype)
    return jax.nn.sigmoid(beta * m)

  def __call__(self, ids, embeddings, beta, *, hard: bool = False):
    """Gated embeddings.

    Args:
      ids: integer ids, shape ``[..., F]``.
      embeddings: embeddings of those ids, shape ``[..., F, D]``.
      beta: continuation temperature (see `optfs_beta`).
      hard: use the final binary mask (re-training step).

    Returns:
      ``embeddings * gate[..., None]``, shape ``[..., F, D]``.
    """
    if embeddings.shape[:-1] != jnp.shape(ids):
      raise ValueError(f"embeddings shape {embeddings.shape} must be ids shape {jnp.shape(ids)} + (D,)")
    g = self.gate(ids, beta, hard=hard)
    return embeddings * g[..., None].astype(embeddings.dtype)

  def keep_mask(self):
    """Hard mask over all feature values: ``logits > 0`` (the features kept for re-training), shape ``[num_values]``."""
    return self.logits[...] > 0
