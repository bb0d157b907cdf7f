"""Power-law Gaussian regression tasks (the random-feature / scaling-law testbed).

Used by [208] Simon, Karkada, Ghosh, Belkin, "More is Better in Modern Machine Learning: when Infinite
Overparameterization is Optimal and Overfitting is Obligatory", ICLR 2024, arXiv:2311.14646 (Sec. 5: synthetic
power-law data): inputs x ~ N(0, diag(lambda)), lambda_i = i^(-alpha); target y = v.x + noise with
v_i^2 lambda_i ∝ i^(-beta) (the target's power in eigendirection i).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


class PowerLawTask(NamedTuple):
  """eigenvalues lambda [M] (descending), target coefficients v [M] in the eigenbasis, noise_std (float).

  The synthetic power-law data of Simon et al., "More is Better in Modern Machine Learning: when Infinite
  Overparameterization is Optimal and Overfitting is Obligatory", ICLR 2024, arXiv:2311.14646, Sec. 5.
  """
  eigenvalues: jax.Array
  coefficients: jax.Array
  noise_std: float


def power_law_task(num_dims: int, *, alpha: float = 1.5, beta: float = 1.5, noise_std: float = 0.0) -> PowerLawTask:
  """Spectrum lambda_i = i^(-alpha) and target v with lambda_i v_i^2 = i^(-beta) / sum_j j^(-beta) (unit power).

  The synthetic power-law data of Simon et al., "More is Better in Modern Machine Learning: when Infinite
  Overparameterization is Optimal and Overfitting is Obligatory", ICLR 2024, arXiv:2311.14646, Sec. 5. Returns a
  `PowerLawTask` (eigenvalues [M], target coefficients [M]).

  Args:
    num_dims: M, number of input dimensions (> 0).
    alpha: spectral decay (> 0).
    beta: decay of the target's power across eigendirections (> 0).
    noise_std: label-noise std (>= 0).
  """
  num_dims = validation.check_int(num_dims, "num_dims", 1, value_error=True)
  validation.check_positive(alpha, "alpha")
  validation.check_positive(beta, "beta")
  validation.check_nonnegative(noise_std, "noise_std")
  i = np.arange(1, num_dims + 1, dtype=np.float64)
  lam = i ** (-alpha)
  power = i ** (-beta)
  power = power / power.sum()
  v = np.sqrt(power / lam)
  return PowerLawTask(jnp.asarray(lam, jnp.float32), jnp.asarray(v, jnp.float32), float(noise_std))


def sample_power_law(key: jax.Array, task: PowerLawTask, n: int) -> tuple[jax.Array, jax.Array]:
  """x [n, M] ~ N(0, diag(lambda)) and y [n] = x.v + noise_std * N(0, 1).

  The synthetic power-law data of Simon et al., "More is Better in Modern Machine Learning: when Infinite
  Overparameterization is Optimal and Overfitting is Obligatory", ICLR 2024, arXiv:2311.14646, Sec. 5.
  """
  if n <= 0:
    raise ValueError(f"n must be positive, got {n=}")
  kx, kn = jax.random.split(key)
  x = jax.random.normal(kx, (n, task.eigenvalues.shape[0])) * jnp.sqrt(task.eigenvalues)
  y = x @ task.coefficients + task.noise_std * jax.random.normal(kn, (n,))
  return x, y
