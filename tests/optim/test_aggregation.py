"""Flag Aggregator [123]: the IRLS against a float64 NumPy transcription of the official `irls_flag` / `flag_median`,
the objective never increases (also with the pairwise term), and the baselines against NumPy."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import optim as O


def _official_flag_median_np(g, y0, r=1, n_its=4, eps=1e-7):
  """The official aggregator (aggregators/flag_median.py + center_algorithms_torch.irls_flag, 'sine' weights,
  lambda = 0), transcribed to float64 NumPy: normalise columns, IRLS with w = (|1 - tr(Y^T x x^T Y)| + eps)^(-1/4)
  and Y = left singular vectors of [w_i x_i], keep the previous Y if the sine-median error does not decrease;
  aggregate = sum_i Y Y^T x_i / r."""
  xs = [gi / np.linalg.norm(gi) for gi in g]
  err = lambda y: sum(np.sqrt(max(1 - np.trace(y.T @ x[:, None] @ x[None, :] @ y), 0.0)) for x in xs)
  y, errs = y0, [err(y0)]
  for _ in range(n_its):
    w = [(abs(1 - np.trace(y.T @ x[:, None] @ x[None, :] @ y)) + eps) ** -0.25 for x in xs]
    a = np.stack([wi * x for wi, x in zip(w, xs)], axis=1)
    y_new = np.linalg.svd(a, full_matrices=False)[0][:, :r]
    e_new = err(y_new)
    if errs[-1] - e_new <= 0:
      break
    y, errs = y_new, errs + [e_new]
  agg = sum(y @ (y.T @ x) for x in xs) / r
  return y, agg


@pytest.mark.parametrize("rank", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_matches_the_official_irls_in_float64(rank):
  rng = np.random.default_rng(rank)
  honest = rng.normal(size=(12, 30)) * 0.3 + rng.normal(size=(1, 30))
  byz = rng.normal(size=(3, 30)) * 5.0
  g = np.concatenate([honest, byz])
  y0 = np.linalg.qr(rng.uniform(size=(30, rank)) - 0.5)[0]
  y_np, agg_np = _official_flag_median_np(g, y0, r=rank)
  with jax.enable_x64(True):
    sub = jax.jit(O.flag_subspace, static_argnums=1)(jnp.asarray(g), rank, init=jnp.asarray(y0))  # one compile
    np.testing.assert_allclose(np.asarray(sub.basis @ sub.basis.T), y_np @ y_np.T, atol=1e-8)
    x = g / np.linalg.norm(g, axis=1, keepdims=True)
    agg = np.asarray((x.sum(0) @ sub.basis) @ sub.basis.T / rank)
  np.testing.assert_allclose(agg, agg_np, atol=1e-8)


@pytest.mark.parametrize("lam", [0.0, pytest.param(2.0, marks=pytest.mark.slow)])
def test_irls_objective_never_increases(lam):
  rng = np.random.default_rng(7)
  g = jnp.asarray(rng.normal(size=(9, 12)), jnp.float32)
  sub = jax.jit(functools.partial(O.flag_subspace, rank=2, lam=lam, iters=8))(g)
  f = np.asarray(sub.objective)
  assert np.all(np.diff(f) <= 1e-5 * np.abs(f[:-1])), f
  assert f[-1] < f[0]
  x = np.asarray(g) / np.linalg.norm(np.asarray(g), axis=1, keepdims=True)
  np.testing.assert_allclose(float(O.flag_objective(sub.basis, jnp.asarray(x), lam, 1e-7)), f[-1], rtol=1e-5)


def test_robust_to_byzantine_workers_where_the_mean_is_not():
  rng = np.random.default_rng(0)
  true = rng.normal(size=50)
  honest = true + 0.5 * rng.normal(size=(12, 50))
  byz = -8.0 * np.tile(true, (3, 1))                   # sign-flipped and scaled
  g = jnp.asarray(np.concatenate([honest, byz]), jnp.float32)
  cos = lambda a: float(np.dot(np.asarray(a), true) / (np.linalg.norm(np.asarray(a)) * np.linalg.norm(true)))
  assert cos(jax.jit(functools.partial(O.flag_aggregate, rank=1))(g)) > 0.9  # jitted: one compile, not eager dispatch
  assert cos(O.mean_aggregate(g)) < 0.0


def test_baselines_match_numpy():
  rng = np.random.default_rng(1)
  g = rng.normal(size=(7, 5))
  f = 2
  median, mean, krum = jax.jit(lambda g: (  # one program for the three aggregators
      O.coordinate_median(g), O.mean_aggregate(g), O.multi_krum(g, f)))(jnp.asarray(g))
  np.testing.assert_allclose(np.asarray(median), np.median(g, 0), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(mean), g.mean(0), rtol=1e-6)
  d = ((g[:, None] - g[None]) ** 2).sum(-1)
  scores = [np.sort(np.delete(d[i], i))[:7 - f - 2].sum() for i in range(7)]
  chosen = np.argsort(scores)[:7 - f]
  np.testing.assert_allclose(np.asarray(krum), g[chosen].mean(0), rtol=1e-5)


def test_aggregate_pytrees_roundtrip_and_bad_input():
  tree = {"a": jnp.arange(12.0).reshape(3, 2, 2), "b": jnp.ones((3, 5))}
  out = O.aggregate_pytrees(O.mean_aggregate, tree)
  np.testing.assert_allclose(np.asarray(out["a"]), np.asarray(tree["a"]).mean(0))
  assert out["b"].shape == (5,)
  with pytest.raises(ValueError, match="num_workers, dim"):
    O.flag_aggregate(jnp.ones(5))
  with pytest.raises(ValueError, match="rank"):
    O.flag_aggregate(jnp.ones((3, 2)), rank=3)
  with pytest.raises(ValueError, match="num_byzantine"):
    O.multi_krum(jnp.ones((4, 2)), 3)
  with pytest.raises(ValueError, match="rescale"):
    O.flag_aggregate(jnp.ones((3, 2)), rescale="norm")


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_rank_above_the_number_of_weighted_vectors(lam):
  # rank > rows of the IRLS matrix (p workers, or p^2 with the pairwise term) crashed with a broadcasting error: the
  # thin SVD had fewer right singular vectors than the rank. Such a subspace holds every worker gradient.
  g = jnp.asarray(np.random.default_rng(0).normal(size=(3, 12)), jnp.float32)
  rank = 5 if lam == 0 else 10
  sub = O.flag_subspace(g, rank, lam=lam)
  assert sub.basis.shape == (12, rank)
  np.testing.assert_allclose(np.asarray(sub.basis.T @ sub.basis), np.eye(rank), atol=1e-5)
  x = g / jnp.linalg.norm(g, axis=1, keepdims=True)
  np.testing.assert_allclose(np.asarray(O.flag_aggregate(g, rank, lam=lam)), np.asarray(x.sum(0) / rank), atol=1e-5)
  assert np.all(np.diff(np.asarray(sub.objective)) <= 1e-6)
