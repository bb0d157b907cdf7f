"""Supervised dictionary learning (SDL) with auxiliary covariates: the objective and its block coordinate descent.

Lee, Lyu, Yao, "Supervised Dictionary Learning with Auxiliary Covariates", 2022, arXiv:2206.06774 (NeurIPS 2023
version: "Exponentially Convergent Algorithms for Supervised Matrix Factorization", arXiv:2311.11182). With data
X in R^{p x n} (columns are examples), auxiliary covariates X' in R^{q x n}, labels y_i in {0, 1, ..., kappa},
dictionary W in R^{p x r}, codes H in R^{r x n}, regression coefficients beta in R^{r x kappa} and gamma in
R^{q x kappa}, the SDL objective (Sec. 2) is

    f(W, H, beta, gamma) = xi ||X - W H||_F^2 + sum_i l(y_i, a_i),
    a_i = beta^T h_i + gamma^T x'_i         (SDL-H, "feature-based": the code h_i feeds the classifier)
    a_i = beta^T W^T x_i + gamma^T x'_i     (SDL-W, "filter-based": the filtered features W^T x_i feed it)

with l the multinomial-logistic negative log-likelihood with class 0 as the baseline (activation 0):
l(y, a) = log(1 + sum_{c=1}^kappa exp(a_c)) - a_y (a_0 = 0). xi >= 0 trades reconstruction against classification.

`sdl_bcd` is the paper's block coordinate descent over the blocks W, H, (beta, gamma): one (projected) gradient step
per block with step 1 / L_block, L_block an upper bound on the block's gradient Lipschitz constant (Frobenius norms
bound the spectral ones; the softmax Hessian is bounded by 1/2), so by the descent lemma the objective never
increases. Not implemented here: the lifted convex problem's low-rank projected GD (`sdl_lpgd` of the catalog row)
and the paper's L2 regularisers (the objective above is the unregularised one).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlib_methods import validation

_MODES = ("H", "W")


class SDLParams(NamedTuple):
  """SDL parameters: W [p, r] dictionary, H [r, n] codes, beta [r, kappa], gamma [q, kappa] coefficients (Lee, Lyu,
  Yao, "Supervised Dictionary Learning with Auxiliary Covariates", 2022, arXiv:2206.06774)."""
  W: jax.Array
  H: jax.Array
  beta: jax.Array
  gamma: jax.Array


def _check_mode(mode):
  if mode not in _MODES:
    raise ValueError(f"mode must be one of {_MODES} ('H': codes feed the classifier, 'W': filtered features W^T x "
                     f"do), got {mode=!r}")


def _check_data(X, Y, X_aux, num_classes=None):
  X = validation.check_floating(X, "X")
  X_aux = validation.check_floating(X_aux, "X_aux")
  if X.ndim != 2 or X.shape[1] < 1:
    raise ValueError(f"X must be a [p, n] matrix (columns are examples, n >= 1), got X.shape={X.shape}")
  if X_aux.ndim != 2 or X_aux.shape[1] != X.shape[1]:
    raise ValueError(f"X_aux must be a [q, n] matrix with X's n={X.shape[1]} columns, got X_aux.shape={X_aux.shape}")
  Y = validation.check_integer(Y, "Y")
  if Y.shape != (X.shape[1],):
    raise ValueError(f"Y must be [n] = [{X.shape[1]}] integer labels, got Y.shape={Y.shape}")
  if num_classes is not None:
    validation.check_labels(Y, num_classes, "Y")
  for name, v in (("X", X), ("X_aux", X_aux)):
    if not validation.is_traced(v) and not bool(np.all(np.isfinite(np.asarray(v)))):
      raise ValueError(f"{name} must be finite (no NaN/Inf)")
  return X, Y, X_aux


def _activations(X, X_aux, params, mode):
  feats = params.H if mode == "H" else params.W.T @ X  # [r, n]
  return feats.T @ params.beta + X_aux.T @ params.gamma  # [n, kappa]


def _nll(a, Y):
  """sum_i log(1 + sum_c exp(a_ic)) - a_{i, y_i} with a_{i0} = 0: [n, kappa] activations, [n] labels."""
  full = jnp.concatenate([jnp.zeros(a.shape[:1] + (1,), a.dtype), a], axis=1)
  return jnp.sum(jax.nn.logsumexp(full, axis=1) - jnp.take_along_axis(full, Y[:, None], axis=1)[:, 0])


def sdl_objective(X, Y, X_aux, params: SDLParams, xi, *, mode: Literal["H", "W"] = "H"):
  """The SDL objective f = xi ||X - W H||_F^2 + sum_i l(y_i, a_i) (Lee, Lyu, Yao 2022, arXiv:2206.06774, Sec. 2).

  Args:
    X: [p, n] float data matrix, one example per column.
    Y: [n] int labels in {0, ..., kappa} (class 0 is the multinomial-logistic baseline).
    X_aux: [q, n] float auxiliary covariates (q may be 0).
    params: `SDLParams(W [p, r], H [r, n], beta [r, kappa], gamma [q, kappa])`, kappa >= 1.
    xi: the reconstruction weight, a float >= 0.
    mode: "H" (SDL-H, a_i = beta^T h_i + gamma^T x'_i) or "W" (SDL-W, a_i = beta^T W^T x_i + gamma^T x'_i).

  Returns:
    The scalar objective, in X's dtype.
  """
  _check_mode(mode)
  params = _check_params(params, X, X_aux)
  X, Y, X_aux = _check_data(X, Y, X_aux)
  valid = validation.check_labels(Y, params.beta.shape[1] + 1, "Y")
  validation.check_nonnegative(xi, "xi")
  recon = jnp.sum((X - params.W @ params.H) ** 2)
  f = xi * recon + _nll(_activations(X, X_aux, params, mode), Y)
  return f if valid is None else jnp.where(jnp.all(valid), f, jnp.nan)  # traced out-of-range labels: NaN


def _check_params(params, X, X_aux):
  if not isinstance(params, SDLParams):
    raise TypeError(f"params must be an SDLParams(W, H, beta, gamma), got {type(params).__name__}")
  W, H, beta, gamma = (validation.check_floating(v, f"params.{n}") for n, v in zip(SDLParams._fields, params))
  p, n, q = np.shape(X)[0], np.shape(X)[-1], np.shape(X_aux)[0]
  if W.ndim != 2 or W.shape[0] != p or W.shape[1] < 1:
    raise ValueError(f"params.W must be [p, r] = [{p}, r >= 1], got params.W.shape={W.shape}")
  r = W.shape[1]
  if H.shape != (r, n):
    raise ValueError(f"params.H must be [r, n] = [{r}, {n}], got params.H.shape={H.shape}")
  if beta.ndim != 2 or beta.shape[0] != r or beta.shape[1] < 1:
    raise ValueError(f"params.beta must be [r, kappa] = [{r}, kappa >= 1], got params.beta.shape={beta.shape}")
  if gamma.shape != (q, beta.shape[1]):
    raise ValueError(f"params.gamma must be [q, kappa] = [{q}, {beta.shape[1]}], got params.gamma.shape={gamma.shape}")
  return SDLParams(W, H, beta, gamma)


def sdl_bcd(X, Y, X_aux, params: SDLParams, xi, *, mode: Literal["H", "W"] = "H", num_iters: int = 100,
            nonnegative: bool = False):
  """Block coordinate descent on the SDL objective (Lee, Lyu, Yao 2022, arXiv:2206.06774, Algorithm "SDL-BCD").

  Each iteration updates W, then H, then (beta, gamma), each by one gradient step (projected onto the nonnegative
  orthant when `nonnegative`) of size 1 / L, with L = 2 xi ||H||_F^2 (+ ||X||_F^2 ||beta||_F^2 / 2 in mode "W") for W,
  2 xi ||W||_F^2 (+ ||beta||_F^2 / 2 in mode "H") for H and (||F||_F^2 + ||X'||_F^2) / 2 for (beta, gamma) (F the
  classifier's features): upper bounds on the blocks' smoothness, so the objective is non-increasing.

  Args:
    X: [p, n] float data matrix, one example per column.
    Y: [n] int labels in {0, ..., kappa}.
    X_aux: [q, n] float auxiliary covariates.
    params: the initial `SDLParams(W [p, r], H [r, n], beta [r, kappa], gamma [q, kappa])`.
    xi: the reconstruction weight, a float >= 0.
    mode: "H" (SDL-H) or "W" (SDL-W), as in `sdl_objective`.
    num_iters: number of BCD sweeps, an int >= 1.
    nonnegative: keep W and H >= 0 (supervised NMF); the initial W, H must then be nonnegative.

  Returns:
    A tuple of the final `SDLParams` and the [num_iters + 1] objective values (the initial value first).
  """
  _check_mode(mode)
  params = _check_params(params, X, X_aux)
  X, Y, X_aux = _check_data(X, Y, X_aux, params.beta.shape[1] + 1)
  validation.check_nonnegative(xi, "xi")
  if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 1:
    raise ValueError(f"num_iters must be an int >= 1, got {num_iters=!r}")
  if not isinstance(nonnegative, bool):
    raise TypeError(f"nonnegative must be a bool, got {nonnegative=!r}")
  if nonnegative and not validation.is_traced(params.W) and not validation.is_traced(params.H):
    if np.any(np.asarray(params.W) < 0) or np.any(np.asarray(params.H) < 0):
      raise ValueError("params.W and params.H must be >= 0 when nonnegative=True")
  proj = (lambda v: jnp.maximum(v, 0)) if nonnegative else (lambda v: v)
  sq = lambda v: jnp.sum(v * v)
  tiny = jnp.finfo(X.dtype).tiny
  obj = lambda P: sdl_objective(X, Y, X_aux, P, xi, mode=mode)

  def sweep(P, _):
    gW = jax.grad(lambda W: obj(P._replace(W=W)))(P.W)
    LW = 2 * xi * sq(P.H) + (0.5 * sq(X) * sq(P.beta) if mode == "W" else 0.0)
    P = P._replace(W=proj(P.W - gW / jnp.maximum(LW, tiny)))
    gH = jax.grad(lambda H: obj(P._replace(H=H)))(P.H)
    LH = 2 * xi * sq(P.W) + (0.5 * sq(P.beta) if mode == "H" else 0.0)
    P = P._replace(H=proj(P.H - gH / jnp.maximum(LH, tiny)))
    gb, gg = jax.grad(lambda b, g: obj(P._replace(beta=b, gamma=g)), argnums=(0, 1))(P.beta, P.gamma)
    F = P.H if mode == "H" else P.W.T @ X
    Lc = 0.5 * (sq(F) + sq(X_aux))
    Lc = jnp.maximum(Lc, tiny)
    P = P._replace(beta=P.beta - gb / Lc, gamma=P.gamma - gg / Lc)
    return P, obj(P)

  f0 = obj(params)
  params, fs = jax.lax.scan(sweep, params, None, length=num_iters)
  return params, jnp.concatenate([f0[None], fs])
