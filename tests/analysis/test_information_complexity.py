"""Tests of jaxlib_methods/analysis/information_complexity.py against independent references: float64 NumPy / SciPy
transcriptions (plug-in entropies from np.unique counts, a cKDTree KSG, scipy.stats.ncx2), closed forms (Gaussian MI,
the scaled non-central chi-squared law of random linear hypotheses) and exact enumeration of a finite class; the
estimators are shown to converge to the known answer (error decreasing with the sample size)."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from scipy.spatial import cKDTree
from scipy.special import digamma

from jaxlib_methods import analysis
from jaxlib_methods.analysis import information_complexity as ic


def _h(*cols):
  """float64 plug-in entropy (nats) of the tuples of integer columns."""
  _, counts = np.unique(np.stack(cols, 1), axis=0, return_counts=True)
  p = counts / counts.sum()
  return float(-(p * np.log(p)).sum())


def _planted_cond_mi(ns, with_x=False):
  # planted code: X uniform on 16 inputs, Y = bit 0, Z = bits 1-2 (independent of Y) -> I(X;Z|Y) = H(Z|Y) = 2 bits.
  errs = []
  for n in ns:
    rng = np.random.default_rng(n)
    x = rng.integers(0, 16, n)
    y, z = x % 2, ((x // 2) % 4).astype(np.float32)
    est = float(jax.jit(lambda z, y: ic.cond_mi_x_z_given_y(z, y, n_bins=4))(z, y))   # bits; jitted: one compile
    ref = (_h(z.astype(int), y) - _h(y)) / math.log(2)                  # float64 plug-in H(Z|Y)
    assert est == pytest.approx(ref, abs=1e-5)
    errs.append(abs(est - 2.0))
    if with_x:
      with_x_est = float(ic.cond_mi_x_z_given_y(z, y, x=x, n_bins=4))  # deterministic Z: H(X,Z,Y) = H(X,Y)
      assert with_x_est == pytest.approx(est, abs=1e-5)
  return errs


@pytest.mark.slow
def test_cond_mi_x_z_given_y_converges_to_the_planted_answer():
  errs = _planted_cond_mi((40, 320, 2560), with_x=True)
  assert errs[0] > errs[1] > errs[2] and errs[2] < 0.01, errs


def test_cond_mi_x_z_given_y_known_answer_reference_and_jit():
  assert _planted_cond_mi((2560,))[0] < 0.01
  # a stochastic layer (x given, Z = f(X) + noise): the general formula under jit vs float64 NumPy
  rng = np.random.default_rng(0)
  x = np.repeat(np.arange(8), 30)
  y = x % 2
  z = np.stack([x / 8.0 + 0.2 * rng.normal(size=x.size), rng.normal(size=x.size)], 1).astype(np.float32)
  lo, hi = z.min(), z.max()
  codes = np.clip(np.floor((z - lo) / ((hi - lo) / 5)), 0, 4).astype(int)      # 5 equal-width bins, NumPy
  ref = _h(codes[:, 0], codes[:, 1], y) + _h(x, y) - _h(x, codes[:, 0], codes[:, 1], y) - _h(y)
  jitted = jax.jit(lambda zz: ic.cond_mi_x_z_given_y(zz, y, x=x, n_bins=5, unit="nats"))(z)
  assert float(jitted) == pytest.approx(ref, abs=1e-5)
  # the bound's closed form, vectorised and monotone in I
  i = jnp.asarray([0.0, 1.0, 4.0])
  b = jax.jit(lambda i: ic.ib_generalization_bound(i, 100, k=2.0, g1=0.5, g2=0.1))(i)
  np.testing.assert_allclose(b, 2 * np.sqrt((np.asarray(i) * np.log(2) + 0.1) / 100) + 0.05, rtol=1e-6)
  with pytest.raises(ValueError, match="cond_mi_bits"):
    ic.ib_generalization_bound(jnp.asarray(-1.0), 10)


def _ksg_ref(x, y, k):
  """float64 KSG estimator 1 with cKDTree (Kraskov et al. 2004, Eq. 8)."""
  n = len(x)
  eps = cKDTree(np.c_[x, y]).query(np.c_[x, y], k + 1, p=np.inf)[0][:, -1]
  tx, ty = cKDTree(x), cKDTree(y)
  nx = np.array([len(tx.query_ball_point(x[i], np.nextafter(eps[i], 0), p=np.inf)) - 1 for i in range(n)])
  ny = np.array([len(ty.query_ball_point(y[i], np.nextafter(eps[i], 0), p=np.inf)) - 1 for i in range(n)])
  return digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1))


def _gauss_pair(rng, n, rho, junk=0, scale=3.0):
  """Y depends on X only through a latent pair (a, b) with correlation rho; `junk` independent N(0, 1) dims are
  appended and the result rotated: I(X; Y) = -1/2 ln(1 - rho^2) exactly (an invertible map of (a, junk))."""
  a = rng.normal(size=n)
  b = rho * a + math.sqrt(1 - rho ** 2) * rng.normal(size=n)
  qx = np.linalg.qr(rng.normal(size=(junk + 1, junk + 1)))[0]
  qy = np.linalg.qr(rng.normal(size=(junk + 1, junk + 1)))[0]
  x = np.c_[scale * a, rng.normal(size=(n, junk))] @ qx
  y = np.c_[scale * b, rng.normal(size=(n, junk))] @ qy
  return x, y


@pytest.mark.slow
def test_ksg_converges_to_the_gaussian_closed_form():
  rho = 0.8
  true = -0.5 * math.log(1 - rho ** 2)
  # mean absolute error over 3 seeds falls with n
  mae = []
  for n in (100, 400, 1600):
    e = [abs(float(ic.ksg_mutual_information(*_gauss_pair(np.random.default_rng([s, n]), n, rho))) - true)
         for s in range(3)]
    mae.append(np.mean(e))
  assert mae[0] > mae[2] and mae[2] < 0.05, mae


def test_ksg_reference_and_compression():
  rho = 0.8
  true = -0.5 * math.log(1 - rho ** 2)
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    x, y = _gauss_pair(rng, 300, rho, junk=1)
    assert float(ic.ksg_mutual_information(x, y, k=3)) == pytest.approx(_ksg_ref(x, y, 3), abs=1e-10)
  # [39]: 16-dim X, Y (1 informative + 15 junk dims each). Direct KSG is biased; the encoder that keeps the
  # informative direction (top principal component, what a linear autoencoder learns) recovers the MI; one that
  # keeps a junk direction loses it (data processing).
  rng = np.random.default_rng(1)
  x, y = _gauss_pair(rng, 800, rho, junk=15)
  pc = lambda v: v @ np.linalg.svd(v - v.mean(0), full_matrices=False)[2][:1].T
  last = lambda v: v @ np.linalg.svd(v - v.mean(0), full_matrices=False)[2][-1:].T
  direct = float(ic.compressed_mutual_information(x, y))
  comp = float(ic.compressed_mutual_information(x, y, encoder_x=pc, encoder_y=pc))
  lost = float(ic.compressed_mutual_information(x, y, encoder_x=last, encoder_y=last))
  assert abs(comp - true) < 0.1, (comp, true)
  assert true - direct > 3 * abs(comp - true), (direct, comp, true)
  assert abs(lost) < 0.1
  with pytest.raises(TypeError, match="encoder_x"):
    ic.compressed_mutual_information(x, y, encoder_x=3)


def test_inductive_bias_ncx2_reference_and_enumeration():
  with jax.enable_x64(True):
    # log-CDF vs scipy (far tail included) and the moment fit on a large scipy sample
    for v, d, nc, s in ((0.05, 5.0, 3.0, 0.7), (1.0, 5.0, 3.0, 0.7), (0.001, 50.0, 10.0, 1.0), (2.0, 4.0, 0.0, 1.0)):
      assert float(ic.scaled_ncx2_logcdf(v, d, nc, s)) == pytest.approx(st.ncx2.logcdf(v, d, nc, scale=s)
                                                                        if nc > 0 else st.chi2.logcdf(v, d), rel=1e-9)
  # a finite class by enumeration: all 2^10 sign vectors h in {-1, 1}^10 against the target all-ones, loss =
  # the fraction of wrong signs; bits of eps = 0.2 = -log2(#{h: <= 2 wrong} / 2^10), exactly
  hs = np.array(list(itertools.product([-1, 1], repeat=10)))
  loss = (hs < 0).mean(1).astype(np.float32)
  exact_bits = -math.log2(sum(math.comb(10, j) for j in range(3)) / 2 ** 10)
  jitted = jax.jit(lambda l: ic.inductive_bias_bits(l, 0.2, method="empirical"))(loss)
  assert float(jitted) == pytest.approx(exact_bits, rel=1e-6)
  with pytest.raises(ValueError, match="method"):
    ic.inductive_bias_bits(loss, 0.2, method="mle")


@pytest.mark.slow
def test_inductive_bias_mle_fit_equals_scipy_and_converges():
  with jax.enable_x64(True):
    # the maximum-likelihood fit (the paper's; ~3 s of compile: slow) equals scipy's ncx2.fit(floc=0)
    e = st.ncx2.rvs(5.0, 3.0, scale=0.7, size=1000, random_state=2)
    ref = st.ncx2.fit(e, floc=0)
    np.testing.assert_allclose(np.asarray(ic.fit_scaled_ncx2(e)), [ref[0], ref[1], ref[3]], rtol=1e-3)
    # the moment fit recovers the parameters of a large scipy sample
    e = st.ncx2.rvs(5.0, 3.0, scale=0.7, size=200_000, random_state=1)
    d, nc, s = ic.fit_scaled_ncx2(e, method="moments")
    assert float(d) == pytest.approx(5.0, rel=0.05) and float(nc) == pytest.approx(3.0, rel=0.1)
    assert float(s) == pytest.approx(0.7, rel=0.03)
    # random linear hypotheses w ~ N(0, I_d) on an orthonormal design, noiseless target w*: the test MSE is
    # ||w - w*||^2 ~ ncx2(d, ||w*||^2) exactly. Estimated bits converge to the exact value as the number of sampled
    # hypotheses m grows (mean abs error over 4 seeds), and rise with the input dimension.
    exact = {}
    for d in (4, 8, 16):
      w_star = np.full(d, 1.0 / math.sqrt(d))                   # ||w*|| = 1
      exact[d] = -st.ncx2.logcdf(0.5 * d, d, 1.0) / math.log(2)
      errs = []
      for m in (30, 300, 3000):
        est = []
        for seed in range(4):
          w = np.random.default_rng([d, m, seed]).normal(size=(m, d))
          est.append(float(ic.inductive_bias_bits(((w - w_star) ** 2).sum(1), 0.5 * d)))
        errs.append(np.mean(np.abs(np.array(est) - exact[d])))
      assert errs[2] < errs[0] and errs[2] < 0.05 * exact[d] + 0.05, (d, errs, exact[d])
    assert exact[4] < exact[8] < exact[16]


def _layers_with_planted_features(n, seed):
  """Four 9-unit 'layers' of a fixed network: the inputs x in {-1, 1}^3 and 5 noise units at every layer; the XOR
  feature x2 * x3 is a unit only of layers 3-4 (layers 1-2 have a dead unit instead). Known complexities:
  K(x1) = 0, K(x2 x3) = 1 - 2/4 = 0.5."""
  rng = np.random.default_rng(seed)
  x = rng.choice([-1.0, 1.0], size=(n, 3))
  noise = rng.normal(size=(n, 5))
  xor = x[:, 1] * x[:, 2]
  dead = np.zeros((n, 1))
  layers = [np.c_[x, noise, dead], np.c_[np.c_[x, noise] @ rng.normal(size=(8, 8)), dead], np.c_[x, xor, noise],
            np.c_[x, xor, noise]]
  return x[:, 0].astype(np.float32), xor.astype(np.float32), [v.astype(np.float32) for v in layers]


@pytest.mark.slow
def test_v_information_complexity_in_sample_converges():
  # in-sample estimates are biased low for XOR (spurious R^2 ~ d / n of the layers without it); the error falls with n
  errs = []
  for n in (100, 1600):
    _, xor_n, layers_n = _layers_with_planted_features(n, 1)
    errs.append(abs(float(ic.v_information_complexity(xor_n, layers_n)) - 0.5))
  assert errs[1] < errs[0] and errs[1] < 0.02, errs


def test_v_information_complexity_known_answer_reference_and_jit():
  lin, xor, layers = _layers_with_planted_features(400, 0)
  # held-out probes (under jit): exact planted answers (a perfect probe or none)
  k = jax.jit(lambda z, ls: ic.v_information_complexity(z, ls, n_fit=200))
  assert float(k(lin, layers)) == pytest.approx(0.0, abs=1e-4)
  assert float(k(xor, layers)) == pytest.approx(0.5, abs=0.02)
  # the per-layer term vs float64 NumPy least squares (R^2 of the in-sample probe)
  a = layers[1].astype(np.float64)[:, :8]
  z = (xor + 0.5 * lin).astype(np.float64)
  ac = np.c_[a, np.ones(len(a))]
  res = z - ac @ np.linalg.lstsq(ac, z, rcond=None)[0]
  r2 = 1 - np.mean(res ** 2) / np.var(z)
  assert float(ic.linear_v_information(layers[1], (xor + 0.5 * lin).astype(np.float32))) == pytest.approx(r2, abs=1e-4)
  with pytest.raises(TypeError, match="layer_acts"):
    ic.v_information_complexity(lin, layers[0])
