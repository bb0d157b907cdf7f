"""Consistency-training losses: iCT (pseudo-Huber, lognormal sigma sampler, doubling curriculum) and the latent-space
improvements (Cauchy distance, minibatch optimal-transport coupling of noise and data).

Papers:
  [2] Yang Song, Prafulla Dhariwal, "Improved Techniques for Training Consistency Models", ICLR 2024,
      arXiv:2310.14189 (Sec. 3: weighting lambda(sigma_i) = 1 / (sigma_{i+1} - sigma_i), pseudo-Huber metric with
      c = 0.00054 sqrt(d), no EMA teacher: theta^- = stopgrad(theta); Sec. 3.4 curriculum N(k); Sec. 3.5 lognormal
      noise schedule with P_mean = -1.1, P_std = 2.0; Karras et al. grid with sigma_min = 0.002, sigma_max = 80,
      rho = 7).
  [3] Quan Dao, Khanh Doan, Di Liu, Trung Le, Dimitris Metaxas, "Improved Training Technique for Latent Consistency
      Models", ICLR 2025, arXiv:2502.01441 (Cauchy loss replacing pseudo-Huber; OT coupling of noise and data).

The consistency loss of iCT for one example, with z ~ N(0, I) and i sampled from the lognormal sampler, is

    lambda(sigma_i) * d( f_theta(x + sigma_{i+1} z, sigma_{i+1}),  stopgrad f_theta(x + sigma_i z, sigma_i) )

where d is the pseudo-Huber metric over the WHOLE sample, d(x, y) = sqrt(||x - y||_2^2 + c^2) - c (the norm is over
every non-batch axis; it is not an element-wise Huber, a mistake in some ports).

[3]'s formulas could not be read from the paper text available to us (only its abstract); the Cauchy constant, the
adaptive scaling-c schedule (`lct_adaptive_c`) and the early-timestep diffusion loss (`early_timestep_mask`,
`edm_diffusion_weight`, `lct_diffusion_loss`, `lct_total_loss`) are transcribed from the authors' own training code
(github.com/quandao10/LCT: models/karras_diffusion.py and the train_cm_latent scripts; the official release
github.com/quandao10/sLCT holds only the network and sampling scripts). The non-scaling LayerNorm is
`jaxlib_methods.nn.NonScalingLayerNorm` (the authors' class in models/network_karras.py: LayerNorm with its scale
frozen at 1 and a learnable bias). `cauchy_loss` is
log(1 + r^2 / (2 c^2)) (Barron 2019's alpha = 0 case); the authors' code forms r^2 as the per-entry MEAN of the
squared residual (`reduction="mean"`), while the default here is the whole-sample squared norm (`reduction="sum"`).

All losses are per example: inputs [B, ...] -> [B]; reduce outside.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation
from jaxlib_methods.validation import check_in_interval, check_nonnegative, check_positive, is_concrete_number

# iCT defaults (Song & Dhariwal 2024, Sec. 3 and Table 1 / Karras et al. 2022).
SIGMA_MIN = 0.002
SIGMA_MAX = 80.0
RHO = 7.0
SIGMA_DATA = 0.5
P_MEAN = -1.1
P_STD = 2.0
PSEUDO_HUBER_C_PER_SQRT_DIM = 0.00054


def _check_pair(x: jax.Array, y: jax.Array, x_name: str = "x", y_name: str = "y") -> None:
  validation.check_floating(x, x_name)
  validation.check_floating(y, y_name)
  if jnp.shape(x) != jnp.shape(y):
    raise ValueError(f"{x_name} and {y_name} must have the same shape, got {x_name}.shape={jnp.shape(x)}, "
                     f"{y_name}.shape={jnp.shape(y)}")
  if jnp.ndim(x) < 1:
    raise ValueError(f"{x_name} must have a leading batch axis (rank >= 1), got {x_name}.shape={jnp.shape(x)}")
  if jnp.asarray(x).dtype != jnp.asarray(y).dtype:
    raise ValueError(f"{x_name} and {y_name} must have the same dtype, got {x_name}.dtype={jnp.asarray(x).dtype}, "
                     f"{y_name}.dtype={jnp.asarray(y).dtype}")


def _sq_norm_per_example(x: jax.Array, y: jax.Array) -> jax.Array:
  """||x_i - y_i||^2 over the non-batch axes, in float32 for half-precision inputs."""
  ct = validation.compute_dtype_for(jnp.asarray(x).dtype)
  diff = jnp.asarray(x).astype(ct) - jnp.asarray(y).astype(ct)
  return jnp.sum(jnp.square(diff), axis=tuple(range(1, diff.ndim)))


def _check_sigma(sigma: Any, name: str, batch: int) -> tuple[jax.Array, Optional[jax.Array]]:
  """sigma: [B] floating noise levels > 0 (ValueError when concrete, a valid mask when traced)."""
  sigma = validation.check_floating(sigma, name)
  if sigma.shape != (batch,):
    raise ValueError(f"{name} must have shape [B]={(batch,)}, got {name}.shape={sigma.shape}")
  return sigma, validation.check_values(jnp.isfinite(sigma) & (sigma > 0), sigma, name, "finite noise levels > 0")


def default_pseudo_huber_c(dim: int) -> float:
  """iCT's c = 0.00054 * sqrt(d), d = number of entries of one sample (Song & Dhariwal 2024, arXiv:2310.14189,
  Sec. 3.3). dim: a positive int -> Python float."""
  if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
    raise TypeError(f"dim must be an int (entries per sample), got {dim=}")
  if int(dim) < 1:
    raise ValueError(f"dim must be >= 1, got {dim=}")
  return PSEUDO_HUBER_C_PER_SQRT_DIM * math.sqrt(int(dim))


def pseudo_huber_loss(x: jax.Array, y: jax.Array, c: Optional[float] = None) -> jax.Array:
  """Pseudo-Huber metric over each whole sample: sqrt(||x - y||^2 + c^2) - c (Song & Dhariwal 2024, Sec. 3.3).

  Computed as ||x - y||^2 / (sqrt(||x - y||^2 + c^2) + c), algebraically equal and free of cancellation for
  residuals far below c. Limits: r^2 / (2c) for r << c, r - c for r >> c.

  Args:
    x, y: [B, ...] floating, same shape and dtype.
    c: positive scale; default 0.00054 * sqrt(d) with d = prod(x.shape[1:]) (the paper's choice).

  Returns:
    [B] per-example distances, in the inputs' dtype (float16/bfloat16 computed in float32); NaN rows for NaN
    inputs.

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(pseudo_huber_loss(jnp.array([[3.0, 4.0]]), jnp.zeros((1, 2)), c=1.0)[0]), 6)  # sqrt(26) - 1
    4.09902
  """
  _check_pair(x, y)
  if c is None:
    c = default_pseudo_huber_c(max(int(np.prod(jnp.shape(x)[1:])), 1))
  check_positive(c, "c")
  sq = _sq_norm_per_example(x, y)
  c = jnp.asarray(c, sq.dtype)
  return (sq / (jnp.sqrt(sq + c * c) + c)).astype(jnp.asarray(x).dtype)


def cauchy_loss(x: jax.Array, y: jax.Array, c: float, *, reduction: str = "sum") -> jax.Array:
  """Cauchy (Lorentzian) distance over each whole sample: log(1 + r^2 / (2 c^2)) (Dao et al. 2025, Sec. 4).

  Redescending: its gradient magnitude 2r / (r^2 + 2c^2) -> 0 as r -> inf, unlike pseudo-Huber (-> 1).
  The constant 2 c^2 is confirmed against the authors' training code (github.com/quandao10/LCT,
  models/karras_diffusion.py, loss_norm == "cauchy": log(0.5 mean_flat(d^2) + c^2) - 2 log c).

  Args:
    x, y: [B, ...] floating, same shape and dtype; c: positive scale.
    reduction: how r^2 is formed from the squared residual over the non-batch axes.
      "sum" (default): r^2 = ||x - y||_2^2, the same convention as `pseudo_huber_loss` here.
      "mean": r^2 = ||x - y||_2^2 / d with d = prod(x.shape[1:]) (the authors' code uses this per-entry mean, and
      its c values, e.g. `lct_adaptive_c`, are on this scale). cauchy(c, "mean") == cauchy(c * sqrt(d), "sum").

  Returns:
    [B] per-example losses in the inputs' dtype (float16/bfloat16 computed in float32).
  """
  _check_pair(x, y)
  check_positive(c, "c")
  if reduction not in ("sum", "mean"):
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction=}")
  sq = _sq_norm_per_example(x, y)
  if reduction == "mean":
    sq = sq / max(int(np.prod(jnp.shape(x)[1:])), 1)
  c = jnp.asarray(c, sq.dtype)
  return jnp.log1p(sq / (2 * c * c)).astype(jnp.asarray(x).dtype)


def karras_sigmas(num_scales: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX,
                  rho: float = RHO) -> jax.Array:
  """Karras et al. noise grid sigma_i = (s_min^(1/rho) + (i-1)/(N-1) (s_max^(1/rho) - s_min^(1/rho)))^rho, i=1..N
  (Karras et al. 2022, arXiv:2206.00364, Table 1; used by Song & Dhariwal 2024, arXiv:2310.14189).

  Args:
    num_scales: N >= 2 (a static Python int).
    sigma_min, sigma_max: 0 < sigma_min < sigma_max.
    rho: > 0.

  Returns:
    [N] increasing float32 sigmas, sigma_1 = sigma_min, sigma_N = sigma_max.
  """
  if not isinstance(num_scales, (int, np.integer)) or num_scales < 2:
    raise ValueError(f"num_scales must be a Python int >= 2, got {num_scales=}")
  check_positive(sigma_min, "sigma_min")
  check_positive(rho, "rho")
  if is_concrete_number(sigma_max) and is_concrete_number(sigma_min) and not float(sigma_max) > float(sigma_min):
    raise ValueError(f"sigma_max must exceed sigma_min, got {sigma_min=}, {sigma_max=}")
  t = jnp.arange(num_scales, dtype=jnp.float32) / (num_scales - 1)
  lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
  return (lo + t * (hi - lo)) ** rho


def ict_num_scales(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
  """iCT's doubling curriculum N(k) = min(s0 2^floor(k / K'), s1) + 1, K' = floor(K / (log2 floor(s1 / s0) + 1)).

  (Song & Dhariwal 2024, Sec. 3.4, defaults s0 = 10, s1 = 1280; N doubles every K' steps, capped at 1281.)

  Args:
    step: current training step k >= 0 (Python int; the curriculum changes array shapes so it is host-side).
    total_steps: K >= 1.
    s0, s1: initial and final number of discretisation intervals, 1 <= s0 <= s1.

  Returns:
    Python int N(k): the number of grid points to pass to `karras_sigmas`.
  """
  step, total_steps, s0, s1 = int(step), int(total_steps), int(s0), int(s1)
  if step < 0 or total_steps < 1 or s0 < 1 or s1 < s0:
    raise ValueError(f"need step >= 0, total_steps >= 1, 1 <= s0 <= s1; got {step=}, {total_steps=}, {s0=}, {s1=}")
  k_prime = max(1, int(math.floor(total_steps / (math.log2(s1 // s0) + 1))))
  return min(s0 * 2 ** (step // k_prime), s1) + 1


def lognormal_sigma_probs(sigmas: jax.Array, p_mean: float = P_MEAN, p_std: float = P_STD) -> jax.Array:
  """Discrete lognormal probabilities of the intervals (sigma_i, sigma_{i+1}) (Song & Dhariwal 2024, Sec. 3.5).

  p(sigma_i) proportional to erf((log sigma_{i+1} - P_mean) / (sqrt 2 P_std)) - erf((log sigma_i - P_mean) /
  (sqrt 2 P_std)).

  Args:
    sigmas: [N] increasing grid.
    p_mean, p_std: lognormal parameters (p_std > 0).

  Returns:
    [N - 1] probabilities summing to 1 (all NaN for an invalid traced grid).
  """
  check_positive(p_std, "p_std")
  sigmas = validation.check_floating(sigmas, "sigmas")
  if sigmas.ndim != 1 or sigmas.shape[0] < 2:
    raise ValueError(f"sigmas must be a 1-D grid with >= 2 points, got sigmas.shape={sigmas.shape}")
  ok = jnp.isfinite(sigmas) & (sigmas > 0) & jnp.concatenate([sigmas[1:] > sigmas[:-1], jnp.ones((1,), bool)])
  valid = validation.check_values(ok, sigmas, "sigmas", "a finite, positive, strictly increasing grid")
  cdf = jax.scipy.special.erf((jnp.log(sigmas) - p_mean) / (math.sqrt(2.0) * p_std))
  w = cdf[1:] - cdf[:-1]
  return validation.nan_where_invalid(w / jnp.sum(w), None if valid is None else jnp.all(valid))


def sample_sigma_indices(key: jax.Array, sigmas: jax.Array, shape: Tuple[int, ...], p_mean: float = P_MEAN,
                         p_std: float = P_STD) -> jax.Array:
  """Draw interval indices i in [0, N-2] from `lognormal_sigma_probs` (use sigmas[i], sigmas[i + 1]) (Song &
  Dhariwal 2024, arXiv:2310.14189, Sec. 3.5).

  Args:
    key: PRNG key. sigmas: [N] increasing grid (checked when concrete: an integer output cannot carry the NaN of
      an invalid traced grid, so build traced grids with `karras_sigmas`, which is valid by construction).
    shape: output shape, e.g. (B,).

  Returns:
    int32 indices of `shape`.
  """
  p = lognormal_sigma_probs(sigmas, p_mean, p_std)
  return jax.random.choice(key, p.shape[0], shape=shape, p=p).astype(jnp.int32)


def _check_sigma_order(sigma: Any, sigma_next: Any) -> Optional[jax.Array]:
  """0 <= sigma < sigma_next elementwise: ValueError when concrete, a valid mask (NaN rows) when traced."""
  sigma = validation.check_floating(sigma, "sigma")
  sigma_next = validation.check_floating(sigma_next, "sigma_next")
  ok = jnp.isfinite(sigma) & jnp.isfinite(sigma_next) & (sigma >= 0) & (sigma_next > sigma)
  return validation.check_values(ok, sigma, "sigma and sigma_next",
                                 "finite with 0 <= sigma < sigma_next (adjacent grid values)")


def ict_weight(sigma: jax.Array, sigma_next: jax.Array) -> jax.Array:
  """iCT weighting lambda(sigma_i) = 1 / (sigma_{i+1} - sigma_i) (Song & Dhariwal 2024, arXiv:2310.14189, Sec. 3.1).

  sigma, sigma_next: floating, broadcastable, 0 <= sigma < sigma_next (else ValueError eagerly, NaN under jit).
  Returns the broadcast shape.
  """
  valid = _check_sigma_order(sigma, sigma_next)
  w = 1.0 / (jnp.asarray(sigma_next) - jnp.asarray(sigma))
  return validation.nan_where_invalid(w, valid)


def consistency_skip_out(sigma: jax.Array, sigma_data: float = SIGMA_DATA,
                         sigma_min: float = SIGMA_MIN) -> Tuple[jax.Array, jax.Array]:
  """Boundary-condition parameterisation f(x, sigma) = c_skip x + c_out F(x, sigma) (Song et al. 2023, Appendix C).

  c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2), c_out = (sigma - sigma_min) sigma_data /
  sqrt(sigma_data^2 + sigma^2); at sigma = sigma_min, f is the identity.

  Args:
    sigma: any shape, floating. Returns: (c_skip, c_out), same shape.
  """
  sigma = validation.check_floating(sigma, "sigma")
  c_skip = sigma_data ** 2 / ((sigma - sigma_min) ** 2 + sigma_data ** 2)
  c_out = (sigma - sigma_min) * sigma_data / jnp.sqrt(sigma_data ** 2 + sigma ** 2)
  return c_skip, c_out


def consistency_loss(apply_fn: Callable[..., jax.Array], params, x: jax.Array, noise: jax.Array,
                     sigma: jax.Array, sigma_next: jax.Array, *,
                     distance: Callable[[jax.Array, jax.Array], jax.Array] = pseudo_huber_loss,
                     weighting: Callable[[jax.Array, jax.Array], jax.Array] = ict_weight,
                     teacher_params=None) -> jax.Array:
  """iCT consistency-training loss per example (Song & Dhariwal 2024, Sec. 3, Eq. for L^N_CT with theta^- = sg(theta)).

    lambda(sigma_i) d( f(params; x + sigma_{i+1} z, sigma_{i+1}), stopgrad f(teacher; x + sigma_i z, sigma_i) )

  Args:
    apply_fn: f(params, x_noisy [B, ...], sigma [B]) -> [B, ...], the consistency function (with its boundary
      parameterisation, e.g. `consistency_skip_out`).
    params: student parameters.
    x: [B, ...] floating data. noise: [B, ...] standard normal z (the same z at both noise levels).
    sigma, sigma_next: [B] adjacent grid values 0 <= sigma_i < sigma_{i+1} (else ValueError eagerly, NaN rows, in
      value and gradient, under jit: sigma > sigma_next would give a negative loss).
    distance: per-example metric d(a, b) -> [B] (pseudo-Huber by default; `cauchy_loss` via functools.partial,
      or a squared-L2 baseline).
    weighting: lambda(sigma_i, sigma_{i+1}) -> [B].
    teacher_params: parameters of the teacher; default `params` (iCT: no EMA). Always stop-gradiented.

  Returns:
    [B] per-example losses.
  """
  x = validation.check_floating(x, "x")
  noise = validation.check_floating(noise, "noise")
  if x.shape != noise.shape or x.ndim < 1:
    raise ValueError(f"x and noise must share a shape with a batch axis, got x.shape={x.shape}, "
                     f"noise.shape={noise.shape}")
  sigma = validation.check_floating(sigma, "sigma")
  sigma_next = validation.check_floating(sigma_next, "sigma_next")
  if sigma.shape != (x.shape[0],) or sigma_next.shape != (x.shape[0],):
    raise ValueError(f"sigma and sigma_next must have shape [B]={(x.shape[0],)}, got sigma.shape={sigma.shape}, "
                     f"sigma_next.shape={sigma_next.shape}")
  valid = _check_sigma_order(sigma, sigma_next)
  bshape = (-1,) + (1,) * (x.ndim - 1)
  teacher = params if teacher_params is None else teacher_params
  student_out = apply_fn(params, x + sigma_next.reshape(bshape) * noise, sigma_next)
  teacher_out = jax.lax.stop_gradient(apply_fn(jax.lax.stop_gradient(teacher), x + sigma.reshape(bshape) * noise,
                                               sigma))
  return validation.nan_where_invalid(weighting(sigma, sigma_next) * distance(student_out, teacher_out), valid)


def ot_minibatch_coupling(noise: np.ndarray | jax.Array, x: np.ndarray | jax.Array) -> np.ndarray:
  """Minibatch optimal-transport pairing of noise and data (Dao et al. 2025, Sec. 4; exact assignment).

  Solves min over permutations pi of sum_i ||noise_{pi(i)} - x_i||^2 with the Hungarian algorithm
  (scipy.optimize.linear_sum_assignment) on the host, so it is NOT jittable: call it in the data pipeline and
  index `noise[perm]`.

  Args:
    noise: [B, ...]; x: [B, ...] (same shape).

  Returns:
    perm: int array [B] such that `noise[perm][i]` is paired with `x[i]`.
  """
  from scipy.optimize import linear_sum_assignment  # scipy is a dependency of jax.

  if validation.is_traced(noise) or validation.is_traced(x):
    raise TypeError("ot_minibatch_coupling runs on the host (scipy's Hungarian algorithm): call it outside jit, in "
                    "the data pipeline")
  validation.check_floating(noise, "noise")
  validation.check_floating(x, "x")
  noise = np.asarray(noise, np.float64)
  x = np.asarray(x, np.float64)
  if noise.shape != x.shape or noise.ndim < 1:
    raise ValueError(f"noise and x must have the same shape with a batch axis, got noise.shape={noise.shape}, "
                     f"x.shape={x.shape}")
  for name, a in (("noise", noise), ("x", x)):
    if not np.all(np.isfinite(a)):
      raise ValueError(f"{name} must be finite (the assignment is undefined with NaN/Inf entries)")
  a = noise.reshape(noise.shape[0], math.prod(noise.shape[1:]))
  b = x.reshape(x.shape[0], math.prod(x.shape[1:]))
  cost = (b * b).sum(1)[:, None] + (a * a).sum(1)[None, :] - 2 * b @ a.T  # cost[i, j] = ||x_i - noise_j||^2
  rows, cols = linear_sum_assignment(cost)
  perm = np.empty(x.shape[0], dtype=np.int64)
  perm[rows] = cols
  return perm


# ----------------------------------------------------------------------------------------------------------------------
# [3] Dao et al. 2025: adaptive scaling-c schedule and the early-timestep diffusion loss. Transcribed from the authors'
# training code (github.com/quandao10/LCT), see the module docstring; the paper text itself was not available to us.

LCT_C_SLOPE = 1.15
LCT_C_INTERCEPT = 0.85
LCT_DIFF_RATE = 0.75
LCT_DIFF_LAMBDA = 5.0


def lct_adaptive_c(num_scales: int, *, start_scales: Optional[int] = None, initial_c: Optional[float] = None,
                   multiplier: float = 1.0, slope: float = LCT_C_SLOPE, intercept: float = LCT_C_INTERCEPT) -> float:
  """Adaptive scaling-c schedule of the Cauchy loss: c(N) = multiplier * exp(-slope * log(N - 1) - intercept).

  Dao et al. 2025, "Improved Training Technique for Latent Consistency Models", arXiv:2502.01441 (the "adaptive
  scaling-c scheduler"). The paper text was not available to us; the formula is the authors' code
  (github.com/quandao10/LCT, `construct_constant_c` in the train_cm_latent scripts: c = exp(-1.15 log(N - 1) - 0.85)
  per number of grid points N, with the first curriculum stage (N = s0 + 1) kept at a fixed initial c, 0.0345 there,
  i.e. iCT's 0.00054 sqrt(d) for 4x32x32 latents). An earlier variant of their script (flag `--c-by-loss-std`)
  multiplies by sqrt(2) (pass `multiplier=math.sqrt(2)`). The c values are on the scale of
  `cauchy_loss(..., reduction="mean")` (the authors' loss averages the squared residual over entries).

  Args:
    num_scales: N >= 2, the number of discretisation points (e.g. `ict_num_scales(step, total_steps)`).
    start_scales: s0 of the curriculum; when given, N <= s0 + 1 returns `initial_c` (required then).
    initial_c: the c of the first stage (> 0).
    multiplier, slope, intercept: the fitted constants (defaults from the authors' code).

  Returns:
    Python float c(N) > 0 (host-side: N changes array shapes, so it is static).

  Example:
    >>> round(lct_adaptive_c(11), 6)  # exp(-1.15 log 10 - 0.85)
    0.030259
  """
  if isinstance(num_scales, bool) or not isinstance(num_scales, (int, np.integer)) or num_scales < 2:
    raise ValueError(f"num_scales must be a Python int >= 2, got {num_scales=}")
  check_positive(multiplier, "multiplier")
  if not (is_concrete_number(slope) and math.isfinite(float(slope))):
    raise ValueError(f"slope must be a finite number, got {slope=}")
  if not (is_concrete_number(intercept) and math.isfinite(float(intercept))):
    raise ValueError(f"intercept must be a finite number, got {intercept=}")
  if start_scales is not None:
    if int(start_scales) < 1:
      raise ValueError(f"start_scales must be >= 1, got {start_scales=}")
    if initial_c is None:
      raise ValueError("initial_c is required when start_scales is given")
    check_positive(initial_c, "initial_c")
    if num_scales <= int(start_scales) + 1:
      return float(initial_c)
  elif initial_c is not None:
    raise ValueError(f"initial_c is only used together with start_scales, got {initial_c=}, {start_scales=}")
  return float(multiplier) * math.exp(-float(slope) * math.log(num_scales - 1) - float(intercept))


def early_timestep_mask(indices: jax.Array, num_scales: int, diff_rate: float = LCT_DIFF_RATE) -> jax.Array:
  """Which sampled intervals get the diffusion loss: the lowest-noise ("early timestep") part of the grid.

  Dao et al. 2025 (arXiv:2502.01441), diffusion loss at early timesteps; rule from the authors' code
  (github.com/quandao10/LCT, models/karras_diffusion.py: `indices >= int(num_scales * diff_rate)` on their
  DEcreasing grid, diff_rate = 0.75; some of their later scripts use 0.70). With this module's increasing grid and
  interval index k (use sigmas[k], sigmas[k + 1], as from `sample_sigma_indices`) their index is N - 2 - k, so the
  mask is N - 2 - k >= floor(N * diff_rate).

  Args:
    indices: int [B] interval indices k in [0, N - 2] (checked when concrete; a bool output cannot carry NaN).
    num_scales: N >= 2 (static).
    diff_rate: in [0, 1] (static Python float).

  Returns:
    bool [B].
  """
  if isinstance(num_scales, bool) or not isinstance(num_scales, (int, np.integer)) or num_scales < 2:
    raise ValueError(f"num_scales must be a Python int >= 2, got {num_scales=}")
  check_in_interval(diff_rate, "diff_rate", 0.0, 1.0)
  indices = validation.check_integer(indices, "indices")
  validation.check_values((indices >= 0) & (indices <= num_scales - 2), indices, "indices",
                          f"interval indices in [0, {num_scales - 2}]")
  threshold = int(num_scales * float(diff_rate))
  return (num_scales - 2 - indices) >= threshold


def edm_diffusion_weight(sigma: jax.Array, sigma_data: float = SIGMA_DATA) -> jax.Array:
  """EDM weighting lambda(sigma) = 1 / sigma^2 + 1 / sigma_data^2 = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2.

  Karras et al. 2022 (arXiv:2206.00364, Table 1); the weight of [3]'s diffusion loss (the authors' code uses
  `get_weightings("karras", snr = sigma^-2, sigma_data)`).

  sigma: any shape, floating, > 0 (else ValueError eagerly, NaN under jit). Returns sigma's shape.
  """
  check_positive(sigma_data, "sigma_data")
  sigma = validation.check_floating(sigma, "sigma")
  valid = validation.check_values(jnp.isfinite(sigma) & (sigma > 0), sigma, "sigma", "finite noise levels > 0")
  return validation.nan_where_invalid(1.0 / jnp.square(sigma) + 1.0 / (sigma_data * sigma_data), valid)


def lct_diffusion_loss(denoised: jax.Array, x: jax.Array, sigma: jax.Array,
                       sigma_data: float = SIGMA_DATA) -> jax.Array:
  """Per-example diffusion (denoising) loss of [3]: lambda(sigma) * mean_entries (f(x + sigma z, sigma) - x)^2.

  Dao et al. 2025 (arXiv:2502.01441), diffusion loss at early timesteps, as in the authors' code
  (github.com/quandao10/LCT, models/karras_diffusion.py: `mean_flat((distiller - x_start)**2) * karras weight`,
  where `distiller` is the student's output at the LARGER noise level of the sampled pair, the same output that
  enters the consistency loss). Apply it only where `early_timestep_mask` holds and combine with `lct_total_loss`.

  Args:
    denoised: [B, ...] student output f_theta(x + sigma z, sigma) (in `consistency_loss` terms: at sigma_next).
    x: [B, ...] clean data, same shape and dtype.
    sigma: [B] noise level of `denoised` (> 0).
    sigma_data: data standard deviation of the EDM weighting.

  Returns:
    [B] per-example losses.
  """
  _check_pair(denoised, x, "denoised", "x")
  sigma, _ = _check_sigma(sigma, "sigma", jnp.shape(x)[0])
  ct = validation.compute_dtype_for(jnp.asarray(x).dtype)
  diff = jnp.asarray(denoised).astype(ct) - jnp.asarray(x).astype(ct)
  mse = jnp.mean(jnp.square(diff), axis=tuple(range(1, diff.ndim)))
  return (edm_diffusion_weight(sigma, sigma_data).astype(mse.dtype) * mse).astype(jnp.asarray(x).dtype)


def lct_total_loss(consistency_losses: jax.Array, diffusion_losses: jax.Array, mask: jax.Array,
                   diff_lambda: float = LCT_DIFF_LAMBDA) -> jax.Array:
  """Training objective of [3]: mean_B(consistency) + diff_lambda * mean_{early}(diffusion) (a scalar) (Dao et al.
  2025, arXiv:2502.01441).

  As in the authors' training loop (github.com/quandao10/LCT train_cm_latent scripts: `cm_loss =
  losses["loss"].mean(); diff_loss = losses["diff_loss"].mean()` over the masked examples only, 0 when none;
  `loss = cm_loss + diff_lamb * diff_loss`, diff_lamb = 5 in their scripts).

  Args:
    consistency_losses: [B] (e.g. `consistency_loss(..., distance=partial(cauchy_loss, c=..., reduction="mean"))`).
    diffusion_losses: [B] from `lct_diffusion_loss`; entries outside `mask` are ignored (also when NaN/Inf).
    mask: bool [B] from `early_timestep_mask`.
    diff_lambda: >= 0.

  Returns:
    scalar loss.
  """
  check_nonnegative(diff_lambda, "diff_lambda")
  cons = validation.check_floating(consistency_losses, "consistency_losses")
  diff = validation.check_floating(diffusion_losses, "diffusion_losses")
  mask = validation.check_bool(mask, "mask")
  if cons.ndim != 1 or diff.shape != cons.shape or mask.shape != cons.shape:
    raise ValueError(f"need [B] arrays of one shape, got consistency_losses.shape={cons.shape}, "
                     f"diffusion_losses.shape={diff.shape}, mask.shape={mask.shape}")
  validation.check_min_size(cons, "consistency_losses", 1)
  n = jnp.sum(mask)
  diff_mean = jnp.sum(jnp.where(mask, diff, 0.0)) / jnp.maximum(n, 1).astype(diff.dtype)
  return jnp.mean(cons) + diff_lambda * diff_mean
