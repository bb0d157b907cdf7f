"""Seed statistics shared by the loss experiments: a difference between two methods is judged against run-to-run
noise, with a Student-t confidence interval over seeds (paired: the same seed gives both methods the same data)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict:
  """Mean of `values` and its two-sided Student-t confidence interval: {"mean", "lo", "hi", "n"}.

  With a single value the interval is infinite (one seed says nothing about the noise); non-finite values make
  every field NaN.
  """
  v = np.asarray(values, np.float64)
  n = int(v.size)
  if n == 0 or not np.all(np.isfinite(v)):
    return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": n}
  m = float(v.mean())
  if n == 1:
    return {"mean": m, "lo": -math.inf, "hi": math.inf, "n": 1}
  half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
  return {"mean": m, "lo": m - half, "hi": m + half, "n": n}


def paired_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
  """`mean_ci` of the per-seed differences a_s - b_s."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"paired_ci needs one value per seed for both methods, got {a.shape} and {b.shape}")
  return mean_ci(a - b, level)


def paired_mean_se(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
  """(mean, standard error of the mean) of the per-seed differences a_s - b_s, float64 (ddof = 1)."""
  d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


def paired_z(a: Sequence[float], b: Sequence[float]) -> float:
  """Mean of the per-seed differences a_s - b_s in standard errors of that mean (the "mean > 2 standard errors"
  rows); 0 when every difference is exactly 0, NaN with fewer than two seeds."""
  if np.size(a) < 2:
    return float("nan")
  mean, se = paired_mean_se(a, b)
  return mean / max(se, 1e-12)


def fmt_ci(ci: dict, digits: int = 3) -> str:
  return f"{ci['mean']:.{digits}f} [{ci['lo']:.{digits}f}, {ci['hi']:.{digits}f}] (95% CI, {ci['n']} seeds)"
