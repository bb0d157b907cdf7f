"""Classifier-free guidance and adaptive projected guidance (APG).

[136] Seyedmorteza Sadat, Otmar Hilliges, Romann M. Weber, "Eliminating Oversaturation and Artifacts of High Guidance
Scales in Diffusion Models", ICLR 2025, arXiv:2410.02416.

Both act on the denoised (x0) predictions D_c = D(x, sigma, c) and D_u = D(x, sigma) of one sampling step. CFG
(Ho & Salimans 2022) is D_u + w (D_c - D_u) = D_c + (w - 1) Delta with Delta = D_c - D_u. APG (the paper's method section and its
reference code; equation numbers not checked here) changes Delta three ways before the same step D_c + (w - 1) Delta':
  1. reverse momentum: Delta_t <- Delta_t + beta Delta_{t-1}, the running average carried between sampling
     steps (beta < 0; public implementations of the paper default to beta = -0.75);
  2. norm rescaling: Delta <- Delta min(1, r / ||Delta||);
  3. projection: Delta = Delta_par + Delta_perp with Delta_par the component along D_c, and
     Delta' = Delta_perp + eta Delta_par (eta = 0 drops the parallel part that causes oversaturation).
With eta = 1, r = inf and beta = 0, APG is CFG exactly.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation
from jaxlib_methods._norms import safe_l2_norm

Axis = Optional[Union[int, Sequence[int]]]


class APGState(NamedTuple):
  """APG's momentum buffer: the running average of the guidance update Delta (shape of the predictions).

  Sadat et al., "Eliminating Oversaturation and Artifacts of High Guidance Scales in Diffusion Models", ICLR 2025,
  arXiv:2410.02416 (reverse momentum, beta < 0).

  running_average: the shape of the denoised predictions D_c, e.g. [B, H, W, C].
  """
  running_average: jax.Array


def _axes(axis: Axis, ndim: int) -> tuple[int, ...]:
  if axis is None:
    return tuple(range(1, ndim)) if ndim > 1 else (0,)
  axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
  if not axes:
    raise ValueError(f"axis must name at least one axis, got {axis=}")
  return tuple(validation.check_axis(a, ndim) for a in axes)


def _check_pair(d_cond, d_uncond):
  d_cond = validation.check_floating(d_cond, "d_cond")
  d_uncond = validation.check_floating(d_uncond, "d_uncond")
  if d_cond.shape != d_uncond.shape:
    raise ValueError(f"d_cond and d_uncond must have one shape, got {d_cond.shape=} and {d_uncond.shape=}")
  return d_cond, d_uncond


def cfg_guidance(d_cond: jax.Array, d_uncond: jax.Array, guidance_scale) -> jax.Array:
  """Classifier-free guidance D_u + w (D_c - D_u) (Ho & Salimans 2022, arXiv:2207.12598).

  The baseline of [136] (Sadat et al., "Eliminating Oversaturation and Artifacts of High Guidance Scales in Diffusion
  Models", 2024, arXiv:2410.02416).

  Args:
    d_cond: conditional prediction D_c, any shape [B, ...].
    d_uncond: unconditional prediction D_u, the shape of `d_cond`.
    guidance_scale: w (a scalar; w = 1 is the conditional prediction, w = 0 the unconditional one).

  Returns:
    The guided prediction, the shape and dtype of `d_cond`.
  """
  d_cond, d_uncond = _check_pair(d_cond, d_uncond)
  if validation.is_concrete_number(guidance_scale) and not np.isfinite(float(guidance_scale)):
    raise ValueError(f"guidance_scale must be finite, got {guidance_scale=}")
  return (d_uncond + guidance_scale * (d_cond - d_uncond)).astype(d_cond.dtype)


def project(v: jax.Array, onto: jax.Array, *, axis: Axis = None) -> tuple[jax.Array, jax.Array]:
  """Split v into its components parallel and orthogonal to `onto`, per example (the decomposition of [136]
  Sadat et al. 2024, arXiv:2410.02416, abstract and method section).

  v_par = <v, u> u with u = onto / ||onto|| (norm over `axis`), v_perp = v - v_par; where onto = 0, v_par = 0.
  Computed in at least float32.

  Args:
    v: the vector to split, [B, ...].
    onto: the direction, the shape of `v`.
    axis: the axes spanning one example's vector; default all but the first (all axes of a 1-D input).

  Returns:
    (v_par, v_perp), each the shape and dtype of `v`.
  """
  v = validation.check_floating(v, "v")
  onto = validation.check_floating(onto, "onto")
  if v.shape != onto.shape:
    raise ValueError(f"v and onto must have one shape, got {v.shape=} and {onto.shape=}")
  axes = _axes(axis, v.ndim)
  ct = jnp.promote_types(v.dtype, jnp.float32)
  vf, of = v.astype(ct), onto.astype(ct)
  sq = jnp.sum(of * of, axis=axes, keepdims=True)
  safe = jnp.where(sq > 0, sq, 1.0)
  par = jnp.where(sq > 0, jnp.sum(vf * of, axis=axes, keepdims=True) / safe, 0.0) * of
  return par.astype(v.dtype), (vf - par).astype(v.dtype)


def apg_init(d_cond: jax.Array) -> APGState:
  """A zero momentum buffer for `apg_guidance`, the shape and dtype of the predictions ([136] arXiv:2410.02416).

  Args:
    d_cond: a prediction (or its `jax.ShapeDtypeStruct`), [B, ...].

  Returns:
    `APGState` of zeros.
  """
  return APGState(jnp.zeros(d_cond.shape, d_cond.dtype))


def apg_guidance(d_cond: jax.Array, d_uncond: jax.Array, guidance_scale, *, eta=0.0, norm_threshold=float("inf"),
                 momentum=0.0, state: Optional[APGState] = None, axis: Axis = None) -> tuple[jax.Array, APGState]:
  """Adaptive projected guidance: one step's guided denoised prediction and the new momentum buffer.

  Sadat, Hilliges, Weber, "Eliminating Oversaturation and Artifacts of High Guidance Scales in Diffusion Models",
  ICLR 2025, arXiv:2410.02416 (catalog [136]), the method section (projection, rescaling, reverse momentum):

      Delta  = D_c - D_u + beta * running_average          (reverse momentum, beta = `momentum` <= 0 in the paper)
      Delta <- Delta * min(1, r / ||Delta||)               (r = `norm_threshold`, per example)
      Delta  = Delta_par + Delta_perp                      (components along D_c and orthogonal to it)
      D_w    = D_c + (w - 1) (Delta_perp + eta Delta_par)

  The new running average is Delta after the momentum step (before rescaling), as in the paper's code. With eta = 1,
  norm_threshold = inf and momentum = 0 this is `cfg_guidance` exactly. Apply it to the denoised (x0) prediction, as
  the paper does, not to the noise prediction.

  Args:
    d_cond: conditional denoised prediction D_c, [B, ...].
    d_uncond: unconditional denoised prediction D_u, the shape of `d_cond`.
    guidance_scale: w (a scalar).
    eta: weight of the parallel component (the paper recommends 0); any finite number.
    norm_threshold: r > 0, the largest norm the update keeps (inf: no rescaling).
    momentum: beta, the momentum of the running average (the paper uses negative values; |beta| < 1).
    state: the `APGState` of the previous sampling step (None: zeros, the first step).
    axis: the axes spanning one example (norms and projections); default all but the first.

  Returns:
    (guided prediction of the shape and dtype of `d_cond`, new `APGState`).
  """
  d_cond, d_uncond = _check_pair(d_cond, d_uncond)
  for name, val in (("guidance_scale", guidance_scale), ("eta", eta)):
    if validation.is_concrete_number(val) and not np.isfinite(float(val)):
      raise ValueError(f"{name} must be finite, got {name}={val!r}")
  if validation.is_concrete_number(norm_threshold) and not float(norm_threshold) > 0:
    raise ValueError(f"norm_threshold must be > 0 (inf: no rescaling), got {norm_threshold=}")
  validation.check_in_interval(momentum, "momentum", -1.0, 1.0, closed_low=False, closed_high=False)
  axes = _axes(axis, d_cond.ndim)
  if state is None:
    state = apg_init(d_cond)
  if not isinstance(state, APGState) or jnp.shape(state.running_average) != d_cond.shape:
    raise ValueError(f"state must be an APGState of shape {d_cond.shape}, got {state!r:.80}")
  diff = d_cond - d_uncond + momentum * state.running_average.astype(d_cond.dtype)
  new_state = APGState(diff)
  ct = jnp.promote_types(diff.dtype, jnp.float32)
  norm = safe_l2_norm(diff.astype(ct), axis=axes, keepdims=True)          # finite gradient where Delta = 0
  scale = jnp.where(norm > norm_threshold, norm_threshold / jnp.where(norm > 0, norm, 1.0), 1.0)
  diff = (diff.astype(ct) * scale).astype(d_cond.dtype)
  par, perp = project(diff, d_cond, axis=axes)
  guided = d_cond + (guidance_scale - 1) * (perp + eta * par)
  return guided.astype(d_cond.dtype), new_state
