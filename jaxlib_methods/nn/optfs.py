"""OptFS feature-level gates (Lyu et al., 2023, "Optimizing Feature Set for Click-Through Rate Prediction",
WWW 2023, arXiv:2301.10909, Sec. 3).

One learnable gate logit ``m`` per feature value. In the search stage the embedding of value ``v`` is multiplied by
the soft gate ``g_v = sigmoid(beta * m_v) / sigmoid(m_0)`` (``m_0`` the initial logit, so every gate starts at 1; the
rescaling is the authors' code, `modules/mask.py` of github.com/fuyuanlyu/OptFS), with the temperature ``beta``
raised geometrically per epoch (learning by continuation): ``beta_t = gamma**t`` from 1 at epoch 0 to ``final_beta``
(200 in the authors' code) at the last search epoch, ``gamma = final_beta**(1 / (T - 1))`` (`optfs_gamma`). The
search loss is ``BCE + lambda * sum_v sigmoid(beta m_v)`` (`OptFSGate.l1_penalty`, the l1 norm of the non-negative
gates). The re-training stage uses the hard mask ``m_v > 0`` (times the same ``1 / sigmoid(m_0)``) and rewinds the
other weights to an early-search checkpoint (the paper's customised initialisation). Because a feature interaction
``<g_i e_i, g_j e_j>`` carries ``g_i g_j``, dropping a feature drops all its interactions.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["OptFSGate", "optfs_beta", "optfs_gamma"]


def optfs_beta(step, *, beta0: float = 1.0, gamma: float = 1.05):
  """Continuation temperature ``beta_t = beta0 * gamma**t`` (OptFS, arXiv:2301.10909, Sec. 3.3, learning by
  continuation). The authors use ``beta0 = 1`` and ``gamma = optfs_gamma(200, T)`` over ``T`` search epochs.

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


def optfs_gamma(final_beta: float = 200.0, search_epochs: int = 20) -> float:
  """Per-epoch growth ``final_beta**(1 / (search_epochs - 1))`` so that ``beta`` goes from 1 at epoch 0 to
  ``final_beta`` at the last search epoch (OptFS, arXiv:2301.10909, Sec. 3.3; defaults of the authors' code).

  Args:
    final_beta: temperature at the last search epoch (>= 1).
    search_epochs: number of search epochs T (int >= 2).

  Returns:
    The growth factor gamma (a Python float >= 1).
  """
  if isinstance(search_epochs, bool) or not isinstance(search_epochs, (int, np.integer)) or search_epochs < 2:
    raise ValueError(f"search_epochs must be an int >= 2, got {search_epochs!r}")
  if not final_beta >= 1:
    raise ValueError(f"final_beta must be >= 1, got {final_beta}")
  return float(final_beta) ** (1.0 / (int(search_epochs) - 1))


class OptFSGate(nnx.Module):
  """Feature-value gates of OptFS (Lyu et al., 2023, arXiv:2301.10909, Sec. 3.2-3.3).

  Holds one logit per feature value (``num_values``), initialised to ``init`` (> 0 so every feature starts kept).
  Gates are ``sigmoid(beta m) / sigmoid(init)`` (soft) or ``(m > 0) / sigmoid(init)`` (hard); ``rescale=False``
  drops the ``1 / sigmoid(init)`` factor.

  Args:
    num_values: total number of feature values (vocabulary over all fields).
    init: initial gate logit (the authors' default 0.5).
    rescale: divide the gates by ``sigmoid(init)`` as the authors' code does (every gate starts at 1).
    param_dtype: dtype of the gate logits (float32 default; bfloat16 for a low-precision model).
    rngs: unused (kept for the NNX constructor convention).
  """

  def __init__(self, num_values: int, *, init: float = 0.5, rescale: bool = True, param_dtype=jnp.float32,
               rngs: nnx.Rngs | None = None):
    if isinstance(num_values, bool) or not isinstance(num_values, int) or num_values < 1:
      raise ValueError(f"num_values must be a positive int, got {num_values!r}")
    if not np.isfinite(init):
      raise ValueError(f"init must be finite, got {init}")
    self.num_values = num_values
    self.scale = float(1.0 + np.exp(-float(init))) if rescale else 1.0
    if not jnp.issubdtype(param_dtype, jnp.floating):
      raise TypeError(f"param_dtype must be a floating dtype, got {param_dtype}")
    self.logits = nnx.Param(jnp.full((num_values,), init, param_dtype))

  def gate(self, ids, beta, *, hard: bool = False):
    """Gate values for integer ids ``ids`` (any shape): ``sigmoid(beta * m[ids])`` or the hard ``m[ids] > 0``,
    times ``1 / sigmoid(init)`` when ``rescale``."""
    ids = jnp.asarray(ids)
    if not jnp.issubdtype(ids.dtype, jnp.integer):
      raise TypeError(f"ids must be integer feature ids, got dtype {ids.dtype}")
    m = self.logits[...][ids]
    if hard:
      return (m > 0).astype(m.dtype) * self.scale
    return jax.nn.sigmoid(beta * m) * self.scale

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

  def l1_penalty(self, beta):
    """``sum_v sigmoid(beta m_v)``: the l1 norm of the (non-negative, unscaled) soft gates over all feature values,
    the search stage's sparsity term (its weight lambda is the caller's); scalar."""
    return jnp.sum(jax.nn.sigmoid(beta * self.logits[...]))

  def keep_mask(self):
    """Hard mask over all feature values: ``logits > 0`` (the features kept for re-training), shape ``[num_values]``."""
    return self.logits[...] > 0
