"""[38] [63] mutual-information estimators vs closed forms and known answers: entropy of the rows equals a NumPy
count; a deterministic invertible binned code of a uniform discrete X has I(X;T) = H(X) = ln K exactly; independent
variables give a plug-in MI under the chi-square bound (failure probability <= 2e-3 over the two sizes, fixed
seed); adaptive bins hold equal numbers of distinct values; the KDE bounds of a Gaussian input reach their closed-form
population limits and bracket the Gaussian channel's I = 1/2 ln(1 + s^2/sigma^2)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import chi2

from jaxlib_methods.analysis import (
    adaptive_bins,
    binned_mutual_information,
    discrete_entropy,
    discrete_mutual_information,
    kde_mutual_information,
    uniform_bins,
)


def test_binned_estimators_exact_cases():
  rng = np.random.default_rng(0)
  # Entropy of rows vs a NumPy count.
  s = rng.integers(0, 3, size=(500, 3))
  _, counts = np.unique(s, axis=0, return_counts=True)
  p = counts / 500
  ent = jax.jit(discrete_entropy, static_argnames="unit")
  np.testing.assert_allclose(ent(jnp.asarray(s)), -np.sum(p * np.log(p)), rtol=1e-5)
  np.testing.assert_allclose(ent(jnp.asarray(s), unit="bits"), -np.sum(p * np.log2(p)), rtol=1e-5)
  # X uniform over K = 64 patterns (each twice); T = its 6 bits mapped to +-0.9: 30 bins over [-1, 1] separate them,
  # so I(X;T) = H(X) = ln 64 and, for y = parity (a function of X), I(T;Y) = H(Y) = ln 2.
  x = np.tile(np.arange(64), 2)
  bits = (x[:, None] >> np.arange(6)) & 1
  t = jnp.asarray(np.where(bits == 1, 0.9, -0.9), jnp.float32)
  y = jnp.asarray(bits.sum(1) % 2)
  mi = jax.jit(binned_mutual_information, static_argnames=("n_bins", "binning", "per_neuron", "unit"))
  ixt, ity = mi(t, jnp.asarray(x), y, n_bins=30, lower=-1.0, upper=1.0)
  np.testing.assert_allclose([ixt, ity], [math.log(64), math.log(2)], rtol=1e-5)
  ixt_a, ity_a = mi(t, jnp.asarray(x), y, n_bins=30, binning="adaptive")
  np.testing.assert_allclose([ixt_a, ity_a], [math.log(64), math.log(2)], rtol=1e-5)
  # Adaptive bins: 100 distinct values (each repeated, plus a mass of zeros as from a ReLU) into 10 bins -> 10
  # distinct values per bin, whatever their multiplicities.
  vals = np.concatenate([np.zeros(300), np.repeat(np.arange(1, 100) ** 2 / 10.0, 3)]).astype(np.float32)
  codes = np.asarray(jax.jit(adaptive_bins, static_argnums=1)(vals, 10))[:, 0]
  for b in range(10):
    assert np.unique(vals[codes == b]).size == 10


@pytest.mark.slow
def test_binned_estimators_more_cases():
  """Per-neuron edges, NumPy digitize, distinct inputs (x=None) and the chi-square bound for independent variables."""
  rng = np.random.default_rng(2)
  x = np.tile(np.arange(64), 2)
  bits = (x[:, None] >> np.arange(6)) & 1
  t = jnp.asarray(np.where(bits == 1, 0.9, -0.9), jnp.float32)
  y = jnp.asarray(bits.sum(1) % 2)
  mi = binned_mutual_information
  ixt_d, _ = binned_mutual_information(t[:64], None, y[:64], n_bins=30, lower=-1.0, upper=1.0)   # distinct rows
  np.testing.assert_allclose(ixt_d, math.log(64), rtol=1e-5)
  # A constant layer carries nothing.
  np.testing.assert_allclose(mi(jnp.zeros((128, 3)), jnp.asarray(x), y, n_bins=30), [0.0, 0.0], atol=1e-6)
  # Uniform bins: NumPy digitize transcription.
  v = rng.uniform(-1, 1, size=(40, 4)).astype(np.float32)
  np.testing.assert_array_equal(uniform_bins(v, 30, lower=-1.0, upper=1.0),
                                np.clip(np.digitize(v, np.linspace(-1, 1, 31)) - 1, 0, 29))
  vals = np.concatenate([np.zeros(300), np.repeat(np.arange(1, 100) ** 2 / 10.0, 3)]).astype(np.float32)
  codes = np.asarray(adaptive_bins(vals, 10))[:, 0]
  # Per-neuron edges: each column scaled differently gets the same codes.
  cols = np.stack([vals, 50.0 * vals + 3.0], 1)
  pn = np.asarray(adaptive_bins(cols, 10, per_neuron=True))
  np.testing.assert_array_equal(pn[:, 0], codes)
  np.testing.assert_array_equal(pn[:, 1], codes)
  # Independent X, Y uniform on 4 symbols: 2 n I_plugin ~ chi2((K-1)^2) asymptotically; bound at the 0.999 quantile.
  bound = chi2.ppf(0.999, 9) / 2
  got = []
  for n in (2000, 100000):
    a, b = rng.integers(0, 4, size=n), rng.integers(0, 4, size=n)
    got.append(float(discrete_mutual_information(a, b)))
    assert -1e-6 <= got[-1] <= bound / n
  assert got[1] < bound / 20000   # error decreasing in n: at n = 1e5 below the bound of n = 2e4


def test_kde_bounds_gaussian_closed_form():
  # h ~ N(0, s^2), T = h + N(0, sigma^2): I = 1/2 ln(1 + s^2/sigma^2). As n -> inf the KL (upper) estimate tends to
  # 1/2 ln(1 + s^2/sigma^2) + s^2 / (2 (s^2 + sigma^2)); the Bhattacharyya (lower) one to
  # 1/2 ln(1 + s^2/(4 sigma^2)) + s^2 / (2 (s^2 + 4 sigma^2)) (Gaussian integrals of exp(-(h_i - h_j)^2 / c)).
  s2, var = 1.0, 0.5
  h = np.random.default_rng(1).normal(size=(3000, 1)) * math.sqrt(s2)
  kde = jax.jit(kde_mutual_information, static_argnames=("num_classes", "bound", "unit"))
  up = float(kde(jnp.asarray(h, jnp.float32), noise_variance=var))
  lo = float(kde(jnp.asarray(h, jnp.float32), noise_variance=var, bound="lower"))
  true = 0.5 * math.log(1 + s2 / var)
  assert up == pytest.approx(true + s2 / (2 * (s2 + var)), abs=0.03)
  assert lo == pytest.approx(0.5 * math.log(1 + s2 / (4 * var)) + s2 / (2 * (s2 + 4 * var)), abs=0.03)
  assert lo < true < up
  # Two far-apart clusters, labels = cluster: I(X;T) and I(T;Y) -> ln 2 (tiny noise within a cluster is < ln 2 of X).
  pts = np.concatenate([np.zeros((50, 2)), np.full((50, 2), 100.0)]).astype(np.float32)
  lab = jnp.asarray(np.repeat([0, 1], 50))
  ixt, ity = kde(jnp.asarray(pts), noise_variance=1.0, labels=lab, num_classes=2, unit="bits")
  np.testing.assert_allclose([ixt, ity], [1.0, 1.0], atol=1e-5)


def test_information_bad_inputs():
  t = jnp.zeros((8, 2))
  with pytest.raises(ValueError, match="n_bins"):
    uniform_bins(t, 1)
  with pytest.raises(TypeError, match="n_bins"):
    adaptive_bins(t, 3.0)
  with pytest.raises(TypeError, match="symbols"):
    discrete_entropy(jnp.zeros(4))
  with pytest.raises(ValueError, match="same number of rows"):
    discrete_mutual_information(jnp.zeros(4, int), jnp.zeros(5, int))
  with pytest.raises(ValueError, match="binning"):
    binned_mutual_information(t, jnp.zeros(8, int), jnp.zeros(8, int), binning="quantile")
  with pytest.raises(ValueError, match="one entry per row"):
    binned_mutual_information(t, jnp.zeros(7, int), jnp.zeros(8, int))
  with pytest.raises(ValueError, match="noise_variance"):
    kde_mutual_information(t, noise_variance=0.0)
  with pytest.raises(ValueError, match="upper must exceed lower"):
    uniform_bins(t, 4, lower=1.0, upper=-1.0)
  with pytest.raises(ValueError, match="unit"):
    discrete_entropy(jnp.zeros(4, int), unit="dits")


def _kde_reference(h, var, c=2.0):
  """The KDE bound in float64 NumPy, distances from explicit differences (no cancellation)."""
  from scipy.special import logsumexp
  h = np.asarray(h, np.float64)
  d2 = ((h[:, None, :] - h[None, :, :]) ** 2).sum(-1) / (c * var)
  return -np.mean(logsumexp(-d2, axis=1) - np.log(len(h)))


def test_kde_is_shift_invariant_far_from_the_origin():
  # Activations at 20 + 0.1 N(0, 1): ||h||^2 ~ 4e4 in float32, so ||a||^2 + ||b||^2 - 2ab lost the distances and
  # gave 8.93 nats > ln 500 = 6.21. The estimate is shift invariant: the shifted input gives the unshifted value.
  rng = np.random.default_rng(0)
  z = (0.1 * rng.standard_normal((500, 100))).astype(np.float32)
  shifted = (20.0 + z).astype(np.float32)
  got = float(kde_mutual_information(jnp.asarray(shifted), noise_variance=1e-3))
  assert got <= math.log(500) + 1e-4
  assert got == pytest.approx(float(kde_mutual_information(jnp.asarray(z), noise_variance=1e-3)), abs=1e-4)
  assert got == pytest.approx(_kde_reference(shifted, 1e-3), abs=1e-4)
  # Tightly clustered rows far out: I(X;T) ~ 0.001 nats, not the 0.16 the cancellation gave.
  near = (100.0 + 1e-3 * rng.standard_normal((200, 10))).astype(np.float32)
  lab = jnp.asarray(np.arange(200) % 2)
  ixt, ity = kde_mutual_information(jnp.asarray(near), noise_variance=1e-2, labels=lab, num_classes=2)
  assert float(ixt) == pytest.approx(_kde_reference(near, 1e-2), abs=1e-5)
  ixt0, ity0 = kde_mutual_information(jnp.asarray(near - 100.0), noise_variance=1e-2, labels=lab, num_classes=2)
  np.testing.assert_allclose([ixt, ity], [ixt0, ity0], atol=1e-5)
  # Ordinary centred data: the float64 reference (lower bound too).
  h = rng.standard_normal((300, 4)).astype(np.float32)
  assert float(kde_mutual_information(h, noise_variance=0.5, bound="lower")) == pytest.approx(
      _kde_reference(h, 0.5, 8.0), abs=1e-5)


def test_kde_invalid_labels_and_noise_variance():
  rng = np.random.default_rng(1)
  t = jnp.asarray(rng.standard_normal((100, 3)).astype(np.float32))
  kde = lambda tt, v, lab: kde_mutual_information(tt, noise_variance=v, labels=lab, num_classes=2)
  for bad in (np.repeat([0, 5], 50), np.repeat([0, -1], 50)):   # out of [0, 2): were dropped (I(T;Y) 2.22 > ln 2)
    with pytest.raises(ValueError, match="labels"):
      kde(t, 0.1, jnp.asarray(bad))
    ixt, ity = jax.jit(kde)(t, 0.1, jnp.asarray(bad))
    assert np.isfinite(float(ixt)) and np.isnan(float(ity))
  good = jnp.asarray(np.repeat([0, 1], 50))
  np.testing.assert_allclose(jax.jit(kde)(t, 0.1, good), kde(t, 0.1, good), rtol=1e-6)
  with pytest.raises(TypeError, match="labels"):
    kde(t, 0.1, jnp.zeros(100))
  for v in (-1.0, float("nan"), float("inf")):
    with pytest.raises(ValueError, match="noise_variance"):
      kde_mutual_information(t, noise_variance=v)
  # A negative noise variance under jit gave a negative "MI"; now NaN (value and gradient).
  f = jax.jit(lambda v: kde_mutual_information(t, noise_variance=v))
  assert np.isnan(float(f(-1.0))) and float(f(0.1)) > 0
  assert np.isnan(float(jax.grad(lambda v: kde_mutual_information(t, noise_variance=v))(-1.0)))


def test_binned_mi_nan_activations_and_empty_ranges():
  rng = np.random.default_rng(2)
  t = jnp.asarray(rng.standard_normal((64, 3)).astype(np.float32))
  y = jnp.asarray(np.arange(64) % 2)
  tn = t.at[0, 0].set(jnp.nan)
  for kwargs in ({}, {"lower": -1.0, "upper": 1.0}, {"binning": "adaptive"}, {"binning": "adaptive",
                                                                                "per_neuron": True}):
    assert np.isnan(binned_mutual_information(tn, None, y, n_bins=8, **kwargs)).all(), kwargs
    assert np.isnan(jax.jit(lambda a: binned_mutual_information(a, None, y, n_bins=8, **kwargs))(tn)).all(), kwargs
    assert np.isfinite(binned_mutual_information(t, None, y, n_bins=8, **kwargs)).all(), kwargs
  # An inf with a defaulted range end makes the range infinite: NaN; inside a given range it is clipped to a bin.
  ti = t.at[0, 0].set(jnp.inf)
  assert np.isnan(binned_mutual_information(ti, None, y, n_bins=8)).all()
  assert np.isfinite(binned_mutual_information(ti, None, y, n_bins=8, lower=-1.0, upper=1.0)).all()
  # One end given, the other defaulted from t, and the range empty: ValueError eagerly, NaN under jit.
  with pytest.raises(ValueError, match="lower must be below max"):
    uniform_bins(t, 4, lower=10.0)
  with pytest.raises(ValueError, match="upper must exceed min"):
    uniform_bins(t, 4, upper=-10.0)
  with pytest.raises(ValueError, match="lower must be below max"):
    binned_mutual_information(t, None, y, lower=10.0)
  f = jax.jit(lambda a, lo: binned_mutual_information(a, None, y, n_bins=8, lower=lo))
  assert np.isnan(f(t, 10.0)).all()
  np.testing.assert_allclose(f(t, -1.0), binned_mutual_information(t, None, y, n_bins=8, lower=-1.0), rtol=1e-6)
  # A constant layer with both ends defaulted is not an empty range: every value in bin 0, I = 0.
  np.testing.assert_allclose(binned_mutual_information(jnp.ones((10, 3)), None, jnp.arange(10) % 2), [0.0, 0.0],
                             atol=1e-7)
