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
