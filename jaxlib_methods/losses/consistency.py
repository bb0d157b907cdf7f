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

Not implemented from [3] (could not be confirmed from the paper text available to us): the adaptive scaling-c
schedule, the early-timestep diffusion loss and Non-scaling LayerNorm. `cauchy_loss` uses the standard Cauchy /
Lorentzian form log(1 + r^2 / (2 c^2)) (Barron 2019's alpha = 0 case) on the per-sample norm r = ||x - y||_2; the
exact constant inside the log in [3] is unverified.

All losses are per example: inputs [B, ...] -> [B]; reduce outside.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods.validation import check_positive, is_concrete_number

# iCT defaults (Song & Dhariwal 2024, Sec. 3 and Table 1 / Karras et al. 2022).
SIGMA_MIN = 0.002
SIGMA_MAX = 80.0
RHO = 7.0
SIGMA_DATA = 0.5
P_MEAN = -1.1
P_STD = 2.0
PSEUDO_HUBER_C_PER_SQRT_DIM = 0.00054


def _check_pair(x: jax.Array, y: jax.Array) -> None:
  if jnp.shape(x) != jnp.shape(y):
    raise ValueError(f"x and y must have the same shape, got {jnp.shape(x)=}, {jnp.shape(y)=}")
  if jnp.ndim(x) < 1:
    raise ValueError(f"x must have a leading batch axis (rank >= 1), got {jnp.shape(x)=}")
  if jnp.asarray(x).dtype != jnp.asarray(y).dtype:
    raise ValueError(f"x and y must have the same dtype, got {jnp.asarray(x).dtype=}, {jnp.asarray(y).dtype=}")


def _sq_norm_per_example(x: jax.Array, y: jax.Array) -> jax.Array:
  diff = jnp.asarray(x) - jnp.asarray(y)
  return jnp.sum(jnp.square(diff), axis=tuple(range(1, diff.ndim)))


def default_pseudo_huber_c(dim: int) -> float:
  """iCT's c = 0.00054 * sqrt(d), d = number of entries of one sample (Song & Dhariwal 2024, Sec. 3.3)."""
  if int(dim) < 1:
    raise ValueError(f"dim must be >= 1, got {dim=}")
  return PSEUDO_HUBER_C_PER_SQRT_DIM * math.sqrt(int(dim))


def pseudo_huber_loss(x: jax.Array, y: jax.Array, c: Optional[float] = None) -> jax.Array:
  """Pseudo-Huber metric over each whole sample: sqrt(||x - y||^2 + c^2) - c (Song & Dhariwal 2024, Sec. 3.3).

  Computed as ||x - y||^2 / (sqrt(||x - y||^2 + c^2) + c), algebraically equal and free of cancellation for
  residuals far below c. Limits: r^2 / (2c) for r << c, r - c for r >> c.

  Args:
    x, y: [B, ...], same shape and dtype.
    c: positive scale; default 0.00054 * sqrt(d) with d = prod(x.shape[1:]) (the paper's choice).

  Returns:
    [B] per-example distances.

  Example:
    >>> import jax.numpy as jnp
    >>> round(float(pseudo_huber_loss(jnp.array([[3.0, 4.0]]), jnp.zeros((1, 2)), c=1.0)[0]), 6)  # sqrt(26) - 1
    4.09902
  """
  _check_pair(x, y)
  if c is None:
    c = default_pseudo_huber_c(int(np.prod(jnp.shape(x)[1:])))
  check_positive(c, "c")
  sq = _sq_norm_per_example(x, y)
  c = jnp.asarray(c, sq.dtype)
  return sq / (jnp.sqrt(sq + c * c) + c)


def cauchy_loss(x: jax.Array, y: jax.Array, c: float) -> jax.Array:
  """Cauchy (Lorentzian) distance over each whole sample: log(1 + ||x - y||^2 / (2 c^2)) (Dao et al. 2025, Sec. 4).

  Redescending: its gradient magnitude 2r / (r^2 + 2c^2) -> 0 as r -> inf, unlike pseudo-Huber (-> 1).
  Form as Barron (2019)'s alpha = 0 robust loss; the paper's exact constant is unverified (see module docstring).

  Args:
    x, y: [B, ...]; c: positive scale.

  Returns:
    [B] per-example losses.
  """
  _check_pair(x, y)
  check_positive(c, "c")
  sq = _sq_norm_per_example(x, y)
  c = jnp.asarray(c, sq.dtype)
  return jnp.log1p(sq / (2 * c * c))


def karras_sigmas(num_scales: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX,
                  rho: float = RHO) -> jax.Array:
  """Karras et al. noise grid sigma_i = (s_min^(1/rho) + (i-1)/(N-1) (s_max^(1/rho) - s_min^(1/rho)))^rho, i=1..N.

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
    [N - 1] probabilities summing to 1.
  """
  check_positive(p_std, "p_std")
  sigmas = jnp.asarray(sigmas)
  if sigmas.ndim != 1 or sigmas.shape[0] < 2:
    raise ValueError(f"sigmas must be a 1-D grid with >= 2 points, got {sigmas.shape=}")
  cdf = jax.scipy.special.erf((jnp.log(sigmas) - p_mean) / (math.sqrt(2.0) * p_std))
  w = cdf[1:] - cdf[:-1]
  return w / jnp.sum(w)


def sample_sigma_indices(key: jax.Array, sigmas: jax.Array, shape: Tuple[int, ...], p_mean: float = P_MEAN,
                         p_std: float = P_STD) -> jax.Array:
  """Draw interval indices i in [0, N-2] from `lognormal_sigma_probs` (use sigmas[i], sigmas[i + 1]).

  Args:
    key: PRNG key. sigmas: [N]. shape: output shape, e.g. (B,).

  Returns:
    int32 indices of `shape`.
  """
  p = lognormal_sigma_probs(sigmas, p_mean, p_std)
  return jax.random.choice(key, p.shape[0], shape=shape, p=p).astype(jnp.int32)


def ict_weight(sigma: jax.Array, sigma_next: jax.Array) -> jax.Array:
  """iCT weighting lambda(sigma_i) = 1 / (sigma_{i+1} - sigma_i) (Song & Dhariwal 2024, Sec. 3.1)."""
  return 1.0 / (jnp.asarray(sigma_next) - jnp.asarray(sigma))


def consistency_skip_out(sigma: jax.Array, sigma_data: float = SIGMA_DATA,
                         sigma_min: float = SIGMA_MIN) -> Tuple[jax.Array, jax.Array]:
  """Boundary-condition parameterisation f(x, sigma) = c_skip x + c_out F(x, sigma) (Song et al. 2023, Appendix C).

  c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2), c_out = (sigma - sigma_min) sigma_data /
  sqrt(sigma_data^2 + sigma^2); at sigma = sigma_min, f is the identity.

  Args:
    sigma: any shape. Returns: (c_skip, c_out), same shape.
  """
  sigma = jnp.asarray(sigma)
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
    x: [B, ...] data. noise: [B, ...] standard normal z (the same z at both noise levels).
    sigma, sigma_next: [B] adjacent grid values sigma_i < sigma_{i+1}.
    distance: per-example metric d(a, b) -> [B] (pseudo-Huber by default; `cauchy_loss` via functools.partial,
      or a squared-L2 baseline).
    weighting: lambda(sigma_i, sigma_{i+1}) -> [B].
    teacher_params: parameters of the teacher; default `params` (iCT: no EMA). Always stop-gradiented.

  Returns:
    [B] per-example losses.
  """
  x = jnp.asarray(x)
  noise = jnp.asarray(noise)
  if x.shape != noise.shape or x.ndim < 1:
    raise ValueError(f"x and noise must share a shape with a batch axis, got {x.shape=}, {noise.shape=}")
  sigma = jnp.asarray(sigma)
  sigma_next = jnp.asarray(sigma_next)
  if sigma.shape != (x.shape[0],) or sigma_next.shape != (x.shape[0],):
    raise ValueError(f"sigma and sigma_next must have shape [B]={(x.shape[0],)}, got {sigma.shape=}, "
                     f"{sigma_next.shape=}")
  bshape = (-1,) + (1,) * (x.ndim - 1)
  teacher = params if teacher_params is None else teacher_params
  student_out = apply_fn(params, x + sigma_next.reshape(bshape) * noise, sigma_next)
  teacher_out = jax.lax.stop_gradient(apply_fn(jax.lax.stop_gradient(teacher), x + sigma.reshape(bshape) * noise,
                                               sigma))
  return weighting(sigma, sigma_next) * distance(student_out, teacher_out)


def ot_minibatch_coupling(noise: np.ndarray | jax.Array, x: np.ndarray | jax.Array) -> np.ndarray:
  """Minibatch optimal-transport pairing of noise and data (Dao et al. 2025, Sec. 4; exact assignment).

  Solves min over permutations pi of sum_i ||noise_{pi(i)} - x_i||^2 with the Hungarian algorithm
  (scipy.optimize.linear_sum_assignment) on the host, so it is NOT jittable: call it in the data pipeline and
  index `noise[perm]`.

  Args:
    noise: [B, ...]; x: [B, ...] (same shape).

  Returns:
    perm: int array [B] such that noise[perm][i] is paired with x[i].
  """
  from scipy.optimize import linear_sum_assignment  # scipy is a dependency of jax.

  noise = np.asarray(noise, np.float64)
  x = np.asarray(x, np.float64)
  if noise.shape != x.shape or noise.ndim < 1:
    raise ValueError(f"noise and x must have the same shape with a batch axis, got {noise.shape=}, {x.shape=}")
  a = noise.reshape(noise.shape[0], -1)
  b = x.reshape(x.shape[0], -1)
  cost = (b * b).sum(1)[:, None] + (a * a).sum(1)[None, :] - 2 * b @ a.T  # cost[i, j] = ||x_i - noise_j||^2
  rows, cols = linear_sum_assignment(cost)
  perm = np.empty(x.shape[0], dtype=np.int64)
  perm[rows] = cols
  return perm
