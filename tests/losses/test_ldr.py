"""LDR-KL / ALDR-KL vs a float64 NumPy transcription of the paper's closed form (Zhu, Ying, Yang 2023)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.losses import ldr
from jaxlib_methods.testing import central_difference_grad


def np_ldr_kl(f, y, lam, c):
  """lam * log((1/K) sum_k exp((c 1[k != y] + f_k - f_y) / lam)), float64, written from the paper."""
  f = np.asarray(f, np.float64)
  n, k = f.shape
  lam = np.broadcast_to(np.asarray(lam, np.float64), (n,))
  out = np.empty(n)
  for i in range(n):
    z = np.array([(c if j != y[i] else 0.0) + f[i, j] - f[i, y[i]] for j in range(k)])
    a = z / lam[i]
    m = a.max()
    out[i] = lam[i] * (m + np.log(np.exp(a - m).sum()) - np.log(k))
  return out



def np_grad(fn, x, h=1e-6):
  return central_difference_grad(fn, x, h)


@pytest.mark.parametrize("n,k,lam,c", [(1, 2, 1.0, 0.0), (4, 5, 0.1, 0.1), (3, 7, 10.0, 0.1), (2, 3, 0.5, 1.0)])
def test_ldr_kl_matches_numpy_values_and_grad(n, k, lam, c):
  rng = np.random.default_rng(n * 100 + k)
  f = rng.normal(size=(n, k)) * 2
  y = rng.integers(0, k, size=n)
  with jax.enable_x64(True):
    loss = lambda t: ldr.ldr_kl_loss(t, jnp.asarray(y), lam=lam, margin=c)
    got, g = jax.jit(lambda t: (loss(t), jax.grad(lambda t: loss(t).sum())(t)))(jnp.asarray(f))  # one program
    np.testing.assert_allclose(np.asarray(got), np_ldr_kl(f, y, lam, c), rtol=1e-10, atol=1e-12)
  ref = np_grad(lambda t: np_ldr_kl(t, y, lam, c).sum(), f)
  np.testing.assert_allclose(np.asarray(g), ref, rtol=1e-6, atol=1e-7)


def test_per_example_lambda_matches_numpy():
  rng = np.random.default_rng(0)
  f = rng.normal(size=(4, 5))
  y = np.array([0, 4, 2, 2])
  lam = np.array([0.1, 1.0, 3.0, 10.0])
  with jax.enable_x64(True):
    got = jax.jit(lambda f, y: ldr.ldr_kl_loss(f, y, lam=jnp.asarray(lam), margin=0.1))(jnp.asarray(f), jnp.asarray(y))
  np.testing.assert_allclose(np.asarray(got), np_ldr_kl(f, y, lam, 0.1), rtol=1e-10)


def test_lambda1_margin0_is_ce_minus_logk():
  rng = np.random.default_rng(1)
  f = jnp.asarray(rng.normal(size=(6, 9)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 9, 6))
  got, ce = jax.jit(lambda f, y: (ldr.ldr_kl_loss(f, y, lam=1.0, margin=0.0),  # one program
                                  optax.losses.softmax_cross_entropy_with_integer_labels(f, y)))(f, y)
  np.testing.assert_allclose(got, ce - np.log(9), rtol=1e-5, atol=1e-6)


def test_small_lambda_tends_to_crammer_singer_and_large_to_mean():
  rng = np.random.default_rng(2)
  f = rng.normal(size=(5, 4))
  y = rng.integers(0, 4, 5)
  with jax.enable_x64(True):
    cs, small, big = jax.jit(lambda f, y: (  # one program
        ldr.crammer_singer_loss(f, y, margin=0.3), ldr.ldr_kl_loss(f, y, lam=1e-4, margin=0.3),
        ldr.ldr_kl_loss(f, y, lam=1e6, margin=0.3)))(jnp.asarray(f), jnp.asarray(y))
    # lam log((1/K) sum exp(z/lam)) lies in [max z - lam log K, max z].
    assert np.all(np.asarray(small) <= np.asarray(cs) + 1e-12)
    assert np.all(np.asarray(small) >= np.asarray(cs) - 1e-4 * np.log(4) - 1e-12)
  z = np.array([[(0.3 if j != y[i] else 0) + f[i, j] - f[i, y[i]] for j in range(4)] for i in range(5)])
  np.testing.assert_allclose(np.asarray(big), z.mean(1), atol=1e-5)


def test_normalize_logits_matches_official_recipe():
  rng = np.random.default_rng(3)
  f = rng.normal(size=(3, 5))
  sp = np.log1p(np.exp(f))
  ref = sp / sp.mean(-1, keepdims=True)
  with jax.enable_x64(True):
    np.testing.assert_allclose(np.asarray(ldr.normalize_logits(jnp.asarray(f))), ref, rtol=1e-12)
    y = np.array([1, 0, 4])
    got = ldr.ldr_kl_loss(jnp.asarray(f), jnp.asarray(y), lam=1.0, margin=0.1, normalize=True)
  np.testing.assert_allclose(np.asarray(got), np_ldr_kl(ref, y, 1.0, 0.1), rtol=1e-10)


def test_worst_case_distribution_attains_the_max():
  # p* = softmax(z / lam) attains sum p z - lam KL(p, u) = LDR-KL, and random p do not exceed it.
  rng = np.random.default_rng(4)
  f = rng.normal(size=(1, 6))
  y = np.array([2])
  lam, c = 0.7, 0.2
  with jax.enable_x64(True):
    p = np.asarray(ldr.ldr_kl_worst_case_distribution(jnp.asarray(f), jnp.asarray(y), lam=lam, margin=c))[0]
  z = np.array([(c if j != 2 else 0) + f[0, j] - f[0, 2] for j in range(6)])

  def obj(q):
    return q @ z - lam * np.sum(q * np.log(q * 6))

  best = np_ldr_kl(f, y, lam, c)[0]
  np.testing.assert_allclose(obj(p), best, rtol=1e-10)
  for _ in range(50):
    q = rng.dirichlet(np.ones(6))
    assert obj(q) <= best + 1e-12


def np_aldr_v1(y_pred, y_true, ids, lam_state, lam_ref, alpha, threshold, softplus=False, lam_fixed=None):
  """A float64 NumPy transcription of the authors' `ALDRLoss_V1.forward` (Optimization-AI/ICML2023_LDR, loss.py),
  line by line: returns (mean loss, updated lambda state). y_true is one-hot [B, K]; lam_state [N, 1]. With
  `lam_fixed` the lambda step is skipped and those lambdas [B, 1] are used (to differentiate with lambda held)."""
  y_pred = np.asarray(y_pred, np.float64)
  lam_state = np.array(lam_state, np.float64)
  num_class = y_pred.shape[1]
  if softplus:
    y_pred = np.log1p(np.exp(y_pred))
  y_denorm = np.sum(np.abs(y_pred), axis=1, keepdims=True) / num_class
  y_pred = y_pred / y_denorm
  if lam_fixed is None:
    z = y_pred / lam_state[ids]
    e = np.exp(z - z.max(1, keepdims=True))
    pred_prob = e / e.sum(1, keepdims=True) + 1e-5
    pred_prob = pred_prob / np.maximum(np.abs(pred_prob).sum(1, keepdims=True), 1e-12)  # F.normalize(p=1)
    kl_reg = np.sum(pred_prob * np.log(num_class * pred_prob), axis=1, keepdims=True)
    log_k = np.log(num_class)
    lambdas = lam_ref - lam_ref * kl_reg / (alpha * log_k)
    lam_state[ids] = lambdas
    lam = lam_state[ids]
  else:
    lam = np.asarray(lam_fixed, np.float64)
  extra_loss = -1 / 2 * alpha * np.log(num_class) / lam_ref * (lam - lam_ref) ** 2
  diff_logits = threshold * (1 - y_true) + (y_pred - np.sum(y_pred * y_true, axis=1, keepdims=True))
  d = diff_logits / lam
  m = d.max(1, keepdims=True)
  loss = lam * (np.log(np.mean(np.exp(d - m), axis=1, keepdims=True)) + m) + extra_loss
  return loss.mean(), lam_state


@pytest.mark.parity
@pytest.mark.parametrize("softplus,k,lam0,alpha", [(False, 5, 10.0, 2.0), (False, 26, 1.0, 3.0),
                                                   (True, 7, 0.1, 1.5)])
def test_aldr_kl_matches_the_authors_aldr_loss_v1(softplus, k, lam0, alpha):
  """Two batches through a persistent per-example lambda state: loss, new lambda and gradient match the float64
  transcription of the authors' ALDRLoss_V1 (update lambda first, then the loss at the new lambda)."""
  rng = np.random.default_rng(k)
  n, b, c = 12, 6, 0.1
  norm = "softplus" if softplus else "l1"
  state_np = np.full((n, 1), lam0)
  state = ldr.aldr_kl_init_state(n, lam0)
  with jax.enable_x64(True):
    state = state.astype(jnp.float64)
    # one program each, compiled once and reused by the second batch (same shapes)
    update = jax.jit(lambda f, y, s: ldr.aldr_kl_update_lambda(f, y, s, lam0=lam0, alpha=alpha, normalize=norm))
    aldr = lambda t, y, s: ldr.aldr_kl_loss(t, y, s, lam0=lam0, alpha=alpha, margin=c, normalize=norm)
    aldr_loss, aldr_grad = jax.jit(aldr), jax.jit(jax.grad(lambda t, y, s: aldr(t, y, s).mean()))
    for batch in range(2):
      ids = rng.choice(n, b, replace=False)
      f = rng.normal(size=(b, k)) * 3
      y = rng.integers(0, k, b)
      onehot = np.eye(k)[y]
      ref_loss, state_np = np_aldr_v1(f, onehot, ids, state_np, lam0, alpha, c, softplus)
      fj, yj = jnp.asarray(f), jnp.asarray(y)
      new = update(fj, yj, state[ids])
      state = state.at[ids].set(new)
      loss = aldr_loss(fj, yj, state[ids])
      np.testing.assert_allclose(np.asarray(state)[:, None], state_np, rtol=1e-6)  # float32 lambda state
      np.testing.assert_allclose(float(loss.mean()), ref_loss, rtol=1e-5)
      lam_b = np.asarray(state)[ids][:, None]
      g = aldr_grad(fj, yj, state[ids])
      ref_g = np_grad(lambda t: np_aldr_v1(t, onehot, ids, state_np, lam0, alpha, c, softplus, lam_fixed=lam_b)[0], f)
      np.testing.assert_allclose(np.asarray(g), ref_g, rtol=1e-5, atol=1e-8)
    assert np.all(np.asarray(state) >= lam0 * (1 - 1 / alpha) - 1e-9) and np.all(np.asarray(state) <= lam0 * (1 + 1e-6))
    assert np.ptp(np.asarray(state)) > 1e-3 * lam0  # lambda moves (the old alpha/2 penalty barely moved it)


