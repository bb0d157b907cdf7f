"""Hutchinson / Hutch++ trace estimators vs closed forms: the trace of a known Hessian (quadratics), the exactness of
Rademacher probes on a diagonal matrix and of Hutch++ on a low-rank one, the estimator's variance
2 (||A||_F^2 - sum A_ii^2) / m (so its error shrinks as 1/sqrt(m)), jax.hessian / jax.jacfwd traces of nonlinear
functions, and the posterior-covariance trace of a Gaussian prior ([212], second-order Tweedie)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import analysis


def _sym(seed, n, rank=None):
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(n, n)))
  ev = rng.uniform(0.5, 3.0, size=n)
  if rank is not None:
    ev[rank:] = 0.0
  return (q * ev) @ q.T


def _quad_loss(a):
  a = jnp.asarray(a)
  def loss(p):  # a two-leaf pytree; Hessian = a
    x = jnp.concatenate([p["u"], p["w"].reshape(-1)])
    return 0.5 * x @ a @ x
  return loss


def test_hessian_trace_exact_cases_and_jit():
  d = np.random.default_rng(0).uniform(-1.0, 3.0, 12)
  a3, a = _sym(1, 12, rank=3), _sym(2, 12)
  rng = np.random.default_rng(3)
  mlp_p = {"w1": rng.normal(size=(3, 3)), "w2": rng.normal(size=(3, 2))}

  def mlp_loss(p):
    h = jnp.tanh(jnp.arange(1.0, 4.0) @ p["w1"])
    return jnp.sum((h @ p["w2"] - 0.5) ** 2)

  with jax.enable_x64(True):
    params = {"u": jnp.ones(4, jnp.float64), "w": jnp.ones((2, 4), jnp.float64)}
    mp = jax.tree.map(jnp.asarray, mlp_p)
    key = jax.random.key(0)

    @jax.jit
    def estimates(params, mp):
      return jnp.stack([
          # Diagonal Hessian: every Rademacher probe gives v^T A v = tr(A) exactly.
          analysis.hessian_trace(_quad_loss(np.diag(d)), params, key=key, num_probes=1),
          # Rank-3 Hessian: Hutch++ with num_probes / 3 = 3 >= rank is exact.
          analysis.hessian_trace(_quad_loss(a3), params, key=key, num_probes=9, method="hutch++"),
          # Full rank, num_probes = 3P: Q spans everything, Hutch++ is exact (HVPs 5 at a time, by lax.map).
          analysis.hessian_trace(_quad_loss(a), params, key=key, num_probes=36, method="hutch++",
                                 probe_batch_size=5),
          # A nonlinear loss, P = 15: Hutch++ at 3P probes vs the trace of jax.hessian (an independent oracle).
          analysis.hessian_trace(mlp_loss, mp, key=key, num_probes=45, method="hutch++")])

    est = np.asarray(estimates(params, mp))
    flat, unravel = jax.flatten_util.ravel_pytree(mp)
    mlp_trace = float(jnp.trace(jax.jit(jax.hessian(lambda f: mlp_loss(unravel(f))))(flat)))  # jitted: one compile
  np.testing.assert_allclose(est, [d.sum(), np.trace(a3), np.trace(a), mlp_trace], rtol=0, atol=1e-9)


def test_hutchinson_error_shrinks_with_probes_at_the_predicted_variance():
  """Over 400 independent keys, the empirical variance of the m-probe estimate matches 2 (||A||_F^2 - sum A_ii^2) / m
  for m = 4 and 64, and the estimates are unbiased. Fixed seed; the bands are > 4.5 sigma of the sample variance's
  own spread (failure probability < 1e-4 per check under a chi-square approximation)."""
  n, keys = 12, 400
  a = _sym(4, n)
  var1 = 2 * (np.sum(a ** 2) - np.sum(np.diag(a) ** 2))
  with jax.enable_x64(True):
    params = {"u": jnp.ones(4, jnp.float64), "w": jnp.ones((2, 4), jnp.float64)}
    keys_ = jax.random.split(jax.random.key(0), keys)
    est_all = jax.jit(lambda ks: [jax.vmap(lambda k: analysis.hessian_trace(_quad_loss(a), params, key=k,
                                                                            num_probes=m))(ks) for m in (4, 64)])(keys_)
    for m, est in zip((4, 64), est_all):
      est = np.asarray(est)
      ratio = est.var(ddof=1) / (var1 / m)
      assert 0.6 < ratio < 1.4, (m, ratio)
      assert abs(est.mean() - np.trace(a)) < 5 * np.sqrt(var1 / m / keys), (m, est.mean(), np.trace(a))


def test_jacobian_traces_against_jacfwd_and_gaussian_posterior():
  with jax.enable_x64(True):
    key = jax.random.key(1)
    rng = np.random.default_rng(5)
    w = jnp.asarray(rng.normal(size=(6, 6)) / 2)
    fn = lambda x: jnp.tanh(x @ w) + x ** 3          # non-symmetric Jacobian
    x = jnp.asarray(rng.normal(size=(2, 3)))
    exact = jax.jit(lambda y: jnp.trace(jax.jacfwd(lambda y: fn(y.reshape(1, 6)).reshape(-1))(y)))(x.reshape(-1))
    fn2 = lambda y: fn(y.reshape(1, 6)).reshape(2, 3)
    est = jax.jit(lambda y: analysis.jacobian_trace(fn2, y, key=key, num_probes=18, method="hutch++"))(x)
    assert float(est) == pytest.approx(float(exact), abs=1e-10)
    # [212] second-order Tweedie on a Gaussian prior z0 ~ N(0, S), z_t = z0 + sigma eps: D(z) = S (S + s^2 I)^-1 z and
    # tr Cov[z0 | z_t] = tr(S - S (S + s^2 I)^-1 S) (closed form, float64 NumPy) = s^2 tr(dD/dz).
    d, b, sigma = 8, 3, 0.7
    s_cov = _sym(6, d)
    k_mat = s_cov @ np.linalg.inv(s_cov + sigma ** 2 * np.eye(d))
    post_trace = np.trace(s_cov - k_mat @ s_cov)
    denoiser = lambda z: z @ jnp.asarray(k_mat).T
    z = jnp.asarray(rng.normal(size=(b, d)))
    m = 4000
    est = sigma ** 2 * np.asarray(jax.jit(lambda zz: analysis.hutchinson_trace_jacobian(
        denoiser, zz, key=key, num_probes=m))(z))
    sd = sigma ** 2 * np.sqrt(2 * (np.sum(k_mat ** 2) - np.sum(np.diag(k_mat) ** 2)) / m)  # k_mat is symmetric
    assert est.shape == (b,)
    np.testing.assert_array_less(np.abs(est - post_trace), 5 * sd)  # 5 sigma: failure probability ~ 1e-6 each
    # Elementwise denoiser (diagonal Jacobian): one probe is exact, per example.
    zz = jnp.asarray(rng.normal(size=(b, 2, 2)))
    one = jax.jit(lambda zz: analysis.hutchinson_trace_jacobian(jnp.sin, zz, key=key, num_probes=1))(zz)
    np.testing.assert_allclose(np.asarray(one), np.cos(np.asarray(zz)).sum(axis=(1, 2)), atol=1e-12)


@pytest.mark.parametrize("kwargs,err,name", [
    ({"num_probes": 0}, ValueError, "num_probes"),
    ({"num_probes": 2.0}, TypeError, "num_probes"),
    ({"num_probes": 4, "method": "hutch++"}, ValueError, "multiple of 3"),
    ({"method": "exact"}, ValueError, "method"),
    ({"probe_batch_size": 0}, ValueError, "probe_batch_size"),
])
def test_bad_arguments_raise(kwargs, err, name):
  with pytest.raises(err, match=name):
    analysis.hessian_trace(lambda p: jnp.sum(p ** 2), jnp.ones(3), key=jax.random.key(0), **kwargs)
  with pytest.raises(err, match=name):
    analysis.jacobian_trace(jnp.sin, jnp.ones(3), key=jax.random.key(0), **kwargs)


def test_bad_inputs_raise():
  key = jax.random.key(0)
  with pytest.raises(TypeError, match="params"):
    analysis.hessian_trace(lambda p: jnp.sum(p ** 2), jnp.ones(3, jnp.int32), key=key)
  with pytest.raises(ValueError, match="shape"):
    analysis.jacobian_trace(lambda x: x[:2], jnp.ones(3), key=key)
  with pytest.raises(ValueError, match=r"\[B, \.\.\.\]"):
    analysis.hutchinson_trace_jacobian(jnp.sin, jnp.ones(3), key=key)
  with pytest.raises(TypeError, match="z"):
    analysis.hutchinson_trace_jacobian(jnp.sin, jnp.ones((2, 3), jnp.int32), key=key)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_hutch_plus_plus(dtype):
  # Hutch++ in half precision crashed in LAPACK (no half-precision QR). Probes, QR and sums now run in float32 and
  # the estimate comes back in the input's dtype: with 3P probes it is exact up to the model's half-precision HVPs.
  a = _sym(4, 6)
  a_half = jnp.asarray(a, dtype)
  trace_half = float(np.trace(np.asarray(a_half, np.float64)))
  loss = lambda p: 0.5 * p["x"] @ (a_half @ p["x"])
  params = {"x": jnp.ones(6, dtype)}
  key = jax.random.key(0)
  for method, num_probes in (("hutch++", 18), ("hutch++", 9), ("hutchinson", 6)):
    est = analysis.hessian_trace(loss, params, key=key, num_probes=num_probes, method=method)
    assert est.dtype == dtype and np.isfinite(float(est))
    if num_probes == 18:
      assert float(est) == pytest.approx(trace_half, rel=2e-2)
  est = jax.jit(lambda p: analysis.hessian_trace(loss, p, key=key, num_probes=18, method="hutch++"))(params)
  assert float(est) == pytest.approx(trace_half, rel=2e-2)
  b = jnp.asarray(np.random.default_rng(5).normal(size=(5, 5)), dtype)
  est = analysis.jacobian_trace(lambda x: b @ x, jnp.ones(5, dtype), key=key, num_probes=15, method="hutch++")
  assert est.dtype == dtype
  assert float(est) == pytest.approx(float(np.trace(np.asarray(b, np.float64))), abs=5e-2)
  # float32 computes in float32 as before (no casts): 3P probes stay exact.
  est32 = analysis.hessian_trace(_quad_loss(a.astype(np.float32)), {"u": jnp.ones(4), "w": jnp.ones((1, 2))},
                                 key=key, num_probes=18, method="hutch++")
  assert est32.dtype == jnp.float32 and float(est32) == pytest.approx(np.trace(a), rel=1e-5)
