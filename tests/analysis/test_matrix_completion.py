"""AltMin matrix completion [101] vs independent references: each half-step equals row-wise np.linalg.lstsq on the
observed entries; CG with a tiny tolerance equals the exact solve; a fully observed rank-k matrix is recovered at once;
the low-rank generator's singular values are the requested ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlib_methods import analysis, data


def test_altmin_against_lstsq_and_recovery():
  with jax.enable_x64(True):
    n1, n2, k = 12, 9, 2
    m = data.low_rank_matrix(jax.random.key(0), n1, n2, k, condition_number=3.0, dtype=jnp.float64)
    np.testing.assert_allclose(np.linalg.svd(np.asarray(m), compute_uv=False)[:k], [3.0, 1.0], rtol=1e-10)
    mask = np.asarray(data.observation_mask(jax.random.key(1), (n1, n2), 0.7))
    m_np = np.asarray(m)
    # One iteration by hand (independent of the library): U0 = top-k left singular vectors of P(M)/p, then row-wise
    # lstsq for V, then for U.
    p = mask.mean()
    u0 = np.linalg.svd(np.where(mask, m_np, 0) / p)[0][:, :k]
    v1 = np.stack([np.linalg.lstsq(u0[mask[:, j]], m_np[mask[:, j], j], rcond=None)[0] for j in range(n2)])
    u1 = np.stack([np.linalg.lstsq(v1[mask[i]], m_np[i, mask[i]], rcond=None)[0] for i in range(n1)])
    m_garbage = np.where(mask, m_np, 1e3)                              # unobserved entries must be ignored
    u, v, _ = analysis.altmin_complete(m_garbage, jnp.asarray(mask), k, iters=1, reference=m)
    np.testing.assert_allclose(np.asarray(u) @ np.asarray(v).T, u1 @ v1.T, atol=1e-9)
    # CG run to a tiny tolerance gives the same iterate; under jax.jit (the mask traced, its eager check skipped).
    u, v, _ = jax.jit(lambda mm, mk: analysis.altmin_complete(mm, mk, k, iters=1, solver="cg", cg_tol=1e-13,
                                                              cg_max_iters=50, reference=m))(m_garbage, mask)
    np.testing.assert_allclose(np.asarray(u) @ np.asarray(v).T, u1 @ v1.T, atol=1e-9)
    # Fully observed: the spectral start is exact, so one iteration recovers M (same compilation as above).
    _, _, hist = analysis.altmin_complete(m, jnp.ones((n1, n2), bool), k, iters=1, reference=m)
    assert float(hist["error"][0]) < 1e-12
    # Exact flop count of a fully observed exact iteration: both halves, sum_i (|Omega_i| (k^2 + k) + k^3/3 + 2k^2).
    expected = n1 * (n2 * (k * k + k) + k ** 3 / 3 + 2 * k * k) + n2 * (n1 * (k * k + k) + k ** 3 / 3 + 2 * k * k)
    assert float(hist["flops"][0]) == pytest.approx(expected)


@pytest.mark.parametrize("kwargs,err,name", [
    ({"k": 0}, ValueError, "k"),
    ({"k": 2.0}, TypeError, "k"),
    ({"k": 7}, ValueError, "k"),
    ({"iters": 0}, ValueError, "iters"),
    ({"solver": "svd"}, ValueError, "solver"),
    ({"cg_tol": 0.0}, ValueError, "cg_tol"),
    ({"mask": np.ones((6, 6))}, TypeError, "mask"),
    ({"mask": np.ones((6, 5), bool)}, ValueError, "mask"),
    ({"mask": np.eye(6, dtype=bool)}, ValueError, "every row"),
    ({"m_obs": np.ones((6, 6), np.int32)}, TypeError, "m_obs"),
    ({"reference": np.ones((5, 6))}, ValueError, "reference"),
])
def test_bad_arguments_raise(kwargs, err, name):
  args = {"m_obs": np.ones((6, 6)), "mask": np.ones((6, 6), bool), "k": 2}
  args.update(kwargs)
  with pytest.raises(err, match=name):
    analysis.altmin_complete(args.pop("m_obs"), args.pop("mask"), args.pop("k"), **args)
  with pytest.raises(ValueError, match="k"):
    data.low_rank_matrix(jax.random.key(0), 3, 3, 4)
  with pytest.raises(ValueError, match="p"):
    data.observation_mask(jax.random.key(0), (3, 3), 0.0)


def test_degenerate_inputs_stay_finite_and_correct():
  # An all-zero M gave 0/0 residuals (both solvers) and NaN U (exact, singular Gram); M of rank 1 with k = 2 gave NaN
  # (exact) or blew up to ~1e12 (CG). Now: minimum-norm least squares (exact), CG stopping on null directions.
  mask = data.observation_mask(jax.random.key(1), (30, 20), 0.6)
  for solver in ("exact", "cg"):
    u, v, hist = analysis.altmin_complete(jnp.zeros((30, 20)), mask, 2, iters=5, solver=solver,
                                          reference=jnp.zeros((30, 20)))
    assert np.isfinite(np.asarray(u)).all() and np.isfinite(np.asarray(v)).all()
    np.testing.assert_allclose(np.asarray(u @ v.T), 0.0, atol=1e-7)
    np.testing.assert_allclose(hist["residual"], 0.0, atol=1e-7)      # 0 / 0 reported as the absolute norm, 0
    np.testing.assert_allclose(hist["error"], 0.0, atol=1e-7)
    m1 = data.low_rank_matrix(jax.random.key(0), 30, 20, 1)
    for msk in (mask, jnp.ones((30, 20), bool)):
      u, v, hist = analysis.altmin_complete(m1, msk, 2, iters=20, solver=solver, reference=m1)
      pred = np.asarray(u @ v.T)
      assert np.isfinite(np.asarray(u)).all() and np.abs(np.asarray(u)).max() < 10
      # a rank-2 fit of the observed entries (off the mask a rank-2 completion is not unique)
      assert float(hist["residual"][-1]) < 1e-5
      np.testing.assert_allclose(pred[np.asarray(msk)], np.asarray(m1)[np.asarray(msk)], atol=1e-6)
    assert float(hist["error"][-1]) < 1e-5                               # fully observed: M itself


def test_ordinary_float32_solves_reach_the_rounding_floor():
  # The guards do not bias ordinary (full-rank, well-conditioned) solves: both solvers reach float32 rounding.
  m = data.low_rank_matrix(jax.random.key(5), 100, 100, 3)
  mask = data.observation_mask(jax.random.key(6), (100, 100), 0.3)
  errs = {}
  for solver in ("exact", "cg"):
    _, _, hist = analysis.altmin_complete(m, mask, 3, iters=30, solver=solver, reference=m)
    errs[solver] = float(hist["error"][-1])
  assert errs["exact"] < 5e-7 and errs["cg"] < 5e-7, errs
