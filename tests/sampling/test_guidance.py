"""[136] APG and CFG against a float64 NumPy transcription of the paper's Algorithm 1 (Sadat et al. 2024,
arXiv:2410.02416); the analytic Gaussian-mixture denoiser and DDIM against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.data.gaussian_mixture import make_gaussian_mixture
from jaxlib_methods.sampling import (APGState, apg_guidance, apg_init, cfg_guidance, ddim_sample,
                                     gaussian_mixture_denoiser, project)


def _apg_numpy(dc_seq, du_seq, w, eta, r, beta):
  """The paper's Algorithm 1 over a sequence of steps, float64, per example (all non-batch axes)."""
  run = np.zeros_like(dc_seq[0])
  outs = []
  for dc, du in zip(dc_seq, du_seq):
    diff = dc - du + beta * run
    run = diff
    n = np.sqrt((diff ** 2).reshape(len(diff), -1).sum(1)).reshape(-1, 1, 1)
    diff = diff * np.minimum(1.0, r / n)
    u = dc / np.sqrt((dc ** 2).reshape(len(dc), -1).sum(1)).reshape(-1, 1, 1)
    par = (diff * u).reshape(len(diff), -1).sum(1).reshape(-1, 1, 1) * u
    outs.append(dc + (w - 1) * (diff - par + eta * par))
  return outs


def test_apg_matches_the_paper_algorithm_and_cfg_special_case():
  rng = np.random.default_rng(0)
  dc = rng.normal(size=(3, 4, 5, 6))     # 3 steps of [B=4, 5, 6]
  du = rng.normal(size=(3, 4, 5, 6))
  w, eta, r, beta = 7.5, 0.3, 2.0, -0.75
  ref = _apg_numpy(dc, du, w, eta, r, beta)
  step = jax.jit(lambda a, b, s: apg_guidance(a, b, w, eta=eta, norm_threshold=r, momentum=beta, state=s))
  state = apg_init(jnp.asarray(dc[0], jnp.float32))
  for t in range(3):
    out, state = step(jnp.asarray(dc[t], jnp.float32), jnp.asarray(du[t], jnp.float32), state)
    np.testing.assert_allclose(np.asarray(out), ref[t], rtol=2e-5, atol=2e-5)
  x, y = jnp.asarray(dc[0], jnp.float32), jnp.asarray(du[0], jnp.float32)

  @jax.jit   # the special cases below in one program (eager: ~45 small compiles)
  def cases(x, y):
    out, _ = apg_guidance(x, y, w, eta=1.0, norm_threshold=float("inf"), momentum=0.0)
    par, perp = project(y, x)
    vm = jax.vmap(lambda a, b: apg_guidance(a, b, w, eta=eta, norm_threshold=r, axis=(0, 1))[0])(x, y)
    z, _ = apg_guidance(jnp.zeros((2, 3)), jnp.ones((2, 3)), 3.0)
    return out, cfg_guidance(x, y, w), par + perp, perp, vm, apg_guidance(x, y, w, eta=eta, norm_threshold=r)[0], z

  out, cfg, par_plus_perp, perp, vm, batched, z = cases(x, y)
  # eta = 1, r = inf, beta = 0 is CFG: D_u + w (D_c - D_u)
  np.testing.assert_allclose(np.asarray(out), du[0] + w * (dc[0] - du[0]), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(cfg), du[0] + w * (dc[0] - du[0]), rtol=1e-5, atol=1e-5)
  # the split: par + perp = v, perp orthogonal to D_c per example, par parallel to it
  np.testing.assert_allclose(np.asarray(par_plus_perp), du[0], rtol=1e-5, atol=1e-5)
  dots = np.einsum("bij,bij->b", np.asarray(perp, np.float64), dc[0])
  np.testing.assert_allclose(dots, 0.0, atol=1e-4)
  # vmap over the batch with per-example axes equals the batched call
  np.testing.assert_allclose(np.asarray(vm), np.asarray(batched), rtol=1e-6, atol=1e-6)
  # zero direction: no NaN, the whole update is orthogonal
  np.testing.assert_allclose(np.asarray(z), -2.0 * np.ones((2, 3)))


def test_apg_bad_inputs():
  a = jnp.ones((2, 3))
  with pytest.raises(ValueError, match="d_cond and d_uncond"):
    apg_guidance(a, jnp.ones((2, 4)), 2.0)
  with pytest.raises(TypeError, match="d_uncond"):
    apg_guidance(a, jnp.ones((2, 3), jnp.int32), 2.0)
  with pytest.raises(ValueError, match="norm_threshold"):
    apg_guidance(a, a, 2.0, norm_threshold=0.0)
  with pytest.raises(ValueError, match="momentum"):
    apg_guidance(a, a, 2.0, momentum=1.0)
  with pytest.raises(ValueError, match="state"):
    apg_guidance(a, a, 2.0, state=APGState(jnp.zeros((3,))))
  with pytest.raises(ValueError, match="guidance_scale"):
    cfg_guidance(a, a, float("nan"))


