"""The independent pieces of the issue-16 P1 experiments [175][187][141][209] are right (cheap checks, no training)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from experiments import fisher_merging_toy, infinite_lr_continual, optimistic_sea, sso_logistic


def test_sea_comparator_is_the_constrained_minimiser():
  rng = np.random.default_rng(0)
  for lam, radius, horizon in ((0.0, 1.0, 50), (1.0, 1.0, 50), (1.0, 0.1, 7)):
    c_sum = rng.normal(size=5) * 10
    got = float(optimistic_sea.comparator_loss(lam, radius, horizon, jnp.asarray(c_sum, jnp.float32)))
    # brute force: random points of the ball (and its boundary) never beat the closed form
    pts = rng.normal(size=(20000, 5))
    pts *= radius * rng.uniform(0, 1, size=(20000, 1)) ** (1 / 5) / np.linalg.norm(pts, axis=1, keepdims=True)
    vals = 0.5 * lam * horizon * np.sum(pts ** 2, 1) + pts @ c_sum
    assert got <= vals.min() + 1e-4 * (1 + abs(got))
    x = np.zeros(5)   # and projected gradient descent (float64) reaches it
    for _ in range(5000):
      x = x - (lam * horizon * x + c_sum) / (lam * horizon + 100.0)
      x *= min(1.0, radius / max(np.linalg.norm(x), 1e-300))
    np.testing.assert_allclose(got, 0.5 * lam * horizon * x @ x + c_sum @ x, rtol=1e-5, atol=1e-5)


def test_majorisation_check_can_fail():
  cfg = dataclasses.replace(sso_logistic.Config(), n=200, dim=5)
  x, y = sso_logistic.make_data(cfg)
  theta = np.zeros(cfg.dim)
  assert sso_logistic.majorisation_gap(x, y, theta, 4.0 * cfg.n, 200, 0) >= -1e-9      # eta = 1/beta: upper bound
  assert sso_logistic.majorisation_gap(x, y, theta, 400.0 * cfg.n, 200, 0) < 0         # eta = 100/beta: not


def test_continual_schedules_rewarm_only_when_asked():
  cfg = infinite_lr_continual.Config()
  n, k = cfg.task_steps, cfg.tasks
  t = jnp.arange(k * n)
  for rewarm in (False, True):
    s = infinite_lr_continual.schedules(dataclasses.replace(cfg, rewarm=rewarm))
    inf, cos = map(np.asarray, jax.jit(lambda t: (s["infinite"](t), s["cosine"](t)))(t))   # one compile each
    assert np.isclose(inf[n:].max(), cfg.peak_lr if rewarm else cfg.constant_lr, rtol=1e-5)
    assert all(np.isclose(cos[j * n:(j + 1) * n].max(), cfg.peak_lr, rtol=1e-2) for j in range(k))


def test_task_languages_are_markov_chains_with_their_stationary_law():
  cfg = dataclasses.replace(infinite_lr_continual.Config(), tasks=3, vocab_size=8)
  langs = infinite_lr_continual.task_languages(cfg)
  assert len(langs) == 3
  for lang in langs:
    p, pi = np.asarray(lang.transition, np.float64), np.asarray(lang.stationary, np.float64)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(pi @ p, pi, atol=1e-6)
  assert not np.allclose(langs[0].transition, langs[1].transition)   # the tasks do shift


def test_pooled_fit_reference_is_tight_and_data_are_disjoint():
  assert fisher_merging_toy.pooled_fit_check(0) < 1e-6
  cfg = fisher_merging_toy.Config()
  xa, _ = fisher_merging_toy.task_data(cfg, 0, 0, 64, 0)
  xb, _ = fisher_merging_toy.task_data(cfg, 1, 0, 64, 0)
  half = cfg.dim // 2
  assert np.all(xa[:, half:] == 0) and np.all(xb[:, :half] == 0)
  # claim 5's pair: task B's same draws moved `overlap` coordinates towards A's block (labels unchanged)
  xo, yo = fisher_merging_toy.task_data(cfg, 1, 0, 64, 0, cfg.overlap)
  _, yb = fisher_merging_toy.task_data(cfg, 1, 0, 64, 0)
  start = half - cfg.overlap
  np.testing.assert_array_equal(xo[:, start:start + half], xb[:, half:])
  assert np.all(xo[:, :start] == 0) and np.all(xo[:, start + half:] == 0) and np.array_equal(yo, yb)
  assert np.any(xa[:, start:half] != 0) and np.any(xo[:, start:half] != 0)   # the shared coordinates
