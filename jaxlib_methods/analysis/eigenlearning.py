"""Eigenlearning: the omniscient risk estimate of kernel ridge regression from the kernel's eigenstructure.

Simon, Dickens, Karkada, DeWeese, "The Eigenlearning Framework: A Conservation Law Perspective on Kernel Regression
and Wide Neural Networks", TMLR 2023, arXiv:2110.03922 (Sec. 4); the same estimate underlies [208] Simon, Karkada,
Ghosh, Belkin, "More is Better in Modern Machine Learning", ICLR 2024, arXiv:2311.14646 (their p -> infinity limit).
For KRR f = k(x)^T (K + delta I_n)^{-1} y with n samples, kernel eigenvalues lambda_i, target power
c_i^2 = E[y phi_i]^2 and label-noise variance sigma^2:

    kappa solves  sum_i lambda_i / (lambda_i + kappa) + delta / kappa = n
    L_i = lambda_i / (lambda_i + kappa)                       (learnabilities)
    E_0 = n / (n - sum_i L_i^2)                               (overfitting coefficient)
    test MSE ~= E_0 (sum_i (1 - L_i)^2 c_i^2 + sigma^2)        (including the noise)
    train MSE ~= (delta / (n kappa))^2 * test MSE

Computed on the host in float64 NumPy (the inputs are spectra, not traced arrays).
"""

from __future__ import annotations

import numbers

import numpy as np


def _check_spectrum(x, name: str) -> np.ndarray:
  a = np.asarray(x)
  if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
    raise TypeError(f"{name} must be real numbers, got {name}.dtype={a.dtype}")
  a = a.astype(np.float64)
  if a.ndim != 1:
    raise ValueError(f"{name} must be a 1-D array, got {name}.shape={a.shape}")
  if not np.all(np.isfinite(a)) or np.any(a < 0):
    raise ValueError(f"{name} must be finite and >= 0, got min={a.min() if a.size else None}, "
                     f"{np.count_nonzero(~np.isfinite(a))} non-finite entries")
  return a


def _check_n_ridge(n, ridge) -> None:
  if isinstance(n, bool) or not isinstance(n, numbers.Integral):
    raise TypeError(f"n must be an int (the number of training samples), got {n=}")
  if n <= 0:
    raise ValueError(f"n must be positive, got {n=}")
  if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real):
    raise TypeError(f"ridge must be a real number, got {ridge=}")
  if not np.isfinite(ridge) or ridge < 0:
    raise ValueError(f"ridge must be finite and >= 0, got {ridge=}")


def eigenlearning_kappa(eigenvalues, n: int, ridge: float) -> float:
  """The effective regularisation kappa >= 0 solving sum_i lambda_i / (lambda_i + kappa) + ridge / kappa = n (Simon
  et al. 2023, arXiv:2110.03922, Sec. 4). Bisection in log kappa; kappa = 0 when ridge = 0 and the number of
  non-zero modes is <= n, where no positive root exists.

  Args:
    eigenvalues: [M] kernel eigenvalues, finite and >= 0. n: int >= 1 samples. ridge: finite, >= 0.

  Returns:
    Python float.
  """
  lam = _check_spectrum(eigenvalues, "eigenvalues")
  _check_n_ridge(n, ridge)
  if ridge == 0 and np.count_nonzero(lam) <= n:
    return 0.0
  g = lambda k: np.sum(lam / (lam + k)) + ridge / k - n
  lo, hi = 1e-300, max(1.0, lam.sum(), ridge) * 10.0
  while g(hi) > 0:
    hi *= 10
  lo = hi
  while g(lo) < 0 and lo > 1e-300:
    lo /= 10
  for _ in range(200):
    mid = np.sqrt(lo * hi)
    if g(mid) > 0:
      lo = mid
    else:
      hi = mid
  return float(np.sqrt(lo * hi))


def eigenlearning_risk(eigenvalues, target_power, n: int, ridge: float, noise_var: float = 0.0) -> dict:
  """Predicted test and train MSE of KRR (Simon et al. 2023, arXiv:2110.03922, Sec. 4; see the module docstring).

  Args:
    eigenvalues: [M] kernel eigenvalues lambda_i, finite and >= 0.
    target_power: [M] c_i^2 >= 0, the target's squared coefficients in the eigenbasis.
    n: number of training samples (int >= 1).
    ridge: delta >= 0.
    noise_var: sigma^2 >= 0.

  Returns:
    {'kappa', 'e0', 'test_mse', 'train_mse', 'learnabilities' ([M])}.
  """
  lam = _check_spectrum(eigenvalues, "eigenvalues")
  c2 = _check_spectrum(target_power, "target_power")
  if c2.shape != lam.shape:
    raise ValueError(f"target_power must match eigenvalues, got target_power.shape={c2.shape}, "
                     f"eigenvalues.shape={lam.shape}")
  _check_n_ridge(n, ridge)
  if isinstance(noise_var, bool) or not isinstance(noise_var, numbers.Real) or not np.isfinite(noise_var) \
      or noise_var < 0:
    raise ValueError(f"noise_var must be a finite number >= 0, got {noise_var=}")
  kappa = eigenlearning_kappa(lam, n, ridge)
  learn = lam / (lam + kappa) if kappa > 0 else (lam > 0).astype(np.float64)
  denom = n - np.sum(learn ** 2)
  e0 = n / denom if denom > 0 else np.inf
  residual = np.sum((1 - learn) ** 2 * c2) + noise_var
  # At the interpolation threshold (ridge 0, n = the number of non-zero modes) E_0 = inf; a noiseless target inside
  # the learnt modes is then recovered exactly (test MSE 0), not inf * 0 = NaN.
  test = e0 * residual if residual > 0 else 0.0
  train = (ridge / (n * kappa)) ** 2 * test if kappa > 0 else 0.0
  return {"kappa": kappa, "e0": float(e0), "test_mse": float(test), "train_mse": float(train),
          "learnabilities": learn}