def test_aldr_lambda_step_extremes():
  """Uniform logits give p = u, KL = 0, lambda = lam0; a one-hot-like p gives lambda -> lam0 (1 - 1/alpha)."""
  lam0, alpha = 10.0, 2.0
  y = jnp.array([0, 1])
  f = jnp.array([[1.0, 1.0, 1.0, 1.0], [1e3, -1e3, -1e3, -1e3]])
  new = ldr.aldr_kl_update_lambda(f, y, jnp.array([lam0, 1e-3]), lam0=lam0, alpha=alpha)
  np.testing.assert_allclose(new[0], lam0, rtol=1e-6)
  p = np.array([1.0, 0, 0, 0]) + 1e-5
  p /= p.sum()
  kl = np.sum(p * np.log(4 * p))
  np.testing.assert_allclose(new[1], lam0 * (1 - kl / (alpha * np.log(4))), rtol=1e-5)
  assert new[1] < lam0 * (1 - 0.99 / alpha)


def test_aldr_kl_large_alpha_keeps_lam0_and_equals_ldr_kl():
  rng = np.random.default_rng(6)
  f = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
  y = jnp.array([0, 1, 3])
  lam = ldr.aldr_kl_init_state(3, 2.0)

  @jax.jit  # one program for the values and the gradient
  def run(f, y, lam):
    new = ldr.aldr_kl_update_lambda(f, y, lam, lam0=2.0, alpha=1e9)
    return (new, ldr.aldr_kl_loss(f, y, new, lam0=2.0, alpha=1e9), ldr.ldr_kl_loss(f, y, lam=2.0),
            jax.grad(lambda l: ldr.aldr_kl_loss(f, y, l, lam0=2.0, alpha=2.0).sum())(lam))

  new, aldr, ldr_kl, g = run(f, y, lam)
  np.testing.assert_allclose(new, 2.0, rtol=1e-6)
  np.testing.assert_allclose(aldr, ldr_kl, rtol=1e-5)
  # no gradient flows into the lambda state
  np.testing.assert_array_equal(g, 0.0)


