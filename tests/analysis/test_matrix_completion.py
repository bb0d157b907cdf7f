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
