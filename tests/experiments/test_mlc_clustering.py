"""The MLC clustering experiment [96]: its evaluation helpers against independent references (hand-computed NMI,
known partitions, an exactly block-diagonal affinity). The TINY run and the uniform-membership mutation are exercised
by tests/experiments/test_mutations.py (under -m slow: the TINY run compiles for ~15 s)."""

import numpy as np
import pytest

from experiments import mlc_clustering as exp


def test_nmi_spectral_clustering_and_cosines_against_independent_references():
  labels = np.repeat(np.arange(3), 4)
  # NMI: 1 for a relabelled copy, 0 for an independent partition, and a hand-computed value in between.
  assert exp.normalized_mutual_information((labels + 1) % 3, labels) == pytest.approx(1.0, abs=1e-12)
  assert exp.normalized_mutual_information(np.tile([0, 1], 6), np.repeat([0, 1], 6)) == pytest.approx(0.0, abs=1e-12)
  pred, true = np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1])
  joint = np.array([[2, 0], [1, 1]]) / 4
  pa, pb = joint.sum(1), joint.sum(0)
  mi = sum(joint[i, j] * np.log(joint[i, j] / (pa[i] * pb[j])) for i in range(2) for j in range(2) if joint[i, j])
  ent = lambda p: -np.sum(p * np.log(p))
  assert exp.normalized_mutual_information(pred, true) == pytest.approx(mi / np.sqrt(ent(pa) * ent(pb)), rel=1e-12)
  # Spectral clustering recovers the blocks of a doubly stochastic block-diagonal membership (shuffled).
  perm = np.random.default_rng(0).permutation(12)
  gamma = (labels[:, None] == labels[None]).astype(float) / 4
  pred = exp.spectral_clustering(gamma[perm][:, perm] + 1e-3, 3)
  assert exp.cluster_accuracy(pred, labels[perm]) == 1.0
  # Cosines: points on orthogonal coordinate axes of distinct clusters have 0 between-cluster |cos|.
  z = np.zeros((6, 3))
  z[[0, 1], 0], z[[2, 3], 1], z[[4, 5], 2] = [1, -2], [3, 1], [1, 1]
  between, within = exp.mean_abs_cos(z, np.repeat(np.arange(3), 2))
  assert between == 0.0 and within == pytest.approx(1.0)


def test_data_are_unit_vectors_in_generic_subspaces():
  config = exp.Config(noise=0.0, n_per_cluster=20)
  x, y = exp.make_data(config, np.random.default_rng(0))
  assert x.shape == (60, config.ambient_dim) and np.bincount(y).tolist() == [20, 20, 20]
  np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-12)
  for k in range(3):
    assert np.linalg.matrix_rank(x[y == k], tol=1e-9) == config.subspace_dim
  # Generic, not orthogonal: the inputs give the learnt-orthogonality claim something to do.
  assert exp.mean_abs_cos(x, y)[0] > 0.1
