"""iCT / latent-consistency losses vs float64 NumPy transcriptions of Song & Dhariwal 2024 and Dao et al. 2025."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.losses import consistency as cm


def _np_pseudo_huber(x, y, c):
  r2 = ((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2).reshape(len(x), -1).sum(1)
  return np.sqrt(r2 + c * c) - c


def test_pseudo_huber_matches_numpy_and_uses_whole_sample_norm():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(5, 3, 4, 4)), rng.normal(size=(5, 3, 4, 4))
  c = cm.default_pseudo_huber_c(48)
  assert c == pytest.approx(0.00054 * math.sqrt(48))
  got = cm.pseudo_huber_loss(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
  np.testing.assert_allclose(np.asarray(got), _np_pseudo_huber(x, y, c), rtol=1e-5)
  # Not element-wise: the element-wise version sums per-entry pseudo-Huber and differs.
  elementwise = (np.sqrt((x - y) ** 2 + c * c) - c).reshape(5, -1).sum(1)
  assert np.all(np.abs(elementwise - np.asarray(got)) > 1e-2)


def test_pseudo_huber_grad_matches_numpy():
  rng = np.random.default_rng(1)
  x, y = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
  c = 0.3
  g = jax.grad(lambda a: cm.pseudo_huber_loss(a, jnp.asarray(y, jnp.float32), c).sum())(jnp.asarray(x, jnp.float32))
  r = np.sqrt(((x - y) ** 2).sum(1, keepdims=True))
  np_grad = (x - y) / np.sqrt(r ** 2 + c * c)
  np.testing.assert_allclose(np.asarray(g), np_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("r", [1e-6, 1e-4, 1e-3])
def test_pseudo_huber_small_residual_limit_is_l2_over_2c(r):
  c = 1.0
  x = jnp.array([[r, 0.0]], jnp.float32)
  got = float(cm.pseudo_huber_loss(x, jnp.zeros_like(x), c)[0])
  assert got == pytest.approx(r * r / (2 * c), rel=1e-5)  # exact in float32 thanks to the stable form


@pytest.mark.parametrize("r", [1e3, 1e6])
def test_pseudo_huber_large_residual_limit_is_l1_minus_c(r):
  c = 0.5
  x = jnp.array([[r]], jnp.float32)
  got = float(cm.pseudo_huber_loss(x, jnp.zeros_like(x), c)[0])
  assert got == pytest.approx(r - c, rel=1e-6)
  g = float(jax.grad(lambda a: cm.pseudo_huber_loss(a, jnp.zeros_like(a), c).sum())(x)[0, 0])
  assert g == pytest.approx(1.0, rel=1e-6)


def test_pseudo_huber_bfloat16_and_zero_residual_grad_finite():
  x = jnp.zeros((2, 8), jnp.bfloat16)
  big = jnp.full((2, 8), 1e4, jnp.bfloat16)
  (v, g), out_big = jax.jit(lambda x, big: (  # one program
      jax.value_and_grad(lambda a: cm.pseudo_huber_loss(a, jnp.zeros_like(a)).sum())(x),
      cm.pseudo_huber_loss(big, jnp.zeros_like(big))))(x, big)
  assert float(v) == 0.0 and np.all(np.isfinite(np.asarray(g, np.float32)))
  assert np.all(np.isfinite(np.asarray(out_big, np.float32)))


def test_cauchy_loss_matches_numpy_and_is_redescending():
  rng = np.random.default_rng(2)
  x, y = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
  c = 0.7
  r2 = ((x - y) ** 2).sum(1)
  np.testing.assert_allclose(np.asarray(cm.cauchy_loss(jnp.asarray(x), jnp.asarray(y), c)),
                             np.log1p(r2 / (2 * c * c)), rtol=1e-5)
  grad_norm = lambda fn, r: float(jnp.abs(jax.grad(lambda a: fn(a, jnp.zeros_like(a)).sum())(
      jnp.array([[r]], jnp.float32))[0, 0]))
  cauchy = functools.partial(cm.cauchy_loss, c=c)
  ph = functools.partial(cm.pseudo_huber_loss, c=c)
  assert grad_norm(cauchy, 1e4) < 1e-3 < grad_norm(cauchy, 1.0)
  assert grad_norm(ph, 1e4) == pytest.approx(1.0, rel=1e-6)
  assert grad_norm(cauchy, 1e4) == pytest.approx(2e4 / (1e8 + 2 * c * c), rel=1e-4)


def test_karras_grid_and_lognormal_probs_match_numpy():
  n = 11
  s = np.asarray(cm.karras_sigmas(n))
  i = np.arange(n)
  ref = (0.002 ** (1 / 7) + i / (n - 1) * (80 ** (1 / 7) - 0.002 ** (1 / 7))) ** 7
  np.testing.assert_allclose(s, ref, rtol=1e-5)
  from math import erf
  cdf = np.array([erf((np.log(v) - (-1.1)) / (np.sqrt(2) * 2.0)) for v in ref])
  p_ref = np.diff(cdf) / np.diff(cdf).sum()
  probs, idx = jax.jit(lambda key, s: (cm.lognormal_sigma_probs(s), cm.sample_sigma_indices(key, s, (20000,))))(
      jax.random.key(0), jnp.asarray(s))  # one program
  np.testing.assert_allclose(np.asarray(probs), p_ref, rtol=1e-4, atol=1e-7)
  assert int(idx.min()) >= 0 and int(idx.max()) <= n - 2
  freq = np.bincount(np.asarray(idx), minlength=n - 1) / 20000
  np.testing.assert_allclose(freq, p_ref, atol=0.015)


def test_ict_curriculum_doubles_and_caps():
  total = 400_000
  k_prime = math.floor(total / (math.log2(1280 // 10) + 1))  # = 50_000
  assert cm.ict_num_scales(0, total) == 11
  assert cm.ict_num_scales(k_prime - 1, total) == 11
  assert cm.ict_num_scales(k_prime, total) == 21
  assert cm.ict_num_scales(2 * k_prime, total) == 41
  assert cm.ict_num_scales(total - 1, total) == 1281
  assert cm.ict_num_scales(10 * total, total) == 1281
  # Non-power-of-two ratio: K' = floor(764 / (log2 floor(1000 / 10) + 1)) = floor(99.95) = 99.
  k2 = math.floor(764 / (math.log2(100) + 1))
  assert k2 == 99
  assert cm.ict_num_scales(98, 764, s0=10, s1=1000) == 11 and cm.ict_num_scales(99, 764, s0=10, s1=1000) == 21
  assert cm.ict_num_scales(6 * 99, 764, s0=10, s1=1000) == 641 and cm.ict_num_scales(763, 764, s0=10, s1=1000) == 1001


def test_consistency_loss_matches_numpy_and_teacher_is_stop_gradient():
  rng = np.random.default_rng(3)
  b, d = 4, 3
  x, z = rng.normal(size=(b, d)), rng.normal(size=(b, d))
  sig = np.array([0.1, 0.5, 1.0, 2.0]); sig_next = sig * 1.5
  w = rng.normal(size=(d, d)) * 0.3

  def apply_fn(p, xn, s):
    return xn @ p + jnp.tanh(s)[:, None]

  closs = lambda p: cm.consistency_loss(apply_fn, p, jnp.asarray(x, jnp.float32), jnp.asarray(z, jnp.float32),
                                       jnp.asarray(sig, jnp.float32), jnp.asarray(sig_next, jnp.float32))
  # One program for the value and the gradient.
  loss, g = jax.jit(lambda p: (closs(p), jax.grad(lambda p: closs(p).sum())(p)))(jnp.asarray(w, jnp.float32))
  student = (x + sig_next[:, None] * z) @ w + np.tanh(sig_next)[:, None]
  teacher = (x + sig[:, None] * z) @ w + np.tanh(sig)[:, None]
  c = 0.00054 * math.sqrt(d)
  ref = _np_pseudo_huber(student, teacher, c) / (sig_next - sig)
  np.testing.assert_allclose(np.asarray(loss), ref, rtol=1e-4)
  # Gradient flows only through the student branch: d/dW of d(student(W), const) at the same W.
  r = np.sqrt(((student - teacher) ** 2).sum(1, keepdims=True))
  dd = (student - teacher) / np.sqrt(r ** 2 + c * c) / (sig_next - sig)[:, None]
  np.testing.assert_allclose(np.asarray(g), (x + sig_next[:, None] * z).T @ dd, rtol=2e-4, atol=1e-5)


def test_consistency_skip_out_boundary():
  c_skip, c_out = cm.consistency_skip_out(jnp.array([0.002, 80.0]))
  assert float(c_skip[0]) == pytest.approx(1.0) and float(c_out[0]) == pytest.approx(0.0, abs=1e-7)
  assert float(c_skip[1]) < 1e-4


def test_ot_coupling_is_optimal_permutation():
  import itertools
  rng = np.random.default_rng(4)
  noise, x = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) + 1.0
  perm = cm.ot_minibatch_coupling(noise, x)
  assert sorted(perm.tolist()) == list(range(6))
  cost = lambda p: ((noise[list(p)] - x) ** 2).sum()
  best = min(cost(p) for p in itertools.permutations(range(6)))
  assert cost(perm) == pytest.approx(best)
  assert cost(perm) <= cost(range(6))


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="same shape"):
    cm.pseudo_huber_loss(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
  with pytest.raises(ValueError, match="c must"):
    cm.pseudo_huber_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)), c=0.0)
  with pytest.raises(ValueError, match="c must"):
    cm.cauchy_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)), c=-1.0)
  with pytest.raises(ValueError, match="dtype"):
    cm.pseudo_huber_loss(jnp.zeros((2, 3), jnp.float32), jnp.zeros((2, 3), jnp.bfloat16))
  with pytest.raises(ValueError, match="num_scales"):
    cm.karras_sigmas(1)
  with pytest.raises(ValueError, match="sigma_max"):
    cm.karras_sigmas(5, sigma_min=1.0, sigma_max=0.5)
  with pytest.raises(ValueError):
    cm.ict_num_scales(-1, 100)
  with pytest.raises(ValueError, match="p_std"):
    cm.lognormal_sigma_probs(jnp.array([0.1, 1.0]), p_std=0.0)
  with pytest.raises(ValueError, match="sigma and sigma_next"):
    cm.consistency_loss(lambda p, a, s: a, None, jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.zeros(3), jnp.zeros(2))


def test_ict_weight_is_inverse_sigma_gap_on_karras_grid():
  """iCT's lambda(sigma_i) = 1 / (sigma_{i+1} - sigma_i) (Song & Dhariwal 2024): float64 NumPy on the grid."""
  from jaxlib_methods.losses.consistency import ict_weight, karras_sigmas
  sig = np.asarray(karras_sigmas(11), np.float64)
  w = np.asarray(ict_weight(sig[:-1], sig[1:]), np.float64)
  np.testing.assert_allclose(w, 1.0 / np.diff(sig), rtol=1e-5)
  assert np.all(np.diff(w) < 0)  # finer steps at low noise get larger weights


