"""The MECO-vs-NCE experiment [201]: its quadrature reference and convergence bookkeeping (the TINY run and the
nce_in_place_of_meco mutation are exercised by tests/experiments/test_mutations.py)."""

import numpy as np
import pytest

from experiments import compositional_nll as exp


def test_population_gradients_special_cases():
  # At the truth both population gradients vanish (NCE is consistent; its best c is log sqrt(2 pi)).
  d_nll, d_nce = exp.population_gradients(3.0, 3.0, 1.0, 20001)
  assert d_nll == 0.0 and d_nce < 1e-6
  # Far from the truth the NLL gradient is |mu - mu*| and NCE's is much smaller when the noise is N(0, 1).
  d_nll, d_nce = exp.population_gradients(2.0, 4.0, 1.0, 20001)
  assert d_nll == pytest.approx(2.0) and 0 < d_nce < d_nll / 10


def test_steps_to_threshold_is_the_first_hit():
  err = np.array([[1.0, 1.0], [0.5, 1.0], [0.05, 0.9], [0.2, 0.8]])     # [steps, runs]
  np.testing.assert_array_equal(exp.steps_to_threshold(err, 0.1), [2.0, np.inf])