def test_l1_normalisation_matches_the_authors():
  rng = np.random.default_rng(7)
  f = rng.normal(size=(3, 5))
  y = np.array([0, 2, 4])
  ref = f / (np.abs(f).sum(1, keepdims=True) / 5)
  with jax.enable_x64(True):
    got = ldr.ldr_kl_loss(jnp.asarray(f), jnp.asarray(y), lam=2.0, margin=0.1, normalize="l1")
  np.testing.assert_allclose(np.asarray(got), np_ldr_kl(ref, y, 2.0, 0.1), rtol=1e-10)
  with pytest.raises(ValueError, match="normalize"):
    ldr.ldr_kl_loss(jnp.asarray(f), jnp.asarray(y), normalize="l2")


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_stability_extreme_logits_and_half_precision(dtype):
  f = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype)  # the loss (~2e4) fits in float16
  y = jnp.array([1, 1])
  lams = (0.1, 1.0, 10.0)

  @jax.jit  # one program for every value and gradient below
  def run(f, y):
    vg = [(ldr.ldr_kl_loss(f, y, lam=lam, margin=0.1),
           jax.grad(lambda t: ldr.ldr_kl_loss(t, y, lam=lam, margin=0.1).astype(jnp.float32).sum())(f)) for lam in lams]
    return (vg, jax.grad(lambda t: ldr.ldr_kl_loss(t, y, normalize=True).astype(jnp.float32).sum())(f),
            ldr.aldr_kl_update_lambda(f, y, jnp.ones(2), lam0=1.0, alpha=2.0))

  vg, g_norm, lam = run(f, y)
  for v, g in vg:
    assert v.dtype == dtype
    assert np.all(np.isfinite(np.asarray(v, np.float32))) and np.all(np.isfinite(np.asarray(g, np.float32)))
  assert np.all(np.isfinite(np.asarray(g_norm, np.float32)))
  assert np.all(np.isfinite(lam))


