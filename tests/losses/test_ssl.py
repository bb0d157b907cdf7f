"""Barlow Twins / Mixed BT / EY (CCA, PLS, SSL) / MLC vs NumPy transcriptions and numpy.linalg closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.losses import ssl


def _np_std(z, ddof, eps=0.0):
  z = np.asarray(z, np.float64)
  return (z - z.mean(0)) / np.sqrt(z.var(0, ddof=ddof) + eps)


# ------------------------------------------------------------------------------------------------ Barlow Twins

def test_barlow_twins_matches_numpy_and_zero_at_identity():
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(16, 5)), rng.normal(size=(16, 5))
  c = _np_std(z1, 0, 1e-5).T @ _np_std(z2, 0, 1e-5) / 16
  ref = ((1 - np.diag(c)) ** 2).sum() + 0.0051 * ((c ** 2).sum() - (np.diag(c) ** 2).sum())
  assert float(jax.jit(ssl.barlow_twins_loss)(jnp.asarray(z1), jnp.asarray(z2))) == pytest.approx(ref, rel=1e-5)
  # Orthogonal, standardised columns in both views: C = I exactly.
  h = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
  assert float(jax.jit(lambda h: ssl.barlow_twins_loss(h, h, eps=0.0))(jnp.asarray(h))) == pytest.approx(0.0, abs=1e-6)
  g = jax.jit(jax.grad(lambda a: ssl.barlow_twins_loss(a, jnp.asarray(z2, jnp.float32))))(jnp.asarray(z1, jnp.float32))
  assert np.all(np.isfinite(np.asarray(g)))


def _np_mix_reg(z1, z2, zm, perm, alpha, lambd, scale):  # transcription of mix-bt main.py
  n = len(z1)
  o1, o2, om = _np_std(z1, 1), _np_std(z2, 1), _np_std(zm, 1)
  cc_m_1 = om.T @ o1 / n
  cc_m_1_gt = alpha * o1.T @ o1 / n + (1 - alpha) * o2[perm].T @ o1 / n
  cc_m_2 = om.T @ o2 / n
  cc_m_2_gt = alpha * o1.T @ o2 / n + (1 - alpha) * o2[perm].T @ o2 / n
  return scale * lambd * (((cc_m_1 - cc_m_1_gt) ** 2).sum() + ((cc_m_2 - cc_m_2_gt) ** 2).sum())


def test_mixed_barlow_twins_regularizer_matches_official_and_exact_zeros():
  rng = np.random.default_rng(1)
  n, d = 12, 4
  z1, z2, zm = rng.normal(size=(n, d)), rng.normal(size=(n, d)), rng.normal(size=(n, d))
  perm = rng.permutation(n)
  z1j, z2j, zmj, pj = jnp.asarray(z1), jnp.asarray(z2), jnp.asarray(zm), jnp.asarray(perm)

  @jax.jit  # one program for the three values
  def run(z1j, z2j, zmj, pj):
    kw = dict(lambd=0.25)
    return (ssl.mixed_barlow_twins_regularizer(z1j, z2j, zmj, pj, 0.3, lambd=1 / d, mixup_loss_scale=4.0),
            ssl.mixed_barlow_twins_regularizer(z1j, z2j, z1j, pj, 1.0, **kw),
            ssl.mixed_barlow_twins_regularizer(z1j, z2j, z2j[pj], pj, 0.0, **kw))

  got, zero1, zero0 = run(z1j, z2j, zmj, pj)
  assert float(got) == pytest.approx(_np_mix_reg(z1, z2, zm, perm, 0.3, 1 / d, 4.0), rel=1e-5)
  assert float(zero1) == pytest.approx(0.0, abs=1e-10)
  assert float(zero0) == pytest.approx(0.0, abs=1e-10)


# ------------------------------------------------------------------------------------------------ EY

def _np_gep(a, b):
  """Generalised eigenpairs of A v = lambda B v via numpy.linalg (Cholesky whitening), descending."""
  l = np.linalg.cholesky(b)
  li = np.linalg.inv(l)
  lam, w = np.linalg.eigh(li @ a @ li.T)
  order = np.argsort(lam)[::-1]
  return lam[order], li.T @ w[:, order]  # V^T B V = I


def _random_gep(seed, p=6):
  rng = np.random.default_rng(seed)
  m = rng.normal(size=(p, p))
  a = (m + m.T) / 2
  r = rng.normal(size=(p, p))
  b = r @ r.T / p + 0.5 * np.eye(p)
  return a, b


def test_ey_gep_minimum_is_minus_sum_of_top_k_squared_eigenvalues():
  a, b = _random_gep(2)
  k = 2
  lam, v = _np_gep(a, b)
  assert lam[k - 1] > 0
  u_star = v[:, :k] * np.sqrt(lam[:k])
  with jax.enable_x64(True):
    val, g = jax.jit(jax.value_and_grad(lambda u: ssl.ey_gep_loss(jnp.asarray(a), jnp.asarray(b), u)))(
        jnp.asarray(u_star))
  assert float(val) == pytest.approx(-(lam[:k] ** 2).sum(), rel=1e-10)
  np.testing.assert_allclose(np.asarray(g), 0.0, atol=1e-10)
  # Gradient descent from a random start reaches the same minimum (the landscape has no spurious local minima).
  rng = np.random.default_rng(3)
  aj, bj = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  step = jax.jit(lambda u: u - 0.01 * jax.grad(lambda w: ssl.ey_gep_loss(aj, bj, w))(u))
  u = jnp.asarray(0.1 * rng.normal(size=(6, k)), jnp.float32)
  for _ in range(3000):
    u = step(u)
  assert float(jax.jit(lambda u: ssl.ey_gep_loss(aj, bj, u))(u)) == pytest.approx(-(lam[:k] ** 2).sum(), rel=1e-4)


def _two_view_data(seed, n=200, p=5, q=4):
  rng = np.random.default_rng(seed)
  latent = rng.normal(size=(n, 2))
  x = latent @ rng.normal(size=(2, p)) + 0.8 * rng.normal(size=(n, p))
  y = latent @ rng.normal(size=(2, q)) + 0.8 * rng.normal(size=(n, q))
  return x, y


def _np_cov(x, y):
  return (x - x.mean(0)).T @ (y - y.mean(0)) / (len(x) - 1)


def test_cca_ey_minimum_equals_canonical_correlations_from_numpy():
  x, y = _two_view_data(4)
  p, q, k = x.shape[1], y.shape[1], 2
  sxx, syy, sxy = _np_cov(x, x), _np_cov(y, y), _np_cov(x, y)
  a = np.block([[np.zeros((p, p)), sxy], [sxy.T, np.zeros((q, q))]])
  b = np.block([[sxx, np.zeros((p, q))], [np.zeros((q, p)), syy]])
  lam, v = _np_gep(a, b)
  # Canonical correlations from the SVD of Sxx^{-1/2} Sxy Syy^{-1/2}: the same numbers.
  isq = lambda s: np.linalg.inv(np.linalg.cholesky(s))
  rho = np.linalg.svd(isq(sxx) @ sxy @ isq(syy).T, compute_uv=False)
  np.testing.assert_allclose(lam[:k], rho[:k], rtol=1e-10)
  u = v[:, :k] * np.sqrt(lam[:k])
  with jax.enable_x64(True):
    val = jax.jit(ssl.cca_ey_loss)(jnp.asarray(x @ u[:p]), jnp.asarray(y @ u[p:]))
  assert float(val) == pytest.approx(-(rho[:k] ** 2).sum(), rel=1e-10)


def test_cca_ey_single_batch_matches_official_ssley_and_two_batch_formula():
  rng = np.random.default_rng(5)
  x, y = rng.normal(size=(32, 3)), rng.normal(size=(32, 3))
  xc, yc = x - x.mean(0), y - y.mean(0)
  c = 2 * xc.T @ yc / 31
  v = xc.T @ xc / 31 + yc.T @ yc / 31
  official = -2 * np.trace(c) + np.trace(v @ v)
  assert float(jax.jit(ssl.ssl_ey_loss)(jnp.asarray(x), jnp.asarray(y))) == pytest.approx(official, rel=1e-5)
  x2, y2 = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
  v2 = _np_cov(x2, x2) + _np_cov(y2, y2)
  a_term = (np.trace(2 * _np_cov(x, y)) + np.trace(2 * _np_cov(x2, y2))) / 2
  ref = -2 * a_term + np.trace(v @ v2)
  got = jax.jit(ssl.cca_ey_loss)(jnp.asarray(x), jnp.asarray(y), jnp.asarray(x2), jnp.asarray(y2))
  assert float(got) == pytest.approx(ref, rel=1e-5)


def test_pls_ey_minimum_equals_top_singular_values_squared():
  x, y = _two_view_data(6)
  p, q, k = x.shape[1], y.shape[1], 2
  sxy = _np_cov(x, y)
  a = np.block([[np.zeros((p, p)), sxy], [sxy.T, np.zeros((q, q))]])
  lam, v = _np_gep(a, np.eye(p + q))
  sig = np.linalg.svd(sxy, compute_uv=False)
  np.testing.assert_allclose(lam[:k], sig[:k], rtol=1e-10)
  u = v[:, :k] * np.sqrt(lam[:k])
  with jax.enable_x64(True):
    val = jax.jit(ssl.pls_ey_loss)(jnp.asarray(x @ u[:p]), jnp.asarray(y @ u[p:]), jnp.asarray(u[:p]),
                                   jnp.asarray(u[p:]))
  assert float(val) == pytest.approx(-(sig[:k] ** 2).sum(), rel=1e-10)


# ------------------------------------------------------------------------------------------------ MLC

def test_coding_rates_match_numpy_and_special_cases():
  """MLC Eq. (4) (Ding et al. 2023): R = logdet(I + d/(n eps^2) Z^T Z), R_c = (1/n) sum_j logdet(I + d/eps^2 Z^T
  diag(Gamma_j) Z), no 1/2; `coding_rate` is MCR^2's R with the 1/2; official_code_scale halves the MLC terms."""
  rng = np.random.default_rng(7)
  n, d, eps = 10, 4, 0.5
  z = rng.normal(size=(n, d))
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  r_mlc = np.linalg.slogdet(np.eye(d) + d / (n * eps ** 2) * z.T @ z)[1]
  with jax.enable_x64(True):
    zj = jnp.asarray(z)
    g = rng.random(size=(n, n))
    gam = np.asarray(jax.jit(lambda s: ssl.doubly_stochastic(s, eta=1.0, num_iters=500))(jnp.asarray(np.log(g))))
    rc_ref = sum(np.linalg.slogdet(np.eye(d) + d / eps ** 2 * z.T @ np.diag(gam[:, j]) @ z)[1] for j in range(n)) / n

    @jax.jit  # one program for every value below
    def run(zj, gj):
      one = jnp.full((n, n), 1.0 / n, zj.dtype)
      return (ssl.coding_rate(zj, eps), ssl.mlc_compression_rate(zj, gj, eps),
              ssl.mlc_compression_rate(zj, gj, eps, official_code_scale=True), ssl.mlc_loss(zj, gj, eps),
              ssl.mlc_loss(zj, gj, eps, official_code_scale=True), ssl.mlc_compression_rate(zj, one, eps),
              ssl.mlc_loss(zj, one, eps), ssl.mlc_compression_rate(zj, jnp.eye(n, dtype=zj.dtype), eps))

    r, rc, rc_half, loss, loss_half, rc_one, loss_one, ident = run(zj, jnp.asarray(gam))
    assert float(r) == pytest.approx(0.5 * r_mlc, rel=1e-10)
    assert float(rc) == pytest.approx(rc_ref, rel=1e-10)
    assert float(rc_half) == pytest.approx(rc_ref / 2, rel=1e-10)
    assert float(loss) == pytest.approx(rc_ref - r_mlc, rel=1e-10)
    assert float(loss_half) == pytest.approx((rc_ref - r_mlc) / 2, rel=1e-10)
    assert float(rc_one) == pytest.approx(r_mlc, rel=1e-10)
    assert float(loss_one) == pytest.approx(0.0, abs=1e-12)
    assert float(ident) == pytest.approx(np.log1p(d / eps ** 2 * (z ** 2).sum(1)).sum() / n, rel=1e-10)
  with pytest.raises(TypeError, match="official_code_scale"):
    ssl.mlc_loss(jnp.asarray(z, jnp.float32), jnp.asarray(gam, jnp.float32), official_code_scale=1)


