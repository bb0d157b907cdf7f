"""Objectives of two feature-cache papers (issue 22): a learned cache router's objective and a marginal-entropy term.

Papers:

- [53] Yushi Huang, Zining Wang, Ruihao Gong, Jing Liu, Xinjie Zhang, Jinyang Guo, Xianglong Liu, Jun Zhang,
  "HarmoniCa: Harmonizing Training and Inference for Better Feature Caching in Diffusion Transformer
  Acceleration", 2024 (ICML 2025), arXiv:2410.01723. A learnable router r_t = sigmoid(theta_t) in (0, 1) per
  timestep and block (attention and MLP) mixes each block's fresh output with its cached one
  (`jaxlib_methods.nn.cache_router_mix`). With step-wise denoising training (SDT), the Image Error Proxy-Guided
  Objective (IEPO) at timestep t is, as in the authors' released `train_router.py`,
  L_t = lambda^(t) * mean_b mean_elements (pred_full - pred_cached)^2 + beta * sum_blocks r_t
  (`harmonica_router_objective`; pred = the model's output, the noise prediction in their DiT code). The proxy
  lambda^(t) is the mean squared difference between the final images sampled with and without the router's cache
  decisions at step t (their `get_lambda`, refreshed every few epochs); the caller computes it and passes it as
  `error_weight`.
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


def harmonica_router_objective(pred_cached: jax.Array, pred_full: jax.Array, router: jax.Array, *, lam: Any,
                               error_weight: Any = 1.0, where: Optional[jax.Array] = None) -> jax.Array:
  """HarmoniCa's IEPO per example: error_weight * mean((pred_cached - pred_full)^2) + lam * sum(router).

  Huang et al., "HarmoniCa: Harmonizing Training and Inference for Better Feature Caching in Diffusion Transformer
  Acceleration", 2024, arXiv:2410.01723 (IEPO, as in the released `train_router.py`): the output of the model with
  the router's cache decisions is pulled towards the one of the full (uncached) model, weighted by the image-error
  proxy lambda^(t), while the sum of the router's scores (how many blocks are recomputed, i.e. the compute) is
  penalised. The full model's output is a constant (stop-gradient). The batch mean of the output is the paper's
  L_t exactly (the penalty is the same for every example).

  Args:
    pred_cached: [B, ...] floating, the model output at timestep t with caching (depends on the router).
    pred_full: [B, ...] floating, the full model's output at the same input, same shape.
    router: [...] floating in [0, 1], the router's scores at timestep t (one per block; shared by the batch).
      Values outside [0, 1]: ValueError eagerly, NaN under jit.
    lam: beta >= 0, the weight of the compute penalty (the code's `--l1`), a scalar (negative: ValueError eagerly,
      NaN under jit).
    error_weight: lambda^(t) >= 0, a scalar or [B], the image-error proxy of timestep t.
    where: optional bool [B]: examples to include (the others give 0 and no gradient).

  Returns:
    [B] in pred_cached's dtype; the batch mean is the objective.
  """
  check_nonnegative(lam, "lam")
  s = validation.check_floating(pred_cached, "pred_cached")
  t = validation.check_floating(pred_full, "pred_full")
  if s.ndim < 1 or s.shape != t.shape:
    raise ValueError(f"pred_cached and pred_full must have the same shape [B, ...], got pred_cached.shape={s.shape}, "
                     f"pred_full.shape={t.shape}")
  r = validation.check_floating(router, "router")
  if r.size == 0:
    raise ValueError(f"router needs at least one entry, got router.shape={r.shape}")
  where = validation.check_where(where, s.shape[:1])
  ok_r = validation.check_values((r >= 0) & (r <= 1), router, "router", "in [0, 1]")
  ok_w = validation.check_positive_values(error_weight, "error_weight", s.shape[:1], allow_zero=True, where=where)
  ok_w = validation.combine_valid(ok_w, validation.check_positive_values(lam, "lam", (), allow_zero=True))
  ct = validation.compute_dtype_for(jnp.result_type(s, t, r))
  d = s.astype(ct) - jax.lax.stop_gradient(t).astype(ct)
  if where is not None:
    d = jnp.where(where.reshape(where.shape + (1,) * (d.ndim - 1)), d, jnp.zeros((), ct))
  err = jnp.mean(d * d, axis=tuple(range(1, d.ndim)))
  usage = validation.nan_where_invalid(jnp.sum(r.astype(ct)), ok_r)  # any invalid entry: NaN
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
  # 0 log 0 = 0 with a zero gradient: xlogy's derivative log(p) + 1 is -inf at p = 0 (a class at -inf in every row).
  # `!= 0`, not `> 0`: a NaN mean (a NaN or +Inf logit) takes the log branch and stays NaN (conventions, rule 3).
  pos = p_bar != 0
  return jnp.sum(jnp.where(pos, p_bar * jnp.log(jnp.where(pos, p_bar, 1.0)), 0.0))


__all__ = ["harmonica_router_objective", "marginal_entropy_loss"]
