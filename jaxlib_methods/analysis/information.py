"""Mutual-information estimators for the information plane of a network layer T: binned (plug-in), adaptive-binned
and kernel-density (KDE pairwise-distance bounds).

All estimators take per-example arrays (one row per example: activations `t` [n, d], input identities `x` [n],
labels `y` [n]) and return nats (`unit="bits"` divides by ln 2). They are pure jnp (jit- and vmap-safe; the bin
count and the unit are static).

- Binned estimator of Shwartz-Ziv & Tishby, "Opening the Black Box of Deep Neural Networks via Information", 2017,
  arXiv:1703.00810 (the estimator as the paper describes it): each unit's activation is discretised into `n_bins`
  equal-width bins over a fixed range ([-1, 1] for tanh in the paper, 30 bins), the layer's code T is the tuple of bin
  indices, and I(X;T) = H(T) - H(T|X), I(T;Y) = H(T) - H(T|Y) are computed from the empirical joint distribution
  (plug-in). For a deterministic network and distinct inputs X uniform over the samples, I(X;T) = H(T).
- Adaptive binning of Chelombiev, Houghton & O'Donnell, "Adaptive Estimators Show Information Compression in Deep
  Neural Networks", ICLR 2019, arXiv:1902.09037 ("entropy-based adaptive binning", our reading): the bin edges are
  quantiles of the *distinct* activation values observed (each bin holds the same number of distinct values), so
  that bins follow the activations' spread (unbounded ReLU/ELU/softplus units included) and a mass of identical
  values (saturated or zero units) does not eat the bins. The paper pools the layer's activations; `per_neuron=True`
  computes the edges of every unit separately.
- KDE bounds (Kolchinsky & Tracey, "Estimating Mixture Entropy with Pairwise Distances", Entropy 2017,
  arXiv:1706.02419, Eq. 10 (KL: upper) and Eq. 11 (Bhattacharyya: lower); as used by Saxe et al. 2018 and, with a
  noise variance scaled to the layer's activity, by Chelombiev et al. Sec. 3.2): T = h(X) + N(0, sigma^2 I) with X
  uniform over the n samples, I(X;T) is bounded by -1/n sum_i ln(1/n sum_j exp(-D_ij)) with
  D_ij = ||h_i - h_j||^2 / (2 sigma^2) (upper) or / (8 sigma^2) (lower).
"""

from __future__ import annotations

import functools
import math
from typing import Literal, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation

Unit = Literal["nats", "bits"]


def _check_unit(unit):
  if unit not in ("nats", "bits"):
    raise ValueError(f"unit must be 'nats' or 'bits', got {unit=}")
  return 1.0 if unit == "nats" else 1.0 / math.log(2.0)


def _check_symbols(symbols, name):
  s = validation.check_integer(symbols, name)
  if s.ndim == 1:
    s = s[:, None]
  if s.ndim != 2 or s.shape[0] < 1:
    raise ValueError(f"{name} must be [n] or [n, d] integer symbols with n >= 1, got {name}.shape={s.shape}")
  return s.astype(jnp.int32)


def _check_bins(n_bins):
  if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)):
    raise TypeError(f"n_bins must be an int, got {n_bins=}")
  if n_bins < 2:
    raise ValueError(f"n_bins must be >= 2, got {n_bins=}")
  return int(n_bins)


def _check_activations(t, name="t"):
  t = validation.check_floating(t, name)
  if t.ndim == 1:
    t = t[:, None]
  if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] < 1:
    raise ValueError(f"{name} must be [n] or [n, d] activations (one row per example), got {name}.shape={t.shape}")
  return t


def _entropy_keys(keys):
  """Plug-in entropy (nats) of the tuples (keys[0][i], keys[1][i], ...) of int32 [n] arrays."""
  n = keys[0].shape[0]
  order = jnp.lexsort(tuple(keys[::-1]))
  new = jnp.zeros((n - 1,), bool)
  for k in keys:
    srt = k[order]
    new = new | (srt[1:] != srt[:-1])
  ids = jnp.cumsum(jnp.concatenate([jnp.ones((1,), jnp.int32), new.astype(jnp.int32)])) - 1
  counts = jax.ops.segment_sum(jnp.ones((n,), jnp.float32), ids, num_segments=n)
  p = counts / n
  return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))


