"""LaBo [7] concept selection: greedy >= (1 - 1/e) of the brute-force optimum, non-increasing gains, the
discriminability score against a float64 NumPy transcription and its closed form p(c) KL(p(y|c) || uniform)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.nn.concept_bottleneck import labo_discriminability, labo_select_concepts, labo_weight_prior


def _utility_np(subset, cand, disc, phi, alpha, beta):
  """F(S) = alpha sum_S D + beta sum_{c1 in C_y} max(0, max_{c2 in S} phi(c1, c2)), float64, by definition."""
  s = list(subset)
  cover = np.maximum(phi[np.ix_(cand, s)].max(1), 0.0) if s else np.zeros(len(cand))
  return alpha * disc[s].sum() + beta * cover.sum()


def test_greedy_vs_brute_force_and_diminishing_gains():
  rng = np.random.default_rng(0)
  num_classes, per_class, d = 40, 7, 5
  ids = np.repeat(np.arange(num_classes), per_class)
  rng.shuffle(ids)
  sim = rng.uniform(0.1, 0.4, size=(len(ids), 6))
  disc = np.asarray(labo_discriminability(jnp.asarray(sim, jnp.float32)), np.float64)
  emb = rng.normal(size=(len(ids), d))
  unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
  phi = unit @ unit.T
  select = jax.jit(labo_select_concepts, static_argnames=("k", "num_classes"))   # alpha, beta traced
  worst = np.inf  # smallest greedy / optimum ratio seen
  for k, alpha, beta in ((3, 1.0, 0.05), (4, 0.0, 1.0)):
    idx, gains = select(jnp.asarray(disc, jnp.float32), jnp.asarray(emb, jnp.float32), jnp.asarray(ids), k=k,
                        num_classes=num_classes, alpha=alpha, beta=beta)
    idx, gains = np.asarray(idx), np.asarray(gains, np.float64)
    for y in range(num_classes):
      cand = np.flatnonzero(ids == y)
      assert set(idx[y]) <= set(cand) and len(set(idx[y])) == k
      f_greedy = _utility_np(idx[y], cand, disc, phi, alpha, beta)
      np.testing.assert_allclose(gains[y].sum(), f_greedy, rtol=1e-5, atol=1e-6)
      assert np.all(np.diff(gains[y]) <= 1e-6), gains[y]   # submodularity: gains never grow
      best = max(_utility_np(s, cand, disc, phi, alpha, beta) for s in itertools.combinations(cand, k))
      assert f_greedy >= (1 - 1 / np.e) * best - 1e-6
      worst = min(worst, f_greedy / best)
  assert worst < 1.0  # some instance is not solved exactly: the brute force is a real comparison
  # beta = 0: the utility is modular and greedy is exactly the top-k of D within each class
  idx, _ = select(jnp.asarray(disc, jnp.float32), jnp.asarray(emb, jnp.float32), jnp.asarray(ids), k=3,
                  num_classes=num_classes, alpha=1.0, beta=0.0)
  for y in range(num_classes):
    cand = np.flatnonzero(ids == y)
    assert set(np.asarray(idx[y])) == set(cand[np.argsort(-disc[cand], kind="stable")[:3]])


def test_discriminability_and_prior():
  rng = np.random.default_rng(1)
  sim = rng.uniform(0.05, 0.5, size=(9, 4))
  with jax.enable_x64(True):
    got = np.asarray(labo_discriminability(jnp.asarray(sim)))
  p = sim / (sim.sum(0, keepdims=True) * 4)            # the authors' mi_score, transcribed
  pc = p.sum(1)
  want = (p * np.log(p / (pc[:, None] / 4))).sum(1)
  np.testing.assert_allclose(got, want, rtol=1e-12)
  cond = p / pc[:, None]                                # closed form: p(c) * KL(p(y|c) || uniform)
  np.testing.assert_allclose(got, pc * (cond * np.log(cond * 4)).sum(1), rtol=1e-12)
  assert np.all(got >= 0)
  np.testing.assert_array_equal(np.asarray(labo_weight_prior(jnp.array([2, 0, 2]), num_classes=3)),
                                [[0, 1, 0], [0, 0, 0], [1, 0, 1]])


def test_bad_inputs():
  disc, emb = jnp.ones(4), jnp.ones((4, 2))
  with pytest.raises(ValueError, match="k="):
    labo_select_concepts(disc, emb, jnp.array([0, 0, 1, 1]), 3, num_classes=2)
  with pytest.raises(ValueError, match="beta"):
    labo_select_concepts(disc, emb, jnp.array([0, 0, 1, 1]), 1, num_classes=2, beta=-1.0)
  with pytest.raises(TypeError, match="class_ids"):
    labo_select_concepts(disc, emb, jnp.array([0.0, 0, 1, 1]), 1, num_classes=2)
  with pytest.raises(ValueError, match="> 0"):
    labo_discriminability(jnp.array([[0.1, -0.2]]))
