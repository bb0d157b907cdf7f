"""Fisher merging [141]: against closed forms (equal Fishers = plain average; linear-Gaussian full-Fisher merge =
least squares on the pooled data; softmax-regression diagonal Fisher = x_i^2 p_k (1 - p_k)) in float64 NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.optim import diag_fisher, fisher_merge, fisher_merge_full


def _tree(rng, scale=1.0):
  return {"w": scale * rng.normal(size=(3, 2)), "b": scale * rng.normal(size=(2,))}


def test_equal_fishers_give_the_weighted_average():
  rng = np.random.default_rng(0)
  models = [_tree(rng) for _ in range(3)]
  f = _tree(rng)
  same = [jax.tree.map(np.abs, f)] * 3
  lam = [0.2, 0.5, 0.3]
  with jax.enable_x64(True):
    merged, iso = jax.jit(lambda ms, fs: (fisher_merge(ms, fs, lam), fisher_merge(ms, None, lam)))(  # one program
        [jax.tree.map(jnp.asarray, m) for m in models], same)
  for k in ("w", "b"):
    want = sum(l * m[k] for l, m in zip(lam, models))
    np.testing.assert_allclose(np.asarray(merged[k]), want, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(iso[k]), want, rtol=1e-12)



def test_isotropic_merge_of_bfloat16_models_is_rounded_once():
  # The fishers=None branch used to accumulate in bfloat16 (a rounding per model): up to 2 ulps off the average, while
  # equal Fishers (accumulated in float32) gave the correctly rounded one.
  rng = np.random.default_rng(0)
  models = [{"w": jnp.asarray(100.0 + rng.normal(size=1000), jnp.bfloat16)} for _ in range(8)]
  want = np.mean([np.asarray(m["w"], np.float64) for m in models], axis=0)
  rounded = np.asarray(jnp.asarray(want, jnp.float32).astype(jnp.bfloat16), np.float64)
  iso = fisher_merge(models)["w"]
  assert iso.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(iso, np.float64), rounded)
  equal = fisher_merge(models, [{"w": jnp.ones(1000, jnp.bfloat16)}] * 8)["w"]
  np.testing.assert_array_equal(np.asarray(iso, np.float64), np.asarray(equal, np.float64))

def test_diagonal_merge_is_the_per_coordinate_precision_weighted_mean():
  rng = np.random.default_rng(1)
  models = [_tree(rng) for _ in range(2)]
  fishers = [jax.tree.map(lambda x: np.abs(x) + 0.1, _tree(rng)) for _ in range(2)]
  with jax.enable_x64(True):
    merged = jax.jit(lambda ms, fs: fisher_merge(ms, fs, [1.0, 3.0], fisher_floor=0.0))(models, fishers)
  for k in ("w", "b"):
    num = 1.0 * fishers[0][k] * models[0][k] + 3.0 * fishers[1][k] * models[1][k]
    den = 1.0 * fishers[0][k] + 3.0 * fishers[1][k]
    np.testing.assert_allclose(np.asarray(merged[k]), num / den, rtol=1e-10)


def test_fisher_floor_and_favor_target_as_in_the_official_code():
  a, b = {"w": jnp.array([1.0, 5.0])}, {"w": jnp.array([3.0, 9.0])}
  fa, fb = {"w": jnp.array([0.0, 0.0])}, {"w": jnp.array([0.0, 2.0])}
  # floor on both: coordinate 0 is the plain mean; coordinate 1 leans to b.
  m = fisher_merge([a, b], [fa, fb], fisher_floor=1e-6)
  np.testing.assert_allclose(np.asarray(m["w"]), [2.0, (1e-6 * 5 + 2 * 9) / (1e-6 + 2)], rtol=1e-6)
  # favor_target: only the first model's Fisher is floored -> coordinate 0 comes from the target model.
  m = fisher_merge([a, b], [fa, fb], favor_target=True)
  np.testing.assert_allclose(np.asarray(m["w"])[0], 1.0, rtol=1e-6)


def test_linear_gaussian_full_fisher_merge_equals_the_pooled_least_squares_fit():
  """Laplace is exact for linear-Gaussian models: merging the per-dataset fits with F_i = X_i^T X_i / s^2 (lambda_i
  = 1) gives the fit on the pooled data, and diag_fisher's exact Gaussian Fisher (times N_i) is diag(X_i^T X_i)/s^2."""
  rng = np.random.default_rng(2)
  d, s = 4, 0.5
  xs = [rng.normal(size=(n, d)) * rng.uniform(0.3, 2.0, size=d) for n in (30, 50)]
  theta_true = rng.normal(size=d)
  ys = [x @ theta_true + s * rng.normal(size=len(x)) for x in xs]
  fits = [np.linalg.lstsq(x, y, rcond=None)[0] for x, y in zip(xs, ys)]
  fishers = [x.T @ x / s ** 2 for x in xs]
  pooled = np.linalg.lstsq(np.concatenate(xs), np.concatenate(ys), rcond=None)[0]
  with jax.enable_x64(True):
    merged = fisher_merge_full([jnp.asarray(f) for f in fits], [jnp.asarray(F) for F in fishers], [1.0, 1.0])
    np.testing.assert_allclose(np.asarray(merged), pooled, rtol=1e-9, atol=1e-12)
    apply = lambda theta, x: x @ theta
    for x, F in zip(xs, fishers):
      diag = diag_fisher(apply, jnp.asarray(fits[0]), jnp.asarray(x), exact=True, likelihood="gaussian",
                         noise_std=s)
      np.testing.assert_allclose(np.asarray(diag) * len(x), np.diag(F), rtol=1e-10)