def test_doubly_stochastic_matches_numpy_sinkhorn():
  rng = np.random.default_rng(8)
  s = rng.normal(size=(7, 7))
  eta = 0.5
  k = np.exp(s / eta)
  for _ in range(300):
    k = k / k.sum(0, keepdims=True)
    k = k / k.sum(1, keepdims=True)
  k = k / k.sum(0, keepdims=True)
  got = np.asarray(jax.jit(lambda s: ssl.doubly_stochastic(s, eta=eta, num_iters=300))(jnp.asarray(s, jnp.float32)))
  np.testing.assert_allclose(got, k, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(got.sum(0), 1.0, atol=1e-5)
  np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-4)
  # Extreme scores (s / eta ~ 1e4) stay finite in the log domain.
  big = jax.jit(lambda s: ssl.doubly_stochastic(s, eta=0.1, num_iters=50))(jnp.asarray(s * 1e3, jnp.float32))
  big = np.asarray(big)
  assert np.all(np.isfinite(big))


def test_mlc_loss_gradients_finite_low_precision():
  rng = np.random.default_rng(9)
  z = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
  gam = jax.jit(lambda z: ssl.doubly_stochastic(z @ z.T, eta=0.2))(z)
  g = jax.jit(jax.grad(lambda a: ssl.mlc_loss(a / jnp.linalg.norm(a, axis=1, keepdims=True), gam)))(z)
  assert np.all(np.isfinite(np.asarray(g)))
  zb = z.astype(jnp.bfloat16)
  assert np.isfinite(float(jax.jit(ssl.barlow_twins_loss)(zb, zb)))