@jax.jit
def _entropy_rows(s):
  """Plug-in entropy (nats) of the rows of an int32 [n, d] array, each distinct row one symbol."""
  return _entropy_keys([s[:, k] for k in range(s.shape[1])])


def _packed_keys(codes, n_bins):
  """Bin codes in [0, n_bins) [n, d] packed exactly into few int32 keys (as many columns per key as fit in 2^31)."""
  per = max(1, int(math.floor(math.log(2 ** 31 - 1) / math.log(n_bins))))
  keys = []
  for start in range(0, codes.shape[1], per):
    k = jnp.zeros((codes.shape[0],), jnp.int32)
    for c in range(start, min(start + per, codes.shape[1])):
      k = k * n_bins + codes[:, c]
    keys.append(k)
  return keys


@functools.partial(jax.jit, static_argnums=3)
def _binned_mi(codes, sx, sy, n_bins):
  """(I(X;T), I(T;Y)) in nats of bin codes; sx None: the rows are distinct inputs, I(X;T) = H(T)."""
  kt = _packed_keys(codes, n_bins)
  ht = _entropy_keys(kt)
  ys = [sy[:, k] for k in range(sy.shape[1])]
  ity = ht + _entropy_keys(ys) - _entropy_keys(kt + ys)
  if sx is None:
    return ht, ity
  xs = [sx[:, k] for k in range(sx.shape[1])]
  return ht + _entropy_keys(xs) - _entropy_keys(kt + xs), ity


def discrete_entropy(symbols, *, unit: Unit = "nats"):
  """Plug-in (maximum-likelihood) entropy H = -sum_s p(s) ln p(s) of the empirical distribution of `symbols`.

  The entropy term of the binned estimator of Shwartz-Ziv & Tishby 2017 (arXiv:1703.00810, Sec. 3.1).

  Args:
    symbols: [n] or [n, d] integer array; each row (a tuple of d ints, e.g. a layer's bin indices) is one symbol.
    unit: "nats" (default) or "bits".

  Returns:
    scalar float32 entropy of the rows' empirical distribution.
  """
  scale = _check_unit(unit)
  return _entropy_rows(_check_symbols(symbols, "symbols")) * scale


def discrete_mutual_information(a, b, *, unit: Unit = "nats"):
  """Plug-in mutual information I(A;B) = H(A) + H(B) - H(A,B) of paired discrete samples.

  Shwartz-Ziv & Tishby 2017 (arXiv:1703.00810, Sec. 3.1) compute I(X;T) and I(T;Y) this way from the binned code T.

  Args:
    a: [n] or [n, da] integer symbols (rows are symbols).
    b: [n] or [n, db] integer symbols, paired with `a` row by row.
    unit: "nats" (default) or "bits".

  Returns:
    scalar float32, >= 0 up to rounding; <= min(H(A), H(B)).
  """
  scale = _check_unit(unit)
  sa, sb = _check_symbols(a, "a"), _check_symbols(b, "b")
  if sa.shape[0] != sb.shape[0]:
    raise ValueError(f"a and b must have the same number of rows, got a.shape={sa.shape}, b.shape={sb.shape}")
  return _mi_rows(sa, sb) * scale


@jax.jit
def _mi_rows(sa, sb):
  return _entropy_rows(sa) + _entropy_rows(sb) - _entropy_rows(jnp.concatenate([sa, sb], axis=1))