def test_jit_and_vmap():
  f = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
  y = jnp.array([0, 1, 2, 0])
  a = jax.jit(lambda f, y: ldr.ldr_kl_loss(f, y, lam=0.5))(f, y)
  b = jax.vmap(lambda f, y: ldr.ldr_kl_loss(f, y, lam=0.5))(f, y)
  np.testing.assert_allclose(a, b, rtol=1e-6)


def test_bad_inputs():
  f = jnp.zeros((3, 4))
  y = jnp.array([0, 1, 2])
  with pytest.raises(ValueError, match="lam"):
    ldr.ldr_kl_loss(f, y, lam=0.0)
  with pytest.raises(ValueError, match="lam"):
    ldr.ldr_kl_loss(f, y, lam=jnp.array([1.0, -1.0, 1.0]))
  with pytest.raises(ValueError, match="margin"):
    ldr.ldr_kl_loss(f, y, margin=-0.1)
  with pytest.raises(ValueError, match="labels must have the shape of logits"):
    ldr.ldr_kl_loss(f, jnp.array([0, 1]))
  with pytest.raises(ValueError, match=r"labels must be integer class indices in \[0, 4\)"):
    ldr.ldr_kl_loss(f, jnp.array([0, 1, 4]))
  with pytest.raises(TypeError, match="labels must be an integer"):
    ldr.ldr_kl_loss(f, jnp.array([0.0, 1.0, 2.0]))
  with pytest.raises(ValueError, match="alpha"):
    ldr.aldr_kl_loss(f, y, jnp.ones(3), lam0=1.0, alpha=0.0)
  with pytest.raises(ValueError, match="alpha must be > 1"):
    ldr.aldr_kl_update_lambda(f, y, jnp.ones(3), lam0=1.0, alpha=1.0)
  with pytest.raises(ValueError, match="at least 2 classes"):
    ldr.aldr_kl_update_lambda(jnp.zeros((3, 1)), jnp.zeros(3, jnp.int32), jnp.ones(3), lam0=1.0, alpha=2.0)
  with pytest.raises(ValueError, match="lam0"):
    ldr.aldr_kl_init_state(3, -1.0)


