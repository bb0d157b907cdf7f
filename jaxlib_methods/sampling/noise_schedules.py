"""Diffusion noise schedules with a flawed (non-zero) terminal SNR, the zero-terminal-SNR rescaling, and the
One More Step (OMS) extra sampling step.

[186] Hu, Zheng, Zheng, Wang, Tao, Cham, "One More Step: A Versatile Plug-and-Play Module for Rectifying Diffusion
Schedule Flaws and Enhancing Low-Frequency Controls", CVPR 2024, arXiv:2311.15744: pretrained schedules such as
Stable Diffusion's keep signal at t = T (sqrt(alpha_bar_T) ~ 0.068), but sampling starts from pure N(0, I). Lin, Liu,
Li, Yang, "Common Diffusion Noise Schedules and Sample Steps are Flawed", WACV 2024, arXiv:2305.08891, Algorithm 1,
rescales the schedule to zero terminal SNR (needs retraining); OMS instead keeps the pretrained model and adds one
step before it: from x ~ N(0, I) at zero SNR, a small model predicts x_0 and one DDIM step (eta = 0) lands on the
pretrained schedule's x_T.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def scaled_linear_betas(num_steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> jax.Array:
  """Stable Diffusion's "scaled linear" schedule beta_t = (linspace(sqrt(beta_start), sqrt(beta_end), T))^2, the
  flawed schedule of [186] (Hu et al. 2023, arXiv:2311.15744) and Lin et al. 2023 (arXiv:2305.08891).

  Args:
    num_steps: T >= 2.
    beta_start: beta_1 in (0, 1).
    beta_end: beta_T in (0, 1).

  Returns:
    [T] float32 betas.
  """
  if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 2:
    raise ValueError(f"num_steps must be an int >= 2, got {num_steps=}")
  validation.check_in_interval(beta_start, "beta_start", 0.0, 1.0, closed_low=False, closed_high=False)
  validation.check_in_interval(beta_end, "beta_end", 0.0, 1.0, closed_low=False, closed_high=False)
  return jnp.linspace(beta_start ** 0.5, beta_end ** 0.5, num_steps, dtype=jnp.float32) ** 2


def _check_betas(betas):
  betas = validation.check_floating(betas, "betas")
  if betas.ndim != 1 or betas.shape[0] < 2:
    raise ValueError(f"betas must be 1-D with >= 2 steps, got {betas.shape=}")
  if not validation.is_traced(betas):
    b = np.asarray(betas)
    if np.any(~np.isfinite(b)) or np.any(b <= 0) or np.any(b > 1):
      raise ValueError("betas must lie in (0, 1]")
  return betas


def terminal_snr(betas: jax.Array) -> jax.Array:
  """SNR_T = alpha_bar_T / (1 - alpha_bar_T) of a beta schedule (Lin et al. 2023, arXiv:2305.08891; the
  flaw [186] arXiv:2311.15744 fixes: 0.0047 for Stable Diffusion's schedule).

  Args:
    betas: [T] in (0, 1].

  Returns:
    Scalar SNR at the last step (0 when beta_T = 1), float32 or the input's dtype if wider (the product of T factors
    1 - beta_t is taken in at least float32: in bfloat16 it is off by ~25% for Stable Diffusion's schedule).
  """
  betas = _check_betas(betas)
  abar = jnp.cumprod(1.0 - betas.astype(validation.compute_dtype_for(betas.dtype)))[-1]
  return abar / (1.0 - abar)


def rescale_zero_terminal_snr(betas: jax.Array) -> jax.Array:
  """Rescale a beta schedule to zero terminal SNR (Lin et al. 2023, arXiv:2305.08891, Algorithm 1; the alternative
  [186] Hu et al. 2023, arXiv:2311.15744 compares against).

  sqrt(alpha_bar) is shifted so its last value is 0 and scaled so its first value is unchanged; betas are recovered
  from the ratios of consecutive alpha_bar (beta_T becomes 1). The SNRs keep their order.

  Args:
    betas: [T] in (0, 1], with alpha_bar strictly decreasing.

  Returns:
    [T] betas (float32 or the input's dtype if wider) with alpha_bar_1 unchanged and alpha_bar_T = 0.
  """
  betas = _check_betas(betas)
  if not validation.is_traced(betas) and np.any(np.asarray(betas)[:-1] >= 1):
    raise ValueError("betas before the last step must be < 1 (alpha_bar strictly decreasing); a beta of 1 earlier "
                     "zeroes alpha_bar there and the rescaling would divide 0 by 0")
  dt = jnp.promote_types(betas.dtype, jnp.float32)
  sqrt_abar = jnp.sqrt(jnp.cumprod(1.0 - betas.astype(dt)))
  a0, at = sqrt_abar[0], sqrt_abar[-1]
  sqrt_abar = (sqrt_abar - at) * (a0 / (a0 - at))
  abar = sqrt_abar ** 2
  alphas = jnp.concatenate([abar[:1], abar[1:] / abar[:-1]])
  return (1.0 - alphas).astype(dt)


def oms_step(x_zero_snr: jax.Array, x0_pred: jax.Array, alpha_bar_T) -> jax.Array:
  """The One More Step: one DDIM step (eta = 0) from pure noise at zero SNR to the pretrained schedule's x_T.

  Hu et al., "One More Step", CVPR 2024, arXiv:2311.15744 (catalog [186]), its method: at zero SNR the sample is the
  noise itself (eps = x_zero_snr), so DDIM (Song et al. 2021, arXiv:2010.02502, Eq. 12) gives
  x_T = sqrt(alpha_bar_T) x0_pred + sqrt(1 - alpha_bar_T) x_zero_snr, with x0_pred from the OMS module (its optimal
  value is E[x_0 | condition], which restores the low-frequency content, e.g. mean brightness, that the pretrained
  model expects at t = T).

  Args:
    x_zero_snr: x ~ N(0, I), any shape [B, ...].
    x0_pred: the OMS module's prediction of x_0, the shape of `x_zero_snr`.
    alpha_bar_T: the pretrained schedule's alpha_bar at its last step, in [0, 1).

  Returns:
    The pretrained model's starting point x_T, the shape of `x_zero_snr`.
  """
  x = validation.check_floating(x_zero_snr, "x_zero_snr")
  x0 = validation.check_floating(x0_pred, "x0_pred")
  if x.shape != x0.shape:
    raise ValueError(f"x_zero_snr and x0_pred must have one shape, got {x.shape=} and {x0.shape=}")
  validation.check_in_interval(alpha_bar_T, "alpha_bar_T", 0.0, 1.0, closed_high=False)
  a = jnp.asarray(alpha_bar_T, x.dtype)
  return (jnp.sqrt(a) * x0 + jnp.sqrt(1.0 - a) * x).astype(x.dtype)