def _softmax_regression_fisher(w, b, x):
  """Closed form for logits = x W + b: F_W[i, k] = mean_n x_ni^2 p_nk (1 - p_nk), F_b[k] = mean_n p_nk (1 - p_nk)."""
  z = x @ w + b
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  v = p * (1 - p)
  return (x ** 2).T @ v / len(x), v.mean(0)


def test_softmax_regression_diagonal_fisher_exact_and_sampled():
  rng = np.random.default_rng(3)
  d, k, n = 3, 4, 40
  w, b = rng.normal(size=(d, k)), rng.normal(size=(k,))
  x = rng.normal(size=(n, d))
  want_w, want_b = _softmax_regression_fisher(w, b, x)
  apply = lambda p, xb: xb @ p["w"] + p["b"]
  with jax.enable_x64(True):
    params = {"w": jnp.asarray(w), "b": jnp.asarray(b)}
    exact = diag_fisher(apply, params, jnp.asarray(x), exact=True, batch_size=16)
    np.testing.assert_allclose(np.asarray(exact["w"]), want_w, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(exact["b"]), want_b, rtol=1e-10)
    sampled = diag_fisher(apply, params, jnp.asarray(x), jax.random.key(0), num_samples=400)
  # Monte Carlo: unbiased, relative error ~ 1/sqrt(N * samples); a fixed key keeps it deterministic.
  np.testing.assert_allclose(np.asarray(sampled["w"]), want_w, rtol=0.1, atol=0.005)
  np.testing.assert_allclose(np.asarray(sampled["b"]), want_b, rtol=0.1, atol=0.005)


def test_bad_inputs_are_named():
  a = {"w": jnp.ones(2)}
  with pytest.raises(ValueError, match="params_list"):
    fisher_merge([], None)
  with pytest.raises(ValueError, match="lambdas"):
    fisher_merge([a, a], None, [1.0])
  with pytest.raises(ValueError, match="lambdas"):
    fisher_merge([a, a], None, [1.0, -1.0])
  with pytest.raises(ValueError, match=r"params_list\[1\]"):
    fisher_merge([a, {"w": jnp.ones(3)}], None)
  with pytest.raises(ValueError, match="fishers"):
    fisher_merge([a, a], [a])
  with pytest.raises(ValueError, match="fisher_floor"):
    fisher_merge([a, a], [a, a], fisher_floor=-1.0)
  apply = lambda p, x: x * p["w"]
  with pytest.raises(ValueError, match="PRNG key"):
    diag_fisher(apply, a, jnp.ones((3, 2)))
  with pytest.raises(ValueError, match="likelihood"):
    diag_fisher(apply, a, jnp.ones((3, 2)), exact=True, likelihood="poisson")
  with pytest.raises(ValueError, match="num_samples"):
    diag_fisher(apply, a, jnp.ones((3, 2)), jax.random.key(0), num_samples=0)
  with pytest.raises(TypeError, match="floating"):
    diag_fisher(apply, {"w": jnp.ones(2, jnp.int32)}, jnp.ones((3, 2)), exact=True)