def test_aldr_update_lambda_where_excluded_rows_keep_their_lambda():
  # Regression (audit s23): excluded rows got `_lam`'s NaN-safe stand-in 1.0 instead of keeping their lambda.
  f = jnp.asarray(np.random.RandomState(0).randn(3, 4), jnp.float32)
  y = jnp.array([0, 1, 2])
  lam = jnp.array([0.5, 0.7, 0.0])  # row 2 excluded, its (padded) lambda 0 is not checked
  where = jnp.array([True, False, False])
  for fn in (ldr.aldr_kl_update_lambda, jax.jit(ldr.aldr_kl_update_lambda, static_argnames=("lam0", "alpha"))):
    new = fn(f, y, lam, lam0=1.0, alpha=2.0, where=where)
    np.testing.assert_array_equal(np.asarray(new[1:]), np.asarray(lam[1:]))
    full = ldr.aldr_kl_update_lambda(f, y, lam.at[2].set(1.0), lam0=1.0, alpha=2.0)
    np.testing.assert_allclose(new[0], full[0], rtol=1e-6)


@pytest.mark.parametrize("fn", [ldr.ldr_kl_loss, ldr.ldr_kl_worst_case_distribution, ldr.crammer_singer_loss])
def test_array_margin_is_rejected_not_broadcast_over_classes(fn):
  # Regression (audit s23): a per-example margin [B] was silently broadcast against the class axis of [B, K] (wrong
  # numbers when B == K, e.g. ldr_kl_loss row 0 gave 3.13 instead of -0.56) and its negative entries went unchecked.
  f = jnp.asarray(np.random.RandomState(0).randn(3, 3), jnp.float32)
  y = jnp.array([0, 1, 2])
  with pytest.raises(ValueError, match="margin"):
    fn(f, y, margin=jnp.array([0.0, 0.0, 5.0]))
  fn(f, y, margin=jnp.asarray(0.2))  # a 0-d array is a scalar


@pytest.mark.parametrize("lam", [1e-2, 1.0, 1e3, 1e6])
def test_ldr_kl_float32_accurate_for_any_lambda(lam):
  # Regression (audit s23): lam * (logsumexp(z / lam) - log K) cancels catastrophically for large lam in float32
  # (lam = 1e6: error 0.31 in a loss of ~8; lam = 1e3: 3e-4), so the documented lam -> infinity limit (the mean of z)
  # was not reached.
  rng = np.random.RandomState(0)
  f = rng.randn(64, 10) * 3
  y = rng.randint(0, 10, 64)
  z = 0.1 * (np.arange(10)[None] != y[:, None]) + f - f[np.arange(64), y][:, None]
  m = (z / lam).max(-1, keepdims=True)
  want = lam * (np.log(np.mean(np.exp(z / lam - m), -1)) + m[:, 0])
  got = ldr.ldr_kl_loss(jnp.asarray(f, jnp.float32), jnp.asarray(y), lam=lam, margin=0.1)
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
