"""The S4D experiment [132]: its independent S4-LegS reference, and that its claims can fail."""

import numpy as np

from experiments import s4d_kernels as exp


def test_s4_reference_matches_closed_forms():
  # N = 1: A = -1, B = 1: ZOH kernel (1 - e^-dt) e^(-l dt).
  k = exp.s4_legs_basis_kernels(1, 1, 0.1, 6)
  np.testing.assert_allclose(k[0], (1 - np.exp(-0.1)) * np.exp(-0.1 * np.arange(6)), rtol=1e-12)
  # Lower-triangular HiPPO-LegS: the first coordinates do not depend on N.
  np.testing.assert_allclose(exp.s4_legs_basis_kernels(6, 2, 0.05, 30), exp.s4_legs_basis_kernels(12, 2, 0.05, 30),
                             rtol=1e-10, atol=1e-13)


def test_claims_logic():
  good = {"conv_vs_recurrence": {"lin/zoh": 1e-6}, "convergence": {"mean_errors": [0.9, 0.4, 0.08]}}
  assert all(c.passed for c in exp.claims(good))
  bad = {"conv_vs_recurrence": {"lin/zoh": 0.3}, "convergence": {"mean_errors": [0.9, 0.95, 0.9]}}
  assert [c.passed for c in exp.claims(bad)] == [False, False, False, False]