# ---------------------------------------------------------------------------------------------------------------------
# [3] Dao et al. 2025: Cauchy reduction, adaptive scaling-c, early-timestep diffusion loss. References: float64 NumPy
# transcriptions of the authors' PyTorch code (github.com/quandao10/LCT, models/karras_diffusion.py and the
# train_cm_latent scripts), written out here with their DEcreasing sigma grid and indexing.


def _np_authors_cauchy(distiller, target, c):
  """loss_norm == "cauchy": th.log(0.5 * mean_flat(diffs) + c**2) - 2 * th.log(c), diffs = (a - b)**2."""
  d = (np.asarray(distiller, np.float64) - np.asarray(target, np.float64)) ** 2
  return np.log(0.5 * d.reshape(len(d), -1).mean(1) + c * c) - 2 * np.log(c)


def _np_authors_constant_c(scales=(11, 21, 41, 81, 161, 321, 641), initial_c=0.0345):
  """construct_constant_c: {N: exp(-1.15 * log(N - 1) - 0.85)}, first scale overridden by initial_c."""
  out = {s: math.exp(-1.15 * math.log(float(s - 1)) - 0.85) for s in scales}
  out[scales[0]] = initial_c
  return out


def test_cauchy_mean_reduction_matches_authors_code_and_rescales_c():
  rng = np.random.default_rng(10)
  x, y = rng.normal(size=(3, 2, 4, 4)), rng.normal(size=(3, 2, 4, 4))
  c = 0.0345
  got = cm.cauchy_loss(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), c, reduction="mean")
  np.testing.assert_allclose(np.asarray(got), _np_authors_cauchy(x, y, c), rtol=1e-5)
  d = 2 * 4 * 4
  same = cm.cauchy_loss(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), c * math.sqrt(d))
  np.testing.assert_allclose(np.asarray(got), np.asarray(same), rtol=1e-5)
  default = cm.cauchy_loss(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), c)  # default unchanged: sum
  np.testing.assert_allclose(np.asarray(default), np.log1p(((x - y) ** 2).reshape(3, -1).sum(1) / (2 * c * c)),
                             rtol=1e-5)
  with pytest.raises(ValueError, match="reduction"):
    cm.cauchy_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)), c, reduction="max")


