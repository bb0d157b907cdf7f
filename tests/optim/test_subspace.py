"""Projectors of `jaxlib_methods.optim.subspace` against float64 NumPy linear algebra and closed forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.optim import subspace
from jaxlib_methods.optim.subspace import SubspaceSpec


def _g(m, n, seed=0):
  return np.random.default_rng(seed).normal(size=(m, n)).astype(np.float32)


@pytest.mark.parametrize("shape,side,want", [
    ((8, 5), "std", "right"), ((5, 8), "std", "left"), ((6, 6), "std", "right"),
    ((8, 5), "reverse_std", "left"), ((5, 8), "reverse_std", "right"), ((6, 6), "reverse_std", "left"),
    ((5, 8), "left", "left"), ((8, 5), "right", "right")])
def test_resolve_side_table(shape, side, want):
  # GaLore's code: std -> right singular vectors when m >= n; optax.contrib.galore: the reverse.
  assert subspace.resolve_side(shape, side) == want


@pytest.mark.parametrize("shape,side", [((12, 7), "left"), ((12, 7), "right"), ((7, 12), "left")])
def test_svd_basis_spans_numpy_top_singular_subspace(shape, side):
  g = _g(*shape)
  r = 3
  q = np.asarray(subspace.svd_basis(jnp.asarray(g), r, side), np.float64)
  u, s, vh = np.linalg.svd(g.astype(np.float64), full_matrices=False)
  ref = u[:, :r] if side == "left" else vh[:r].T
  np.testing.assert_allclose(q.T @ q, np.eye(r), atol=1e-5)
  np.testing.assert_allclose(q @ q.T, ref @ ref.T, atol=1e-5)  # same subspace (sign-free)


def test_project_and_back_are_q_qt_g_and_complement_is_orthogonal():
  g = _g(10, 6)
  for side in ("left", "right"):
    spec = SubspaceSpec("svd", side, 2, (10, 6))
    q = spec.compute(jnp.asarray(g), None)
    low = spec.project(q, jnp.asarray(g))
    assert low.shape == spec.low_shape
    back = np.asarray(spec.project_back(q, low), np.float64)
    qn = np.asarray(q, np.float64)
    want = qn @ qn.T @ g if side == "left" else g @ qn @ qn.T
    np.testing.assert_allclose(back, want, atol=1e-5)
    resid = g - back
    inner = qn.T @ resid if side == "left" else resid @ qn
    np.testing.assert_allclose(inner, 0.0, atol=1e-5)


def test_randomized_svd_recovers_exact_low_rank_subspace():
  rng = np.random.default_rng(1)
  g = (rng.normal(size=(30, 4)) @ rng.normal(size=(4, 20))).astype(np.float32)  # rank 4 exactly
  for side in ("left", "right"):
    q = np.asarray(subspace.randomized_svd_basis(jnp.asarray(g), jax.random.PRNGKey(0), 4, side), np.float64)
    u, _, vh = np.linalg.svd(g.astype(np.float64), full_matrices=False)
    ref = u[:, :4] if side == "left" else vh[:4].T
    np.testing.assert_allclose(q @ q.T, ref @ ref.T, atol=1e-4)


def test_random_orthogonal_and_gaussian_bases():
  q = np.asarray(subspace.random_orthogonal_basis(jax.random.PRNGKey(0), 9, 4), np.float64)
  np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-5)
  # Gaussian sketch with N(0, 1/r) entries: E[Q Q^T] = I (Monte Carlo over 400 draws, 8 x 2).
  keys = jax.random.split(jax.random.PRNGKey(1), 400)
  qs = np.asarray(jax.vmap(lambda k: subspace.random_gaussian_basis(k, 8, 2))(keys), np.float64)
  mean = np.einsum("kir,kjr->ij", qs, qs) / len(qs)
  np.testing.assert_allclose(mean, np.eye(8), atol=0.25)


def test_coordinate_and_randk_projectors_are_gather_scatter():
  g = _g(6, 10)
  key = jax.random.PRNGKey(3)
  for side in ("left", "right"):
    spec = SubspaceSpec("coordinates", side, 4, (6, 10))
    idx = np.asarray(spec.compute(jnp.asarray(g), key))
    d = 6 if side == "left" else 10
    assert len(set(idx.tolist())) == 4 and idx.min() >= 0 and idx.max() < d
    low = np.asarray(spec.project(jnp.asarray(idx), jnp.asarray(g)))
    np.testing.assert_array_equal(low, g[idx, :] if side == "left" else g[:, idx])
    back = np.asarray(spec.project_back(jnp.asarray(idx), jnp.asarray(low)))
    want = np.zeros_like(g)
    if side == "left":
      want[idx, :] = g[idx, :]
    else:
      want[:, idx] = g[:, idx]
    np.testing.assert_array_equal(back, want)
  spec = SubspaceSpec("randk", "right", 7, (6, 10))
  idx = np.asarray(spec.compute(jnp.asarray(g), key))
  assert len(set(idx.tolist())) == 7 and spec.low_shape == (7,)
  back = np.asarray(spec.project_back(jnp.asarray(idx), spec.project(jnp.asarray(idx), jnp.asarray(g))))
  want = np.zeros(60, np.float32)
  want[idx] = g.reshape(-1)[idx]
  np.testing.assert_array_equal(back, want.reshape(6, 10))


def test_spec_shapes_follow_the_papers_state_formulas():
  # GaLore (std side, m <= n): projector m x r, moments r x n -> state m*r + 2*r*n.
  spec = SubspaceSpec("svd", subspace.resolve_side((4, 10), "std"), 2, (4, 10))
  assert spec.basis_shape == (4, 2) and spec.low_shape == (2, 10)
  spec = SubspaceSpec("svd", subspace.resolve_side((4, 10), "reverse_std"), 2, (4, 10))
  assert spec.basis_shape == (10, 2) and spec.low_shape == (4, 2)


@pytest.mark.parametrize("order,want", [
    ("descending", [[4, 3], [2, 1], [0, 4], [3, 2]]),
    ("ascending", [[0, 1], [2, 3], [4, 0], [1, 2]])])
def test_block_selection_cyclic_windows(order, want):
  for k, w in enumerate(want):
    mask = np.asarray(subspace.block_selection(5, 2, jnp.asarray(k), order))
    assert sorted(np.flatnonzero(mask).tolist()) == sorted(w), (k, mask)


def test_block_selection_random_has_num_active():
  mask = np.asarray(subspace.block_selection(7, 3, jnp.asarray(0), "random", jax.random.PRNGKey(0)))
  assert mask.sum() == 3


def test_unknown_names_raise():
  with pytest.raises(ValueError, match="projector"):
    subspace.check_projector("qr")
  with pytest.raises(ValueError, match="side"):
    subspace.resolve_side((3, 4), "up")
  with pytest.raises(ValueError, match="block order"):
    subspace.block_selection(3, 1, jnp.asarray(0), "zigzag")
