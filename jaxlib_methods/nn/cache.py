"""Feature-cache ops of three application papers (issue 22): a learned cache router's mix and two cache classifiers.

Papers:

- [53] Huang et al., "HarmoniCa: Harmonizing Training and Inference for Better Feature Caching in Diffusion
  Transformer Acceleration", 2024, arXiv:2410.01723: a block's output at a timestep is r * fresh + (1 - r) * cached
  with a learnable router r = sigmoid(theta) in (0, 1) per timestep and block (`cache_router_mix`; the released
  DiT code mixes each block's attention and MLP branch outputs this way, and thresholds r at inference, the
  README's `--thres 0.1`). The training objective is `jaxlib_methods.losses.harmonica_router_objective`.
- [68] Long et al., "Training-Free Unsupervised Prompt for Vision-Language Models" (TFUP), 2024, arXiv:2404.16339:
  the Feature Cache Model with the Multi-level Similarity Measure (`feature_cache_predict`), transcribed from the
  authors' released code: feature-level cosine affinity times a semantic-level similarity from the KL divergence
  between the zero-shot predictions of the test and cached samples, then Tip-Adapter's exp(-beta (1 - .)) kernel,
  added as a residual to the zero-shot logits.
- [108] Qijie Wang, Guandu Liu, Bin Wang, "CapS-Adapter: Caption-based MultiModal Adapter in Zero-Shot
  Classification", 2024, arXiv:2405.16591: Tip-Adapter-style cache logits over a multimodal support set, as in the
  authors' released `madapter.py`: the affinity of a query to support sample j fuses its image and caption features,
  A_j = (1 - delta) f.k_img_j + delta f.k_cap_j, and the cache logits are exp(-beta (1 - A)) V
  (`cache_affinity_logits`; delta = 0 is Tip-Adapter, Zhang et al., arXiv:2111.03930, Eq. (5)). The released code
  adds them as alpha * cache logits to CLIP's 100 f W^T, plus a TIP-X-style KL term (not built here).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods._norms import l2_normalize
from jaxlib_methods.validation import check_in_interval, check_nonnegative, check_positive


def _l2n(x: jax.Array) -> jax.Array:
  return l2_normalize(x)   # a zero (padded) row stays 0, not NaN


def _feats(x: Any, name: str, dim: int | None = None) -> jax.Array:
  x = validation.check_floating(x, name)
  if x.ndim != 2:
    raise ValueError(f"{name} must be a matrix [N, D], got {name}.shape={x.shape}")
  if dim is not None and x.shape[1] != dim:
    raise ValueError(f"{name} must have feature size D={dim} (that of features), got {name}.shape={x.shape}")
  return x


def cache_router_mix(fresh: jax.Array, cached: jax.Array, router: Any) -> jax.Array:
  """HarmoniCa's routed block output r * fresh + (1 - r) * cached (Huang et al. 2024, arXiv:2410.01723).

  Args:
    fresh: [...] floating, the block's output computed at this timestep.
    cached: [...] floating, the output cached from an earlier timestep, same shape.
    router: r in [0, 1], a scalar or an array broadcastable to `fresh` (1: recompute, 0: reuse the cache).

  Returns:
    [...] in the dtype of fresh and cached combined. Gradients reach both inputs and the router.
  """
  f = validation.check_floating(fresh, "fresh")
  c = validation.check_floating(cached, "cached")
  if f.shape != c.shape:
    raise ValueError(f"fresh and cached must have the same shape, got fresh.shape={f.shape}, cached.shape={c.shape}")
  r = validation.check_floating(router, "router")
  try:
    jnp.broadcast_shapes(r.shape, f.shape)
  except ValueError:
    raise ValueError(f"router must broadcast to fresh's shape {f.shape}, got router.shape={r.shape}") from None
  ok = validation.check_values((r >= 0) & (r <= 1), router, "router", "in [0, 1]")
  out = r * f + (1 - r) * c
  return validation.nan_where_invalid(out, None if ok is None else jnp.broadcast_to(ok, out.shape))


def cache_affinity_logits(features: jax.Array, cache_keys: jax.Array, cache_values: jax.Array, *,
                          beta: Any = 1.0, caption_keys: Optional[jax.Array] = None, delta: Any = 0.0) -> jax.Array:
  """CapS-Adapter / Tip-Adapter cache logits exp(-beta (1 - A)) V with A = (1 - delta) f k_img + delta f k_cap.

  Wang et al., "CapS-Adapter: Caption-based MultiModal Adapter in Zero-Shot Classification", 2024,
  arXiv:2405.16591 (multimodal support set; the released `madapter.py`), on the cache model of Zhang et al.,
  "Tip-Adapter", arXiv:2111.03930, Eq. (5): the affinity of a query to support sample j is the cosine similarity
  to its image feature, blended (weight delta) with the cosine similarity to its caption's text feature; the
  cache logits are the exp(-beta (1 - affinity))-weighted sum of the support labels. Features and keys are
  L2-normalised here (the released code stores them normalised).

  Args:
    features: [B, D] floating, query image features (e.g. CLIP image embeddings).
    cache_keys: [M, D] floating, the support samples' image features.
    cache_values: [M, C] floating, the support labels (one-hot or soft).
    beta: beta >= 0, the sharpness of the affinity.
    caption_keys: optional [M, D] floating, the text features of the support samples' captions (row j pairs with
      cache_keys[j]); needed when delta > 0.
    delta: the caption weight, in [0, 1] (0: Tip-Adapter's image-only cache).

  Returns:
    [B, C] in the features' dtype (float32 compute for half inputs). Add `alpha *` this to the zero-shot logits.
  """
  check_nonnegative(beta, "beta")
  check_in_interval(delta, "delta", 0.0, 1.0)
  f = _feats(features, "features")
  k = _feats(cache_keys, "cache_keys", f.shape[1])
  v = _feats(cache_values, "cache_values")
  if v.shape[0] != k.shape[0]:
    raise ValueError(f"cache_values needs one row per cache key ({k.shape[0]}), got cache_values.shape={v.shape}")
  if caption_keys is None and (not validation.is_concrete_number(delta) or float(delta) != 0.0):
    raise ValueError(f"delta={delta!r} weights caption features: pass caption_keys [M, D] (or delta=0)")
  ct = validation.compute_dtype_for(jnp.result_type(f, k, v))
  fh = _l2n(f.astype(ct))
  a = fh @ _l2n(k.astype(ct)).T
  if caption_keys is not None:
    c = _feats(caption_keys, "caption_keys", f.shape[1])
    if c.shape != k.shape:
      raise ValueError(f"caption_keys must pair with cache_keys {k.shape}, got caption_keys.shape={c.shape}")
    a = (1.0 - delta) * a + delta * (fh @ _l2n(c.astype(ct)).T)
  return (jnp.exp(-beta * (1.0 - a)) @ v.astype(ct)).astype(f.dtype)


def feature_cache_predict(features: jax.Array, cache_keys: jax.Array, cache_labels: jax.Array,
                          text_weights: jax.Array, *, alpha: Any = 0.3, beta: Any = 1.0,
                          logit_scale: Any = 100.0, semantic_scale: Any = 10.0) -> jax.Array:
  """TFUP's training-free prediction: zero-shot logits + alpha * multi-level-similarity cache logits.

  Long et al., "Training-Free Unsupervised Prompt for Vision-Language Models", 2024, arXiv:2404.16339 (Feature
  Cache Model and Multi-level Similarity Measure), as in the authors' code. With f_hat, k_hat_j, w_hat_c the
  L2-normalised test feature, cached features and class text embeddings, p = softmax(s f_hat W^T) and
  q_j = softmax(s k_hat_j W^T) (s = `semantic_scale`):

      kl_j   = KL(p || q_j)                                     (semantic level)
      sim_j  = 2 (1 - (kl_j - min_j kl) / (max_j kl - min_j kl))   (in [0, 2]; 2 for the closest cached sample)
      R_j    = (f_hat . k_hat_j) * sim_j                        (feature level x semantic level)
      logits = logit_scale * f_hat W^T + alpha * sum_j exp(-beta (1 - R_j)) onehot(y_j)

  (The code standardises kl per row before the min-max step, which leaves sim unchanged.) Where every cached
  sample is equally far (max = min), sim = 2.

  Args:
    features: [B, D] floating, test image features.
    cache_keys: [M, D] floating, M >= 1 cached (selected, pseudo-labelled) features.
    cache_labels: [M] integer pseudo-labels in [0, C).
    text_weights: [C, D] floating, the class text embeddings (zero-shot classifier).
    alpha: alpha >= 0, the residual ratio of the cache logits (0.3 in the authors' code).
    beta: beta >= 0, the affinity sharpness (1.0 in the authors' code).
    logit_scale: scale > 0 of the zero-shot logits (CLIP's 100).
    semantic_scale: s > 0, the temperature inverse of the semantic-level predictions (10 in the code).

  Returns:
    [B, C] logits in the features' dtype (float32 compute for half inputs).
  """
  for name, v in (("alpha", alpha), ("beta", beta)):
    check_nonnegative(v, name)
  for name, v in (("logit_scale", logit_scale), ("semantic_scale", semantic_scale)):
    check_positive(v, name)
  f = _feats(features, "features")
  k = _feats(cache_keys, "cache_keys", f.shape[1])
  w = _feats(text_weights, "text_weights", f.shape[1])
  if k.shape[0] < 1 or w.shape[0] < 1:
    raise ValueError(f"need at least one cached sample and one class, got cache_keys.shape={k.shape}, "
                     f"text_weights.shape={w.shape}")
  y = validation.check_integer(cache_labels, "cache_labels")
  if y.shape != (k.shape[0],):
    raise ValueError(f"cache_labels must have shape ({k.shape[0]},) (one per cache key), got {y.shape}")
  ok = validation.check_values((y >= 0) & (y < w.shape[0]), y, "cache_labels",
                               f"integer class indices in [0, {w.shape[0]})")
  ct = validation.compute_dtype_for(jnp.result_type(f, k, w))
  fh, kh, wh = _l2n(f.astype(ct)), _l2n(k.astype(ct)), _l2n(w.astype(ct))
  logp = jax.nn.log_softmax(semantic_scale * fh @ wh.T, axis=-1)   # [B, C]
  logq = jax.nn.log_softmax(semantic_scale * kh @ wh.T, axis=-1)   # [M, C]
  kl = jnp.sum(jnp.exp(logp) * logp, axis=-1, keepdims=True) - jnp.exp(logp) @ logq.T  # [B, M]
  lo, hi = jnp.min(kl, axis=-1, keepdims=True), jnp.max(kl, axis=-1, keepdims=True)
  span = hi - lo
  frac = jnp.where(span > 0, (kl - lo) / jnp.where(span > 0, span, 1), jnp.zeros((), ct))
  sim = 2.0 * (1.0 - frac)
  r = (fh @ kh.T) * sim
  onehot = jax.nn.one_hot(jnp.clip(y, 0, w.shape[0] - 1), w.shape[0], dtype=ct)
  onehot = validation.nan_where_invalid(onehot, ok)
  logits = logit_scale * fh @ wh.T + alpha * jnp.exp(-beta * (1.0 - r)) @ onehot
  return logits.astype(f.dtype)


__all__ = ["cache_affinity_logits", "cache_router_mix", "feature_cache_predict"]
