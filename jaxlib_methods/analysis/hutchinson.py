"""Stochastic trace estimation: tr(H) of a loss Hessian and tr(J) of a Jacobian from matrix-vector products only.

Hutchinson's estimator (M. F. Hutchinson, "A Stochastic Estimator of the Trace of the Influence Matrix for Laplacian
Smoothing Splines", Communications in Statistics - Simulation and Computation 19(2), 1990): for Rademacher probes v
(entries +-1 with probability 1/2), E[v^T A v] = tr(A), and the mean of m probes has variance
2 (||A||_F^2 - sum_i A_ii^2) / m for a symmetric A (exactly 0 for a diagonal A).

Hutch++ (R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal Stochastic Trace Estimation", SOSA 2021,
arXiv:2010.09649, Algorithm 1): with m matrix-vector products, m/3 go into a sketch Q = orth(A S) of the top range, m/3
into tr(Q^T A Q) exactly, and m/3 into Hutchinson on the deflated remainder (I - QQ^T) A (I - QQ^T). It is unbiased for
any square A and exact when rank(A) <= m/3.

Used by [198] Wu & Su, "The Implicit Regularization of Dynamical Stability in Stochastic Gradient Descent", ICML 2023,
arXiv:2305.17490 (tr(H) <= 2/eta at minima stable for SGD), and by [212] Rout et al., "Beyond First-Order Tweedie:
Solving Inverse Problems using Latent Diffusion", CVPR 2024, arXiv:2312.00852 (the trace of the denoiser's Jacobian
in O(1) network evaluations). Hessian-vector products come from `jaxlib_methods.analysis.sharpness.hvp`.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxlib_methods import validation
from jaxlib_methods.analysis.sharpness import hvp

_METHODS = ("hutchinson", "hutch++")


def _check_probe_args(num_probes: Any, method: Any, probe_batch_size: Any) -> None:
  if isinstance(num_probes, bool) or not isinstance(num_probes, int):
    raise TypeError(f"num_probes must be an int, got {num_probes=}")
  if num_probes < 1:
    raise ValueError(f"num_probes must be >= 1, got {num_probes=}")
  if method not in _METHODS:
    raise ValueError(f"method must be one of {_METHODS}, got {method=}")
  if method == "hutch++" and num_probes % 3:
    raise ValueError(f"method='hutch++' splits num_probes into three equal parts: num_probes must be a multiple of 3, "
                     f"got {num_probes=}")
  if probe_batch_size is not None:
    if isinstance(probe_batch_size, bool) or not isinstance(probe_batch_size, int):
      raise TypeError(f"probe_batch_size must be an int or None, got {probe_batch_size=}")
    if probe_batch_size < 1:
      raise ValueError(f"probe_batch_size must be >= 1 or None, got {probe_batch_size=}")


def _rademacher(key: jax.Array, shape: tuple, dtype) -> jax.Array:
  return jax.random.rademacher(key, shape, jnp.int8).astype(dtype)


def _map_columns(matvec: Callable[[jax.Array], jax.Array], vs: jax.Array, batch_size: Optional[int]) -> jax.Array:
  """matvec applied to each row of vs [k, P] -> [k, P]: all at once (vmap) or `batch_size` at a time (lax.map)."""
  if batch_size is None or batch_size >= vs.shape[0]:
    return jax.vmap(matvec)(vs)
  return jax.lax.map(matvec, vs, batch_size=batch_size)


def _trace(matvec: Callable[[jax.Array], jax.Array], dim: int, dtype, key: jax.Array, num_probes: int, method: str,
           batch_size: Optional[int]) -> jax.Array:
  """The estimate of tr(A) for the linear map `matvec` on flat [dim] vectors, in `dtype`.

  Probes, the QR of Hutch++ and the reductions run in `validation.compute_dtype_for(dtype)` (float32 for
  float16/bfloat16: LAPACK has no half-precision QR, and half-precision sums of many products lose the trace);
  `matvec` itself sees vectors it casts to the model's dtype, and its outputs are cast up.
  """
  cdt = validation.compute_dtype_for(dtype)
  mv = lambda v: matvec(v).astype(cdt)
  if method == "hutchinson":
    v = _rademacher(key, (num_probes, dim), cdt)
    av = _map_columns(mv, v, batch_size)
    return jnp.mean(jnp.sum(v * av, axis=-1)).astype(dtype)
  # Hutch++ (Meyer et al. 2021, Alg. 1): S, G in {+-1}^{dim x m/3}.
  k = num_probes // 3
  k_s, k_g = jax.random.split(key)
  s = _rademacher(k_s, (k, dim), cdt)
  g = _rademacher(k_g, (k, dim), cdt)
  q, _ = jnp.linalg.qr(_map_columns(mv, s, batch_size).T)          # [dim, min(k, dim)], orthonormal columns
  q = q.T                                                          # rows = basis vectors
  exact_part = jnp.sum(q * _map_columns(mv, q, batch_size))        # tr(Q^T A Q)
  g_perp = g - (g @ q.T) @ q                                       # (I - QQ^T) g
  a_g = _map_columns(mv, g_perp, batch_size)
  a_g_perp = a_g - (a_g @ q.T) @ q                                 # (I - QQ^T) A (I - QQ^T) g
  return (exact_part + jnp.sum(g_perp * a_g_perp) / k).astype(dtype)


def hessian_trace(loss_fn: Callable[[Any], jax.Array], params: Any, *, key: jax.Array, num_probes: int = 100,
                  method: Literal["hutchinson", "hutch++"] = "hutchinson",
                  probe_batch_size: Optional[int] = None) -> jax.Array:
  """Stochastic estimate of tr(H), H the Hessian of the scalar `loss_fn` at `params`, from Hessian-vector products.

  'hutchinson': mean over `num_probes` Rademacher probes v of v^T H v (Hutchinson 1990), unbiased, with variance
  2 (||H||_F^2 - sum_i H_ii^2) / num_probes (0 for a diagonal H: every probe is exact). 'hutch++': Meyer, Musco, Musco,
  Woodruff, "Hutch++: Optimal Stochastic Trace Estimation", 2021, arXiv:2010.09649, Algorithm 1, with `num_probes`
  HVPs in total (a multiple of 3); exact when rank(H) <= num_probes / 3, hence for num_probes >= 3 P.
  The trace is the sharpness measure of [198] Wu & Su, "The Implicit Regularization of Dynamical Stability in
  Stochastic Gradient Descent", 2023, arXiv:2305.17490: a minimum linearly stable for SGD with batch size 1 and
  learning rate eta has tr(H) <= 2 / eta (for GD only lambda_max(H) <= 2 / eta).

  Jit it (close over the batch): un-jitted, every HVP is dispatched op by op.

  Args:
    loss_fn: params -> scalar (close over the batch).
    params: pytree of floating arrays (P >= 1 scalars in total; TypeError for integer leaves).
    key: PRNG key for the probes.
    num_probes: number of HVPs (>= 1; a multiple of 3 for 'hutch++').
    method: 'hutchinson' or 'hutch++'.
    probe_batch_size: HVPs evaluated at once (None: all, by vmap; smaller saves memory on large models).

  Returns:
    The scalar estimate, in the params' dtype (computed in float32 for half-precision params); NaN if the loss or
    its Hessian is NaN.
  """
  _check_probe_args(num_probes, method, probe_batch_size)
  validation.check_float_tree(params, "params")
  flat, unravel = ravel_pytree(params)
  if flat.shape[0] == 0:
    raise ValueError("params has no entries (P = 0): there is no Hessian to measure")

  def mv(x):
    return ravel_pytree(hvp(loss_fn, params, unravel(x.astype(flat.dtype))))[0]

  return _trace(mv, flat.shape[0], flat.dtype, key, num_probes, method, probe_batch_size)


def jacobian_trace(fn: Callable[[jax.Array], jax.Array], x: jax.Array, *, key: jax.Array, num_probes: int = 100,
                   method: Literal["hutchinson", "hutch++"] = "hutchinson",
                   probe_batch_size: Optional[int] = None) -> jax.Array:
  """Stochastic estimate of tr(dfn/dx) (the divergence of `fn` at `x`) from Jacobian-vector products (jax.jvp).

  The estimators of `hessian_trace` (Hutchinson 1990; Hutch++, Meyer et al. 2021, arXiv:2010.09649, Alg. 1) applied
  to J = dfn/dx, flattened to a [N, N] matrix (J need not be symmetric: both are unbiased for any square matrix). For
  a batch of independent examples with one trace each, use `hutchinson_trace_jacobian`.

  Args:
    fn: x -> an array of the same shape (N scalars in total).
    x: floating array, any shape (N >= 1).
    key: PRNG key for the probes.
    num_probes: number of JVPs (>= 1; a multiple of 3 for 'hutch++').
    method: 'hutchinson' or 'hutch++'.
    probe_batch_size: JVPs evaluated at once (None: all, by vmap).

  Returns:
    The scalar estimate of sum_i d fn(x)_i / d x_i, in x's dtype (computed in float32 for half-precision x).
  """
  _check_probe_args(num_probes, method, probe_batch_size)
  x = validation.check_floating(x, "x")
  if x.size == 0:
    raise ValueError(f"x must have at least one entry, got shape {x.shape}")
  out = jax.eval_shape(fn, x)
  if getattr(out, "shape", None) != x.shape:
    raise ValueError(f"fn must map x to an array of x's shape {x.shape} (a square Jacobian), got "
                     f"{getattr(out, 'shape', type(out))}")

  def mv(v):
    return jax.jvp(fn, (x,), (v.reshape(x.shape).astype(x.dtype),))[1].reshape(-1).astype(x.dtype)

  return _trace(mv, x.size, x.dtype, key, num_probes, method, probe_batch_size)


def _check_batched_map(fn, z, num_probes, name: str):
  """The shared input checks of the per-example trace estimators: probes, z [B, ...] floating, fn(z) of z's shape."""
  _check_probe_args(num_probes, "hutchinson", None)
  z = validation.check_floating(z, "z")
  if z.ndim < 2 or z.shape[0] == 0 or z.size == 0:
    raise ValueError(f"z must be [B, ...] with B >= 1 examples of >= 1 entries each, got shape {z.shape}")
  out = jax.eval_shape(fn, z)
  if getattr(out, "shape", None) != z.shape:
    raise ValueError(f"{name} must map z to an array of z's shape {z.shape}, got {getattr(out, 'shape', type(out))}")
  return z


