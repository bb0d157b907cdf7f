"""FlipNeRF's flipped reflection rays and uncertainty-aware emptiness loss (the rest of FlipNeRF is a full
mip-NeRF with a mixture-density colour head, out of scope here).

Paper [0]: Seunghyeon Seo, Yeonjin Chang, Nojun Kwak, "FlipNeRF: Flipped Reflection Rays for Few-shot Novel View
Synthesis", ICCV 2023, arXiv:2306.17723. Sec. 3.1: the flipped reflection direction d' = 2 (d·n) n − d (the mirror
reflection r = d − 2 (d·n) n, negated, so that d' points back towards where a camera would see the surface point
under the reflected view) and the imaginary origin o' = x − t d' of a ray that meets the surface point x = o + t d
at the same depth t; rays whose normal faces away from the camera (−d·n <= 0) are masked out. Sec. 3.3: the
Uncertainty-aware Emptiness (UE) loss mean_i log(1 + η ρ w_i), with ρ the (stop-gradient) per-ray uncertainty.
Both transcribed from the authors' code, github.com/shawn615/FlipNeRF (internal/models.py: `flip_directions`,
`flip_origins`, `flip_mask`; train.py: `ue_loss`, with η = `config.eta` = 2.0).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxlib_methods import validation
from jaxlib_methods._norms import l2_normalize

__all__ = ["flipped_reflection_rays", "uncertainty_aware_emptiness_loss"]


def flipped_reflection_rays(origins: jax.Array, directions: jax.Array, normals: jax.Array, t: jax.Array, *,
                            normalize_normals: bool = True) -> tuple[jax.Array, jax.Array, jax.Array]:
  """FlipNeRF's flipped reflection rays ("FlipNeRF: Flipped Reflection Rays for Few-shot Novel View Synthesis",
  Seo et al. 2023, arXiv:2306.17723, Sec. 3.1).

  d' = 2 (d·n̂) n̂ − d, o' = (o + t d) − t d', valid = (−d̂·n̂ > 0). Exact properties (tested): ‖d'‖ = ‖d‖ (a
  rotation by π about n̂), d'·n̂ = d·n̂ (so the mirror reflection r = −d' has r·n̂ = −(d·n̂)), and o' + t d' = o + t d:
  the flipped ray passes through the same surface point at the same depth t.

  Args:
    origins: [..., 3] ray origins o.
    directions: [..., 3] ray directions d (any length; FlipNeRF's are not unit).
    normals: [..., 3] estimated surface normals n (the authors use the weight-averaged normals of the ray).
    t: [...] depth of the surface point along each ray (the authors: the sample of maximal weight).
    normalize_normals: divide n by its norm first (the reflection formula assumes a unit normal; the authors'
      code uses the averaged normals as they are, which are close to unit length).

  Returns:
    (flip_origins [..., 3], flip_directions [..., 3], valid [...] bool).
  """
  o = validation.check_floating(origins, "origins")
  d = validation.check_floating(directions, "directions")
  n = validation.check_floating(normals, "normals")
  t = validation.check_floating(t, "t")
  for a, name in ((o, "origins"), (d, "directions"), (n, "normals")):
    if a.ndim < 1 or a.shape[-1] != 3:
      raise ValueError(f"{name} must be [..., 3], got {name}.shape={a.shape}")
  if not (o.shape == d.shape == n.shape):
    raise ValueError(f"origins, directions and normals must have the same shape, got {o.shape}, {d.shape}, {n.shape}")
  if t.shape != o.shape[:-1]:
    raise ValueError(f"t must be [...]={o.shape[:-1]} (one depth per ray), got t.shape={t.shape}")
  if not isinstance(normalize_normals, bool):
    raise TypeError(f"normalize_normals must be a bool, got {normalize_normals=!r}")
  dtype = jnp.result_type(o.dtype, d.dtype, n.dtype, t.dtype)
  ct = validation.compute_dtype_for(dtype)
  o, d, n, t = (a.astype(ct) for a in (o, d, n, t))
  if normalize_normals:
    n = l2_normalize(n)  # a zero normal stays 0 (flip_d = -d, masked invalid) with a finite gradient, not NaN
  flip_d = 2.0 * jnp.sum(n * d, axis=-1, keepdims=True) * n - d
  flip_o = (o + t[..., None] * d) - t[..., None] * flip_d
  cos = jnp.sum(-l2_normalize(d) * n, axis=-1)
  valid = jnp.where(jnp.isfinite(cos), cos, -1.0) > 0
  return flip_o.astype(dtype), flip_d.astype(dtype), valid


def uncertainty_aware_emptiness_loss(weights: jax.Array, uncertainty: jax.Array, *, eta: float = 2.0) -> jax.Array:
  """FlipNeRF's Uncertainty-aware Emptiness loss per ray: (1/S) Σ_i log(1 + η ρ w_i) (FlipNeRF, Seo et al. 2023,
  arXiv:2306.17723, Sec. 3.3).

  ρ = stopgrad( Σ_i mean_c β_ic ) is the ray's total predicted uncertainty (the scales β of the mixture-of-Laplace
  colour head, summed over the S samples and averaged over the C colour channels, as the authors' `rho`). The log
  penalises spread-out density (floaters) more on uncertain rays; its gradient reaches only the weights.

  Args:
    weights: [R, S] volume-rendering weights w_i of R rays with S samples each, >= 0.
    uncertainty: [R, S, C] per-sample, per-channel uncertainty β >= 0 (C = 3 for RGB; C = 1 allowed).
    eta: η > 0, the steepness (the authors' default 2.0).

  Returns:
    [R] per-ray losses, the weights' dtype (float16/bfloat16 computed in float32).
  """
  w = validation.check_floating(weights, "weights")
  beta = validation.check_floating(uncertainty, "uncertainty")
  validation.check_positive(eta, "eta")
  if w.ndim != 2:
    raise ValueError(f"weights must be [R, S] (rays, samples), got weights.shape={w.shape}")
  if beta.ndim != 3 or beta.shape[:2] != w.shape:
    raise ValueError(f"uncertainty must be [R, S, C] with [R, S]={w.shape}, got uncertainty.shape={beta.shape}")
  valid = validation.combine_valid(
      validation.check_values(jnp.all(jnp.isnan(w) | (w >= 0), axis=-1), w, "weights", "non-negative"),
      validation.check_values(jnp.all(jnp.isnan(beta) | (beta >= 0), axis=(-2, -1)), beta, "uncertainty",
                              "non-negative"))
  ct = validation.compute_dtype_for(w.dtype)
  rho = jax.lax.stop_gradient(jnp.sum(jnp.mean(beta.astype(ct), axis=-1), axis=-1, keepdims=True))  # [R, 1]
  loss = jnp.mean(jnp.log1p(eta * rho * w.astype(ct)), axis=-1)
  return validation.finish_per_example(loss, valid, None, w.dtype)
