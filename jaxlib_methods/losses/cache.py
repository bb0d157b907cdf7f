"""Objectives of two feature-cache papers (issue 22): a learned cache router's objective and a marginal-entropy term.

Papers:

- [53] Yushi Huang, Zining Wang, Ruihao Gong, Jing Liu, Xinjie Zhang, Jinyang Guo, Xianglong Liu, Jun Zhang,
  "HarmoniCa: Harmonizing Training and Inference for Better Feature Caching in Diffusion Transformer
  Acceleration", 2024 (ICML 2025), arXiv:2410.01723. A learnable router r in [0, 1] per (timestep, block) mixes each
  block's fresh output with its cached one (`jaxlib_methods.nn.cache_router_mix`); trained with step-wise
  denoising (SDT), the Image Error Proxy-Guided Objective (IEPO) trades the error of the final image against cache
  utilisation. `harmonica_router_objective` is that trade-off in the catalog's form
  L = ||x0_cached - x0_full||^2 + lambda * mean(r) (r = probability of recomputing a block, so the penalty rewards
  caching). NOTE: the paper's proxy (a per-timestep weight approximating the final-image error) is the caller's
  `error_weight`; its exact formula could not be retrieved with the available tools.
- [68] Sifan Long, Linbin Wang, Zhen Zhao, Zichang Tan, Yiming Wu, Shengsheng Wang, Jingdong Wang, "Training-Free
  Unsupervised Prompt for Vision-Language Models" (TFUP), 2024, arXiv:2404.16339: TFUP-T's marginal distribution
  entropy loss L_m = -H(mean_i softmax(z_i)) (`marginal_entropy_loss`), minimised when the batch uses every class
  equally. The authors' code adds 1e-6 inside the log; here the entropy is exact (0 log 0 = 0).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods.validation import check_nonnegative


def harmonica_router_objective(x0_cached: jax.Array, x0_full: jax.Array, router: jax.Array, *, lam: Any,
                               error_weight: Any = 1.0, where: Optional[jax.Array] = None) -> jax.Array:
  """HarmoniCa's router objective per example: error_weight * ||x0_cached - x0_full||^2 + lam * mean(router).

  Huang et al., "HarmoniCa: Harmonizing Training and Inference for Better Feature Caching in Diffusion Transformer
  Acceleration", 2024, arXiv:2410.01723 (IEPO, Sec. 4): the image predicted with the router's cache decisions is
  pulled towards the one of the full (uncached) model, while the mean router value (the share of blocks recomputed,
  i.e. the compute cost) is penalised. The full model's prediction is a constant (stop-gradient).

  Args:
    x0_cached: [B, ...] floating, the denoised prediction with caching (depends on the router).
    x0_full: [B, ...] floating, the prediction of the full model (teacher), same shape.
    router: [...] floating in [0, 1], the router's recompute probabilities (one per timestep and block; shared by
      the batch). Values outside [0, 1]: ValueError eagerly, NaN under jit.
    lam: lambda >= 0, the weight of the compute penalty.
    error_weight: a scalar or [B] weight >= 0 of the image error (the paper's image-error proxy).
    where: optional bool [B]: examples to include (the others give 0 and no gradient).

  Returns:
    [B] in x0_cached's dtype; the batch mean is the objective.
  """
  check_nonnegative(lam, "lam")
  s = validation.check_floating(x0_cached, "x0_cached")
  t = validation.check_floating(x0_full, "x0_full")
  if s.ndim < 1 or s.shape != t.shape:
    raise ValueError(f"x0_cached and x0_full must have the same shape [B, ...], got x0_cached.shape={s.shape}, "
                     f"x0_full.shape={t.shape}")
  r = validation.check_floating(router, "router")
  if r.size == 0:
    raise ValueError(f"router needs at least one entry, got router.shape={r.shape}")
  where = validation.check_where(where, s.shape[:1])
  ok_r = validation.check_values((r >= 0) & (r <= 1), router, "router", "in [0, 1]")
  ok_w = validation.check_positive_values(error_weight, "error_weight", s.shape[:1], allow_zero=True, where=where)
  ct = validation.compute_dtype_for(jnp.result_type(s, t, r))
  d = s.astype(ct) - jax.lax.stop_gradient(t).astype(ct)
  if where is not None:
    d = jnp.where(where.reshape(where.shape + (1,) * (d.ndim - 1)), d, jnp.zeros((), ct))
  err = jnp.sum(d * d, axis=tuple(range(1, d.ndim)))
  usage = validation.nan_where_invalid(jnp.mean(r.astype(ct)), ok_r)  # any invalid entry: NaN
  out = jnp.asarray(error_weight, ct) * err + lam * usage
  return validation.finish_per_example(out, ok_w, where, s.dtype)


def marginal_entropy_loss(logits: jax.Array, *, axis: int = -1) -> jax.Array:
  """TFUP-T's marginal distribution entropy loss: -H(mean_i softmax(logits_i)), a batch-level scalar.

  Long et al., "Training-Free Unsupervised Prompt for Vision-Language Models", 2024, arXiv:2404.16339 (TFUP-T's
  global term): with p_bar = (1/B) sum_i softmax(z_i), L = sum_k p_bar_k log p_bar_k. Its minimum, -log K, is
  reached exactly when the batch's mean prediction is uniform over the K classes.

  Args:
    logits: [B, K] floating (class axis `axis`), B >= 1.
    axis: the class axis.

  Returns:
    A float32 (or wider) scalar; NaN if a logit is NaN.
  """
  z = validation.check_floating(logits, "logits")
  if z.ndim != 2:
    raise ValueError(f"logits must be [B, K], got logits.shape={z.shape}")
  z = jnp.moveaxis(z, validation.check_axis(axis, 2), -1)
  validation.check_min_size(z, "logits", 1)
  p_bar = jnp.mean(jax.nn.softmax(z.astype(validation.compute_dtype_for(z.dtype)), axis=-1), axis=0)
  return jnp.sum(jax.scipy.special.xlogy(p_bar, p_bar))


__all__ = ["harmonica_router_objective", "marginal_entropy_loss"]
