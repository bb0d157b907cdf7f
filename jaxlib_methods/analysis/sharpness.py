"""Sharpness: the top eigenvalue of the loss Hessian, by Hessian-vector products (power iteration or Lanczos).

Measured by [92] Noci, Meterez, Hofmann, Orvieto, "Why do Learning Rates Transfer? Reconciling Optimization and
Scaling Limits for Deep Learning", 2024, arXiv:2402.17457 (Sec. 3: "super consistency" of lambda_max across widths
under µP). The HVP is forward-over-reverse (Pearlmutter 1994); Lanczos follows Golub & Van Loan, "Matrix
Computations", Alg. 10.1.1, with full reorthogonalisation (cheap at the few tens of iterations used here).
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxlib_methods import validation


def hvp(loss_fn: Callable[[Any], jax.Array], params: Any, v: Any) -> Any:
  """Hessian-vector product H(params) v of a scalar `loss_fn`, by jvp of grad (forward-over-reverse; Pearlmutter
  1994, "Fast Exact Multiplication by the Hessian", Neural Computation 6(1)).

  Args:
    loss_fn: params -> scalar.
    params: a pytree of floating arrays.
    v: a pytree of the same structure, shapes and dtypes as `params`.

  Returns:
    H v, a pytree like params.
  """
  validation.check_float_tree(params, "params")
  p_leaves, p_def = jax.tree_util.tree_flatten(params)
  v_leaves, v_def = jax.tree_util.tree_flatten(v)
  if p_def != v_def:
    raise ValueError(f"v must have the tree structure of params, got {v_def} for params {p_def}")
  for i, (a, b) in enumerate(zip(p_leaves, v_leaves)):
    if jnp.shape(a) != jnp.shape(b) or jnp.result_type(a) != jnp.result_type(b):
      raise ValueError(f"v's leaf {i} must match params' leaf in shape and dtype, got {jnp.shape(b)} "
                       f"{jnp.result_type(b)} for {jnp.shape(a)} {jnp.result_type(a)}")
  return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def hessian_top_eigenvalue(loss_fn: Callable[[Any], jax.Array], params: Any, *, key: jax.Array,
                           num_iters: int = 20, method: Literal["power", "lanczos"] = "power") -> tuple[jax.Array,
                                                                                                        jax.Array]:
  """Top Hessian eigenvalue ("sharpness" lambda_max) of `loss_fn` at `params` (measured by Noci et al. 2024,
  arXiv:2402.17457, Sec. 3). Jit it (close over the batch): un-jitted, every HVP is dispatched op by op.

  'power': power iteration v <- Hv / ||Hv|| (converges to the eigenvalue of largest |lambda|, which is lambda_max
  near a minimum or on the edge of stability; its sign is kept). 'lanczos': `num_iters` Lanczos steps with full
  reorthogonalisation; returns the largest Ritz value (the algebraically largest eigenvalue estimate).

  Args:
    loss_fn: params -> scalar (close over the batch).
    params: pytree of floating arrays (P >= 1 scalars in total; TypeError for integer leaves).
    key: PRNG key for the start vector.
    num_iters: iterations / Krylov dimension (>= 1; Lanczos uses min(num_iters, P)).
    method: 'power' or 'lanczos'.

  Returns:
    (eigenvalue estimate scalar, eigenvector as a flat [P] array); NaN if the loss or its Hessian is NaN.
  """
  if isinstance(num_iters, bool) or not isinstance(num_iters, int):
    raise TypeError(f"num_iters must be an int, got {num_iters=}")
  if num_iters < 1:
    raise ValueError(f"num_iters must be >= 1, got {num_iters=}")
  if method not in ("power", "lanczos"):
    raise ValueError(f"method must be 'power' or 'lanczos', got {method=}")
  validation.check_float_tree(params, "params")
  flat, unravel = ravel_pytree(params)
  n = flat.shape[0]
  if n == 0:
    raise ValueError("params has no entries (P = 0): there is no Hessian to measure")

  def mv(x):
    return ravel_pytree(hvp(loss_fn, params, unravel(x.astype(flat.dtype))))[0]

  v0 = jax.random.normal(key, (n,), flat.dtype)
  v0 = v0 / jnp.linalg.norm(v0)
  if method == "power":
    def body(_, carry):
      v, _lam = carry
      hv = mv(v)
      lam = jnp.vdot(v, hv)
      return hv / jnp.maximum(jnp.linalg.norm(hv), jnp.finfo(flat.dtype).tiny), lam
    v, _ = jax.lax.fori_loop(0, num_iters, body, (v0, jnp.zeros((), flat.dtype)))
    return jnp.vdot(v, mv(v)), v

  m = min(num_iters, n)
  basis = jnp.zeros((m + 1, n), flat.dtype).at[0].set(v0)
  alphas = jnp.zeros((m,), flat.dtype)
  betas = jnp.zeros((m,), flat.dtype)

  def lanczos_step(i, carry):
    basis, alphas, betas = carry
    w = mv(basis[i])
    alpha = jnp.vdot(w, basis[i])
    # Full reorthogonalisation against the basis built so far (rows > i are zero).
    w = w - basis.T @ (basis @ w)
    w = w - basis.T @ (basis @ w)
    beta = jnp.linalg.norm(w)
    # When the Krylov space is (nearly) invariant, beta is at rounding level and w / beta is mostly rounding noise
    # that is no longer orthogonal to the basis: orthogonalise the normalised vector again, and stop (breakdown)
    # when little of it is left, so the basis stays orthonormal (else T's Ritz values are meaningless).
    q = w / jnp.maximum(beta, jnp.finfo(flat.dtype).tiny)
    q = q - basis.T @ (basis @ q)
    qn = jnp.linalg.norm(q)
    ok = (beta > 0) & (qn > 0.5)
    nxt = jnp.where(ok, q / jnp.where(ok, qn, 1), jnp.zeros_like(q))
    return basis.at[i + 1].set(nxt), alphas.at[i].set(alpha), betas.at[i].set(jnp.where(ok, beta, 0))

  basis, alphas, betas = jax.lax.fori_loop(0, m, lanczos_step, (basis, alphas, betas))
  # After a breakdown the basis rows are 0 and their alphas 0: put those diagonal entries below the Gershgorin lower
  # bound of the live block, so a spurious Ritz value 0 can never be the largest one.
  live = jnp.any(basis[:m] != 0, axis=1)
  b_prev = jnp.concatenate([jnp.zeros((1,), flat.dtype), betas[:-1]])
  lower = jnp.min(jnp.where(live, alphas - jnp.abs(b_prev) - jnp.abs(betas), jnp.inf))
  alphas = jnp.where(live, alphas, lower - 1 - jnp.abs(lower))
  t = jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)
  ct = validation.compute_dtype_for(flat.dtype)                  # eigh has no float16/bfloat16 kernel
  evals, evecs = jnp.linalg.eigh(t.astype(ct))
  vec = basis[:m].T.astype(ct) @ evecs[:, -1]
  return evals[-1].astype(flat.dtype), (vec / jnp.linalg.norm(vec)).astype(flat.dtype)