def test_lct_adaptive_c_matches_authors_schedule_on_ict_curriculum():
  want = _np_authors_constant_c()
  total = 7000  # s0 = 10, s1 = 640: N runs through 11, 21, ..., 641
  seen = set()
  for step in range(0, total, 97):
    n = cm.ict_num_scales(step, total, s0=10, s1=640)
    seen.add(n)
    assert cm.lct_adaptive_c(n, start_scales=10, initial_c=0.0345) == pytest.approx(want[n], rel=1e-12)
  assert seen == set(want)
  # A pure power law in N - 1: log c = -1.15 log(N - 1) - 0.85, so c(2N - 1) / c(N) = 2^-1.15.
  assert cm.lct_adaptive_c(41) / cm.lct_adaptive_c(21) == pytest.approx(2 ** -1.15, rel=1e-12)
  assert cm.lct_adaptive_c(2) == pytest.approx(math.exp(-0.85), rel=1e-12)
  assert cm.lct_adaptive_c(81, multiplier=math.sqrt(2)) == pytest.approx(math.sqrt(2) * want[81], rel=1e-12)
  assert cm.lct_adaptive_c(11, start_scales=10, initial_c=0.5) == 0.5
  assert cm.lct_adaptive_c(12, start_scales=10, initial_c=0.5) == pytest.approx(math.exp(-1.15 * math.log(11) - 0.85))
  with pytest.raises(ValueError, match="num_scales"):
    cm.lct_adaptive_c(1)
  with pytest.raises(ValueError, match="initial_c is required"):
    cm.lct_adaptive_c(21, start_scales=10)
  with pytest.raises(ValueError, match="only used together"):
    cm.lct_adaptive_c(21, initial_c=0.1)
  with pytest.raises(ValueError, match="multiplier"):
    cm.lct_adaptive_c(21, multiplier=0.0)