def test_gaussian_mixture_denoiser_and_ddim_closed_forms():
  rng = np.random.default_rng(1)
  w, mu, s = np.array([0.2, 0.5, 0.3]), rng.normal(size=(3, 2)) * 2, np.array([0.5, 1.0, 1.5])
  mix = make_gaussian_mixture(w, mu, s)
  x = rng.normal(size=(7, 2)) * 3
  denoise = jax.jit(gaussian_mixture_denoiser)   # one compile for the three noise levels (sigma traced)
  for sigma in (0.0, 0.3, 2.0):
    v = s ** 2 + sigma ** 2                                              # noised component variances
    logr = np.log(w) - ((x[:, None] - mu[None]) ** 2).sum(-1) / (2 * v) - np.log(v)    # D = 2: log det = 2 log sd
    r = np.exp(logr - logr.max(1, keepdims=True))
    r /= r.sum(1, keepdims=True)
    post = (sigma ** 2 * mu[None] + s[None, :, None] ** 2 * x[:, None]) / v[None, :, None]
    ref = (r[..., None] * post).sum(1)
    got = denoise(mix, jnp.asarray(x, jnp.float32), sigma)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-4, atol=1e-4)
  # DDIM on one Gaussian is linear: x_0 - mu = prod_i [s^2 + sig_{i+1} sig_i] / (s^2 + sig_i^2) (x_T - mu)
  one = make_gaussian_mixture(np.ones(1), np.array([[1.0, -2.0]]), np.array([0.7]))
  sig = np.array([20.0, 5.0, 1.0, 0.3, 0.0])
  xT = rng.normal(size=(5, 2)) * 20
  fac = np.prod([(0.49 + b * a) / (0.49 + a * a) for a, b in zip(sig[:-1], sig[1:])])
  den = lambda x, sigma, c: (gaussian_mixture_denoiser(one, x, sigma), c + 1)
  out, count = jax.jit(lambda x: ddim_sample(den, x, jnp.asarray(sig, jnp.float32), jnp.int32(0)))(
      jnp.asarray(xT, jnp.float32))
  np.testing.assert_allclose(np.asarray(out), np.array([1.0, -2.0]) + fac * (xT - np.array([1.0, -2.0])),
                             rtol=1e-4, atol=1e-4)
  assert int(count) == 4
  with pytest.raises(ValueError, match="sigmas"):
    ddim_sample(den, jnp.asarray(xT, jnp.float32), jnp.array([1.0, 2.0]), 0)
  with pytest.raises(ValueError, match="x must be"):
    gaussian_mixture_denoiser(mix, jnp.ones((3, 5)), 1.0)


def test_apg_gradient_is_finite_where_the_guidance_update_is_zero():
  """With a finite norm_threshold, ||Delta|| was jnp.sqrt(sum(Delta^2)): at Delta = 0 (D_c = D_u, e.g. an unconditional
  step or a zero-initialised conditioning) its gradient is NaN and poisoned the whole gradient. The norm is now
  `safe_l2_norm` (gradient 0 at 0); the forward value is unchanged."""
  d = jax.random.normal(jax.random.key(0), (2, 3, 4))
  f = lambda a, b: apg_guidance(a, b, 3.0, norm_threshold=1.0, momentum=-0.5)[0].sum()
  g_c, g_u = jax.grad(f, argnums=(0, 1))(d, d)
  assert np.all(np.isfinite(np.asarray(g_c))) and np.all(np.isfinite(np.asarray(g_u)))
  np.testing.assert_allclose(np.asarray(apg_guidance(d, d, 3.0, norm_threshold=1.0)[0]), np.asarray(d), rtol=1e-6)
  u = jax.random.normal(jax.random.key(1), (2, 3, 4))
  out = apg_guidance(d, u, 3.0, norm_threshold=0.5, eta=0.0)[0]
  diff = np.asarray(d - u, np.float64)
  diff *= np.minimum(1.0, 0.5 / np.sqrt((diff ** 2).sum(axis=(1, 2), keepdims=True)))
  unit = np.asarray(d, np.float64) / np.sqrt((np.asarray(d, np.float64) ** 2).sum(axis=(1, 2), keepdims=True))
  perp = diff - (diff * unit).sum(axis=(1, 2), keepdims=True) * unit
  np.testing.assert_allclose(np.asarray(out), np.asarray(d, np.float64) + 2.0 * perp, rtol=1e-5, atol=1e-6)
