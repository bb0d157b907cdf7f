"""losses_wave2_p6 ([152] WhitenedCSE, [200] Metrix): the evaluation helpers and the base loss against brute-force
NumPy, the exact checks the claims use, and the claims' logic."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import losses_wave2_p6 as exp


def test_helpers_against_brute_force():
  rng = np.random.default_rng(0)
  e = rng.normal(size=(20, 4))
  e /= np.linalg.norm(e, axis=1, keepdims=True)
  y = rng.integers(0, 3, size=20)
  nn = [max((j for j in range(20) if j != i), key=lambda j: e[i] @ e[j]) for i in range(20)]
  assert exp.recall_at_1(e, y) == np.mean([y[i] == y[nn[i]] for i in range(20)])
  tr = rng.normal(size=(7, 4))
  ref = np.mean([min(np.linalg.norm(t - s) for s in tr) for t in e])
  np.testing.assert_allclose(exp.utilization(e, tr), ref, rtol=1e-12)
  # the all-pairs contrastive base loss (m+ = 0, m- = 0.5): mean over positive pairs of d + mean over negatives of
  # [0.5 - d]_+, pairs i != j
  d = np.linalg.norm(e[:, None] - e[None], axis=-1)
  pos = [d[i, j] for i in range(20) for j in range(20) if i != j and y[i] == y[j]]
  neg = [max(0.5 - d[i, j], 0) for i in range(20) for j in range(20) if y[i] != y[j]]
  # and InfoNCE: mean_i -log softmax_j(a_i . b_j / tau)[i] (both in one compilation)
  a, b = e[:6], e[6:12]
  lg = a @ b.T / 0.1
  ref = np.mean(np.log(np.exp(lg).sum(1)) - np.diag(lg))
  f = jax.jit(lambda e, y, a, b: (exp._contrastive_base(e, y), exp._info_nce(a, b, 0.1)))
  got_base, got_nce = f(*(jnp.asarray(v, jnp.float32) for v in (e, y, a, b)))
  np.testing.assert_allclose(float(got_base), np.mean(pos) + np.mean(neg), rtol=1e-5)
  np.testing.assert_allclose(float(got_nce), ref, rtol=1e-5)


@pytest.mark.slow  # eager float64 eigh and a jit: about 1 s; the experiment's claims run the same checks
def test_exact_checks():
  cov_err, shuffle_diff = exp.sgw_covariance_error(n=24, d=8, groups=2)
  assert cov_err < 1e-8 and shuffle_diff > 1e-3
  assert exp.metrix_reduction_error(b=8, d=4) < 1e-10


def test_claims_logic():
  res = {"sgw_cov_err": 1e-15, "sgw_shuffle_diff": 1.0, "metrix_reduction_err": 1e-16,
         "uniformity_gain": [0.01, 0.005, 0.015], "alignment_gain": [0.02, 0.01, 0.03],
         "recall_gain": [0.02, 0.01, 0.03], "utilization_gain": [0.01, 0.002, 0.02]}
  rows = exp.claims(res)
  # the claims audit of 2026-12-03 made the whitening and lam-reduction identities sanity rows
  assert [r.kind for r in rows] == ["sanity", "sanity", "paper", "paper", "sanity", "paper", "paper"]
  assert all(r.passed for r in rows)
  res.update(uniformity_gain=[0.01, -0.001, 0.02], alignment_gain=[0.01, -0.01, 0.03],
             recall_gain=[0.0, 0.0, 0.0], utilization_gain=[float("nan")] * 3, sgw_cov_err=1e-3)
  assert [r.passed for r in exp.claims(res)] == [False, True, False, False, True, False, False]
