"""[147] Matrix Nuclear-Norm and Matrix Entropy vs closed forms: equal to the SVD nuclear norm on orthogonal columns,
the rank-1 and orthonormal-rows values by hand, NumPy transcriptions of both metrics, and both increasing with rank."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods.analysis import matrix_entropy, matrix_nuclear_norm

mnn_jit = jax.jit(matrix_nuclear_norm, static_argnames=("D", "normalize"))
ent_jit = jax.jit(matrix_entropy, static_argnames=("normalize",))


def _np_normalize(H):
  X = H - H.mean(0)
  return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_nuclear_norm_and_entropy_closed_forms():
  rng = np.random.default_rng(0)
  # Orthogonal columns: singular values are the column norms, so the metric is ||X||_* / L exactly.
  L, d = 12, 5
  Q, _ = np.linalg.qr(rng.normal(size=(L, d)))
  X = Q * rng.uniform(0.5, 3.0, size=d)
  got = mnn_jit(jnp.asarray(X, jnp.float32), normalize=False)
  assert float(got) == pytest.approx(np.linalg.norm(X, "nuc") / L, rel=1e-5)
  # NumPy transcriptions of the normalised metrics on a random H.
  H = rng.normal(size=(20, 8)) + 0.5
  Z = _np_normalize(H)
  np.testing.assert_allclose(mnn_jit(jnp.asarray(H, jnp.float32)),
                             np.sort(np.linalg.norm(Z, axis=0))[::-1][:8].sum() / 20, rtol=1e-5)
  lam = np.linalg.eigvalsh(Z.T @ Z / 20)
  lam = lam[lam > 1e-12] / lam.sum()
  np.testing.assert_allclose(ent_jit(jnp.asarray(H, jnp.float32)),
                             -np.sum(lam * np.log(lam)) / np.log(8), rtol=1e-4)
  # Rank 1: rows +-u after normalisation -> nuclear norm sqrt(L), the metric sqrt(L) ||u||_1 / ||u||_2 / L;
  # a single eigenvalue -> entropy 0.
  u = rng.normal(size=6)
  s = np.where(np.arange(10) % 2 == 0, 1.0, -1.0) * rng.uniform(1, 2, size=10)
  H1 = jnp.asarray(np.outer(s, u), jnp.float32)
  assert float(mnn_jit(H1)) == pytest.approx(np.sqrt(10) * np.abs(u).sum() / np.linalg.norm(u) / 10,
                                                         rel=1e-4)
  assert float(ent_jit(H1)) == pytest.approx(0.0, abs=1e-5)
  # Orthonormal rows e_1..e_L (no centring): Sigma = I_L / L on L of the d dims -> entropy ln L / ln d.
  E = jnp.eye(4, 16)
  assert float(ent_jit(E, normalize=False)) == pytest.approx(np.log(4) / np.log(16), rel=1e-5)
  assert float(mnn_jit(E, normalize=False)) == pytest.approx(4 / 4, rel=1e-6)
  # Both grow with the rank of H (random rank-r, r = 1, 2, 4, 8, 16 of d = 32, L = 64), as does ||.||_*.
  mnn, ent, nuc = [], [], []
  for r in (1, 2, 4, 8, 16):
    Hr = rng.normal(size=(64, r)) @ rng.normal(size=(r, 32))
    mnn.append(float(mnn_jit(jnp.asarray(Hr, jnp.float32))))
    ent.append(float(ent_jit(jnp.asarray(Hr, jnp.float32))))
    nuc.append(np.linalg.norm(_np_normalize(Hr), "nuc"))
  assert np.all(np.diff(mnn) > 0) and np.all(np.diff(ent) > 0) and np.all(np.diff(nuc) > 0), (mnn, ent, nuc)
  with pytest.raises(ValueError, match="D must"):
    matrix_nuclear_norm(H1, D=7)
  with pytest.raises(ValueError, match="hidden"):
    matrix_entropy(jnp.ones(5))
