"""Noise2Recon's consistency loss for semi-/self-supervised MRI reconstruction (the operators are in
`jaxlib_methods.signal`).

Paper [174]: Arjun D. Desai, Batu M. Ozturkler, Christopher M. Sandino, Robert Boutin, Marc Willis, Shreyas
Vasanawala, Brian A. Hargreaves, Christopher Ré, John M. Pauly, Akshay S. Chaudhari, "Noise2Recon: Enabling Joint
MRI Reconstruction and Denoising with Semi-Supervised and Self-Supervised Learning", 2021 (MRM 2023),
arXiv:2110.00075, Sec. 3: on undersampled (unlabelled) scans y, the reconstruction of the noise-augmented scan
y + M ε is pulled towards the (stop-gradient) reconstruction of y itself. Authors' code: github.com/ad12/meddlr,
meddlr/modeling/meta_arch/n2r.py (`pred_base` under no_grad is the target of `pred_aug`) and the default
`MODEL.CONSISTENCY.LOSS_NAME = "l1"`, `LOSS_WEIGHT = 0.1`.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import signal

__all__ = ["noise2recon_consistency_loss"]


def noise2recon_consistency_loss(recon_fn: Callable[[jax.Array], jax.Array], y: jax.Array, mask: jax.Array,
                                 key: jax.Array, sigma: Any, *, metric: Literal["l1", "l2"] = "l1") -> jax.Array:
  """Per-example Noise2Recon consistency: mean | f(y + M ε) − stopgrad f(y) | ("Noise2Recon", Desai et al.
  2021, arXiv:2110.00075, Sec. 3).

  ε is complex Gaussian with standard deviation σ on each of the real and imaginary parts, added only where
  k-space is sampled (`jaxlib_methods.signal.noise2recon_augment`, same key and noise). The gradient flows
  through the augmented branch only (the authors compute the base reconstruction under `torch.no_grad`).

  Args:
    recon_fn: the reconstruction network, k-space [B, ..., H, W] complex -> images [B, ...] (real or complex);
      it must treat examples independently for the loss to be per-example.
    y: [B, ..., H, W] complex undersampled k-space.
    mask: bool, broadcastable to y; True where sampled.
    key: a jax PRNG key for the noise.
    sigma: noise standard deviation >= 0, a number or one per example [B] (the authors draw it per scan from a
      range).
    metric: "l1" (the authors' default: mean absolute difference, |·| the complex modulus for complex images) or
      "l2" (mean squared modulus).

  Returns:
    [B] per-example losses (float32, or float64 for float64/complex128 reconstructions).
  """
  if not callable(recon_fn):
    raise TypeError(f"recon_fn must be callable (k-space -> image), got {type(recon_fn).__name__}")
  if metric not in ("l1", "l2"):
    raise ValueError(f"metric must be 'l1' or 'l2', got {metric=!r}")
  y_aug = signal.noise2recon_augment(y, mask, key, sigma)
  y = jnp.asarray(y).astype(y_aug.dtype)  # checked by noise2recon_augment; real k-space promoted as there
  base = jax.lax.stop_gradient(recon_fn(y))
  aug = recon_fn(y_aug)
  if jnp.shape(aug) != jnp.shape(base) or jnp.ndim(aug) < 1 or jnp.shape(aug)[0] != y.shape[0]:
    raise ValueError(f"recon_fn must map [B, ...] k-space to [B, ...] images, got {jnp.shape(aug)} for "
                     f"y.shape={y.shape}")
  diff = jnp.abs(aug - base)
  if metric == "l2":
    diff = diff * diff
  return jnp.mean(diff.reshape(diff.shape[0], int(np.prod(diff.shape[1:]))), axis=1)
