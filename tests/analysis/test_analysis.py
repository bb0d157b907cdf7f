"""Analysis diagnostics vs closed forms: the Hessian of a quadratic, the NTK of a linear model, hand-computed ECE,
a temperature recovered from data generated at that temperature, antipodal-point uniformity."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import analysis
from jaxlib_methods.nn.transformer import CausalSelfAttention
from flax import nnx


def _quadratic(seed=0, n=12, top=5.0):
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(n, n)))
  evals = np.concatenate([[top], rng.uniform(-2.0, 3.0, size=n - 1)])
  a = (q * evals) @ q.T
  return a, evals, q[:, 0]


@pytest.mark.parametrize("method,iters", [("power", 200), ("lanczos", 12)])
def test_top_eigenvalue_of_quadratic(method, iters):
  a, evals, v_top = _quadratic()
  a32 = jnp.asarray(a, jnp.float32)
  # Params as a pytree of two pieces; loss = 0.5 x^T A x, Hessian = A.
  def loss(p):
    x = jnp.concatenate([p["u"], p["w"].reshape(-1)])
    return 0.5 * x @ a32 @ x
  params = {"u": jnp.ones(4), "w": jnp.ones((2, 4))}
  # Jitted, as its docstring asks (un-jitted, every HVP and the setup are dispatched op by op: ~20 compiles).
  top = jax.jit(lambda p: analysis.hessian_top_eigenvalue(loss, p, key=jax.random.key(0), num_iters=iters,
                                                          method=method))
  lam, vec = top(params)
  assert float(lam) == pytest.approx(evals.max(), rel=1e-3)
  assert abs(float(np.dot(np.asarray(vec), v_top.astype(np.float32)))) == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize("p,rank,sign", [(20, 3, 1.0), (40, 5, 1.0), (6, 6, -1.0)])
def test_lanczos_top_eigenvalue_survives_krylov_breakdown(p, rank, sign):
  # A low-rank Hessian (Gauss-Newton of an over-parameterised model) or one with few distinct eigenvalues makes the
  # Krylov space invariant after `rank` steps; the rounding-noise vectors that followed used to lose orthogonality
  # and return Ritz values 40x the true lambda_max (and a spurious 0 for a negative-definite Hessian).
  rng = np.random.default_rng(p)
  if sign > 0:
    j = rng.normal(size=(rank, p))
    a = j.T @ j
  else:
    a = -np.diag(np.repeat([1.0, 3.0], p // 2))
  a32 = jnp.asarray(a, jnp.float32)
  top = jax.jit(lambda x, k: analysis.hessian_top_eigenvalue(lambda x: 0.5 * x @ a32 @ x, x, key=k, num_iters=20,
                                                             method="lanczos"))
  for seed in range(3):
    lam, vec = top(jnp.zeros(p), jax.random.key(seed))
    assert float(lam) == pytest.approx(np.linalg.eigvalsh(a)[-1], rel=1e-4)
    assert np.isfinite(np.asarray(vec)).all()


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_lanczos_top_eigenvalue_half_precision_params(dtype):
  # float16/bfloat16 params used to crash in the tridiagonal eigh (no half-precision kernel).
  d = jnp.asarray([1.0, 2.0, 4.0], dtype)
  lam, vec = analysis.hessian_top_eigenvalue(lambda x: 0.5 * jnp.sum(d * x * x), jnp.ones(3, dtype),
                                             key=jax.random.key(0), num_iters=3, method="lanczos")
  assert lam.dtype == dtype and vec.dtype == dtype
  assert float(lam) == pytest.approx(4.0, rel=2e-2)


def test_hvp_equals_matrix_product():
  a, _, _ = _quadratic(1, n=6)
  a32 = jnp.asarray(a, jnp.float32)
  v = jnp.arange(6.0)
  hv = jax.jit(lambda x, v: analysis.hvp(lambda x: 0.5 * x @ a32 @ x + jnp.sum(x ** 3) / 3, x, v))(jnp.ones(6), v)
  np.testing.assert_allclose(np.asarray(hv), a @ np.arange(6.0) + 2 * np.arange(6.0), rtol=1e-5)


def test_ntk_of_linear_model_is_the_linear_kernel():
  rng = np.random.default_rng(0)
  x1, x2 = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
  params = {"w": jnp.asarray(rng.normal(size=3), jnp.float32), "b": jnp.float32(0.3)}
  f = lambda p, x: x @ p["w"] + p["b"]
  # Jitted (one program per kernel; eager, the per-example Jacobians compile ~60 small programs).
  k = jax.jit(lambda p, a, b: analysis.empirical_ntk(f, p, a, b))(params, jnp.asarray(x1, jnp.float32),
                                                                  jnp.asarray(x2, jnp.float32))
  np.testing.assert_allclose(np.asarray(k), x1 @ x2.T + 1.0, rtol=1e-5, atol=1e-5)
  # Two outputs sharing nothing: the trace over outputs doubles the linear kernel.
  params2 = {"w": jnp.ones((3, 2))}
  k2 = jax.jit(lambda p, a: analysis.empirical_ntk(lambda p, x: x @ p["w"], p, a))(params2, jnp.asarray(x1, jnp.float32))
  np.testing.assert_allclose(np.asarray(k2), 2 * x1 @ x1.T, rtol=1e-5, atol=1e-5)


def test_kernel_target_alignment_closed_forms():
  y = np.array([1.0, -1.0, 1.0, -1.0], np.float32)
  kta = jax.jit(analysis.kernel_target_alignment)   # one program for both kernels (same shapes)
  assert float(kta(np.outer(y, y) * 3.0, y)) == pytest.approx(1.0, rel=1e-6)
  # Identity kernel: <I, yy^T> / (||I|| ||yy^T||) = n / (sqrt(n) n) = 1/sqrt(n).
  assert float(kta(np.eye(4, dtype=np.float32), y)) == pytest.approx(0.5, rel=1e-6)
  with pytest.raises(ValueError, match="kernel"):
    analysis.kernel_target_alignment(jnp.eye(3), y)


def test_ece_hand_computed():
  # Confidences 0.95 (bin 15), 0.95, 0.55 (bin 9), 0.55; correct: yes, no, yes, yes.
  probs = jnp.array([[0.95, 0.05], [0.95, 0.05], [0.45, 0.55], [0.55, 0.45]])
  labels = jnp.array([0, 1, 1, 0])
  # bin (0.9, 1]: acc 0.5, conf 0.95 -> 2/4*0.45; bin (0.5, 0.6]: acc 1, conf 0.55 -> 2/4*0.45.
  # The functions take logits (one convention with fit_temperature): log(probs) are logits with softmax = probs.
  logits = jnp.log(probs)
  ece = jax.jit(lambda z, y: analysis.expected_calibration_error(z, y, n_bins=10))   # one compile, not ~25 eager ops
  assert float(ece(logits, labels)) == pytest.approx(0.45, rel=1e-5)
  with pytest.raises(ValueError, match="n_bins"):
    analysis.expected_calibration_error(logits, labels, n_bins=0)


def test_calibrated_model_has_small_ece_and_temperature_recovered():
  @jax.jit   # the draw and every diagnostic in one program (eager: ~60 small compiles)
  def diagnostics(key):
    z = 2.0 * jax.random.normal(key, (10000, 5))
    labels = jax.random.categorical(jax.random.fold_in(key, 1), z)  # labels ~ softmax(z): calibrated at T = 1
    t = analysis.fit_temperature(3.0 * z, labels)
    return (analysis.expected_calibration_error(z, labels), t, analysis.temperature_nll(3.0 * z, labels, t),
            analysis.temperature_nll(3.0 * z, labels, 1.0))

  ece, t, nll_t, nll_1 = diagnostics(jax.random.key(0))
  assert float(ece) < 0.02
  # Logits 3x too sharp -> T* = 3 (NLL's minimiser recovers the generating temperature).
  assert float(t) == pytest.approx(3.0, rel=0.05)
  assert float(nll_t) <= float(nll_1)


def test_uniformity_and_tolerance_closed_forms():
  z = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
  zz = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
  # The four closed-form values from one jitted program (eager: a compile per op and shape).
  u_loss, u, u_collapsed, tol = jax.jit(lambda z, c, zz, y: (
      analysis.uniformity_loss(z), analysis.uniformity(z), analysis.uniformity_loss(c), analysis.tolerance(zz, y)))(
          z, jnp.ones((5, 2)) / math.sqrt(2), zz, jnp.array([0, 0, 1, 1]))
  # Antipodal pair: ||z1 - z2||^2 = 4, uniformity loss = log exp(-2 * 4) = -8.
  assert float(u_loss) == pytest.approx(-8.0, rel=1e-6)
  assert float(u) == pytest.approx(8.0, rel=1e-6)
  # Collapsed embeddings: loss log 1 = 0 (least uniform).
  assert float(u_collapsed) == pytest.approx(0.0, abs=1e-6)
  # Same-class pairs: (0,1) sim 1; (2,3) sim 0.8 -> mean over ordered pairs = 0.9.
  assert float(tol) == pytest.approx(0.9, rel=1e-6)
  with pytest.raises(ValueError, match="t must"):
    analysis.uniformity(zz, t=0.0)
  # Recall@1 against a float64 brute-force loop over queries (ties -> lowest index): cosine similarities of random
  # embeddings, and small-integer similarities full of exact ties; one jit serves both (same shapes).
  rng = np.random.default_rng(0)
  e = rng.normal(size=(12, 3))
  e /= np.linalg.norm(e, axis=1, keepdims=True)
  y = rng.integers(0, 3, 12)

  def brute(sim, y):
    hits = 0
    for i in range(len(y)):
      best, arg = -np.inf, -1
      for j in range(len(y)):
        if j != i and sim[i, j] > best:
          best, arg = sim[i, j], j
      hits += int(y[arg] == y[i])
    return hits / len(y)

  r1 = jax.jit(analysis.recall_at_1)
  for sim in (e @ e.T, rng.integers(0, 3, (12, 12)).astype(np.float64)):
    want = brute(sim, y)
    assert float(r1(jnp.asarray(sim, jnp.float32), jnp.asarray(y))) == pytest.approx(want, abs=1e-7)
  # (the eager float64 call's exact count / N is checked by the two experiments' tests, which use it)
  assert 0 < want < 1
  assert np.isnan(float(r1(jnp.asarray(sim, jnp.float32).at[3, 5].set(jnp.nan), jnp.asarray(y))))


def test_max_attention_logit_matches_the_attention_module():
  # Built, applied and measured in two jitted programs (eager: ~30 compiles of the init and forward ops).
  attn = nnx.jit(lambda: CausalSelfAttention(16, 2, use_rope=False, rngs=nnx.Rngs(0)))()
  x = jax.random.normal(jax.random.key(0), (2, 5, 16))

  @nnx.jit
  def forward(attn, x):
    _, m = attn(x, return_max_logit=True)
    q = jnp.einsum("BTD,DNH->BTNH", x, attn.q_weight_dnh[...])
    k = jnp.einsum("BTD,DNH->BTNH", x, attn.k_weight_dnh[...])
    return m, q, k, analysis.max_attention_logit(q, k)

  m, q, k, got = forward(attn, x)
  qn, kn = np.asarray(q, np.float64), np.asarray(k, np.float64)
  s = np.einsum("btnh,bsnh->bnts", qn, kn) / math.sqrt(8)
  ref = np.where(np.tril(np.ones((5, 5), bool)), s, -np.inf).max()
  assert float(got) == pytest.approx(ref, rel=1e-5)
  assert float(m) == pytest.approx(ref, rel=1e-5)


def test_eigenlearning_interpolation_threshold_noiseless_is_zero_not_nan():
  # ridge 0 and n = the number of modes: E_0 = inf, but a noiseless target in the learnt modes is recovered exactly
  # (OLS with n = M samples interpolates it); inf * 0 used to give NaN.
  r = analysis.eigenlearning_risk([1.0, 0.5, 0.25], [1.0, 1.0, 0.5], 3, 0.0)
  assert r["e0"] == np.inf and r["test_mse"] == 0.0
  assert analysis.eigenlearning_risk([1.0, 0.5, 0.25], [1.0, 1.0, 0.5], 3, 0.0, noise_var=0.1)["test_mse"] == np.inf


def test_eigenlearning_ols_limit_and_ridge_monte_carlo():
  # Isotropic M < n modes, ridge 0: kappa = 0, E_0 = n / (n - M): the classical OLS noise inflation.
  r = analysis.eigenlearning_risk(np.ones(10), np.zeros(10), 40, 0.0, noise_var=0.25)
  assert r["kappa"] == 0.0 and r["test_mse"] == pytest.approx(0.25 * 40 / 30)
  # kappa solves its equation.
  lam = np.arange(1, 201, dtype=float) ** -1.5
  k = analysis.eigenlearning_kappa(lam, 50, 1e-2)
  assert np.sum(lam / (lam + k)) + 1e-2 / k == pytest.approx(50, rel=1e-9)
  # Monte Carlo ridge regression on Gaussian data x ~ N(0, diag(lam)), y = v.x + noise (independent of the theory).
  rng = np.random.default_rng(0)
  v = rng.normal(size=200)
  noise, n, ridge, risks = 0.1, 50, 1e-2, []
  for _ in range(200):
    x = rng.normal(size=(n, 200)) * np.sqrt(lam)
    y = x @ v + noise * rng.normal(size=n)
    w = x.T @ np.linalg.solve(x @ x.T + ridge * np.eye(n), y)
    risks.append((w - v) @ (lam * (w - v)) + noise ** 2)
  pred = analysis.eigenlearning_risk(lam, lam * v ** 2, n, ridge, noise ** 2)["test_mse"]
  assert np.mean(risks) == pytest.approx(pred, rel=0.1)
  with pytest.raises(ValueError, match="ridge"):
    analysis.eigenlearning_kappa(lam, 5, -1.0)
