"""Information and complexity estimators of analysis wave 3c (issue 21): the conditional-MI term of the information
bottleneck generalisation bound [19], kNN mutual information after compression [39] and inductive-bias bits [202].

- [19] Kenji Kawaguchi, Zhun Deng, Xu Ji, Jiaoyang Huang, "How Does Information Bottleneck Help Deep Learning?",
  ICML 2023, arXiv:2305.18887. The bound (Theorem 1, fixed encoder; Theorem 2 adds I(phi; S) for a learnt one) has
  the form Delta(s) <= K sqrt((I(X; Z_l^s | Y) ln 2 + G_2) / n) + G_1 / sqrt(n), with I in bits; the paper's code
  (github.com/xu-ji/information-bottleneck, `est_MI_binning_cond`) estimates I(X; Z | Y) of a deterministic layer
  as the mean over classes of the plug-in entropy of the binned code Z within the class (H(Z | X, Y) = 0).
- [39] Ivan Butakov, Alexander Tolmachev, Sofia Malanchuk, Anna Neopryatnaya, Alexey Frolov, Kirill Andreev,
  "Information Bottleneck Analysis of Deep Neural Networks via Lossy Compression", ICLR 2024, arXiv:2305.08013,
  Algorithm 1: compress each high-dimensional variable (an autoencoder's encoder), then estimate the MI of the
  compressed pair with a kNN estimator. The kNN estimator here is Kraskov, Stoegbauer & Grassberger, "Estimating
  mutual information", Phys. Rev. E 69, 066138 (2004), arXiv:cond-mat/0305641, estimator 1 (Eq. 8).
- [202] Akhilan Boopathy, William Yue, Jaedong Hwang, Abhiram Iyer, Ila Fiete, "Towards Exact Computation of
  Inductive Bias", IJCAI 2024, arXiv:2406.15941: the inductive bias needed to reach test error eps within a
  hypothesis class is -log P_{h ~ p_h}(e(h) <= eps); the paper fits a scaled non-central chi-squared distribution to
  the test errors of sampled hypotheses (their code: `scipy.stats.ncx2.fit(errors, floc=0)`, then `-ncx2.logcdf`).
  We fit it by maximum likelihood (L-BFGS on the log-density, from a three-moment fit; jit-able) and report bits.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Literal, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation
from jaxlib_methods.analysis import information
from jaxlib_methods.analysis import _solvers

Unit = Literal["nats", "bits"]


# ---- [19] I(X; Z | Y) and the IB generalisation bound -----------------------------------------------------------


def cond_mi_x_z_given_y(z, y, *, x=None, n_bins: int = 10, lower: Optional[float] = None,
                        upper: Optional[float] = None, unit: Unit = "bits"):
  """Binned plug-in estimate of I(X; Z | Y), the information a layer's code Z keeps about the input beyond the label.

  Kawaguchi, Deng, Ji & Huang, "How Does Information Bottleneck Help Deep Learning?", ICML 2023, arXiv:2305.18887:
  the quantity in the bound of Theorem 1. Each unit of `z` is discretised into `n_bins` equal-width bins over
  [lower, upper] (`information.uniform_bins`, the layer's range by default) and
  I(X; Z | Y) = H(Z, Y) + H(X, Y) - H(X, Z, Y) - H(Y) from the empirical joint distribution. With `x=None` the rows
  are distinct inputs and Z = f(X) is deterministic, so I(X; Z | Y) = H(Z | Y) = sum_c p(c) H(Z | Y = c) (the
  paper's code takes the unweighted mean over classes, equal for balanced classes; it also bins each class over its
  own range, we use one range for the layer).

  Args:
    z: [n] or [n, d] float activations of the layer, one row per example.
    y: [n] integer labels.
    x: optional [n] integer identity of each example's input (equal inputs share an id, e.g. a stochastic layer
      evaluated several times per input); None when the n rows are n distinct inputs.
    n_bins: int >= 2 bins per unit.
    lower: left end of the binning range (default: min of z).
    upper: right end of the binning range (default: max of z).
    unit: "bits" (default, the paper's) or "nats".

  Returns:
    scalar float32 estimate (>= 0 up to rounding).
  """
  scale = information._check_unit(unit)
  zz = information._check_activations(z, "z")
  sy = information._check_symbols(y, "y")
  n = zz.shape[0]
  if sy.shape != (n, 1):
    raise ValueError(f"y must be [n] = [{n}] labels, got y.shape={tuple(jnp.shape(y))}")
  sx = None
  if x is not None:
    sx = information._check_symbols(x, "x")
    if sx.shape != (n, 1):
      raise ValueError(f"x must be [n] = [{n}] input ids, got x.shape={tuple(jnp.shape(x))}")
  n_bins = information._check_bins(n_bins)
  codes = information.uniform_bins(zz, n_bins, lower=lower, upper=upper)
  return _cond_mi(codes, sy[:, 0], None if sx is None else sx[:, 0], n_bins) * scale


@functools.partial(jax.jit, static_argnums=3)
def _cond_mi(codes, y, x, n_bins):
  kz = information._packed_keys(codes, n_bins)
  h_zy = information._entropy_keys(kz + [y])
  h_y = information._entropy_keys([y])
  if x is None:
    return h_zy - h_y
  return h_zy + information._entropy_keys([x, y]) - information._entropy_keys(kz + [x, y]) - h_y


def ib_generalization_bound(cond_mi_bits, n, *, k: float = 1.0, g1: float = 0.0, g2: float = 0.0):
  """The information-bottleneck generalisation bound K sqrt((I ln 2 + G_2) / n) + G_1 / sqrt(n).

  Kawaguchi, Deng, Ji & Huang, ICML 2023, arXiv:2305.18887, the form of Theorem 1 (fixed encoder): I = I(X; Z_l^s | Y)
  in bits (`cond_mi_x_z_given_y`), so I ln 2 is in nats. The paper's G_1 (a concentration term with ln(1/delta)) and
  G_2 (a covering term) depend on quantities the caller must supply; with the defaults (K = 1, G_1 = G_2 = 0) the
  value is the bound's I-dependent leading term sqrt(I ln 2 / n), which is what ranks runs of equal n. For the
  learnt-encoder bound (Theorem 2) pass I(X; Z | Y) + I(phi; S).

  Args:
    cond_mi_bits: scalar or [...] float, I(X; Z | Y) in bits (>= 0).
    n: number of training examples (> 0), scalar or broadcastable to `cond_mi_bits`.
    k: the loss-range factor K > 0 of the leading term.
    g1: the G_1 term (>= 0).
    g2: the G_2 term (>= 0).

  Returns:
    float array of `cond_mi_bits`'s shape: the bound on the generalisation gap.
  """
  i = validation.check_floating(cond_mi_bits, "cond_mi_bits")
  for name, v in (("k", k), ("n", n)):
    if validation.is_concrete_number(v) and not float(v) > 0:
      raise ValueError(f"{name} must be > 0, got {name}={v}")
  for name, v in (("g1", g1), ("g2", g2)):
    if validation.is_concrete_number(v) and not float(v) >= 0:
      raise ValueError(f"{name} must be >= 0, got {name}={v}")
  if not validation.is_traced(i) and bool(jnp.any(i < 0)):
    raise ValueError("cond_mi_bits must be >= 0 (a mutual information), got a negative value")
  n = jnp.asarray(n, i.dtype)
  return k * jnp.sqrt((i * math.log(2.0) + g2) / n) + g1 / jnp.sqrt(n)


# ---- [39] kNN (KSG) mutual information and MI after compression ------------------------------------------------


def _as_rows(v, name):
  v = validation.check_floating(v, name)
  if v.ndim == 1:
    v = v[:, None]
  if v.ndim != 2 or v.shape[1] < 1:
    raise ValueError(f"{name} must be [n] or [n, d] samples (one row per sample), got {name}.shape={v.shape}")
  return v


def ksg_mutual_information(x, y, *, k: int = 3, unit: Unit = "nats"):
  """Kraskov-Stoegbauer-Grassberger kNN estimate of I(X; Y) from paired samples (estimator 1).

  Kraskov, Stoegbauer & Grassberger, Phys. Rev. E 69, 066138 (2004), arXiv:cond-mat/0305641, Eq. 8:
  I = psi(k) + psi(n) - <psi(n_x(i) + 1) + psi(n_y(i) + 1)>, where eps_i is the max-norm distance from sample i to
  its k-th neighbour in the joint space (max of the two marginal max-norm distances) and n_x(i), n_y(i) count the
  other samples strictly within eps_i in each marginal. The estimator [39] (Butakov et al., ICLR 2024,
  arXiv:2305.08013, Algorithm 1) applies after compression (`compressed_mutual_information`). O(n^2) memory.

  Args:
    x: [n] or [n, dx] float samples of X.
    y: [n] or [n, dy] float samples of Y, paired with `x` row by row.
    k: int, 1 <= k < n, the neighbour order (the paper's default 3 of KSG).
    unit: "nats" (default) or "bits".

  Returns:
    scalar float estimate (may be slightly negative for independent variables).
  """
  scale = information._check_unit(unit)
  xx, yy = _as_rows(x, "x"), _as_rows(y, "y")
  if xx.shape[0] != yy.shape[0]:
    raise ValueError(f"x and y must have the same number of rows, got x.shape={xx.shape}, y.shape={yy.shape}")
  k = validation.check_int(k, "k", 1)
  if k >= xx.shape[0]:
    raise ValueError(f"k must be < the number of samples ({xx.shape[0]}), got k={k}")
  dt = validation.compute_dtype_for(jnp.result_type(xx.dtype, yy.dtype))
  return _ksg(xx.astype(dt), yy.astype(dt), k) * scale


@functools.partial(jax.jit, static_argnums=2)
def _ksg(x, y, k):
  n = x.shape[0]
  dx = jnp.max(jnp.abs(x[:, None, :] - x[None, :, :]), axis=-1)
  dy = jnp.max(jnp.abs(y[:, None, :] - y[None, :, :]), axis=-1)
  dz = jnp.maximum(dx, dy)
  big = jnp.asarray(jnp.inf, dz.dtype)
  eye = jnp.eye(n, dtype=bool)
  eps = -jax.lax.top_k(-jnp.where(eye, big, dz), k)[0][:, k - 1]            # k-th neighbour distance
  nx = jnp.sum((dx < eps[:, None]) & ~eye, axis=1)
  ny = jnp.sum((dy < eps[:, None]) & ~eye, axis=1)
  dg = jax.scipy.special.digamma
  return dg(jnp.asarray(k, x.dtype)) + dg(jnp.asarray(n, x.dtype)) - jnp.mean(
      dg((nx + 1).astype(x.dtype)) + dg((ny + 1).astype(x.dtype)))


def compressed_mutual_information(x, y, *, encoder_x: Optional[Callable] = None,
                                  encoder_y: Optional[Callable] = None, k: int = 3, unit: Unit = "nats"):
  """I(X; Y) estimated after lossy compression: I(E_x(X); E_y(Y)) by the KSG estimator.

  Butakov et al., "Information Bottleneck Analysis of Deep Neural Networks via Lossy Compression", ICLR 2024,
  arXiv:2305.08013, Algorithm 1: high-dimensional X and Y are mapped by the encoders of autoencoders trained on them,
  and MI is estimated between the low-dimensional codes. By the data-processing inequality the result estimates a
  lower bound of I(X; Y), equal to it when the encoders keep the information (e.g. X and Y generated from
  low-dimensional latents that the encoders recover). Any deterministic map works as an encoder (a trained
  autoencoder's encoder, a PCA projection).

  Args:
    x: [n, dx] float samples of X.
    y: [n, dy] float samples of Y, paired with `x`.
    encoder_x: callable [n, dx] -> [n, cx] (default: identity, no compression).
    encoder_y: callable [n, dy] -> [n, cy] (default: identity).
    k: KSG neighbour order, 1 <= k < n.
    unit: "nats" (default) or "bits".

  Returns:
    scalar float estimate of I(X; Y).
  """
  for name, enc in (("encoder_x", encoder_x), ("encoder_y", encoder_y)):
    if enc is not None and not callable(enc):
      raise TypeError(f"{name} must be a callable or None, got {name}={enc!r}")
  xx, yy = _as_rows(x, "x"), _as_rows(y, "y")
  cx = xx if encoder_x is None else encoder_x(xx)
  cy = yy if encoder_y is None else encoder_y(yy)
  if jnp.shape(cx)[0] != xx.shape[0] or jnp.shape(cy)[0] != yy.shape[0]:
    raise ValueError(f"the encoders must keep one row per sample, got codes of shapes {jnp.shape(cx)}, "
                     f"{jnp.shape(cy)} for {xx.shape[0]} samples")
  return ksg_mutual_information(cx, cy, k=k, unit=unit)


# ---- [202] inductive-bias bits from the loss distribution of random hypotheses ---------------------------------


def fit_scaled_ncx2(losses, *, method: Literal["mle", "moments"] = "mle", steps: int = 100):
  """Scaled non-central chi-squared fit (df, nc, scale) of the test losses of random hypotheses.

  Boopathy et al., "Towards Exact Computation of Inductive Bias", IJCAI 2024, arXiv:2406.15941, model the losses
  e(h) of hypotheses h ~ p_h as scale * chi'^2(df, nc) and fit it by maximum likelihood with loc = 0 (their code:
  `scipy.stats.ncx2.fit(errors, floc=0)`). "mle" maximises the mean log-density (a Poisson(nc / 2) mixture of
  central chi-squared densities, the 64 terms around the Poisson mode) over (log df, log nc, log scale) with `steps`
  L-BFGS steps (`optax.lbfgs`) from the moment fit. "moments" matches the first three moments: with L = e / scale,
  E L = df + nc, Var L = 2 (df + 2 nc), E (L - E L)^3 = 8 (df + 3 nc); since df + 3 nc = 2 (df + 2 nc) - (df + nc),
  the scale solves 8 mean s^2 - 8 var s + m3 = 0 (the smaller root; the larger one gives nc < 0). When the sample
  skew is below the central chi-squared's (no root with nc >= 0), nc = 0 and (df, scale) match the mean and
  variance.

  Args:
    losses: [m] float losses of m >= 3 sampled hypotheses (> 0).
    method: "mle" (default, the paper's) or "moments".
    steps: int >= 1 L-BFGS steps of the "mle" fit.

  Returns:
    (df, nc, scale) float scalars, df > 0, nc >= 0, scale > 0.
  """
  e = validation.check_floating(losses, "losses")
  if e.ndim != 1 or e.shape[0] < 3:
    raise ValueError(f"losses must be [m] with m >= 3 sampled hypotheses, got losses.shape={e.shape}")
  if method not in ("mle", "moments"):
    raise ValueError(f"method must be 'mle' or 'moments', got {method=}")
  steps = validation.check_int(steps, "steps", 1)
  e = e.astype(validation.compute_dtype_for(e.dtype))
  if method == "moments":
    return _fit_ncx2(e)
  return _fit_ncx2_mle(e, steps)


def _ncx2_logpdf(x, df, nc, scale, terms=64):
  """log density of scale * chi'^2(df, nc) at x > 0: a Poisson(nc / 2) mixture of central chi-squared densities,
  summed over the `terms` Poisson indices centred on the mode floor(nc / 2) (+-32 terms: > 5 standard deviations of
  the Poisson weights for nc / 2 < 40, and the neglected mass stays below 1e-3 up to nc / 2 ~ 250)."""
  lam = nc / 2
  j0 = jnp.maximum(jnp.floor(lam) - terms // 2, 0.0)
  j = j0 + jnp.arange(terms, dtype=x.dtype)
  logpois = j * jnp.log(lam) - lam - jax.scipy.special.gammaln(j + 1)
  y = x / scale
  nu = df + 2 * j
  logchi = ((nu / 2 - 1) * jnp.log(y[..., None]) - y[..., None] / 2 - nu / 2 * math.log(2.0)
            - jax.scipy.special.gammaln(nu / 2))
  return jax.nn.logsumexp(logpois + logchi, axis=-1) - jnp.log(scale)


@functools.partial(jax.jit, static_argnums=1)
def _fit_ncx2_mle(e, steps):
  df0, nc0, s0 = _fit_ncx2(e)
  theta = jnp.log(jnp.stack([df0, jnp.maximum(nc0, 1e-3 * df0), s0]))
  theta = _solvers.minimize_lbfgs(lambda t: -jnp.mean(_ncx2_logpdf(e, *jnp.exp(t))), theta, steps)
  df, nc, scale = jnp.exp(theta)
  return df, nc, scale


@jax.jit
def _fit_ncx2(e):
  mu = jnp.mean(e)
  v = jnp.mean((e - mu) ** 2)
  m3 = jnp.mean((e - mu) ** 3)
  # mean = s (d + l), v = 2 s^2 (d + 2l), m3 = 8 s^3 (d + 3l). With a = d + l, b = d + 2l, c = d + 3l: c = 2b - a,
  # so m3 / (8 s^3) = 2 v / (2 s^2) - mu / s  ->  m3 = 8 s v - 8 s^2 mu  ->  8 mu s^2 - 8 v s + m3 = 0.
  disc = jnp.maximum(64 * v * v - 32 * mu * m3, 0.0)
  s_nc = (8 * v - jnp.sqrt(disc)) / (16 * mu)               # the smaller root: nc >= 0 branch
  s_c = v / (2 * mu)                                        # central chi-squared (nc = 0): v / mu = 2 s
  a = mu / jnp.where(s_nc > 0, s_nc, 1.0)
  b = v / (2 * jnp.where(s_nc > 0, s_nc, 1.0) ** 2)
  nc = b - a
  d = 2 * a - b
  ok = (s_nc > 0) & (nc >= 0) & (d > 0)
  scale = jnp.where(ok, s_nc, s_c)
  return jnp.where(ok, d, mu / s_c), jnp.where(ok, nc, 0.0), scale


def _log_gammainc_lower(a, x, terms=400):
  """log P(a, x) of scalars a, x (regularised lower incomplete gamma), stable in the far left tail: the series
  P = x^a e^-x / Gamma(a + 1) * sum_k x^k / ((a + 1) ... (a + k)) in log space, else log(gammainc)."""
  logterms = jnp.cumsum(jnp.log(x) - jnp.log(a + jnp.arange(1, terms + 1, dtype=x.dtype)))
  series = a * jnp.log(x) - x - jax.scipy.special.gammaln(a + 1) + jnp.logaddexp(
      0.0, jax.nn.logsumexp(logterms))
  direct = jnp.log(jax.scipy.special.gammainc(a, x))
  return jnp.where(x < a, series, direct)


def scaled_ncx2_logcdf(value, df, nc, scale, *, terms: int = 200):
  """log P(scale * chi'^2(df, nc) <= value), as a Poisson(nc / 2) mixture of central chi-squared CDFs.

  The loss model of Boopathy et al., IJCAI 2024, arXiv:2406.15941: P = sum_j Pois(j; nc/2) P(df/2 + j, value/(2
  scale)) with P the regularised lower incomplete gamma, summed in log space (stable to far tails, where the
  inductive bias is large). `terms` Poisson terms are summed (enough when nc/2 + 10 sqrt(nc/2) < terms).

  Args:
    value: scalar or [...] float threshold (>= 0).
    df: degrees of freedom > 0.
    nc: non-centrality >= 0.
    scale: scale > 0.
    terms: int >= 1 Poisson terms.

  Returns:
    float array of `value`'s shape, the log-CDF.
  """
  terms = validation.check_int(terms, "terms", 1)
  v = validation.check_floating(value, "value")
  for name, p, strict in (("df", df, True), ("nc", nc, False), ("scale", scale, True)):
    if validation.is_concrete_number(p) and not (float(p) > 0 if strict else float(p) >= 0):
      raise ValueError(f"{name} must be {'>' if strict else '>='} 0, got {name}={p}")
  dt = validation.compute_dtype_for(v.dtype)
  return _ncx2_logcdf(v.astype(dt), jnp.asarray(df, dt), jnp.asarray(nc, dt), jnp.asarray(scale, dt), terms)


@functools.partial(jax.jit, static_argnums=4)
def _ncx2_logcdf(v, df, nc, scale, terms):
  j = jnp.arange(terms, dtype=v.dtype)
  lam = nc / 2
  logpois = jnp.where(lam > 0, j * jnp.log(jnp.where(lam > 0, lam, 1.0)) - lam - jax.scipy.special.gammaln(j + 1),
                      jnp.where(j == 0, 0.0, -jnp.inf))
  xv = jnp.maximum(v / (2 * scale), jnp.finfo(v.dtype).tiny)
  per_a = jax.vmap(_log_gammainc_lower, in_axes=(0, None))
  lg = jax.vmap(lambda xi: per_a(df / 2 + j, xi))(xv.reshape(-1))                                   # [N, terms]
  out = jax.nn.logsumexp(logpois[None, :] + lg, axis=1).reshape(v.shape)
  return jnp.where(v <= 0, -jnp.inf, out)


def inductive_bias_bits(losses, target_error, *, method: Literal["ncx2", "empirical"] = "ncx2",
                        fit: Literal["mle", "moments"] = "mle", unit: Unit = "bits"):
  """Inductive bias -log P_{h ~ p_h}(e(h) <= eps) needed to reach test error eps within a hypothesis class.

  Boopathy, Yue, Hwang, Iyer & Fiete, "Towards Exact Computation of Inductive Bias", IJCAI 2024, arXiv:2406.15941
  (Sec. 3, the required inductive bias relative to p_h): `losses` are the test errors of hypotheses sampled from the
  class. "ncx2" (the paper's estimator) fits a scaled non-central chi-squared to them (`fit_scaled_ncx2`, by maximum
  likelihood or moments) and evaluates its log-CDF at eps, which reaches far below 1 / m; "empirical" is -log of the
  fraction of samples with e <= eps (exact for an enumerated finite class; +inf when no sample reaches eps).

  Args:
    losses: [m] float test errors of m >= 3 sampled hypotheses.
    target_error: eps > 0, the target test error.
    method: "ncx2" (default) or "empirical".
    fit: the "ncx2" fit, "mle" (default, the paper's) or "moments" (see `fit_scaled_ncx2`).
    unit: "bits" (default) or "nats".

  Returns:
    scalar float: the inductive bias (>= 0; +inf possible with "empirical").
  """
  scale_unit = information._check_unit(unit)
  e = validation.check_floating(losses, "losses")
  if e.ndim != 1 or e.shape[0] < 3:
    raise ValueError(f"losses must be [m] with m >= 3 sampled hypotheses, got losses.shape={e.shape}")
  if validation.is_concrete_number(target_error) and not float(target_error) > 0:
    raise ValueError(f"target_error must be > 0, got {target_error=}")
  if method == "empirical":
    frac = jnp.mean((e <= target_error).astype(validation.compute_dtype_for(e.dtype)))
    return -jnp.log(frac) * scale_unit
  if method != "ncx2":
    raise ValueError(f"method must be 'ncx2' or 'empirical', got {method=}")
  df, nc, s = fit_scaled_ncx2(e, method=fit)
  return -scaled_ncx2_logcdf(jnp.asarray(target_error, df.dtype), df, nc, s) * scale_unit


# ---- [36] V-information feature complexity ----------------------------------------------------------------------


def linear_v_information(acts, feature, *, ridge: float = 1e-6, n_fit: Optional[int] = None):
  """Normalised predictive V-information I_V(A -> z) / H_V(z) of a scalar feature z from activations A, V = linear.

  Xu, Zhao, Song, Stewart & Ermon, "A Theory of Usable Information under Computational Constraints", ICLR 2020,
  arXiv:2002.10689 (Sec. 3: with V the affine predictors with Gaussian outputs, the V-information is the coefficient
  of determination); the per-layer term of the complexity of Fel et al. 2024 (arXiv:2407.06076,
  `v_information_complexity`). Here: a ridge-regularised least-squares probe z ~ A w + b and
  I_V / H_V = 1 - MSE / Var(z) = R^2, clipped to [0, 1] (V-information is >= 0: the probe may ignore A).

  Args:
    acts: [n, d] float activations (one row per input).
    feature: [n] float values of the feature z on the same inputs.
    ridge: float >= 0, the ridge penalty relative to the mean squared activation (numerical safety).
    n_fit: None fits and scores on all n rows (in-sample); an int 2 <= n_fit < n fits the probe on the first n_fit
      rows and scores it on the rest (a held-out estimate, as the PAC estimates of Xu et al. use).

  Returns:
    scalar float in [0, 1].
  """
  a = _as_rows(acts, "acts")
  z = validation.check_floating(feature, "feature")
  if z.shape != (a.shape[0],):
    raise ValueError(f"feature must be [n] = [{a.shape[0]}], got feature.shape={z.shape}")
  if validation.is_concrete_number(ridge) and not float(ridge) >= 0:
    raise ValueError(f"ridge must be >= 0, got {ridge=}")
  n = a.shape[0]
  if n_fit is None:
    n_fit = n
    held = False
  else:
    n_fit = validation.check_int(n_fit, "n_fit", 2)
    if n_fit >= n:
      raise ValueError(f"n_fit must be < the number of rows ({n}), got n_fit={n_fit}")
    held = True
  dt = validation.compute_dtype_for(jnp.result_type(a.dtype, z.dtype))
  return _linear_vinfo(a.astype(dt), z.astype(dt), jnp.asarray(ridge, dt), n_fit, held)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _linear_vinfo(a, z, ridge, n_fit, held):
  af, zf = a[:n_fit], z[:n_fit]
  mu_a, mu_z = af.mean(0), zf.mean()
  ac = af - mu_a
  lam = ridge * jnp.maximum(jnp.mean(ac * ac), jnp.finfo(a.dtype).tiny) * n_fit
  w = jnp.linalg.solve(ac.T @ ac + lam * jnp.eye(a.shape[1], dtype=a.dtype), ac.T @ (zf - mu_z))
  ae, ze = (a[n_fit:], z[n_fit:]) if held else (af, zf)
  pred = (ae - mu_a) @ w + mu_z
  mse = jnp.mean((ze - pred) ** 2)
  var = jnp.mean((ze - mu_z) ** 2)             # the best constant predictor (fitted on the fit rows)
  return jnp.clip(1.0 - mse / jnp.maximum(var, jnp.finfo(a.dtype).tiny), 0.0, 1.0)


def v_information_complexity(feature, layer_acts, *, ridge: float = 1e-6, n_fit: Optional[int] = None):
  """V-information complexity of a feature: 1 - the mean over layers of its normalised linear V-information.

  Fel, Bethune, Lampinen, Serre & Hermann, "Understanding Visual Feature Reliance through the Lens of Complexity",
  NeurIPS 2024, arXiv:2407.06076 (Sec. 2, the complexity metric): a feature z is simple when it is linearly decodable
  (high V-information, V = linear probes) already from early layers, complex when it only becomes decodable late.
  K(z) = 1 - (1/L) sum_l I_V(f_l(x) -> z) / H_V(z) with `linear_v_information` as the normalised term (our reading
  of the normalisation; the paper's exact constants were not retrievable here). K is in [0, 1]: 0 when every layer
  decodes z perfectly, 1 when none does.

  Args:
    feature: [n] float values of the feature on n inputs.
    layer_acts: a non-empty sequence of L arrays [n, d_l], the activations of the L layers on the same inputs.
    ridge: the probes' relative ridge penalty (>= 0).
    n_fit: None (in-sample probes) or the number of leading rows the probes are fitted on (the rest score them).

  Returns:
    scalar float K in [0, 1].
  """
  if isinstance(layer_acts, (jax.Array, np.ndarray)) or not isinstance(layer_acts, (list, tuple)) or not layer_acts:
    raise TypeError(f"layer_acts must be a non-empty list or tuple of [n, d_l] arrays, got {type(layer_acts)}")
  terms = [linear_v_information(a, feature, ridge=ridge, n_fit=n_fit) for a in layer_acts]
  return 1.0 - jnp.mean(jnp.stack(terms))
