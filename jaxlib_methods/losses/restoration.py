"""Image-restoration losses: the downsampled invariance loss of C-BSN [210] (documented on the function) and the
diffusion loss of Denoising as Adaptation: a conditional noise-prediction loss whose condition (the restored
images) carries the gradient back into the restoration network (the channel-shuffling layer is
`jaxlib_methods.nn.ChannelShuffle`).

Paper [171]: Kang Liao, Zongsheng Yue, Zhouxia Wang, Chen Change Loy, "Denoising as Adaptation: Noise-Space Domain
Adaptation for Image Restoration", ICLR 2025, arXiv:2406.18516, Eq. 1: with x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε a noised
clean image, the diffusion model ε_θ(x_t, t, c) is conditioned on c, the concatenated outputs of the restoration
network for a synthetic and a real degraded image, and L_diff = E ‖ε − ε_θ(x_t, t, c)‖²; minimising it over both
networks pushes the restored outputs towards the clean distribution (the diffusion model is discarded afterwards).
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation

__all__ = ["conditioned_diffusion_loss", "downsampled_invariance_loss"]


def conditioned_diffusion_loss(eps_fn: Callable[[jax.Array, Any, jax.Array], jax.Array], x0: jax.Array,
                               cond: jax.Array, t: Any, alpha_bar: jax.Array, key: jax.Array, *,
                               reduction: Literal["mean", "sum"] = "mean") -> jax.Array:
  """Per-example conditional DDPM loss ‖ε − ε_θ(√ᾱ x_0 + √(1 − ᾱ) ε, t, c)‖² ("Denoising as
  Adaptation", Liao et al. 2025, arXiv:2406.18516, Eq. 1).

  The noise is ε = `jax.random.normal(key, x0.shape)`. The gradient reaches both the noise predictor (through
  `eps_fn`'s closure) and the condition `cond`, which in Denoising as Adaptation is the restoration network's output.

  Args:
    eps_fn: ε_θ(x_t [B, ...], t, cond [B, ...]) -> [B, ...] predicted noise of x0's shape.
    x0: [B, ...] clean target images.
    cond: [B, ...] conditioning images (e.g. restored synthetic and real images concatenated on the channel axis,
      shuffled by `jaxlib_methods.nn.channel_shuffle`); any shape eps_fn accepts, leading axis B.
    t: timesteps passed to eps_fn unchanged (e.g. [B] integers).
    alpha_bar: [B] cumulative signal rates ᾱ_t in (0, 1] of each example's timestep.
    key: a jax PRNG key for ε.
    reduction: "mean" (over the non-batch entries, as DDPM codebases' mean_flat) or "sum" (the squared norm).

  Returns:
    [B] per-example losses, x0's dtype (float16/bfloat16 computed in float32).
  """
  if not callable(eps_fn):
    raise TypeError(f"eps_fn must be callable (x_t, t, cond) -> predicted noise, got {type(eps_fn).__name__}")
  if reduction not in ("mean", "sum"):
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction=!r}")
  x0 = validation.check_floating(x0, "x0")
  cond = validation.check_floating(cond, "cond")
  ab = validation.check_floating(alpha_bar, "alpha_bar")
  if x0.ndim < 1:
    raise ValueError(f"x0 must have a leading batch axis, got x0.shape={x0.shape}")
  b = x0.shape[0]
  if cond.ndim < 1 or cond.shape[0] != b:
    raise ValueError(f"cond must have x0's batch size {b} on axis 0, got cond.shape={cond.shape}")
  if ab.shape != (b,):
    raise ValueError(f"alpha_bar must be [B]={(b,)}, got alpha_bar.shape={ab.shape}")
  valid = validation.check_values(jnp.isnan(ab) | ((ab > 0) & (ab <= 1)), ab, "alpha_bar", "in (0, 1]")
  ct = validation.compute_dtype_for(x0.dtype)
  eps = jax.random.normal(key, x0.shape, ct)
  ab_ = ab.astype(ct).reshape((b,) + (1,) * (x0.ndim - 1))
  x_t = jnp.sqrt(ab_) * x0.astype(ct) + jnp.sqrt(1.0 - ab_) * eps
  pred = eps_fn(x_t.astype(x0.dtype), t, cond)
  if jnp.shape(pred) != x0.shape:
    raise ValueError(f"eps_fn must return x0's shape {x0.shape}, got {jnp.shape(pred)}")
  sq = jnp.square(eps - jnp.asarray(pred).astype(ct)).reshape(b, int(np.prod(x0.shape[1:])))
  loss = jnp.mean(sq, axis=1) if reduction == "mean" else jnp.sum(sq, axis=1)
  return validation.finish_per_example(loss, valid, None, x0.dtype)


def downsampled_invariance_loss(unmasked_output: jax.Array, masked_sub_output: jax.Array, index: jax.Array, *,
                                stride: int = 2) -> jax.Array:
  """C-BSN's downsampled invariance loss per example: mean | D(f(y)) − stopgrad f_blind(D(y)) | ("Self-supervised
  Image Denoising with Downsampled Invariance Loss and Conditional Blind-Spot Network", Jang et al. 2023,
  arXiv:2304.09507, Sec. 4; the authors' `loss_reg` in train.py, weight `lmbda` = 2).

  D is the random subsampler with one shared index (`jaxlib_methods.nn.random_subsampler` / `subsample`): the
  non-blind output f(y), subsampled, is pulled towards the blind network's output on the subsampled noisy image,
  which is held fixed (stop-gradient), so the non-blind mode learns to denoise without learning the identity.

  Args:
    unmasked_output: [B, H, W, C] output of the network in non-blind mode on the full noisy image y.
    masked_sub_output: [B, H / s, W / s, C] output of the blind network on the subimage D(y).
    index: [B, H / s, W / s] the subsampling index used for D(y) (from `random_subsampler`).
    stride: s, the subsampling block size (the authors' `stride_i` = 2).

  Returns:
    [B] per-example mean absolute differences, unmasked_output's dtype (half precision computed in float32).
  """
  from jaxlib_methods.nn import restoration as nn_restoration

  u = validation.check_floating(unmasked_output, "unmasked_output")
  m = validation.check_floating(masked_sub_output, "masked_sub_output")
  if u.ndim != 4:
    raise ValueError(f"unmasked_output must be [B, H, W, C], got unmasked_output.shape={u.shape}")
  sub = nn_restoration.subsample(u, index, stride=stride)
  if m.shape != sub.shape:
    raise ValueError(f"masked_sub_output must be [B, H / s, W / s, C]={sub.shape}, got "
                     f"masked_sub_output.shape={m.shape}")
  ct = validation.compute_dtype_for(u.dtype)
  diff = jnp.abs(sub.astype(ct) - jax.lax.stop_gradient(m.astype(ct)))
  return jnp.mean(diff.reshape(diff.shape[0], int(np.prod(diff.shape[1:]))), axis=1).astype(u.dtype)
