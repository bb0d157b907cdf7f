"""The m^2-Mix alignment/uniformity experiment [119]: its geodesic check and CLIP loss against float64 NumPy (the
TINY run and the no-mixup mutation are exercised by tests/experiments/test_mutations.py)."""

import numpy as np
import pytest

from experiments import m2mix_alignment_uniformity as exp


def test_geodesic_check_is_small_for_the_library_mixup():
  norm_err, angle_err = exp.geodesic_checks(num=64, dim=8, seed=1)
  assert norm_err < 1e-10 and angle_err < 1e-6


def test_clip_loss_matches_a_numpy_transcription():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
  a /= np.linalg.norm(a, axis=1, keepdims=True)
  b /= np.linalg.norm(b, axis=1, keepdims=True)
  logits = a @ b.T / 0.1

  def ce(z):
    z = z - z.max(1, keepdims=True)
    return np.mean(np.log(np.exp(z).sum(1)) - np.diag(z))

  want = (ce(logits) + ce(logits.T)) / 2
  got = float(exp.clip_loss(a.astype(np.float32), b.astype(np.float32), 0.1))
  assert got == pytest.approx(want, rel=1e-5)