def uniform_bins(t, n_bins: int, *, lower: Optional[float] = None, upper: Optional[float] = None):
  """Bin indices of `t` in `n_bins` equal-width bins over [lower, upper] (Shwartz-Ziv & Tishby 2017,
  arXiv:1703.00810, Sec. 3.1: 30 bins over the tanh range [-1, 1]).

  Args:
    t: [n] or [n, d] float activations (one row per example).
    n_bins: int >= 2 bins.
    lower: left end of the range; default the minimum of `t` (over the whole layer). Values below fall in bin 0.
    upper: right end of the range; default the maximum of `t`. Values above fall in the last bin.

  Returns:
    int32 [n, d] bin indices in [0, n_bins).

  Raises:
    ValueError: the range is empty (upper <= lower, a defaulted end taken from `t`) and the values are concrete;
      under jit such a range puts every value in bin 0 (`binned_mutual_information` then returns NaN).
  """
  t = _check_activations(t)
  n_bins = _check_bins(n_bins)
  return _uniform_codes(t, n_bins, *_uniform_range(t, lower, upper))


def _uniform_codes(t, n_bins, lo, hi):
  width = jnp.where(hi > lo, (hi - lo) / n_bins, 1.0)
  return jnp.clip(jnp.floor((t - lo) / width), 0, n_bins - 1).astype(jnp.int32)


def _uniform_range(t, lower, upper):
  """The range (lo, hi) of `uniform_bins`: ValueError when a given end leaves an empty range and is concrete.

  With both ends defaulted, lo = hi (constant t) is allowed (every value in bin 0); with one or both ends given, the
  range must satisfy upper > lower, where a defaulted end is max(t) / min(t) (checked when t is concrete too).
  """
  if (validation.is_concrete_number(lower) and validation.is_concrete_number(upper)
      and not float(upper) > float(lower)):
    raise ValueError(f"upper must exceed lower, got {lower=}, {upper=}")
  if not validation.is_traced(t) and np.isfinite(np.asarray(t)).all():
    if upper is None and validation.is_concrete_number(lower) and not float(jnp.max(t)) > float(lower):
      raise ValueError(f"lower must be below max(t) = {float(jnp.max(t))} when upper is None (the range "
                       f"[lower, max(t)] is empty), got {lower=}")
    if lower is None and validation.is_concrete_number(upper) and not float(upper) > float(jnp.min(t)):
      raise ValueError(f"upper must exceed min(t) = {float(jnp.min(t))} when lower is None (the range "
                       f"[min(t), upper] is empty), got {upper=}")
  lo = jnp.min(t) if lower is None else jnp.asarray(lower, t.dtype)
  hi = jnp.max(t) if upper is None else jnp.asarray(upper, t.dtype)
  return lo, hi


def _adaptive_edges(v, n_bins):
  """The n_bins - 1 inner edges splitting the distinct values of the 1-D array v into equal counts."""
  m = v.shape[0]
  srt = jnp.sort(v)
  distinct = jnp.concatenate([jnp.ones((1,), bool), srt[1:] != srt[:-1]])
  u = jnp.sum(distinct)                                            # number of distinct values
  # uniq[k] = k-th distinct value (padded with +inf past u).
  pos = jnp.where(distinct, jnp.cumsum(distinct) - 1, m)
  uniq = jnp.full((m + 1,), jnp.inf, v.dtype).at[pos].set(srt)[:m]
  k = jnp.arange(1, n_bins)
  idx = jnp.floor(k * u / n_bins).astype(jnp.int32)               # first distinct value of bins 1 .. n_bins-1
  return uniq[jnp.clip(idx, 0, m - 1)]


def adaptive_bins(t, n_bins: int, *, per_neuron: bool = False):
  """Bin indices of `t` with edges at quantiles of the distinct observed values (each bin holds ~the same number of
  distinct activation values): the entropy-based adaptive binning of Chelombiev, Houghton & O'Donnell, ICLR 2019
  (arXiv:1902.09037, Sec. 3).

  Bin b holds the values v with edge_b <= v < edge_{b+1}; with u distinct values, bin b starts at the
  floor(b u / n_bins)-th distinct value. Fewer distinct values than bins leave some bins empty.

  Args:
    t: [n] or [n, d] float activations (one row per example).
    n_bins: int >= 2 bins.
    per_neuron: False (the paper's) computes one set of edges from the whole layer's values; True, one per unit.

  Returns:
    int32 [n, d] bin indices in [0, n_bins).
  """
  t = _check_activations(t)
  n_bins = _check_bins(n_bins)
  if not isinstance(per_neuron, bool):
    raise TypeError(f"per_neuron must be a bool, got {per_neuron=}")
  return _adaptive_codes(t, n_bins, per_neuron)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _adaptive_codes(t, n_bins, per_neuron):
  if per_neuron:
    edges = jax.vmap(lambda col: _adaptive_edges(col, n_bins), in_axes=1, out_axes=1)(t)     # [n_bins-1, d]
    return jnp.sum(t[:, None, :] >= edges[None], axis=1).astype(jnp.int32)
  edges = _adaptive_edges(t.reshape(-1), n_bins)
  return jnp.searchsorted(edges, t, side="right").astype(jnp.int32)


