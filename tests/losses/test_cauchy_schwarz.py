"""CS divergence / conditional CS divergence / CS-QMI vs float64 NumPy transcriptions and the Gaussian closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.losses import cauchy_schwarz as cs


def _np_gram(a, b, s):
  a = np.asarray(a, np.float64).reshape(len(a), -1)
  b = np.asarray(b, np.float64).reshape(len(b), -1)
  d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
  return np.exp(-d2 / (2 * s * s))


def _np_cs_div(x, y, s):
  return (np.log(_np_gram(x, x, s).mean()) + np.log(_np_gram(y, y, s).mean())
          - 2 * np.log(_np_gram(x, y, s).mean()))


def _np_cond_cs(x, y, yh, s, official=False):
  k = _np_gram(x, x, s)
  den = (k ** 2).sum(1) if official else k.sum(1) ** 2
  t = lambda l: np.log(((k * l).sum(1) / den).sum())
  return t(_np_gram(y, y, s)) + t(_np_gram(yh, yh, s)) - 2 * t(_np_gram(yh, y, s))


def _np_qmi(x, t, s):
  n = len(x)
  kx, kt = _np_gram(x, x, s), _np_gram(t, t, s)
  return (np.log((kx * kt).sum() / n ** 2) + np.log(kx.sum() * kt.sum() / n ** 4)
          - 2 * np.log(kx.sum(1) @ kt.sum(1) / n ** 3))


def _log_gauss_iso(delta, var):
  d = delta.shape[-1]
  return -0.5 * d * np.log(2 * np.pi * var) - 0.5 * (delta ** 2).sum() / var


def test_cs_divergence_matches_numpy_value_and_grad():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(20, 3)), rng.normal(size=(15, 3)) + 0.5
  # One program for the value and the gradient.
  got, g = jax.jit(jax.value_and_grad(lambda a: cs.cs_divergence(a, jnp.asarray(y, jnp.float32), 1.3)))(
      jnp.asarray(x, jnp.float32))
  assert float(got) == pytest.approx(_np_cs_div(x, y, 1.3), rel=1e-4)
  eps = 1e-6
  num = np.zeros_like(x)
  for idx in [(0, 0), (3, 2), (19, 1)]:
    xp, xm = x.copy(), x.copy()
    xp[idx] += eps; xm[idx] -= eps
    num[idx] = (_np_cs_div(xp, y, 1.3) - _np_cs_div(xm, y, 1.3)) / (2 * eps)
    assert float(g[idx]) == pytest.approx(num[idx], rel=1e-3, abs=1e-5)


def test_cs_divergence_properties():
  rng = np.random.default_rng(1)
  x, y = jnp.asarray(rng.normal(size=(30, 2))), jnp.asarray(rng.normal(size=(25, 2)) + 1.0)
  xx, xy, yx = jax.jit(lambda x, y: (cs.cs_divergence(x, x, 0.7), cs.cs_divergence(x, y, 0.7),  # one program
                                      cs.cs_divergence(y, x, 0.7)))(x, y)
  assert float(xx) == pytest.approx(0.0, abs=1e-6)
  assert float(xy) == pytest.approx(float(yx), rel=1e-6)
  assert float(xy) > 0


def _closed_form_two_gaussians(mu1, mu2, s1, s2, sigma):
  z = np.zeros_like(mu1)
  return (_log_gauss_iso(z, 2 * s1 ** 2 + sigma ** 2) + _log_gauss_iso(z, 2 * s2 ** 2 + sigma ** 2)
          - 2 * _log_gauss_iso(mu1 - mu2, s1 ** 2 + s2 ** 2 + sigma ** 2))


def test_cs_divergence_two_gaussians_quantile_samples_match_closed_form():
  # Deterministic 1-D 'samples' at the Gaussian quantiles (i - 1/2) / n: the estimator converges at O(1/n).
  from statistics import NormalDist
  n = 600
  u = (np.arange(n) + 0.5) / n
  q = np.array([NormalDist().inv_cdf(v) for v in u])
  mu1, mu2, s1, s2, sigma = np.array([0.3]), np.array([-1.2]), 1.0, 0.6, 0.8
  x, y = mu1 + s1 * q[:, None], mu2 + s2 * q[:, None]
  closed = _closed_form_two_gaussians(mu1, mu2, s1, s2, sigma)
  with jax.enable_x64(True):
    got = float(cs.cs_divergence(jnp.asarray(x), jnp.asarray(y), sigma))
  assert got == pytest.approx(closed, rel=5e-3)


@pytest.mark.slow
def test_cs_divergence_two_gaussians_converges_to_closed_form():
  # x ~ N(mu1, s1^2 I), y ~ N(mu2, s2^2 I). With k(u) = exp(-|u|^2 / (2 sigma^2)) proportional to N(u; 0, sigma^2 I),
  # E k(X - X') is proportional to N(0; 0, (2 s1^2 + sigma^2) I) etc. (int N(a; m1, A) N(a; m2, B) = N(m1; m2, A+B)),
  # so the estimator's limit is the closed form below (the constants cancel in the ratio).
  mu1, mu2 = np.array([0.0, 0.0]), np.array([1.5, -0.5])
  s1, s2, sigma = 1.0, 0.7, 1.0
  closed = _closed_form_two_gaussians(mu1, mu2, s1, s2, sigma)
  errs = []
  for n in (100, 4000):
    e = []
    for seed in range(4):
      rng = np.random.default_rng(seed)
      x = mu1 + s1 * rng.normal(size=(n, 2))
      y = mu2 + s2 * rng.normal(size=(n, 2))
      est = cs.cs_divergence(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), sigma)
      e.append(abs(float(est) - closed))
    errs.append(np.mean(e))
  assert errs[1] < 0.03 * closed  # measured: 0.013 at n=4000 vs 0.061 at n=100
  assert errs[1] < errs[0]


def test_cs_divergence_small_bandwidth_no_underflow():
  x = jnp.array([[0.0], [10.0]], jnp.float32)
  y = jnp.array([[5.0], [20.0]], jnp.float32)
  v = cs.cs_divergence(x, y, 0.05)  # exp(-25/0.005) underflows; the log-domain estimator stays finite.
  assert np.isfinite(float(v)) and float(v) > 100
  xb = x.astype(jnp.bfloat16)
  assert np.isfinite(float(cs.cs_divergence(xb, xb + 1, 0.5)))


def test_conditional_cs_matches_numpy_and_zero_when_equal():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(25, 3))
  y = np.sin(x[:, :1]) + 0.1 * rng.normal(size=(25, 1))
  yh = y + 0.3 * rng.normal(size=(25, 1))
  @jax.jit  # one program for every value below
  def run(x, y, yh):
    return ([cs.conditional_cs_divergence(x, y, yh, 1.0, official_code_denominator=official)
             for official in (False, True)], cs.conditional_cs_divergence(x, y, y, 1.0),
            cs.conditional_cs_divergence(x, y, yh, 1.0))

  gots, same, default = run(jnp.asarray(x), jnp.asarray(y), jnp.asarray(yh))
  for official, got in zip((False, True), gots):
    assert float(got) == pytest.approx(_np_cond_cs(x, y, yh, 1.0, official), rel=1e-4)
  assert float(same) == pytest.approx(0.0, abs=1e-5)
  assert float(default) > 0


def test_cs_qmi_matches_numpy_nonnegative_and_small_for_independent():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(40, 2))
  t_dep = np.tanh(x @ np.array([[1.0], [0.5]]))
  t_ind = rng.normal(size=(40, 1))
  qmi = jax.jit(lambda x, t: cs.cs_qmi(x, t, 1.0))                  # one program for both T's (same shapes)
  q_dep = float(qmi(jnp.asarray(x), jnp.asarray(t_dep)))
  assert q_dep == pytest.approx(_np_qmi(x, t_dep, 1.0), rel=1e-4)
  q_ind = float(qmi(jnp.asarray(x), jnp.asarray(t_ind)))
  assert q_ind >= -1e-6 and q_dep > 2 * q_ind
  g = jax.jit(jax.grad(lambda t: cs.cs_qmi(jnp.asarray(x, jnp.float32), t, 1.0)))(jnp.asarray(t_dep, jnp.float32))
  assert np.all(np.isfinite(np.asarray(g)))


def test_cs_ib_loss_is_sum_of_terms():
  rng = np.random.default_rng(4)
  x, t = rng.normal(size=(16, 3)), rng.normal(size=(16, 2))
  y, yh = rng.normal(size=(16, 1)), rng.normal(size=(16, 1))
  got = jax.jit(lambda x, t, y, yh: cs.cs_ib_loss(x, t, y, yh, beta=0.1, sigma_x=1.0))(
      jnp.asarray(x), jnp.asarray(t), jnp.asarray(y), jnp.asarray(yh))
  assert float(got) == pytest.approx(_np_cond_cs(x, y, yh, 1.0) + 0.1 * _np_qmi(x, t, 1.0), rel=1e-4)


def test_bad_inputs_raise():
  x = jnp.zeros((4, 2))
  with pytest.raises(ValueError, match="sigma"):
    cs.cs_divergence(x, x, 0.0)
  with pytest.raises(ValueError, match="feature dim"):
    cs.cs_divergence(x, jnp.zeros((4, 3)), 1.0)
  with pytest.raises(ValueError, match="paired"):
    cs.conditional_cs_divergence(x, jnp.zeros((3, 1)), jnp.zeros((3, 1)), 1.0)
  with pytest.raises(ValueError, match="paired"):
    cs.cs_qmi(x, jnp.zeros((5, 1)), 1.0)
  with pytest.raises(ValueError, match="beta"):
    cs.cs_ib_loss(x, x, x[:, :1], x[:, :1], beta=-1.0, sigma_x=1.0)
  with pytest.raises(TypeError, match="x must be a floating"):
    cs.cs_divergence(jnp.zeros((4, 2), jnp.int32), jnp.zeros((4, 2), jnp.int32), 1.0)
  with pytest.raises(ValueError, match=r"\[n\]"):
    cs.cs_divergence(jnp.zeros((2, 2, 2)), jnp.zeros((2, 2, 2)), 1.0)