@pytest.mark.parametrize("num_scales,diff_rate", [(11, 0.75), (21, 0.75), (41, 0.70), (6, 0.5)])
def test_early_timestep_mask_matches_authors_descending_indexing(num_scales, diff_rate):
  n = num_scales
  code_i = np.arange(n - 1)  # their interval index on the decreasing grid
  rho, smin, smax = 7.0, 0.002, 80.0
  t = (smax ** (1 / rho) + code_i / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho  # student level
  t2 = (smax ** (1 / rho) + (code_i + 1) / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
  want = code_i >= int(n * diff_rate)
  k = n - 2 - code_i  # the same intervals in this module's increasing indexing
  sig = np.asarray(cm.karras_sigmas(n), np.float64)
  np.testing.assert_allclose(sig[k + 1], t, rtol=1e-5)  # student (larger) level
  np.testing.assert_allclose(sig[k], t2, rtol=1e-5, atol=1e-8)
  got = np.asarray(cm.early_timestep_mask(jnp.asarray(k, jnp.int32), n, diff_rate))
  np.testing.assert_array_equal(got, want)
  assert got.any() and not got.all()
  assert t[got].max() < t[~got].min()  # the masked intervals are exactly the lowest-noise ones


def test_early_timestep_mask_special_cases_and_errors():
  k = jnp.arange(10)
  assert bool(jnp.all(cm.early_timestep_mask(k, 11, 0.0)))
  assert not bool(jnp.any(cm.early_timestep_mask(k, 11, 1.0)))
  assert jax.jit(cm.early_timestep_mask, static_argnums=(1, 2))(k, 11, 0.75).dtype == jnp.bool_
  with pytest.raises(ValueError, match="diff_rate"):
    cm.early_timestep_mask(k, 11, 1.5)
  with pytest.raises(TypeError, match="indices must be an integer"):
    cm.early_timestep_mask(jnp.zeros(3), 11)
  with pytest.raises(ValueError, match="num_scales"):
    cm.early_timestep_mask(k, 1)


def test_edm_weight_and_diffusion_loss_match_numpy():
  rng = np.random.default_rng(11)
  x, den = rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 3, 2))
  sigma = np.array([0.002, 0.1, 1.0, 80.0])
  sd = 0.5
  w = (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2  # Karras et al. 2022 lambda(sigma)
  np.testing.assert_allclose(np.asarray(cm.edm_diffusion_weight(jnp.asarray(sigma, jnp.float32)), np.float64), w,
                             rtol=1e-6)
  snr = sigma ** -2.0
  np.testing.assert_allclose(w, snr + 1.0 / sd ** 2, rtol=1e-12)  # the authors' get_weightings("karras", ...)
  want = ((den - x) ** 2).reshape(4, -1).mean(1) * w
  got = cm.lct_diffusion_loss(jnp.asarray(den, jnp.float32), jnp.asarray(x, jnp.float32),
                              jnp.asarray(sigma, jnp.float32))
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-5)
  assert float(jnp.max(cm.lct_diffusion_loss(jnp.asarray(x), jnp.asarray(x), jnp.asarray(sigma)))) == 0.0
  with pytest.raises(ValueError, match="sigma must have shape"):
    cm.lct_diffusion_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.ones(3))
  with pytest.raises(ValueError, match="sigma_data"):
    cm.edm_diffusion_weight(jnp.ones(2), sigma_data=0.0)


