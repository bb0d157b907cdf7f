"""[146] SDL with auxiliary covariates: objective and gradient against a float64 NumPy transcription, its special
cases (xi = 0: multinomial logistic regression = optax cross-entropy; beta = gamma = 0: the plain factorisation
objective), and the block coordinate descent's monotone decrease on a planted low-rank toy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlib_methods.analysis.supervised_dictionary import SDLParams, sdl_bcd, sdl_objective


def _np_obj_grad(X, Y, Xa, W, H, b, g, xi, mode):
  """Float64 NumPy transcription of f and its hand-derived gradient (Lee, Lyu, Yao 2022, Sec. 2)."""
  n = X.shape[1]
  R = W @ H - X
  F = H if mode == "H" else W.T @ X
  a = F.T @ b + Xa.T @ g
  full = np.concatenate([np.zeros((n, 1)), a], 1)
  m = full.max(1, keepdims=True)
  lse = (m + np.log(np.exp(full - m).sum(1, keepdims=True)))[:, 0]
  f = xi * np.sum(R ** 2) + np.sum(lse - full[np.arange(n), Y])
  P = np.exp(full - lse[:, None])
  onehot = np.eye(b.shape[1] + 1)[Y]
  E = (P - onehot)[:, 1:]  # d f / d a, [n, kappa]
  dW, dH = 2 * xi * R @ H.T, 2 * xi * W.T @ R
  if mode == "H":
    dH = dH + b @ E.T
  else:
    dW = dW + X @ E @ b.T
  return f, (dW, dH, F @ E, Xa @ E)


def _problem(seed=0, p=6, n=9, q=2, r=3, kappa=2):
  rng = np.random.default_rng(seed)
  X = rng.normal(size=(p, n))
  Xa = rng.normal(size=(q, n))
  Y = rng.integers(0, kappa + 1, size=n)
  P = SDLParams(rng.normal(size=(p, r)), rng.normal(size=(r, n)), rng.normal(size=(r, kappa)),
                rng.normal(size=(q, kappa)))
  return X, Y, Xa, P


@jax.enable_x64(True)
def test_objective_and_gradient_match_numpy_and_special_cases():
  X, Y, Xa, P = _problem()
  both = jax.jit(lambda P: [jax.value_and_grad(lambda P: sdl_objective(X, Y, Xa, P, 0.7, mode=m))(P)
                            for m in ("H", "W")])
  for mode, (f, g) in zip(("H", "W"), both(P)):
    f_np, g_np = _np_obj_grad(X, Y, Xa, *P, 0.7, mode)
    np.testing.assert_allclose(f, f_np, rtol=1e-12)
    for got, want in zip(g, g_np):
      np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
  # xi = 0, mode H: multinomial logistic regression on [h; x'] with the baseline class's logit fixed at 0
  a = P.H.T @ P.beta + Xa.T @ P.gamma
  ce = optax.softmax_cross_entropy_with_integer_labels(jnp.concatenate([jnp.zeros((9, 1)), a], 1), Y).sum()
  np.testing.assert_allclose(sdl_objective(X, Y, Xa, P, 0.0), ce, rtol=1e-12)
  # beta = gamma = 0: xi ||X - W H||_F^2 plus n log(kappa + 1) (uniform class probabilities)
  P0 = P._replace(beta=0 * P.beta, gamma=0 * P.gamma)
  want = 2.5 * np.linalg.norm(X - P.W @ P.H) ** 2 + 9 * np.log(3)
  np.testing.assert_allclose(sdl_objective(X, Y, Xa, P0, 2.5, mode="W"), want, rtol=1e-12)


@pytest.mark.slow  # two scan compiles: ~7 s on the loaded 2-core machine
@pytest.mark.parametrize("mode,nonneg", [("H", True), ("W", False)])
@jax.enable_x64(True)
def test_bcd_monotone_on_planted_low_rank_toy(mode, nonneg):
  rng = np.random.default_rng(3)
  p, n, q, r, kappa = 8, 40, 1, 2, 1
  W0, H0 = np.abs(rng.normal(size=(p, r))), np.abs(rng.normal(size=(r, n)))
  X = W0 @ H0 + 0.01 * rng.normal(size=(p, n))
  Xa = rng.normal(size=(q, n))
  Y = (H0[0] - H0[1] + 0.3 * Xa[0] > 0).astype(np.int32)  # labels from the planted codes and the covariate
  init = SDLParams(np.abs(rng.normal(size=(p, r))), np.abs(rng.normal(size=(r, n))), np.zeros((r, kappa)),
                   np.zeros((q, kappa)))
  run = jax.jit(sdl_bcd, static_argnames=("mode", "num_iters", "nonnegative"))
  P, fs = run(X, Y, Xa, init, 1.0, mode=mode, num_iters=60, nonnegative=nonneg)
  fs = np.asarray(fs)
  assert fs.shape == (61,)
  assert np.all(np.diff(fs) <= 1e-9 * np.abs(fs[:-1])), (mode, np.diff(fs).max())  # non-increasing every sweep
  assert fs[-1] < 0.5 * fs[0], (mode, fs[0], fs[-1])  # and it actually descends
  np.testing.assert_allclose(fs[-1], sdl_objective(X, Y, Xa, P, 1.0, mode=mode), rtol=1e-12)
  if nonneg:
    assert (np.asarray(P.W) >= 0).all() and (np.asarray(P.H) >= 0).all()


@jax.enable_x64(True)
def test_bad_input_errors():
  X, Y, Xa, P = _problem()
  with pytest.raises(ValueError, match="mode"):
    sdl_objective(X, Y, Xa, P, 1.0, mode="Z")
  with pytest.raises(ValueError, match="Y"):
    sdl_objective(X, np.full(9, 3), Xa, P, 1.0)
  with pytest.raises(TypeError, match="Y"):
    sdl_objective(X, Y.astype(float), Xa, P, 1.0)
  with pytest.raises(ValueError, match="xi"):
    sdl_objective(X, Y, Xa, P, -1.0)
  with pytest.raises(ValueError, match="params.H"):
    sdl_objective(X, Y, Xa, P._replace(H=P.H[:, :3]), 1.0)
  with pytest.raises(ValueError, match="nonnegative"):
    sdl_bcd(X, Y, Xa, P, 1.0, nonnegative=True)
  with pytest.raises(ValueError, match="num_iters"):
    sdl_bcd(X, Y, Xa, P, 1.0, num_iters=0)