def hutchinson_trace_jacobian(denoiser: Callable[[jax.Array], jax.Array], z: jax.Array, *, key: jax.Array,
                              num_probes: int = 1) -> jax.Array:
  """Per-example Hutchinson estimate of tr(dD(z)_b / dz_b) for a batched denoiser D: [B, ...] -> [B, ...].

  The trace term of the second-order Tweedie sampler STSL ([212] Rout, Chen, Kumar, Caramanis, Shakkottai, Chu,
  "Beyond First-Order Tweedie: Solving Inverse Problems using Latent Diffusion", CVPR 2024, arXiv:2312.00852): the
  trace of the denoiser's (equivalently, of the score's) Jacobian at O(1) network evaluations per probe, where the
  exact trace needs one per latent dimension. For z_t = z_0 + sigma_t eps and the posterior-mean denoiser
  D(z_t) = E[z_0 | z_t], second-order Tweedie gives tr Cov[z_0 | z_t] = sigma_t^2 tr(dD/dz_t).

  Each probe is one JVP with Rademacher v [B, ...]; example b's estimate is the mean over probes of
  sum(v_b * (J v)_b) (Hutchinson 1990). It is unbiased for tr(J_bb) even if D mixes examples (cross terms have mean
  0), and exact for a D acting elementwise (diagonal Jacobian).

  Args:
    denoiser: z -> an array of z's shape, example b's output depending on z[b] (close over t, conditioning).
    z: floating array [B, ...] (B >= 1 examples, each with >= 1 entries).
    key: PRNG key for the probes.
    num_probes: probes per example (>= 1; each costs one JVP of the whole batch).

  Returns:
    [B] estimates, in z's dtype.
  """
  z = _check_batched_map(denoiser, z, num_probes, "denoiser")
  v = _rademacher(key, (num_probes,) + z.shape, z.dtype)
  jv = jax.vmap(lambda u: jax.jvp(denoiser, (z,), (u,))[1].astype(z.dtype))(v)
  axes = tuple(range(2, z.ndim + 1))
  return jnp.mean(jnp.sum(v * jv, axis=axes), axis=0)


