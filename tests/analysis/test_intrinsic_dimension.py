"""[135] Intrinsic dimension (Li et al. 2018, arXiv:1804.08838): Fastfood equals an explicit NumPy transcription of the
paper's construction (Hadamard matrices from scipy) and its columns are orthonormal in expectation; subspace_wrap
equals theta0 + P z through jit and grad; d_int90 on hand-made curves; input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxlib_methods.analysis import (
    d_int90,
    dense_projection,
    fastfood_params,
    fastfood_project,
    subspace_wrap,
)


def _explicit_fastfood(params, d, out_dim):
  """P [D, d] built as a dense matrix: rows :D of H G Pi H B (first d columns), / (sqrt(L sum g^2) sqrt(D / L))."""
  b, perm, g = (np.asarray(a, np.float64) for a in params)
  length = b.shape[0]
  h = scipy.linalg.hadamard(length).astype(np.float64)
  pi = np.eye(length)[np.asarray(perm, int)]                       # (Pi x)_i = x_perm[i]
  m = h @ np.diag(g) @ pi @ h @ np.diag(b)
  return m[:out_dim, :d] / (np.sqrt(length * np.sum(g ** 2)) * np.sqrt(out_dim / length))


def test_fastfood_matches_the_construction():
  out_dim, d = 50, 5                                                 # L = 64
  with jax.enable_x64(True):
    params = fastfood_params(jax.random.key(0), out_dim, dtype=jnp.float64)
    z = np.random.default_rng(0).normal(size=(3, d))
    np.testing.assert_allclose(jax.jit(lambda z: fastfood_project(params, z, out_dim))(z),
                               z @ _explicit_fastfood(params, d, out_dim).T, rtol=1e-10, atol=1e-12)
  # dense: unit-norm columns exactly
  p = dense_projection(jax.random.key(1), 200, 7)
  np.testing.assert_allclose(jnp.linalg.norm(p, axis=0), np.ones(7), rtol=1e-5)


@pytest.mark.parametrize("out_dim,d", [(1, 1), (2, 1), (3, 2), (33, 4), (700, 6), (2000, 3)])
def test_fastfood_value_jvp_and_vjp_match_the_explicit_matrix(out_dim, d):
  # L = 1 ... 2048: the Hadamard transform is split into 0 to 3 matmul factors (5 bits at most each); the linear map,
  # its forward derivative and its transpose (what grad uses) must all be P, P and P^T of the explicit construction
  with jax.enable_x64(True):
    params = fastfood_params(jax.random.key(out_dim), out_dim, dtype=jnp.float64)
    p = _explicit_fastfood(params, d, out_dim)
    rng = np.random.default_rng(d)
    z, t, w = rng.normal(size=d), rng.normal(size=d), rng.normal(size=out_dim)
    f = jax.jit(lambda z: fastfood_project(params, z, out_dim))
    np.testing.assert_allclose(f(z), p @ z, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jax.jvp(f, (z,), (t,))[1], p @ t, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jax.vjp(f, z)[1](w)[0], p.T @ w, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jax.vmap(jax.grad(lambda z, w: f(z) @ w), (None, 0))(z, np.stack([w, -w])),
                               np.stack([p.T @ w, -(p.T @ w)]), rtol=1e-10, atol=1e-10)


def test_fastfood_float32_at_mnist_scale_matches_float64():
  # D = 199,210 (the paper's 784-200-200-10 net), L = 2^18: float32 matmul factors at full precision, not TF32/bf16
  out_dim, d = 199_210, 750
  z = np.random.default_rng(0).normal(size=(2, d))
  params = fastfood_params(jax.random.key(0), out_dim)
  got = np.asarray(fastfood_project(params, jnp.asarray(z, jnp.float32), out_dim))
  with jax.enable_x64(True):
    params64 = params._replace(b=jnp.asarray(params.b, jnp.float64), g=jnp.asarray(params.g, jnp.float64))
    want = np.asarray(fastfood_project(params64, z, out_dim))
  assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))


@pytest.mark.slow
def test_fastfood_columns_are_orthonormal_in_expectation():
  out_dim, d = 50, 5
  with jax.enable_x64(True):
    # E[P^T P] = I_d: Monte Carlo over 400 draws of (B, Pi, G); the mean Gram matrix's entries have standard errors
    # ~0.02 (diagonal) and ~0.01 (off-diagonal) here, so 0.08 is > 4 standard errors (a failure probability < 1e-4 per
    # entry for a correct construction)
    gram = jax.jit(jax.vmap(lambda k: (lambda p: p @ p.T)(
        fastfood_project(fastfood_params(k, out_dim, dtype=jnp.float64), jnp.eye(d), out_dim))))(
            jax.random.split(jax.random.key(1), 400))
    np.testing.assert_allclose(np.mean(np.asarray(gram), 0), np.eye(d), atol=0.08)


def test_subspace_wrap_is_theta0_plus_pz_under_jit_and_grad():
  theta0 = {"w": jnp.arange(6.0).reshape(2, 3) / 10, "b": jnp.ones(3)}
  apply_fn = lambda params, x: jnp.sum(jnp.tanh(x @ params["w"] + params["b"]))
  x = jnp.ones((4, 2))
  flat0 = jnp.concatenate([theta0["b"], theta0["w"].ravel()])      # ravel_pytree order: sorted keys
  z = jnp.array([0.3, -0.2, 0.5, 0.1])
  flatten = lambda p: jnp.concatenate([p["b"], p["w"].ravel()])
  apply_jit, grad_jit = jax.jit(apply_fn), jax.jit(jax.grad(apply_fn))  # the references, compiled once for both
  for projection in ("dense", "fastfood"):
    @jax.jit
    def probe(key, z):                                              # everything in one compiled program
      wrapped, z0 = subspace_wrap(apply_fn, theta0, 4, key, projection=projection)
      flat_params, _ = subspace_wrap(lambda p: flatten(p), theta0, 4, key, projection=projection)
      pmat = jax.jacfwd(flat_params)(z0)                            # P, as the Jacobian of theta(z)
      return z0, wrapped(z0, x), wrapped(z, x), flat_params(z), pmat, jax.grad(wrapped)(z, x)
    z0, at_z0, at_z, theta_z, pmat, grad_z = probe(jax.random.key(3), z)
    assert z0.shape == (4,) and float(jnp.max(jnp.abs(z0))) == 0.0
    np.testing.assert_allclose(at_z0, apply_jit(theta0, x), rtol=1e-6)
    np.testing.assert_allclose(theta_z, flat0 + pmat @ z, rtol=1e-5, atol=1e-6)   # theta(z) = theta0 + P z
    if projection == "dense":
      np.testing.assert_allclose(jnp.linalg.norm(pmat, axis=0), np.ones(4), rtol=1e-5)
    theta = np.asarray(flat0 + pmat @ z)
    params = {"b": theta[:3], "w": theta[3:].reshape(2, 3)}
    np.testing.assert_allclose(at_z, apply_jit(params, x), rtol=1e-5)
    # the gradient in z is P^T times the gradient in theta (chain rule)
    np.testing.assert_allclose(grad_z, pmat.T @ flatten(grad_jit(params, x)), rtol=1e-4, atol=1e-6)


def test_d_int90_and_bad_inputs():
  assert d_int90([10, 100, 1000], [0.5, 0.86, 0.95], 0.96) == 1000.0
  assert d_int90([1000, 10, 100], [0.95, 0.5, 0.9], 0.96) == 100.0     # 0.9 >= 0.864
  assert d_int90([10, 20], [0.1, 0.2], 0.96) == float("inf")
  with pytest.raises(ValueError, match="dims and performance"):
    d_int90([10, 20], [0.1], 0.9)
  with pytest.raises(ValueError, match="baseline"):
    d_int90([10], [0.1], 0.0)
  with pytest.raises(ValueError, match="projection"):
    subspace_wrap(lambda p: p, {"w": jnp.ones(3)}, 2, jax.random.key(0), projection="sparse")
  with pytest.raises(ValueError, match="d must be"):
    subspace_wrap(lambda p: p, {"w": jnp.ones(3)}, 5, jax.random.key(0))
  with pytest.raises(ValueError, match="out_dim"):
    fastfood_params(jax.random.key(0), 0)
  with pytest.raises(ValueError, match="z must be"):
    fastfood_project(fastfood_params(jax.random.key(0), 4), jnp.ones(5), 4)


def test_half_precision_projections_keep_unit_columns():
  # In float16 the normalisers overflowed (L sum g^2 for L >= 256; sum p^2 for D > 65504), so P z = 0 silently.
  # They are computed in float32 and cast back: the columns keep (about) unit norm, as in float32.
  for out_dim in (100, 300, 1000, 200_000):
    ff = fastfood_params(jax.random.key(0), out_dim, dtype=jnp.float16)
    cols = fastfood_project(ff, jnp.eye(3, dtype=jnp.float16), out_dim)
    assert cols.dtype == jnp.float16
    norms = np.linalg.norm(np.asarray(cols, np.float32), axis=1)
    assert np.all(np.abs(norms - 1) < 0.1), (out_dim, norms)
    if out_dim <= 1000:   # the construction in float64 from the same (float16) B, Pi, G
      np.testing.assert_allclose(np.asarray(cols, np.float64).T, _explicit_fastfood(ff, 3, out_dim), atol=2e-3)
  p = dense_projection(jax.random.key(0), 70_000, 2, dtype=jnp.float16)
  assert p.dtype == jnp.float16
  np.testing.assert_allclose(np.linalg.norm(np.asarray(p, np.float32), axis=0), 1.0, rtol=1e-2)
  # float32 is unchanged: the same numbers as the normalisation written out in float32.
  g = jax.random.normal(jax.random.key(0), (50, 4), jnp.float32)
  np.testing.assert_array_equal(dense_projection(jax.random.key(0), 50, 4), g / jnp.linalg.norm(g, axis=0))
  # subspace_wrap in float16: the gradient in z is no longer 0.
  theta0 = {"w": jnp.ones((30, 10), jnp.float16)}
  for projection in ("fastfood", "dense"):
    f, z0 = subspace_wrap(lambda p: jnp.sum(p["w"].astype(jnp.float32) ** 2), theta0, 5, jax.random.key(0),
                          projection=projection)
    assert np.linalg.norm(np.asarray(jax.grad(f)(z0), np.float32)) > 1.0, projection


def test_d_int90_requires_positive_integer_dims():
  assert d_int90(np.array([10.0, 100.0]), [0.5, 0.95], 1.0) == 100.0     # integer-valued floats are dims
  for dims in ([-5, 100], [0, 100], [1.5, 100], [float("nan"), 100], [True, False]):
    with pytest.raises(ValueError, match="dims must be positive integers"):
      d_int90(dims, [0.99, 0.95], 1.0)