def test_bad_inputs_raise():
  z = jnp.zeros((4, 3))
  with pytest.raises(ValueError, match="shape and dtype"):
    ssl.barlow_twins_loss(z, jnp.zeros((4, 2)))
  with pytest.raises(ValueError, match="lambd"):
    ssl.barlow_twins_loss(z, z, lambd=-1.0)
  with pytest.raises(ValueError, match="n >= 2"):
    ssl.barlow_twins_loss(jnp.zeros((1, 3)), jnp.zeros((1, 3)))
  with pytest.raises(ValueError, match="alpha"):
    ssl.mixed_barlow_twins_regularizer(z, z, z, jnp.arange(4), 1.5, lambd=0.1)
  with pytest.raises(ValueError, match="perm"):
    ssl.mixed_barlow_twins_regularizer(z, z, z, jnp.arange(3), 0.5, lambd=0.1)
  with pytest.raises(ValueError, match=r"\[p, p\]"):
    ssl.ey_gep_loss(jnp.zeros((3, 3)), jnp.eye(3), jnp.zeros((4, 2)))
  with pytest.raises(ValueError, match="both"):
    ssl.cca_ey_loss(z, z, z, None)
  with pytest.raises(ValueError, match="ux, uy"):
    ssl.pls_ey_loss(z, z, jnp.zeros((5, 2)), jnp.zeros((5, 3)))
  with pytest.raises(ValueError, match="eps"):
    ssl.coding_rate(z, eps=0.0)
  with pytest.raises(ValueError, match="gamma"):
    ssl.mlc_compression_rate(z, jnp.eye(3))
  with pytest.raises(ValueError, match="eta"):
    ssl.doubly_stochastic(jnp.eye(3), eta=0.0)
  with pytest.raises(ValueError, match="square"):
    ssl.doubly_stochastic(jnp.zeros((3, 4)))


def test_mixed_barlow_twins_traced_alpha_out_of_range_is_nan():
  # Regression: only a concrete alpha was range-checked, so under jit (alpha drawn from Beta inside the step) an
  # alpha outside [0, 1] silently gave a finite regulariser instead of NaN.
  rng = np.random.default_rng(4)
  z1, z2, zm = (jnp.asarray(rng.normal(size=(6, 3)), jnp.float32) for _ in range(3))
  perm = jnp.array([1, 0, 3, 2, 5, 4])
  f = jax.jit(lambda a: ssl.mixed_barlow_twins_regularizer(z1, z2, zm, perm, a, lambd=0.3))
  np.testing.assert_allclose(float(f(jnp.float32(0.4))),
                             float(ssl.mixed_barlow_twins_regularizer(z1, z2, zm, perm, 0.4, lambd=0.3)), rtol=1e-6)
  assert np.isnan(float(f(jnp.float32(1.5))))
  assert np.isnan(float(jax.grad(f)(jnp.float32(-0.5))))
  with pytest.raises(ValueError, match="alpha"):
    ssl.mixed_barlow_twins_regularizer(z1, z2, zm, perm, jnp.array([0.5, 1.5]), lambd=0.3)
