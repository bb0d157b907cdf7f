"""Selective classification metrics and window-based early-exit cascades.

Xia, Bouganis, "Window-Based Early-Exit Cascades for Uncertainty Estimation: When Deep Ensembles are More Efficient
than Single Models", ICCV 2023, arXiv:2303.08010.

Selective classification (the paper's Sec. 3, after Geifman & El-Yaniv 2017): a classifier abstains on the samples
whose uncertainty u exceeds a threshold t. Accepting {u <= t} gives the coverage |{u <= t}| / N and the selective
risk (errors among the accepted) / (accepted); the risk-coverage curve sweeps t over the observed uncertainties
(samples with equal u are accepted or rejected together), AURC is the area under it (the mean selective risk over
the cut points, one per sample, ties sharing their group's risk), and "coverage at 5% risk" is the largest coverage
whose selective risk is <= 5%.

Window-based cascade (Sec. 4, Alg. 2): the binary accept/abstain decision is only uncertain near its threshold, so
stage 2 (the next ensemble member, the full ensemble's prediction and uncertainty) is run only for samples whose
stage-1 uncertainty falls in a window [lo, hi] around the operating point; the others exit at stage 1 with the
stage-1 prediction and uncertainty. The single-threshold cascade (Alg. 1, the accuracy-oriented baseline) passes
on every sample whose stage-1 uncertainty exceeds one threshold. The average cost is
MACs_1 + (fraction passed) x MACs_2.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation


def _check_pair(uncertainty: Any, correct: Any):
  u = validation.check_floating(uncertainty, "uncertainty")
  if u.ndim != 1:
    raise ValueError(f"uncertainty must have shape [N], got uncertainty.shape={u.shape}")
  validation.check_min_size(u, "uncertainty", 1)
  c = validation.check_bool(correct, "correct")
  if c.shape != u.shape:
    raise ValueError(f"correct must have the shape of uncertainty {u.shape}, got correct.shape={c.shape}")
  return u.astype(validation.compute_dtype_for(u.dtype)), c


def risk_coverage(uncertainty: Any, correct: Any) -> tuple[jax.Array, jax.Array]:
  """The risk-coverage curve of abstaining on the most uncertain samples (Xia & Bouganis 2023, arXiv:2303.08010,
  Sec. 3; Geifman & El-Yaniv 2017).

  Args:
    uncertainty: [N] float, higher = more uncertain (e.g. 1 - max softmax probability). NaN makes the curve NaN.
    correct: [N] bool, whether each prediction is right.

  Returns:
    (coverage [N], risk [N]) floats: sorted by increasing uncertainty, entry i is the cut that accepts the i + 1
    least uncertain samples, except that samples tied in uncertainty are accepted together (every entry of a tie
    group carries the coverage and risk of accepting the whole group).
  """
  u, c = _check_pair(uncertainty, correct)
  n = u.shape[0]
  order = jnp.argsort(u, stable=True)
  us, err = u[order], (~c[order]).astype(u.dtype)
  cum_err = jnp.cumsum(err)
  # index of the last member of each sample's tie group
  last = jnp.searchsorted(us, us, side="right") - 1
  accepted = (last + 1).astype(u.dtype)
  cov = accepted / n
  risk = cum_err[last] / accepted
  bad = jnp.isnan(u).any()
  nanify = lambda a: jnp.where(bad, jnp.nan, a)
  return nanify(cov), nanify(risk)


def aurc(uncertainty: Any, correct: Any) -> jax.Array:
  """Area under the risk-coverage curve: the mean of the selective risk over the N cut points of `risk_coverage`
  (Xia & Bouganis 2023, arXiv:2303.08010, Sec. 3; lower is better).

  Args:
    uncertainty: [N] float, higher = more uncertain.
    correct: [N] bool.

  Returns:
    scalar float in [0, 1].
  """
  _, risk = risk_coverage(uncertainty, correct)
  return jnp.mean(risk)


def coverage_at_risk(uncertainty: Any, correct: Any, risk: float = 0.05) -> jax.Array:
  """The largest coverage whose selective risk is <= `risk` (0 if none): the paper's "coverage at 5% risk"
  (Xia & Bouganis 2023, arXiv:2303.08010, Sec. 3 and Fig. 1).

  Args:
    uncertainty: [N] float, higher = more uncertain.
    correct: [N] bool.
    risk: float in [0, 1], the target selective risk.

  Returns:
    scalar float in [0, 1].
  """
  validation.check_in_interval(risk, "risk", 0.0, 1.0)
  cov, r = risk_coverage(uncertainty, correct)
  return jnp.max(jnp.where(r <= risk, cov, 0.0))


def window_cascade(u1: Any, preds1: Any, u2: Any, preds2: Any, lo: float, hi: float
                   ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Window-based early exit of a two-stage cascade (Xia & Bouganis 2023, arXiv:2303.08010, Sec. 4, Alg. 2).

  A sample goes on to stage 2 iff lo <= u1 <= hi; it then takes the stage-2 (ensemble) uncertainty and prediction,
  otherwise it exits with stage 1's. Stage 2's inputs are read only where passed, so a caller that evaluates stage
  2 on the passed samples alone may fill the rest with anything finite.

  Args:
    u1: [N] float stage-1 uncertainty.
    preds1: [N] int stage-1 predicted classes.
    u2: [N] float stage-2 (ensemble of stages 1..2) uncertainty.
    preds2: [N] int stage-2 predicted classes.
    lo: float (or a traced scalar, e.g. a quantile computed under jit), the window's lower edge.
    hi: float >= lo (checked when both are concrete), the window's upper edge (lo = t, hi = +inf gives Alg. 1's single threshold t).

  Returns:
    (uncertainty [N], predictions [N], passed [N] bool).
  """
  a = validation.check_floating(u1, "u1")
  b = validation.check_floating(u2, "u2")
  if a.ndim != 1:
    raise ValueError(f"u1 must have shape [N], got u1.shape={a.shape}")
  p1 = validation.check_integer(preds1, "preds1")
  p2 = validation.check_integer(preds2, "preds2")
  for name, x in (("preds1", p1), ("u2", b), ("preds2", p2)):
    if x.shape != a.shape:
      raise ValueError(f"{name} must have the shape of u1 {a.shape}, got {name}.shape={x.shape}")
  for name, v in (("lo", lo), ("hi", hi)):
    if np.ndim(v) != 0 or not (validation.is_concrete_number(v) or validation.is_traced(v)):
      raise TypeError(f"{name} must be a scalar (a float, or a traced 0-d array), got {name}={v!r}")
  if validation.is_concrete_number(lo) and validation.is_concrete_number(hi) and float(hi) < float(lo):
    raise ValueError(f"hi must be >= lo, got {lo=}, {hi=}")
  passed = (a >= lo) & (a <= hi)
  dt = jnp.promote_types(a.dtype, b.dtype)
  u = jnp.where(passed, b.astype(dt), a.astype(dt))
  return u, jnp.where(passed, p2, p1), passed


def cascade_macs(passed: Any, macs: tuple[float, float]) -> jax.Array:
  """Average compute per sample of a two-stage cascade: MACs_1 + mean(passed) x MACs_2 (Xia & Bouganis 2023,
  arXiv:2303.08010, Sec. 5, the x-axes of Figs. 1 and 6).

  Args:
    passed: [N] bool, which samples ran stage 2.
    macs: (MACs of stage 1, MACs of stage 2), non-negative floats.

  Returns:
    scalar float.
  """
  p = validation.check_bool(passed, "passed")
  if len(tuple(macs)) != 2:
    raise ValueError(f"macs must be a pair (stage 1, stage 2), got {macs=}")
  m1, m2 = (float(m) for m in macs)
  if m1 < 0 or m2 < 0:
    raise ValueError(f"macs must be non-negative, got {macs=}")
  return m1 + jnp.mean(p.astype(jnp.float32)) * m2
