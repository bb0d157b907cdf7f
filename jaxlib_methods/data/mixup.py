"""Mixup with decoupled input and label interpolation factors.

Paper [41]: Difan Zou, Yuan Cao, Yuanzhi Li, Quanquan Gu, "The Benefits of Mixup for Feature Learning", ICML 2023,
arXiv:2303.08433, Sec. 2: Mixup (Zhang et al., 2018, arXiv:1710.09412) trains on x~ = lam x_1 + (1 - lam) x_2 with
label lam y_1 + (1 - lam) y_2; the paper shows that using *different* factors for the inputs and the labels,
x~ = lam_x x_1 + (1 - lam_x) x_2 and y~ = lam_y y_1 + (1 - lam_y) y_2, trains about as well, so the linearity
explanation does not account for Mixup's benefit. `mixup` implements the decoupled form (lam_x = lam_y is standard
Mixup). The Mixup loss lam_y l(f(x~), y_1) + (1 - lam_y) l(f(x~), y_2) equals the loss on the mixed label y~ for any
loss linear in its (one-hot / soft / {0, 1}) label, e.g. `optax.losses.softmax_cross_entropy` and
`optax.losses.sigmoid_binary_cross_entropy`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def _check_lam(lam: Any, name: str, batch: int) -> jax.Array:
  lam = jnp.asarray(lam)
  if not jnp.issubdtype(lam.dtype, jnp.floating) and not jnp.issubdtype(lam.dtype, jnp.integer):
    raise TypeError(f"{name} must be a real number or a [B] array in [0, 1], got dtype {lam.dtype}")
  if lam.ndim > 1 or (lam.ndim == 1 and lam.shape[0] != batch):
    raise ValueError(f"{name} must be a scalar or of shape [B] = [{batch}], got shape {lam.shape}")
  if not validation.is_traced(lam):
    v = np.asarray(lam, np.float64)
    if not np.all((v >= 0) & (v <= 1)):
      raise ValueError(f"{name} must lie in [0, 1], got {name}={v if v.ndim == 0 else v[~((v >= 0) & (v <= 1))][:3]}")
  return lam


def mixup(x: Any, y: Any, lam_x: Any, lam_y: Any, *, partner: Any) -> tuple[jax.Array, jax.Array]:
  """Decoupled Mixup of each example with a partner (Zou et al., ICML 2023, arXiv:2303.08433, Sec. 2).

  x~_i = lam_x x_i + (1 - lam_x) x_{partner_i},   y~_i = lam_y y_i + (1 - lam_y) y_{partner_i}.

  Args:
    x: [B, ...] floating inputs.
    y: [B, ...] floating labels (one-hot, soft, or {0, 1} / {-1, +1} binary as floats).
    lam_x: the input factor in [0, 1], a scalar or [B] (one per example).
    lam_y: the label factor in [0, 1], a scalar or [B]; lam_y = lam_x is standard Mixup.
    partner: [B] integer indices in [0, B) of each example's partner (e.g. a random permutation).

  Returns:
    (x~ [B, ...], y~ [B, ...]) in the dtypes of x and y. Out-of-range lam or partner: ValueError when concrete;
    under jit, partner indices are clipped by the gather (validate them outside).
  """
  x = validation.check_floating(x, "x")
  y = validation.check_floating(y, "y")
  partner = validation.check_integer(partner, "partner")
  if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
    raise ValueError(f"x and y must share a leading batch axis, got x.shape={x.shape}, y.shape={y.shape}")
  b = x.shape[0]
  if partner.shape != (b,):
    raise ValueError(f"partner must have shape [B] = [{b}], got partner.shape={partner.shape}")
  if not validation.is_traced(partner) and b and not bool(jnp.all((partner >= 0) & (partner < b))):
    raise ValueError(f"partner must hold indices in [0, {b}), got values in [{int(partner.min())}, {int(partner.max())}]")
  lx, ly = _check_lam(lam_x, "lam_x", b), _check_lam(lam_y, "lam_y", b)

  def mix(a, lam):
    lam = jnp.reshape(lam, lam.shape + (1,) * (a.ndim - lam.ndim)).astype(a.dtype)
    return lam * a + (1 - lam) * a[partner]

  return mix(x, lx), mix(y, ly)
