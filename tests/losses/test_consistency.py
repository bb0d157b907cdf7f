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
  v, g = jax.value_and_grad(lambda a: cm.pseudo_huber_loss(a, jnp.zeros_like(a)).sum())(x)
  assert float(v) == 0.0 and np.all(np.isfinite(np.asarray(g, np.float32)))
  big = jnp.full((2, 8), 1e4, jnp.bfloat16)
  assert np.all(np.isfinite(np.asarray(cm.pseudo_huber_loss(big, jnp.zeros_like(big)), np.float32)))


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
  np.testing.assert_allclose(np.asarray(cm.lognormal_sigma_probs(jnp.asarray(s))), p_ref, rtol=1e-4, atol=1e-7)
  idx = cm.sample_sigma_indices(jax.random.key(0), jnp.asarray(s), (20000,))
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

  loss = cm.consistency_loss(apply_fn, jnp.asarray(w, jnp.float32), jnp.asarray(x, jnp.float32),
                             jnp.asarray(z, jnp.float32), jnp.asarray(sig, jnp.float32),
                             jnp.asarray(sig_next, jnp.float32))
  student = (x + sig_next[:, None] * z) @ w + np.tanh(sig_next)[:, None]
  teacher = (x + sig[:, None] * z) @ w + np.tanh(sig)[:, None]
  c = 0.00054 * math.sqrt(d)
  ref = _np_pseudo_huber(student, teacher, c) / (sig_next - sig)
  np.testing.assert_allclose(np.asarray(loss), ref, rtol=1e-4)
  # Gradient flows only through the student branch: d/dW of d(student(W), const) at the same W.
  g = jax.grad(lambda p: cm.consistency_loss(apply_fn, p, jnp.asarray(x, jnp.float32), jnp.asarray(z, jnp.float32),
                                             jnp.asarray(sig, jnp.float32),
                                             jnp.asarray(sig_next, jnp.float32)).sum())(jnp.asarray(w, jnp.float32))
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