def test_lct_total_loss_masked_mean_empty_mask_and_nan_outside_mask():
  cons = np.array([0.5, 1.0, 2.0, 4.0])
  diff = np.array([3.0, np.nan, 5.0, np.inf])
  mask = np.array([True, False, True, False])
  got = float(jax.jit(cm.lct_total_loss)(jnp.asarray(cons), jnp.asarray(diff), jnp.asarray(mask), 5.0))
  assert got == pytest.approx(cons.mean() + 5.0 * diff[mask].mean(), rel=1e-6)
  none = jnp.zeros(4, bool)
  assert float(cm.lct_total_loss(jnp.asarray(cons), jnp.asarray(diff), none)) == pytest.approx(cons.mean())
  g = jax.grad(lambda d: cm.lct_total_loss(jnp.asarray(cons), d, jnp.asarray(mask), 2.0))(jnp.asarray(diff))
  np.testing.assert_allclose(np.asarray(g), [1.0, 0.0, 1.0, 0.0])
  with pytest.raises(TypeError, match="mask must be a boolean"):
    cm.lct_total_loss(jnp.asarray(cons), jnp.asarray(diff), jnp.ones(4))
  with pytest.raises(ValueError, match="one shape"):
    cm.lct_total_loss(jnp.asarray(cons), jnp.asarray(diff[:3]), jnp.asarray(mask))
  with pytest.raises(ValueError, match="diff_lambda"):
    cm.lct_total_loss(jnp.asarray(cons), jnp.asarray(diff), jnp.asarray(mask), -1.0)