def hutchinson_trace_gradient(fn: Callable[[jax.Array], jax.Array], z: jax.Array, *, key: jax.Array,
                              num_probes: int = 1) -> jax.Array:
  """Per-example Hutchinson estimate of grad_z tr(dfn(z)_b / dz_b) for a batched map fn: [B, ...] -> [B, ...].

  The drift of the second-order Tweedie sampler STSL ([212] Rout, Chen, Kumar, Caramanis, Shakkottai, Chu, "Beyond
  First-Order Tweedie: Solving Inverse Problems using Latent Diffusion", CVPR 2024, arXiv:2312.00852): besides the
  data-fit gradient, the sampler's update on z_t contains a term proportional to -grad_{z_t} tr(grad^2 log p_t(z_t))
  (its surrogate-loss theorem; the weight is the sampler's hyperparameter). With fn the score grad log p_t (or, by
  Tweedie, (D(z) - z) / sigma_t^2 for a denoiser D, whose trace differs by the constant -d / sigma_t^2), this is
  grad_z tr(dfn/dz), at O(1) network evaluations per probe instead of one per latent dimension.

  For fixed Rademacher probes v, grad_z of sum(v * (J(z) v)) (one JVP inside one VJP) has expectation
  grad_z tr(J(z)) (E[v v^T] = I), so the mean over probes is unbiased; it is exact when fn acts elementwise
  (diagonal Jacobian), for any probe. The probes are those of `hutchinson_trace_jacobian` with the same key.

  Args:
    fn: z -> an array of z's shape, example b's output depending on z[b] (close over t, conditioning).
    z: floating array [B, ...] (B >= 1 examples, each with >= 1 entries).
    key: PRNG key for the probes.
    num_probes: probes per example (>= 1).

  Returns:
    [B, ...] estimates of grad_z tr(J_bb), in z's dtype.
  """
  z = _check_batched_map(fn, z, num_probes, "fn")
  g = jax.grad(lambda zz: jnp.sum(hutchinson_trace_jacobian(fn, zz, key=key, num_probes=num_probes)))(z)
  return g.astype(z.dtype)
