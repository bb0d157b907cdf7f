"""The contrastive-temperature experiment [22]: its closed forms against NumPy, and claims that read the seeds."""

import jax.numpy as jnp
import numpy as np

from experiments import contrastive_temperature as exp


def test_tau_to_zero_limit_is_the_hardest_negative_triplet():
  """Wang & Liu (2021), Sec. 3: tau L_i -> max(0, max_{k != i} s_ik - s_ii); the gap is at most tau log B."""
  rng = np.random.default_rng(0)
  s = rng.uniform(-1, 1, size=(7, 7))
  neg = np.where(np.eye(7, dtype=bool), -np.inf, s)
  limit = np.maximum(0.0, neg.max(1) - np.diag(s))
  np.testing.assert_allclose(np.asarray(exp.hard_triplet_limit(jnp.asarray(s))), limit, atol=1e-7)
  for tau in (1e-1, 1e-2, 1e-3):
    # float64 NumPy transcription of L_i = -log softmax(s_i. / tau)_i
    z = s / tau
    lse = z.max(1) + np.log(np.exp(z - z.max(1, keepdims=True)).sum(1))
    ref = tau * (lse - np.diag(z))
    np.testing.assert_allclose(np.asarray(tau * exp.info_nce_from_similarity(jnp.asarray(s), tau)), ref, rtol=1e-5,
                               atol=1e-6)
    assert np.all(ref - limit >= -1e-12) and np.all(ref - limit <= tau * np.log(7) + 1e-12)


def test_claims_need_the_ordering_and_an_interval_that_excludes_zero():
  taus = list(exp.PAPER_TAUS)
  good = {"taus": taus, "gradient_identity_max_err": 0.0, "tau_to_zero_limit_err": 0.0, "limit_tau": 1e-3,
          "uniformity_mean": [3.7, 3.6, 3.5, 3.2, 2.6], "tolerance_mean": [0.1, 0.2, 0.3, 0.6, 0.8],
          "uniformity_gap": [1.0, 0.9, 1.1], "tolerance_gap": [0.7, 0.6, 0.8]}
  assert all(c.passed for c in exp.claims(good))
  # the two loss identities are sanity rows (they hold for any run); the four measured trends are the paper's
  assert [c.kind for c in exp.claims(good)] == ["sanity"] * 2 + ["paper"] * 4
  flat = dict(good, uniformity_mean=[3.0] * 5, uniformity_gap=[0.0, -0.1, 0.1])
  failed = [c.claim for c in exp.claims(flat) if not c.passed]
  assert len(failed) == 2 and all("uniformity" in f for f in failed)
