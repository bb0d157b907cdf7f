"""The EoRA toy [114]: its independent optimum, its quantised layer, and that its claims can fail."""

import numpy as np

from experiments import eora_quantized_toy as exp


def test_weighted_optimum_reduces_to_plain_svd_for_isotropic_activations():
  rng = np.random.default_rng(0)
  dw = rng.normal(size=(6, 8))
  x = 3.0 * np.linalg.qr(rng.normal(size=(8, 8)))[0]                 # X^T X = 9 I
  sig = np.linalg.svd(dw, compute_uv=False)
  got = exp.weighted_optimum_errors(dw, x, [1, 3, 6])
  np.testing.assert_allclose(got, [3 * np.sqrt(np.sum(sig[r:] ** 2)) for r in (1, 3, 6)], rtol=1e-8, atol=1e-9)


def test_layer_is_4bit_quantised_and_claims_logic():
  cfg = exp.Config(d_in=32, d_out=8, calib=16, test=16, group_size=16, max_rank_log2=2, outliers=2)
  w, w_hat, xc, xt = exp.make_layer(cfg, 0)
  assert xc.shape == (16, 32) and xt.shape == (16, 32)
  for row in w_hat.reshape(-1, 16):
    assert len(np.unique(row)) <= 16                                   # 4 bits per group
  assert 0 < np.abs(w - w_hat).max() <= (w.max() - w.min()) / 15
  good = {"per_seed": [{"quantised_test": 0.1}], "optimum_rel_gap": 1e-12, "max_eora_minus_svd_calib": -0.5,
          "min_svd_minus_eora_test": 0.01}
  assert all(c.passed for c in exp.claims(good))
  bad = dict(good, optimum_rel_gap=0.1, max_eora_minus_svd_calib=0.01, min_svd_minus_eora_test=0.0)
  assert [c.passed for c in exp.claims(bad)] == [False, False, False, True]