def test_lct_objective_end_to_end_matches_authors_pipeline():
  """consistency_loss(Cauchy, mean) + early-timestep diffusion loss vs the authors' code path in float64 NumPy."""
  rng = np.random.default_rng(12)
  b, d, n = 16, 6, 11
  x = rng.normal(size=(b, d)) * 0.5
  z = rng.normal(size=(b, d))
  wmat = rng.normal(size=(d, d)) * 0.3
  code_i = rng.integers(0, n - 1, size=b)
  code_i[:3] = [n - 2, n - 3, 0]  # make sure both masked and unmasked intervals occur

  def np_denoise(xt, s):  # boundary-parameterised linear "network" (Song et al. 2023 c_skip / c_out)
    s = s[:, None]
    c_skip = 0.25 / ((s - 0.002) ** 2 + 0.25)
    c_out = (s - 0.002) * 0.5 / np.sqrt(0.25 + s ** 2)
    c_in = 1 / np.sqrt(s ** 2 + 0.25)
    return c_skip * xt + c_out * np.tanh((c_in * xt) @ wmat)

  rho, smin, smax = 7.0, 0.002, 80.0
  t = (smax ** (1 / rho) + code_i / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
  t2 = (smax ** (1 / rho) + (code_i + 1) / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
  distiller = np_denoise(x + z * t[:, None], t)
  target = np_denoise(x + z * t2[:, None], t2)  # Euler step with teacher = x0 lands on x + t2 z
  c = cm.lct_adaptive_c(21)
  cm_np = _np_authors_cauchy(distiller, target, c) * (1 / (t - t2))  # weight_schedule "ict"
  diff_idx = code_i >= int(n * 0.75)
  diff_np = ((distiller - x) ** 2).mean(1)[diff_idx] * (t[diff_idx] ** -2.0 + 1 / 0.25)
  want = cm_np.mean() + 5.0 * diff_np.mean()

  def apply_fn(p, xt, s):
    c_skip, c_out = cm.consistency_skip_out(s)
    c_in = 1 / jnp.sqrt(s ** 2 + 0.25)
    return c_skip[:, None] * xt + c_out[:, None] * jnp.tanh((c_in[:, None] * xt) @ p)

  @jax.jit  # the whole objective as one program
  def objective(k, params, xj, zj):
    sig = cm.karras_sigmas(n)
    sigma, sigma_next = sig[k], sig[k + 1]
    cons = cm.consistency_loss(apply_fn, params, xj, zj, sigma, sigma_next,
                               distance=functools.partial(cm.cauchy_loss, c=c, reduction="mean"))
    student = apply_fn(params, xj + sigma_next[:, None] * zj, sigma_next)
    diff = cm.lct_diffusion_loss(student, xj, sigma_next)
    return cm.lct_total_loss(cons, diff, cm.early_timestep_mask(k, n), 5.0)

  total = objective(jnp.asarray(n - 2 - code_i, jnp.int32), jnp.asarray(wmat, jnp.float32),
                    jnp.asarray(x, jnp.float32), jnp.asarray(z, jnp.float32))
  assert float(total) == pytest.approx(want, rel=2e-4)
