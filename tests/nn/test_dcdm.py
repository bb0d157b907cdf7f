"""[176] DCDM: with the identity "network" and k_orth = 1 it is CG (a float64 NumPy Hestenes-Stiefel transcription
and jax.scipy.sparse.linalg.cg); the Poisson operator against its dense Kronecker form; the scale-invariant loss
against its closed-form minimum over alpha."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxlib_methods.nn.dcdm import (DCDMNet, dcdm_solve, poisson_2d_eigenvectors, poisson_2d_matvec,
                                    scale_invariant_residual_loss)
from tests.nn._layer_contract import check_layer_contract


def _dense_poisson(n):
  t = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
  return np.kron(t, np.eye(n)) + np.kron(np.eye(n), t)


def _numpy_cg(a, b, iters):
  x, r = np.zeros_like(b), b.copy()
  p, res = r.copy(), [np.linalg.norm(r) / np.linalg.norm(b)]
  for _ in range(iters):
    ap = a @ p
    alpha = (r @ r) / (p @ ap)
    x = x + alpha * p
    r_new = r - alpha * ap
    p = r_new + (r_new @ r_new) / (r @ r) * p
    r = r_new
    res.append(np.linalg.norm(r) / np.linalg.norm(b))
  return x, np.array(res)


def test_dcdm_identity_is_cg_and_poisson_operator():
  n = 8
  a = _dense_poisson(n)
  rng = np.random.default_rng(0)
  b = rng.normal(size=(n, n))
  with jax.enable_x64(True):
    np.testing.assert_allclose(np.asarray(poisson_2d_matvec(jnp.asarray(b))).ravel(), a @ b.ravel(), atol=1e-12)
    v, lam = poisson_2d_eigenvectors(n, [[1, 1], [2, 5], [8, 3]])
    for vi, li in zip(v, lam):
      np.testing.assert_allclose(a @ vi.ravel(), li * vi.ravel(), atol=1e-12)
      assert abs(np.linalg.norm(vi) - 1) < 1e-12
    solve = jax.jit(lambda b: dcdm_solve(poisson_2d_matvec, b, lambda r: r, k_orth=1, tol=1e-300, max_iters=6))
    x, info = solve(jnp.asarray(b))
    x_ref, res_ref = _numpy_cg(a, b.ravel(), 6)
    np.testing.assert_allclose(np.asarray(x).ravel(), x_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(info["residuals"]), res_ref, rtol=1e-8)
    x_cg, _ = jax.scipy.sparse.linalg.cg(poisson_2d_matvec, jnp.asarray(b), tol=0.0, maxiter=6)
    np.testing.assert_allclose(np.asarray(x), np.asarray(x_cg), rtol=1e-9, atol=1e-12)
    # the exact inverse as the "network": one iteration
    inv = jnp.asarray(np.linalg.inv(a))
    x1, info1 = dcdm_solve(poisson_2d_matvec, jnp.asarray(b), lambda r: (inv @ r.ravel()).reshape(n, n), tol=1e-10)
    assert int(info1["iters"]) == 1
    np.testing.assert_allclose(np.asarray(x1).ravel(), np.linalg.solve(a, b.ravel()), atol=1e-10)
    # scale-invariant loss = min over alpha of ||r - alpha A f||^2 (closed form), 0 for f = c A^{-1} r
    r = rng.normal(size=(3, n, n))
    f = rng.normal(size=(3, n, n))
    af = np.asarray(poisson_2d_matvec(jnp.asarray(f)))
    alpha = np.sum(r * af, (1, 2)) / np.sum(af * af, (1, 2))
    want = np.sum((r - alpha[:, None, None] * af) ** 2, (1, 2))
  np.testing.assert_allclose(np.asarray(scale_invariant_residual_loss(jnp.asarray(r), jnp.asarray(af))), want,
                             rtol=1e-4)
  exact = -2.5 * r
  np.testing.assert_allclose(np.asarray(scale_invariant_residual_loss(jnp.asarray(r), jnp.asarray(exact))), 0,
                             atol=1e-3)


def test_dcdm_bad_input():
  b = jnp.ones((4, 4))
  with pytest.raises(ValueError, match="k_orth"):
    dcdm_solve(poisson_2d_matvec, b, lambda r: r, k_orth=0)
  with pytest.raises(ValueError, match="max_iters"):
    dcdm_solve(poisson_2d_matvec, b, lambda r: r, max_iters=0)
  with pytest.raises(ValueError, match="x must be"):
    poisson_2d_matvec(jnp.ones((4, 5)))
  with pytest.raises(ValueError, match="same shape"):
    scale_invariant_residual_loss(jnp.ones((2, 4, 4)), jnp.ones((2, 4, 5)))
  with pytest.raises(ValueError, match="modes"):
    poisson_2d_eigenvectors(4, [[0, 1]])
  with pytest.raises(ValueError, match="n even"):
    DCDMNet(4, 1, rngs=nnx.Rngs(0))(jnp.ones((2, 5, 5)))


@pytest.mark.slow  # nnx.jit, split/merge train step, bf16, orbax: a few s of compiles
def test_dcdm_net_contract(tmp_path):
  r = jax.random.normal(jax.random.key(0), (4, 8, 8))
  check_layer_contract(lambda dt: DCDMNet(4, 1, rngs=nnx.Rngs(0), param_dtype=dt), r, tmp_path,
                       loss=lambda m, r: jnp.mean(scale_invariant_residual_loss(r, poisson_2d_matvec(
                           m(r).astype(jnp.float32)))))
