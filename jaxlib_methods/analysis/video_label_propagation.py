"""Video label propagation with a local window: the evaluation protocol for transferred representations.

McKee, Zhan, Shuai, Modolo, Tighe, Lazebnik, "Transfer of Representations to Video Label Propagation: Implementation
Factors Matter", 2022, arXiv:2203.05553 (Sec. 3, the propagation algorithm shared by CRW/UVC/STC evaluations). The
labels of a target frame are a softmax-weighted average of the labels of context frames' pixels: for target
location p with feature f_t(p) and context locations q (frames n = 1..N, within `radius` of p),

    a(p, q) = <f_t(p), f_n(q)> / temperature       (features L2-normalised)
    w(p, .) = softmax over the top-k a(p, q) (the others get weight 0)
    y_t(p) = sum_q w(p, q) y_n(q)

The caller chooses the context (the paper: the first frame plus the `n_context` most recent predicted frames).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def label_propagation(f_ref, y_ref, f_tgt, *, topk: int, temperature: float, radius: Optional[float] = None,
                      normalize: bool = True):
  """Propagate labels from context frames to a target frame (McKee et al. 2022, arXiv:2203.05553, Sec. 3).

  Args:
    f_ref: [N, H, W, D] float features of the N context frames.
    y_ref: [N, H, W, K] float labels (one-hot or soft) of the context frames.
    f_tgt: [H, W, D] float features of the target frame.
    topk: int >= 1, the number of most-similar context locations kept per target location (capped at the number
      of locations in the window).
    temperature: float > 0, the softmax temperature.
    radius: float > 0 or None; context locations farther than `radius` (Euclidean, in pixels) from the target
      location are excluded; None uses every location.
    normalize: L2-normalise the features first (the paper's protocol).

  Returns:
    [H, W, K] propagated labels (rows are convex combinations of context labels).
  """
  fr = validation.check_floating(f_ref, "f_ref")
  yr = validation.check_floating(y_ref, "y_ref")
  ft = validation.check_floating(f_tgt, "f_tgt")
  if fr.ndim != 4:
    raise ValueError(f"f_ref must be [N, H, W, D], got f_ref.shape={fr.shape}")
  N, H, W, D = fr.shape
  if ft.shape != (H, W, D):
    raise ValueError(f"f_tgt must be [H, W, D] = {(H, W, D)}, got f_tgt.shape={ft.shape}")
  if yr.ndim != 4 or yr.shape[:3] != (N, H, W):
    raise ValueError(f"y_ref must be [N, H, W, K] with (N, H, W) = {(N, H, W)}, got y_ref.shape={yr.shape}")
  if isinstance(topk, bool) or not isinstance(topk, int):
    raise TypeError(f"topk must be an int, got {topk=}")
  if topk < 1:
    raise ValueError(f"topk must be >= 1, got {topk=}")
  validation.check_positive(temperature, "temperature")
  if radius is not None:
    validation.check_positive(radius, "radius")
  if normalize:
    fr = fr / jnp.maximum(jnp.linalg.norm(fr, axis=-1, keepdims=True), 1e-12)
    ft = ft / jnp.maximum(jnp.linalg.norm(ft, axis=-1, keepdims=True), 1e-12)
  aff = jnp.einsum("pd,nqd->pnq", ft.reshape(H * W, D), fr.reshape(N, H * W, D)) / temperature  # [HW, N, HW]
  if radius is not None:
    yy, xx = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], -1).astype(np.float64)
    near = np.sum((pos[:, None] - pos[None]) ** 2, -1) <= float(radius) ** 2  # [HW, HW], static
    aff = jnp.where(jnp.asarray(near)[:, None, :], aff, -jnp.inf)
  aff = aff.reshape(H * W, N * H * W)
  k = min(topk, N * H * W)
  vals, idx = jax.lax.top_k(aff, k)
  w = jax.nn.softmax(vals, axis=-1)  # -inf (outside the window) entries get 0 weight
  labels = yr.reshape(N * H * W, -1).astype(w.dtype)[idx]  # [HW, k, K]
  return jnp.einsum("pk,pkc->pc", w, labels).reshape(H, W, -1).astype(yr.dtype)
