"""[181] Inverse-gap weighting (SquareCB) and FastCB (arXiv:2312.07145, Alg. 1) against a NumPy transcription of
Foster & Rakhlin's / Foster & Krishnamurthy's formulas."""

import jax
import numpy as np
import pytest

from jaxlib_methods.analysis import bandits


def test_weightings_match_the_formulas():
  rng = np.random.default_rng(0)
  y = rng.uniform(0.05, 1.0, size=(7, 4)).astype(np.float32)
  gam = rng.uniform(0.0, 50.0, size=7).astype(np.float32)
  p_sq, p_fast, p_uniform = jax.jit(lambda y, g: (bandits.inverse_gap_weighting(y, g),
                                                  bandits.fastcb_weighting(y, g),
                                                  bandits.inverse_gap_weighting(y, 0.0)))(y, gam)
  b = y.argmin(1)
  gap = y - y.min(1, keepdims=True)
  ref_sq = 1 / (4 + gam[:, None] * gap)
  ref_fast = y.min(1, keepdims=True) / (4 * y.min(1, keepdims=True) + gam[:, None] * gap)
  for ref in (ref_sq, ref_fast):
    ref[np.arange(7), b] = 0
    ref[np.arange(7), b] = 1 - ref.sum(1)
  np.testing.assert_allclose(p_sq, ref_sq, rtol=1e-5)
  np.testing.assert_allclose(p_fast, ref_fast, rtol=1e-5)
  np.testing.assert_allclose(np.sum(p_sq, 1), 1, atol=1e-6)
  assert (np.asarray(p_sq)[np.arange(7), b] >= 0.25 - 1e-6).all()
  np.testing.assert_allclose(p_uniform, 0.25, atol=1e-7)
  with pytest.raises(ValueError, match="gamma"):
    bandits.inverse_gap_weighting(y, -1.0)
  with pytest.raises(ValueError, match="predicted_losses"):
    bandits.fastcb_weighting(y + 1.0, 1.0)
