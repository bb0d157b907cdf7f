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

  return _mix(x, lx, partner), _mix(y, ly, partner)


def _mix(a: jax.Array, lam: jax.Array, partner: jax.Array) -> jax.Array:
  """lam a + (1 - lam) a[partner], lam a scalar or [B] broadcast over a's trailing axes."""
  lam = jnp.reshape(lam, lam.shape + (1,) * (a.ndim - lam.ndim)).astype(a.dtype)
  return lam * a + (1 - lam) * a[partner]


# ---- ls19d (issue 19): SMMix [34] ----

def _window_sums(attn: jax.Array, window: int) -> jax.Array:
  """[B, S, S] -> [B, S - w + 1, S - w + 1]: the attention mass of every w x w window (stride 1)."""
  return jax.lax.reduce_window(attn, jnp.zeros((), attn.dtype), jax.lax.add, (1, window, window), (1, 1, 1), "VALID")


def smmix(x: Any, y: Any, attn: Any, *, partner: Any, window: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """SMMix's max-min attention region mixing (Chen et al., "SMMix: Self-Motivated Image Mixing for Vision
  Transformers", ICCV 2023, arXiv:2212.12977, Sec. 3.2; official `SMMix.smmix` and `mixup_target`).

  On the S x S patch-token grid, image i keeps everything except its least-attended w x w window (the argmin of the
  window's attention mass), which receives the partner's most-attended w x w window (the argmax), patch by patch in
  the same order. The label is mixed by area: y~_i = (1 - w^2 / S^2) y_i + (w^2 / S^2) y_{partner_i} (the official
  `lam` is the target image's area ratio). The official code pairs the batch with its reverse, partner = B - 1 - i;
  ties between windows go to the first (row-major) window.

  Args:
    x: [B, H, W, C] images with H = W = S * patch (channels last).
    y: [B, K] floating labels (one-hot or soft).
    attn: [B, S, S] non-negative attention of each patch token (e.g. the class token's, averaged over heads),
      from the model under training on the un-mixed images (not differentiated).
    partner: [B] int indices in [0, B) of each image's source image.
    window: the side w of the mixed square region in tokens, 1 <= w < S (official: uniform in [S/4, 3S/4]).

  Returns:
    (x~ [B, H, W, C], y~ [B, K], source_mask [B, S, S] bool: True on the tokens taken from the partner).
  """
  x = validation.check_floating(x, "x")
  y = validation.check_floating(y, "y")
  attn = validation.check_floating(attn, "attn")
  partner = validation.check_integer(partner, "partner")
  if x.ndim != 4:
    raise ValueError(f"x must be [B, H, W, C] images, got x.shape={x.shape}")
  b = x.shape[0]
  if attn.ndim != 3 or attn.shape[0] != b or attn.shape[1] != attn.shape[2]:
    raise ValueError(f"attn must be [B, S, S] = [{b}, S, S] token attention, got attn.shape={attn.shape}")
  s = attn.shape[1]
  if x.shape[1] != x.shape[2] or s < 2 or x.shape[1] % s:
    raise ValueError(f"x must be square with a side divisible by S = {s} (attn's grid), got x.shape={x.shape}")
  if y.ndim != 2 or y.shape[0] != b:
    raise ValueError(f"y must be [B, K] = [{b}, K] labels, got y.shape={y.shape}")
  if partner.shape != (b,):
    raise ValueError(f"partner must have shape [B] = [{b}], got partner.shape={partner.shape}")
  if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or not 1 <= int(window) < s:
    raise ValueError(f"window must be an int in [1, S) = [1, {s}), got window={window!r}")
  if not validation.is_traced(partner) and b and not bool(np.all((np.asarray(partner) >= 0)
                                                                  & (np.asarray(partner) < b))):
    raise ValueError(f"partner must hold indices in [0, {b}), got values in [{int(np.min(partner))}, "
                     f"{int(np.max(partner))}]")
  if not validation.is_traced(attn) and not np.all(np.asarray(attn, np.float32) >= 0):
    raise ValueError("attn must be non-negative attention weights (finite, >= 0)")
  w = int(window)
  attn = jax.lax.stop_gradient(attn.astype(jnp.float32))
  sums = _window_sums(attn, w).reshape(b, -1)                      # [B, (S - w + 1)^2]
  n_pos = s - w + 1
  lo, hi = jnp.argmin(sums, axis=1), jnp.argmax(sums, axis=1)
  r_t, c_t = lo // n_pos, lo % n_pos                               # the target's least-attended window
  r_s, c_s = hi[partner] // n_pos, hi[partner] % n_pos             # the partner's most-attended window
  rows, cols = jnp.arange(s)[None, :, None], jnp.arange(s)[None, None, :]
  in_win = ((rows >= r_t[:, None, None]) & (rows < r_t[:, None, None] + w)
            & (cols >= c_t[:, None, None]) & (cols < c_t[:, None, None] + w))          # [B, S, S]
  src_r = jnp.clip(rows - r_t[:, None, None] + r_s[:, None, None], 0, s - 1)
  src_c = jnp.clip(cols - c_t[:, None, None] + c_s[:, None, None], 0, s - 1)
  p = x.shape[1] // s
  patches = x.reshape(b, s, p, s, p, x.shape[3]).transpose(0, 1, 3, 2, 4, 5)          # [B, S, S, p, p, C]
  taken = patches[partner[:, None, None], src_r, src_c]                                # [B, S, S, p, p, C]
  mixed = jnp.where(in_win[..., None, None, None], taken, patches)
  x_mixed = mixed.transpose(0, 1, 3, 2, 4, 5).reshape(x.shape)
  lam = 1.0 - (w * w) / (s * s)
  return x_mixed, _mix(y, jnp.asarray(lam, y.dtype), partner), in_win