def binned_mutual_information(t, x, y, *, n_bins: int = 30, binning: Literal["uniform", "adaptive"] = "uniform",
                              lower: Optional[float] = None, upper: Optional[float] = None,
                              per_neuron: bool = False, unit: Unit = "nats"):
  """The information-plane coordinates (I(X;T), I(T;Y)) of a layer from binned activations.

  Shwartz-Ziv & Tishby 2017 (arXiv:1703.00810, Sec. 3.1, the binned estimator; "uniform") and Chelombiev et al.
  2019 (arXiv:1902.09037, Sec. 3, adaptive binning; "adaptive"). T is the row of bin indices; I = plug-in
  H(T) + H(.) - H(T, .).

  Args:
    t: [n] or [n, d] float activations of the layer, one row per example.
    x: [n] integer identity of each example's input pattern (equal inputs share an id), or None when the n rows are
      n distinct inputs (X uniform over them, e.g. all 4096 patterns of the 12-bit task): then I(X;T) = H(T), as
      for any deterministic T = f(X), and one sort is saved.
    y: [n] integer labels.
    n_bins: int >= 2 bins (the paper's 30).
    binning: "uniform" (equal width over [lower, upper]) or "adaptive" (quantiles of distinct values).
    lower: uniform binning's left end (default min t); ignored by "adaptive".
    upper: uniform binning's right end (default max t); ignored by "adaptive".
    per_neuron: adaptive binning's per-unit edges (default: the layer's pooled edges).
    unit: "nats" (default) or "bits".

  Returns:
    (I(X;T), I(T;Y)) two float32 scalars; NaN if `t` holds a NaN (or, with a defaulted range end, an inf), or if
    the uniform range is empty under jit.
  """
  th = _check_activations(t)
  n = th.shape[0]
  sx = None if x is None else _check_symbols(x, "x")
  sy = _check_symbols(y, "y")
  for name, s in (("x", sx), ("y", sy)):
    if s is not None and s.shape[0] != n:
      raise ValueError(f"{name} must have one entry per row of t ({n}), got {name}.shape={s.shape}")
  if binning == "uniform":
    lo, hi = _uniform_range(th, lower, upper)      # one range (and its eager checks) for the codes and the guard
    codes = _uniform_codes(th, _check_bins(n_bins), lo, hi)
    # NaN for NaN activations, for non-finite ones with a defaulted end (the range is then not finite), and for an
    # empty range under jit (eagerly a ValueError in `uniform_bins`).
    ok = ~jnp.any(jnp.isnan(th))
    if lower is None or upper is None:
      ok = ok & jnp.all(jnp.isfinite(th))
    if lower is not None or upper is not None:
      ok = ok & (hi > lo)
  elif binning == "adaptive":
    codes = adaptive_bins(t, n_bins, per_neuron=per_neuron)
    ok = ~jnp.any(jnp.isnan(th))                  # NaN activations: NaN (the bins of a NaN are meaningless)
  else:
    raise ValueError(f"binning must be 'uniform' or 'adaptive', got {binning=}")
  scale = _check_unit(unit)
  ixt, ity = _binned_mi(codes, sx, sy, n_bins)
  return validation.nan_where_invalid(ixt * scale, ok), validation.nan_where_invalid(ity * scale, ok)


