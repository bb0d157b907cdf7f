"""Pieces of experiments/layers_wave2_gates.py checked against independent references (cheap, no training)."""
import itertools

import jax
import numpy as np
import pytest

from experiments import layers_wave2_gates as g


def test_auc_texture_bank_and_flop_count():
  # AUC = P(score of a positive > score of a negative) + 0.5 P(tie), by brute force over all pairs
  rng = np.random.default_rng(0)
  s, y = np.round(rng.normal(size=40), 1), rng.random(40) < 0.4
  pairs = [(1.0 if a > b else 0.5 if a == b else 0.0) for a, b in itertools.product(s[y], s[~y])]
  assert abs(g._auc(s, y) - np.mean(pairs)) < 1e-12
  # eight distinct {0, 1} textures
  bank = g._texture_bank(8)
  assert bank.shape == (8, 8, 8) and len({b.tobytes() for b in bank}) == 8 and set(np.unique(bank)) == {0.0, 1.0}
  # the masked-conv MAC count (NumPy masks): all channels on = the dense count; off channels drop their products
  cfg = g.Config()
  C, S = cfg.cnn_width, cfg.cnn_stem
  full = [np.ones((2, C)), np.ones((2, C))]
  assert np.allclose(g._conv_flops(cfg, full), 64 * 9 * (C * S + C * C))
  half = [np.ones((2, C)), np.ones((2, C))]
  half[0][:, C // 2:] = 0
  half[1][:, :3] = 0
  assert np.allclose(g._conv_flops(cfg, half), 64 * 9 * ((C // 2) * S + (C - 3) * (C // 2)))


@pytest.mark.slow
def test_data_generators():
  cfg = g.Config(img_noise=0.0)
  x, lab = g.texture_images(jax.random.key(0), 16, cfg)
  assert x.shape == (16, 8, 8, 1) and lab.shape == (16,)
  bank = 2 * g._texture_bank(8) - 1
  for xi, li in zip(np.asarray(x)[..., 0], np.asarray(lab)):   # a shifted, scaled copy of its class's texture
    assert any(np.allclose(xi / np.abs(xi).max(), np.roll(bank[li], (a, b), (0, 1)), atol=1e-5)
               for a in range(6) for b in range(6))
  # OptFS toy: useless values carry no effect, useful ones do, the last fields are all useless
  c = g.Config()
  a, t, useful = (np.asarray(v) for v in g._ctr_task(jax.random.key(1), c))
  assert np.all(a[~useful] == 0) and np.all(t[~useful] == 0) and np.all(np.abs(a[useful]) >= 0.5)
  assert not useful[c.ofs_useful_fields * c.ofs_vocab:].any() and useful.any()
