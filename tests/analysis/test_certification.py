"""[155] Dual Randomized Smoothing (arXiv:2404.09586) and Cohen et al.'s RS certificate: checked against SciPy (the
Clopper-Pearson bound, Phi^{-1}), against half-space base classifiers whose smoothed probabilities and exact robust
radii are closed forms, and statistically (the certificate's 1 - alpha guarantee over many draws)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from jaxlib_methods.analysis import certification as C


def test_clopper_pearson_and_radii_match_scipy():
  k = np.array([0, 1, 7, 50, 93, 100])
  p = np.array([0.3, 0.5, 0.6, 0.9, 0.999], np.float32)
  p1, p2 = np.float32([0.95, 0.95, 0.2]), np.float32([0.7, 0.95, 0.6])
  s1, s2 = np.float32([0.5, 0.5, 1.0]), np.float32([0.25, 0.5, 1.0])

  @jax.jit
  def all_of_it(k, p, p1, p2, s1, s2):
    return (C.clopper_pearson_lower(k, 100, 0.001), C.smoothing_radius(p, 0.25),
            C.dual_smoothing_radius(p1, p2, s1, s2), C.smoothing_radius(jnp.float32(1.5), 1.0))

  cp, rad, dual, nan = map(np.asarray, all_of_it(k, p, p1, p2, s1, s2))
  ref = np.where(k == 0, 0.0, st.beta.ppf(0.001, np.maximum(k, 1), 100 - k + 1))
  np.testing.assert_allclose(cp, ref, rtol=2e-5, atol=1e-7)
  np.testing.assert_allclose(rad, np.where(p > 0.5, 0.25 * st.norm.ppf(p), 0), rtol=1e-5)
  a = st.norm.ppf(p1) + st.norm.ppf(p2)
  np.testing.assert_allclose(dual, np.maximum(a, 0) / np.sqrt(1 / s1 ** 2 + 1 / s2 ** 2), rtol=1e-5)
  # equal probabilities and sigmas: the authors' sqrt(R1^2 + R2^2); a1 + a2 < 0: 0
  np.testing.assert_allclose(dual[1], np.sqrt(2) * 0.5 * st.norm.ppf(0.95), rtol=1e-5)
  assert dual[2] == 0.0
  assert np.isnan(nan)                        # traced invalid values are NaN (the library's rule) ...
  with pytest.raises(ValueError, match="p_lower"):   # ... concrete ones a ValueError
    C.smoothing_radius(np.float32(1.5), 1.0)
  with pytest.raises(ValueError, match="successes"):
    C.clopper_pearson_lower(np.array([101]), 100, 0.01)
  with pytest.raises(ValueError, match="alpha"):
    C.clopper_pearson_lower(np.array([1]), 100, 1.0)


def test_dual_radius_is_tight_for_half_space_classifiers():
  """Base classifiers f_i(z) = A iff <u_i, z> < b_i: P(f_i(x_i + eps_i) = A) = Phi((b_i - <u_i, x_i>) / sigma_i) and
  an attack delta_i = t_i u_i lowers it to Phi(a_i - t_i / sigma_i). G = argmax of the summed probabilities keeps A
  iff the sum exceeds 1. Closed forms in float64 NumPy, independent of the module; 20 random problems at once."""
  rng = np.random.default_rng(0)
  p = rng.uniform(0.55, 0.999, (20, 2))
  s = rng.uniform(0.1, 1.0, (20, 2))
  a = st.norm.ppf(p)
  r = np.asarray(jax.jit(C.dual_smoothing_radius)(p[:, 0].astype(np.float32), p[:, 1].astype(np.float32),
                                                  s[:, 0].astype(np.float32), s[:, 1].astype(np.float32)), np.float64)
  lam = (a[:, 0] + a[:, 1]) / np.sum(1 / s ** 2, 1)
  t_worst = lam[:, None] / s                            # the minimum-norm point of t1/s1 + t2/s2 = a1 + a2
  np.testing.assert_allclose(np.linalg.norm(t_worst, axis=1), r, rtol=1e-5)

  def kept(t):                                          # t: [20, ..., 2] attack norms on the two sub-images
    a_, s_ = a.reshape(20, *([1] * (t.ndim - 2)), 2), s.reshape(20, *([1] * (t.ndim - 2)), 2)
    return st.norm.cdf(a_[..., 0] - t[..., 0] / s_[..., 0]) + st.norm.cdf(a_[..., 1] - t[..., 1] / s_[..., 1]) > 1

  assert not kept(t_worst * 1.001).any()                # just outside R: the worst-case attack flips G
  ang = rng.uniform(0, np.pi / 2, 2000)                 # every split of a perturbation of norm 0.999 R keeps A
  split = np.stack([np.cos(ang), np.sin(ang)], -1)
  assert kept(0.999 * r[:, None, None] * split[None]).all()
  # the authors' code radius sqrt(R1^2 + R2^2) is >= R (Cauchy-Schwarz, equal iff s1^2 a1 = s2^2 a2); where it is
  # larger, an attack inside it flips G
  r_code = np.hypot(s[:, 0] * a[:, 0], s[:, 1] * a[:, 1])
  assert (r_code >= r * (1 - 1e-5)).all()
  over = r_code > r * 1.001
  assert over.sum() >= 10 and not kept(t_worst * (r_code / r * 0.9995)[:, None])[over].any()


def test_checkerboard_split_partitions_pixels():
  x = jnp.arange(2 * 5 * 6, dtype=jnp.float32).reshape(2, 5, 6)
  x1, x2 = C.checkerboard_split(x)
  assert x1.shape == x2.shape == (2, 5, 3)
  np.testing.assert_array_equal(np.sort(np.concatenate([x1.ravel(), x2.ravel()])), np.arange(60))
  i, j = np.divmod(np.asarray(x1[0]).astype(int) % 30, 6)
  assert ((i + j) % 2 == 0).all()
  with pytest.raises(ValueError, match="even width"):
    C.checkerboard_split(jnp.zeros((4, 5)))


@pytest.mark.slow
def test_certificates_hold_statistically():
  """Over N random inputs (one noise draw each), a certificate is wrong (wrong class with R > 0, or R above the
  exact robust radius) with probability <= alpha; P(Binomial(N, alpha) > bound) < 1e-4 is the test's failure
  probability under the guarantee (fixed seed)."""
  n_inputs, alpha, d = 200, 0.1, 8
  u = np.zeros(d, np.float32)
  u[0] = 1.0
  cls = lambda z: (z.reshape(z.shape[0], -1) @ u < 0.0).astype(jnp.int32)   # class 1 iff z_0 < 0
  keys = jax.random.split(jax.random.key(3), n_inputs)
  xs = np.random.default_rng(1).normal(size=(n_inputs, d)).astype(np.float32) * 0.5
  cert = jax.jit(jax.vmap(lambda x, k: C.smoothed_certify(cls, x, k, sigma=0.5, num_classes=2, n0=20, n=200,
                                                         alpha=alpha)))
  c, r = map(np.asarray, cert(xs, keys))
  true_c, true_r = (xs[:, 0] < 0).astype(int), np.abs(xs[:, 0])
  bad = (r > 0) & ((c != true_c) | (r > true_r))
  bound = st.binom.isf(1e-4, n_inputs, alpha)
  assert bad.sum() <= bound and (r > 0).mean() > 0.5
  # DRS: two sub-images, half-spaces on each, exact radius of G = dual_smoothing_radius at the true probabilities
  x1, x2 = xs[:, :4], xs[:, 4:] + 0.3
  s1, s2 = 0.5, 0.3
  f1 = lambda z: (z[:, 0] < 0.0).astype(jnp.int32)
  f2 = lambda z: (z[:, 0] < 0.3).astype(jnp.int32)
  dcert = jax.jit(jax.vmap(lambda a, b, k: C.dual_smoothed_certify(f1, f2, a, b, k, sigma1=s1, sigma2=s2,
                                                                  num_classes=2, n0=20, n=200, alpha=alpha)))
  c, r = map(np.asarray, dcert(x1, x2, keys))
  q1, q2 = st.norm.cdf(-x1[:, 0] / s1), st.norm.cdf((0.3 - x2[:, 0]) / s2)    # P(class 1) per sub-classifier
  top = (q1 + q2 > 1).astype(int)
  pa1, pa2 = np.where(top == 1, q1, 1 - q1), np.where(top == 1, q2, 1 - q2)
  true_r = (st.norm.ppf(pa1) + st.norm.ppf(pa2)) / np.sqrt(1 / s1 ** 2 + 1 / s2 ** 2)
  bad = (r > 0) & ((c != top) | (r > true_r * (1 + 1e-5)))
  assert bad.sum() <= bound and (r > 0).mean() > 0.5