def _pairwise_term(h, scale, mask=None):
  """-mean_i ln mean_j exp(-||h_i - h_j||^2 / scale) over the rows selected by mask (all when None).

  h should be centred (see `kde_mutual_information`): ||a||^2 + ||b||^2 - 2 a.b cancels catastrophically far from 0.
  """
  sq = jnp.sum(h * h, axis=1)
  d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * h @ h.T, 0.0) / scale
  if mask is None:
    n = h.shape[0]
    return -jnp.mean(jax.nn.logsumexp(-d2, axis=1) - jnp.log(n))
  w = mask.astype(h.dtype)
  m = jnp.sum(w)
  inner = jax.nn.logsumexp(jnp.where(mask[None, :], -d2, -jnp.inf), axis=1) - jnp.log(jnp.maximum(m, 1.0))
  return -jnp.sum(jnp.where(mask, inner, 0.0)) / jnp.maximum(m, 1.0)


def kde_mutual_information(t, *, noise_variance: float, labels=None, num_classes: Optional[int] = None,
                           bound: Literal["upper", "lower"] = "upper", unit: Unit = "nats"):
  """Pairwise-distance (KDE) bounds on I(X;T) and I(T;Y) for T = h(X) + N(0, noise_variance I), X uniform over the
  n rows of `t` (Kolchinsky & Tracey 2017, arXiv:1706.02419, Eqs. 10-11; the estimator of Saxe et al. 2018 and,
  with the noise variance scaled to the layer's activity, Chelombiev et al. 2019, arXiv:1902.09037, Sec. 3.2).

  I(X;T) ~ -1/n sum_i ln(1/n sum_j exp(-||h_i - h_j||^2 / (c sigma^2))) with c = 2 (KL: an upper bound) or
  c = 8 (Bhattacharyya: a lower bound); I(T;Y) ~ that term minus sum_y p(y) times the same term within class y.

  Args:
    t: [n] or [n, d] float activations h(x_i), one row per example.
    noise_variance: float > 0 (finite), the variance sigma^2 of the added Gaussian noise; ValueError otherwise when
      concrete, NaN results under jit.
    labels: optional [n] integer labels in [0, num_classes); when given, I(T;Y) is returned too. Labels outside
      the range: ValueError when concrete, NaN I(T;Y) under jit.
    num_classes: number of classes (required with `labels`).
    bound: "upper" (KL, default) or "lower" (Bhattacharyya).
    unit: "nats" (default) or "bits".

  Returns:
    I(X;T) as a scalar, or (I(X;T), I(T;Y)) when `labels` is given. The rows are centred first (the estimate is
    shift invariant), so activations far from the origin keep their precision.
  """
  scale_unit = _check_unit(unit)
  h = _check_activations(t)
  h = h.astype(validation.compute_dtype_for(h.dtype))
  nv_valid = validation.check_positive_values(noise_variance, "noise_variance")   # NaN results under jit
  if bound not in ("upper", "lower"):
    raise ValueError(f"bound must be 'upper' or 'lower', got {bound=}")
  lab, lab_valid = None, None
  if labels is not None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
      raise ValueError(f"num_classes must be a positive int when labels are given, got {num_classes=}")
    lab = validation.check_integer(labels, "labels")
    if lab.shape != (h.shape[0],):
      raise ValueError(f"labels must be [n] = [{h.shape[0]}], got labels.shape={lab.shape}")
    lab_valid = validation.check_labels(lab, int(num_classes))     # ValueError when concrete, NaN under jit
  # Centred first: the estimate is shift invariant, and the distances below lose ~||h||^2 eps of precision.
  h = h - jnp.mean(h, axis=0, keepdims=True)
  scale = (2.0 if bound == "upper" else 8.0) * noise_variance
  hx = validation.nan_where_invalid(_pairwise_term(h, scale), nv_valid)
  if labels is None:
    return hx * scale_unit
  n = h.shape[0]
  cond = 0.0
  for c in range(int(num_classes)):
    mask = lab == c
    cond = cond + jnp.sum(mask) / n * _pairwise_term(h, scale, mask)
  ity = validation.nan_where_invalid(hx - cond, lab_valid)
  return hx * scale_unit, ity * scale_unit
