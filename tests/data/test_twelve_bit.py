"""[38] the 12-bit task: the points are a regular icosahedron (each vertex has 5 neighbours at cos = 1/sqrt(5)),
the labels are invariant under the icosahedron's rotations (the spherical symmetry of f), and p(y=1) ~ 0.5 with the
per-count shares of the module docstring."""

import numpy as np
import pytest

from jaxlib_methods.data import icosahedron_vertices, released_twelve_bit_task, twelve_bit_task


def _rotation(axis, angle):
  a = axis / np.linalg.norm(axis)
  K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
  return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def test_twelve_bit_task_symmetry_and_balance():
  V = icosahedron_vertices()
  G = V @ V.T
  np.testing.assert_allclose(np.sort(G, axis=1)[:, -6:-1], 1 / np.sqrt(5), atol=1e-12)   # 5 nearest neighbours
  x, y = twelve_bit_task()
  x, y = np.asarray(x), np.asarray(y)
  assert x.shape == (4096, 12) and y.shape == (4096,)
  assert 0.45 < y.mean() < 0.55
  s = x.sum(1)
  shares = [y[s == k].mean() for k in (4, 5, 6, 7, 8)]
  np.testing.assert_allclose(shares, [0.0, 0.076, 0.619, 0.924, 1.0], atol=1e-3)
  # Rotations mapping the icosahedron to itself permute the points; the labels must not change.
  for axis, angle in ((V[0], 2 * np.pi / 5), (V[0] + V[1] + V[np.argsort(-(G[0] + G[1]))[2]], 2 * np.pi / 3)):
    R = _rotation(axis, angle)
    perm = np.argmin(np.linalg.norm((V @ R.T)[:, None] - V[None], axis=2), axis=1)
    np.testing.assert_allclose(V @ R.T, V[perm], atol=1e-9)   # a symmetry of the point set
    assert sorted(perm) == list(range(12)) and not np.array_equal(perm, np.arange(12))
    xr = np.zeros_like(x)
    xr[:, perm] = x                          # bit i moves to the image of point i
    idx = (xr * (1 << np.arange(12))).sum(1).astype(int)
    np.testing.assert_array_equal(y[idx], y)
  with pytest.raises(ValueError, match="theta"):
    twelve_bit_task(theta=float("nan"))


def test_released_twelve_bit_task_matches_the_published_statistics():
  """[38] [63] the released var_u.mat labels: F is the MSB-first binary expansion of the row index; p(y=1) and the
  per-count shares are those tabulated for var_u.mat by the deep-bottleneck project's documentation (7.6%, 57.6%,
  92.4% for 5, 6, 7 bits on; 0 below, 1 above), exact counts read once from the file (sha256 0ba95518...)."""
  x, y = released_twelve_bit_task()
  x, y = np.asarray(x), np.asarray(y)
  assert x.shape == (4096, 12) and y.shape == (4096,) and y.dtype == np.int32
  assert set(np.unique(x)) == {0.0, 1.0} and set(np.unique(y)) == {0, 1}
  np.testing.assert_array_equal(x @ (2 ** np.arange(11, -1, -1)), np.arange(4096))
  assert int(y.sum()) == 2118
  s = x.sum(1)
  counts = {k: (int((s == k).sum()), int(y[s == k].sum())) for k in range(13)}
  assert counts[5] == (792, 60) and counts[6] == (924, 532) and counts[7] == (792, 732)
  assert all(counts[k][1] == 0 for k in range(5)) and all(counts[k][1] == counts[k][0] for k in range(8, 13))
  # The released labels and the regenerated task share the per-count structure but are different functions.
  xr, yr = (np.asarray(a) for a in twelve_bit_task())
  assert 0.7 < np.mean(yr[np.argsort(xr @ (2 ** np.arange(11, -1, -1)))] == y) < 1.0


def test_twelve_bit_task_accepts_numpy_scalar_thresholds():
  """theta=np.float32(4.2) / np.int64(4) (NumPy scalars, finite) were rejected as "must be a finite float"."""
  y = np.asarray(twelve_bit_task()[1])
  np.testing.assert_array_equal(np.asarray(twelve_bit_task(theta=np.float64(4.2))[1]), y)
  assert np.asarray(twelve_bit_task(theta=np.float32(4.2))[1]).mean() == pytest.approx(y.mean(), abs=1e-3)
  np.testing.assert_array_equal(np.asarray(twelve_bit_task(theta=np.int64(4))[1]), np.asarray(twelve_bit_task(theta=4)[1]))
  with pytest.raises(ValueError, match="theta"):
    twelve_bit_task(theta=np.float32(np.nan))
